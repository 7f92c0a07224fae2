"""The overlay codec: draw a virtual keyboard/mouse onto frames and read it back out."""

from overlays.action import MOUSE_BUTTONS, NOOP, Action
from overlays.layout import OVERLAY_VERSION, PRESETS, Cell, Layout, LayoutError
from overlays.render import draw_sticky_note, render_overlay, strip_box
from overlays.read import OverlayReading, read_overlay

__all__ = ["Action", "NOOP", "MOUSE_BUTTONS", "Layout", "LayoutError", "Cell", "OVERLAY_VERSION", "PRESETS",
           "render_overlay", "read_overlay", "OverlayReading", "draw_sticky_note", "strip_box"]
