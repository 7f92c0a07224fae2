"""The X display: connection checks, screen bounds and the window tree, shared by capture and safety.

Everything here speaks plain Xlib (python-xlib) so it works with no window manager (Xvfb) as well
as under one. Xlib is imported inside functions so ``controllers`` imports without a display.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from framepilot.errors import AgentStopped, ControllerError  # noqa: F401 (re-exported)

NO_DISPLAY = "no X display: start one, e.g. Xvfb, or use --dry-run"




class NoDisplayError(ControllerError):
    pass


class WaylandError(ControllerError):
    pass


class RegionError(ControllerError):
    pass


class WindowNotFoundError(ControllerError):
    pass




@dataclass(frozen=True)
class Rect:
    """A screen rectangle in root-window pixels."""

    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    def contains(self, x: float, y: float) -> bool:
        return self.left <= x < self.right and self.top <= y < self.bottom

    def intersects(self, o: "Rect") -> bool:
        return self.left < o.right and o.left < self.right and self.top < o.bottom and o.top < self.bottom

    def inside(self, o: "Rect") -> bool:
        return self.left >= o.left and self.top >= o.top and self.right <= o.right and self.bottom <= o.bottom

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.width, self.height)

    @classmethod
    def parse(cls, text: str, what: str = "--region") -> "Rect":
        """``"L,T,W,H"`` in screen pixels, e.g. ``"0,0,640,480"``; anything else is a ``RegionError``
        naming ``what``."""
        try:
            left, top, width, height = (int(v) for v in str(text).split(","))
        except ValueError:
            raise RegionError(f"{what} must be L,T,W,H in screen pixels, e.g. 0,0,640,480; got {text!r}") from None
        if width < 1 or height < 1 or left < 0 or top < 0:
            raise RegionError(f"{what} must have a positive width and height inside the screen, got {text!r}")
        return cls(left, top, width, height)

    def __str__(self) -> str:
        return f"{self.width}x{self.height} at ({self.left}, {self.top})"


def check_display() -> str:
    """Return ``$DISPLAY`` or raise a one-sentence error for a missing display or a Wayland session."""
    display = os.environ.get("DISPLAY", "")
    if os.environ.get("WAYLAND_DISPLAY") or (not display and os.environ.get("XDG_SESSION_TYPE") == "wayland"):
        raise WaylandError(
            "this is a Wayland session, and an X11 session is needed because native Wayland windows are "
            "neither captured nor driven: log into an X11 (Xorg) session, or unset WAYLAND_DISPLAY to use "
            "an X display such as Xvfb")
    if not display:
        raise NoDisplayError(NO_DISPLAY)
    return display


def open_display():
    """A new Xlib connection to ``$DISPLAY`` (one per thread: Xlib connections are not shared)."""
    name = check_display()
    try:
        import Xlib.display
        import Xlib.error
    except ImportError:
        raise ControllerError("python-xlib is not installed: pip install python-xlib") from None
    try:
        return Xlib.display.Display(name)
    except (Xlib.error.DisplayError, Xlib.error.ConnectionClosedError, OSError) as e:
        raise NoDisplayError(f"cannot open X display {name!r} ({e}): start one, e.g. Xvfb, "
                             "or use --dry-run") from None


def screen_rect(d) -> Rect:
    g = d.screen().root.get_geometry()
    return Rect(0, 0, g.width, g.height)


def window_title(d, w) -> str:
    """The window's title (``_NET_WM_NAME``, else ``WM_NAME``), '' when it has none or is gone."""
    import Xlib.error
    try:
        prop = w.get_full_property(d.intern_atom("_NET_WM_NAME"), d.intern_atom("UTF8_STRING"))
        if prop is not None and prop.value:
            v = prop.value
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        name = w.get_wm_name()
        if isinstance(name, bytes):
            return name.decode("latin-1")
        return name or ""
    except Xlib.error.XError:
        return ""


def is_viewable(w) -> bool:
    import Xlib.error
    import Xlib.X
    try:
        a = w.get_attributes()
        return a.map_state == Xlib.X.IsViewable and a.win_class != Xlib.X.InputOnly
    except Xlib.error.XError:
        return False


def window_rect(d, w) -> Rect:
    """The window's rectangle in root coordinates; raises ``Xlib.error.XError`` when it is gone."""
    g = w.get_geometry()
    t = d.screen().root.translate_coords(w, 0, 0)
    return Rect(t.x, t.y, g.width, g.height)


def iter_windows(d):
    """Every window below the root, depth-first, parents before children (windows may vanish meanwhile)."""
    import Xlib.error
    stack = [d.screen().root]
    while stack:
        w = stack.pop()
        try:
            children = w.query_tree().children
        except Xlib.error.XError:
            continue
        for c in reversed(children):
            yield c
            stack.append(c)


def visible_windows(d) -> list[tuple[object, str]]:
    """``(window, title)`` for every viewable window that has a title."""
    out = []
    for w in iter_windows(d):
        t = window_title(d, w)
        if t and is_viewable(w):
            out.append((w, t))
    return out


def find_window(d, title: str):
    """The viewable window whose title is ``title`` (exact match first, then case-insensitive substring)."""
    wins = visible_windows(d)
    for match in (lambda t: t == title, lambda t: title.lower() in t.lower()):
        found = [w for w, t in wins if match(t)]
        if found:
            return found[0]
    titles = sorted({t for _, t in wins})
    listing = ", ".join(repr(t) for t in titles[:20]) + (", ..." if len(titles) > 20 else "")
    raise WindowNotFoundError(
        f"no visible window titled {title!r}: the visible windows are {listing}" if titles else
        f"no visible window titled {title!r}: this display has no visible titled windows; open the program first")


def top_level(d, w):
    """The child of the root that contains ``w`` (a window manager's frame, or ``w`` itself without one)."""
    root = d.screen().root
    while True:
        parent = w.query_tree().parent
        if parent is None or parent.id == root.id or parent.id == 0:
            return w
        w = parent


def keys_down(d) -> set[int]:
    """Key codes the X server believes are held right now (``XQueryKeymap``)."""
    km = d.query_keymap()
    return {i * 8 + b for i, byte in enumerate(km) for b in range(8) if byte >> b & 1}


def buttons_down(d) -> set[int]:
    """Mouse buttons (1 left, 2 middle, 3 right) the X server believes are held right now."""
    mask = d.screen().root.query_pointer().mask
    return {b for b in (1, 2, 3, 4, 5) if mask & (1 << (7 + b))}


def xtest_release(d, keycodes, buttons) -> None:
    """Release ``keycodes`` and mouse ``buttons`` (1-3) that the X server shows as held, via XTEST."""
    import Xlib.ext.xtest
    import Xlib.X

    down_k, down_b = keys_down(d), buttons_down(d)
    for kc in keycodes:
        if kc in down_k:
            Xlib.ext.xtest.fake_input(d, Xlib.X.KeyRelease, kc)
    for b in buttons:
        if b in down_b:
            Xlib.ext.xtest.fake_input(d, Xlib.X.ButtonRelease, b)
    d.sync()
