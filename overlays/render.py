"""Draw the overlay: a strip below the frame (default) or a panel composited into a corner."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from framepilot.errors import ConfigError
from overlays.action import Action
from overlays.layout import Layout, LayoutError

STRIP_BG = 128   # strip background grey
KEY_UP = 255     # unpressed key fill
KEY_DOWN = 0     # held key fill
LABEL_BAND = 0.34  # top fraction of a cell that holds its label; the reader measures below it
CORNERS = ("bottom-left", "bottom-right", "top-left", "top-right")


def check_frame(frame: np.ndarray, what: str = "frame") -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(f"{what} must be a uint8 numpy array, got {getattr(frame, 'dtype', type(frame).__name__)}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 4 or frame.shape[1] < 16:
        raise ValueError(f"{what} must have shape (H, W, 3) with H >= 4 and W >= 16, got {frame.shape}")


def cell_rect(box, width: int, strip_h: int) -> tuple[int, int, int, int]:
    """Pixel rectangle (x0, y0, x1, y1) of a cell inside a strip of ``width`` x ``strip_h``."""
    x, y, w, h = box
    x0, x1 = int(round(x * width)), int(round((x + w) * width))
    y0, y1 = int(round(y * strip_h)), int(round((y + h) * strip_h))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def pad_rect(box, width: int, strip_h: int) -> tuple[int, int, int, int]:
    """The mouse pad is a square centred in its cell box."""
    x0, y0, x1, y1 = cell_rect(box, width, strip_h)
    side = min(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (int(round(cx - side / 2)), int(round(cy - side / 2)),
            int(round(cx - side / 2)) + side, int(round(cy - side / 2)) + side)


def pad_geometry(rect) -> tuple[float, float, float, float, int]:
    """(centre x, centre y, arrow radius, arrow thickness, border) of a pad rectangle, in pixels."""
    x0, y0, x1, y1 = rect
    side = x1 - x0
    border = max(1, int(round(side * 0.05)))
    thick = max(1.5, side * 0.09)
    radius = side / 2 - border - thick / 2 - max(1.0, side * 0.08)
    return (x0 + x1) / 2, (y0 + y1) / 2, radius, thick, border


@lru_cache(maxsize=64)
def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=max(6, size))
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _draw_label(strip: np.ndarray, rect, label: str, fill: int) -> None:
    from PIL import Image, ImageDraw
    x0, y0, x1, y1 = rect
    band_h = max(1, int((y1 - y0) * LABEL_BAND))
    if band_h < 5 or not label:
        return  # too small to be legible: the reader ignores the band anyway
    img = Image.fromarray(strip[y0:y0 + band_h, x0:x1])
    draw = ImageDraw.Draw(img)
    font = _font(band_h - 1)
    l, t, r, b = draw.textbbox((0, 0), label, font=font)
    draw.text(((x1 - x0 - (r - l)) / 2 - l, (band_h - (b - t)) / 2 - t), label, fill=(fill,) * 3, font=font)
    strip[y0:y0 + band_h, x0:x1] = np.asarray(img)


def draw_arrow(pad: np.ndarray, geom, v: tuple[float, float], max_speed: float) -> None:
    """Anti-aliased round-capped segment from the pad centre toward ``v``; its ink is symmetric
    about the segment midpoint, so the ink centroid sits at half the tip offset."""
    cx, cy, radius, thick, _ = geom
    vx, vy = v
    speed = float(np.hypot(vx, vy))
    if speed <= 0:
        return
    scale = min(speed, max_speed) / speed / max_speed * radius
    tx, ty = cx + vx * scale, cy + vy * scale
    h, w = pad.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    dx, dy = tx - cx, ty - cy
    L2 = dx * dx + dy * dy
    if L2 > 0:
        u = np.clip(((xx - cx) * dx + (yy - cy) * dy) / L2, 0, 1)
    else:
        u = np.zeros_like(xx)
    dist = np.hypot(xx - (cx + u * dx), yy - (cy + u * dy))
    cover = np.clip(thick / 2 + 0.5 - dist, 0, 1)
    pad[:] = (pad * (1 - cover[..., None])).round().astype(np.uint8)


def draw_strip(action: Action, layout: Layout, width: int) -> np.ndarray:
    """(strip_h, width, 3) uint8 overlay for ``action``."""
    unknown = sorted(set(action.keys) - set(layout.keys))
    if unknown:
        raise LayoutError(f"key {unknown[0]!r} is not in layout {layout.name!r} (keys: {', '.join(layout.keys)})")
    ubtn = sorted(set(action.buttons) - set(layout.buttons))
    if ubtn:
        raise LayoutError(f"mouse button {ubtn[0]!r} is not in layout {layout.name!r}")
    sh = layout.strip_height(width)
    strip = np.full((sh, width, 3), STRIP_BG, np.uint8)
    for c in layout.cells:
        if c.kind == "mouse":
            x0, y0, x1, y1 = rect = pad_rect(c.box, width, sh)
            geom = pad_geometry(rect)
            b = geom[4]
            strip[y0:y1, x0:x1] = 0
            strip[y0 + b:y1 - b, x0 + b:x1 - b] = KEY_UP
            draw_arrow(strip[y0:y1, x0:x1], (geom[0] - x0, geom[1] - y0, *geom[2:]), action.mouse, layout.max_speed)
            continue
        held = c.name in (action.keys if c.kind == "key" else action.buttons)
        x0, y0, x1, y1 = rect = cell_rect(c.box, width, sh)
        strip[y0:y1, x0:x1] = KEY_DOWN if held else KEY_UP
        _draw_label(strip, rect, c.label, KEY_UP if held else 40)
    return strip


def strip_box(frame_shape: tuple[int, int], layout: Layout, placement: str = "strip",
              corner_fraction: float = 0.4) -> tuple[int, int, int, int]:
    """Where the overlay lies in a frame of the original (H, W): (x0, y0, width, height) in the output."""
    h, w = frame_shape[:2]
    if placement == "strip":
        return 0, h, w, layout.strip_height(w)
    if placement not in CORNERS:
        raise ConfigError(f"overlay placement must be 'strip' or one of {', '.join(CORNERS)}, got {placement!r}")
    pw = max(16, int(round(w * corner_fraction)))
    ph = layout.strip_height(pw)
    if ph > h:
        raise ValueError(f"frame of height {h} is too small for a corner overlay of height {ph}; use placement='strip'")
    x0 = 0 if placement.endswith("left") else w - pw
    y0 = 0 if placement.startswith("top") else h - ph
    return x0, y0, pw, ph


def render_overlay(frame: np.ndarray, action: Action, layout: Layout, placement: str = "strip",
                   corner_fraction: float = 0.4) -> np.ndarray:
    """Draw ``action`` onto ``frame``.

    Args:
        frame: (H, W, 3) uint8.
        action: the inputs held during the interval that ends at this frame.
        layout: which controls to draw.
        placement: ``"strip"`` appends a strip below (output (H + strip_h, W, 3)); a corner name
            composites the overlay inside the frame (output (H, W, 3)).
        corner_fraction: overlay width as a fraction of the frame width, for corners.
    Returns:
        A new (H', W, 3) uint8 array.
    """
    check_frame(frame)
    x0, y0, pw, ph = strip_box(frame.shape, layout, placement, corner_fraction)
    strip = draw_strip(action, layout, pw)
    if placement == "strip":
        return np.concatenate([frame, strip], axis=0)
    out = frame.copy()
    out[y0:y0 + ph, x0:x0 + pw] = strip
    return out


def draw_sticky_note(frame: np.ndarray, text: str, layout: Layout | None = None, placement: str = "strip",
                     corner_fraction: float = 0.4) -> np.ndarray:
    """Write a short text note (a visual prompt) onto a frame where it hides no overlay cell.

    Args:
        frame: (H, W, 3) uint8, with or without the overlay.
        text: a few words; longer text is refused rather than silently cut.
        layout, placement: the overlay already on (or about to go on) the frame, to keep clear of it.
    Returns:
        A new (H, W, 3) uint8 array with a yellow note at the top of the frame area.
    """
    from PIL import Image, ImageDraw
    check_frame(frame)
    if len(text) > 40:
        raise ConfigError(f"a sticky note holds at most 40 characters, got {len(text)}; shorten it")
    h, w = frame.shape[:2]
    note_h = max(8, int(round(w * 0.08)))
    y0 = 0
    if layout is not None and placement.startswith("top"):
        # The overlay is in a top corner: put the note at the bottom of the frame instead.
        y0 = h - note_h - (0 if placement in CORNERS else layout.strip_height(w))
    img = Image.fromarray(frame.copy())
    draw = ImageDraw.Draw(img)
    font = _font(note_h - 2)
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    nw = min(w, r - l + note_h)
    x0 = (w - nw) // 2
    draw.rectangle([x0, y0, x0 + nw - 1, y0 + note_h - 1], fill=(255, 236, 110), outline=(120, 100, 0))
    draw.text((x0 + note_h // 2 - l, y0 + (note_h - (b - t)) / 2 - t), text, fill=(20, 20, 20), font=font)
    return np.asarray(img)
