"""Screen capture with mss: a monitor, a region or a window found by title, and a fixed-rate frame source."""

from __future__ import annotations

import threading
import time

import numpy as np

from controllers.display import (
    ControllerError,
    Rect,
    RegionError,
    check_display,
    find_window,
    open_display,
    window_rect,
    window_title,
)
from framepilot.errors import ConfigError
from framepilot.frames import resize_frames


def _arrow_sprite() -> tuple[np.ndarray, np.ndarray]:
    """A classic pointer arrow, tip at (1, 1): ``(fill, outline)`` boolean masks of shape (21, 15)."""
    poly = np.array([(0, 0), (0, 16), (4, 12.5), (7, 18.5), (9.5, 17.5), (6.5, 11.5), (11.5, 11.5)]) + 1
    ys, xs = np.mgrid[0:21, 0:15] + 0.5
    inside = np.zeros(xs.shape, bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):  # even-odd ray casting
        crosses = (y0 > ys) != (y1 > ys)
        x_at = x0 + (ys - y0) * (x1 - x0) / np.where(y1 == y0, 1, y1 - y0)
        inside ^= crosses & (xs < x_at)
    grown = inside.copy()
    grown[1:] |= inside[:-1]
    grown[:-1] |= inside[1:]
    grown[:, 1:] |= inside[:, :-1]
    grown[:, :-1] |= inside[:, 1:]
    return inside, grown & ~inside


_FILL, _OUTLINE = _arrow_sprite()


def draw_pointer(frame: np.ndarray, x: int, y: int) -> None:
    """Draw the arrow with its tip at pixel ``(x, y)`` of ``frame`` (H, W, 3) uint8, in place, clipped."""
    h, w = frame.shape[:2]
    sh, sw = _FILL.shape
    x, y = x - 1, y - 1  # the sprite's tip is at (1, 1)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, w), min(y + sh, h)
    if x0 >= x1 or y0 >= y1:
        return
    view = frame[y0:y1, x0:x1]
    sl = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    view[_OUTLINE[sl]] = 0
    view[_FILL[sl]] = 255


class ScreenCapture:
    """Grabs RGB frames of a monitor, a region or a window with one long-lived mss instance.

    Args:
        monitor: mss monitor index (1 = first monitor, 0 = all of them); the default when nothing else is given.
        region: ``(left, top, width, height)`` in screen pixels.
        window: a window title (exact, else case-insensitive substring), found in the X window tree,
            so it works without a window manager; the capture follows the window when it moves.
        include_pointer: draw a small arrow where the mouse pointer is (layouts with a mouse need it).
        downscale: average each ``downscale`` x ``downscale`` block of screen pixels into one frame
            pixel (default 1: the screen's own pixels). A window that shows a game at ``s`` screen
            pixels per game pixel, captured with ``downscale=s``, gives the game's own frames back.

    Raises:
        ControllerError: no display, a Wayland session, a region outside the screen, an unknown window,
            a region whose sides are not whole multiples of ``downscale``.
    """

    def __init__(self, monitor: int | None = None, region: tuple[int, int, int, int] | None = None,
                 window: str | None = None, include_pointer: bool = False, downscale: int = 1):
        if sum(v is not None for v in (monitor, region, window)) > 1:
            raise ControllerError("pass only one of monitor, region or window to ScreenCapture")
        if int(downscale) != downscale or downscale < 1:
            raise ControllerError(f"downscale must be a whole number of screen pixels per frame pixel, got {downscale}")
        self.downscale = int(downscale)
        check_display()
        try:
            import mss
        except ImportError:
            raise ControllerError("mss is not installed: pip install mss") from None
        self.include_pointer = include_pointer
        self._xd = open_display()
        self._lock = threading.Lock()
        try:
            self._sct = mss.MSS()
            bounds = self._sct.monitors[0]
        except Exception as e:  # mss raises ScreenShotError with a multi-line message
            self._xd.close()
            raise ControllerError(f"mss cannot capture this display ({str(e).splitlines()[0]}): check "
                                  "that $DISPLAY points to a running X server") from None
        self.screen = Rect(bounds["left"], bounds["top"], bounds["width"], bounds["height"])
        self.window = None  # Xlib window when capturing a window
        try:
            if window is not None:
                self.window = find_window(self._xd, window)
                self.title = window_title(self._xd, self.window)
                self.rect = self._window_rect_on_screen()
            elif region is not None:
                self.rect = self._check_region(region)
            else:
                self.rect = self._monitor_rect(1 if monitor is None else monitor)
        except BaseException:
            self.close()
            raise
        if self.rect.width % self.downscale or self.rect.height % self.downscale:
            w, h = self.rect.width, self.rect.height
            self.close()
            raise RegionError(f"the captured {w}x{h} pixels do not divide into {self.downscale}x{self.downscale} "
                              f"blocks: capture a region whose sides are multiples of {self.downscale}")

    # ---- setup -------------------------------------------------------------------------------
    def _check_region(self, region) -> Rect:
        try:
            left, top, width, height = (int(v) for v in region)
        except (TypeError, ValueError):
            raise RegionError(f"region {region!r} must be four integers left,top,width,height") from None
        r = Rect(left, top, width, height)
        if width <= 0 or height <= 0 or not r.inside(self.screen):
            raise RegionError(f"region {width}x{height} at ({left}, {top}) lies outside the screen, which is "
                              f"{self.screen}: pick a region inside it")
        return r

    def _monitor_rect(self, index: int) -> Rect:
        mons = self._sct.monitors
        if not 0 <= index < len(mons):
            raise RegionError(f"monitor {index} does not exist: this display has monitors 1 to {len(mons) - 1} "
                              "(0 means all of them)")
        m = mons[index]
        return Rect(m["left"], m["top"], m["width"], m["height"])

    def _window_rect_on_screen(self) -> Rect:
        import Xlib.error
        try:
            r = window_rect(self._xd, self.window)
        except Xlib.error.XError:
            raise ControllerError(f"the window {self.title!r} was closed: open it again") from None
        left, top = max(r.left, self.screen.left), max(r.top, self.screen.top)
        right, bottom = min(r.right, self.screen.right), min(r.bottom, self.screen.bottom)
        if right <= left or bottom <= top:
            raise RegionError(f"the window {self.title!r} ({r}) lies outside the screen, which is {self.screen}: "
                              "move it onto the screen")
        return Rect(left, top, right - left, bottom - top)

    def _check_window_shown(self) -> None:
        """Raise ``ControllerError`` when the window is gone or no longer mapped (a closing program
        unmaps its window before destroying it, and the screen there then shows what lies below)."""
        import Xlib.error
        import Xlib.X
        try:
            shown = self.window.get_attributes().map_state == Xlib.X.IsViewable
        except Xlib.error.XError:
            shown = False
        if not shown:
            raise ControllerError(f"the window {self.title!r} was closed: open it again")

    def window_closed(self) -> bool:
        """Whether the followed window is gone or unmapped (False when no window is followed)."""
        if self.window is None:
            return False
        try:
            with self._lock:
                self._check_window_shown()
        except ControllerError:
            return True
        return False

    # ---- grabbing ----------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames, pixels (the region's, divided by ``downscale``)."""
        return self.rect.width // self.downscale, self.rect.height // self.downscale

    def grab(self) -> tuple[np.ndarray, float]:
        """One frame.

        Returns:
            ``(frame, t)``: frame (H, W, 3) uint8 RGB, t the ``time.monotonic()`` seconds when it was taken.
        """
        with self._lock:
            if self.window is not None:
                r = self._window_rect_on_screen()
                # follow a moving window but keep the frame size fixed
                r = Rect(min(r.left, self.screen.right - self.rect.width),
                         min(r.top, self.screen.bottom - self.rect.height), self.rect.width, self.rect.height)
                self.rect = r
            r = self.rect
            t = time.monotonic()
            shot = self._sct.grab({"left": r.left, "top": r.top, "width": r.width, "height": r.height})
            bgrx = np.frombuffer(shot.raw, np.uint8).reshape(r.height, r.width, 4)
            frame = np.ascontiguousarray(bgrx[:, :, 2::-1])
            if self.window is not None:
                # still shown after the grab, so the grab saw the window and not what lay below it
                self._check_window_shown()
            if self.include_pointer:
                p = self._xd.screen().root.query_pointer()
                draw_pointer(frame, p.root_x - r.left, p.root_y - r.top)
        f = self.downscale
        if f > 1:  # whole blocks: exact block means
            frame = resize_frames(frame[None], (frame.shape[0] // f, frame.shape[1] // f))[0]
        return frame, t

    def close(self) -> None:
        for thing in ("_sct", "_xd"):
            obj = getattr(self, thing, None)
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
                setattr(self, thing, None)

    def __enter__(self) -> "ScreenCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FrameSource:
    """Samples a capture at a fixed rate in a background thread into a ring buffer (the planner's context).

    Args:
        capture: anything with ``grab() -> (frame (H, W, 3) uint8, t seconds)``.
        fps: sampling rate, frames per second; a grab that overruns skips ticks rather than bursting.
        seconds: how much history the ring buffer keeps.
    """

    def __init__(self, capture, fps: float, seconds: float = 1.0):
        if fps <= 0 or seconds <= 0:
            raise ConfigError(f"fps and seconds must be positive, got fps={fps}, seconds={seconds}")
        self.capture, self.fps = capture, float(fps)
        self.capacity = max(1, int(round(fps * seconds)))
        self._frames: np.ndarray | None = None
        self._times = np.zeros(self.capacity)
        self._count = 0  # total frames written
        self.skipped = 0  # ticks missed because a grab overran
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "FrameSource":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="framepilot-frames", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        period, next_t = 1.0 / self.fps, time.monotonic()
        try:
            while not self._stop.is_set():
                frame, t = self.capture.grab()
                with self._cond:
                    if self._frames is None:
                        self._frames = np.empty((self.capacity, *frame.shape), frame.dtype)
                    i = self._count % self.capacity
                    self._frames[i], self._times[i] = frame, t
                    self._count += 1
                    self._cond.notify_all()
                next_t += period
                now = time.monotonic()
                if now > next_t:
                    missed = int((now - next_t) / period) + 1
                    self.skipped += missed
                    next_t += missed * period
                self._stop.wait(next_t - time.monotonic())
        except BaseException as e:  # surfaced by latest()
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def latest(self, n: int | None = None, timeout: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
        """The newest frames, oldest first, waiting up to ``timeout`` seconds until ``n`` exist.

        Returns:
            ``(frames (T, H, W, 3) uint8, times (T,) monotonic seconds)`` with ``T = n``
            (``n`` defaults to, and is capped at, the buffer's capacity).
        """
        n = self.capacity if n is None else min(int(n), self.capacity)
        self.start()
        with self._cond:
            ok = self._cond.wait_for(lambda: self._count >= n or self._error is not None, timeout)
            if self._error is not None:
                raise self._error
            if not ok:
                raise ControllerError(f"the frame source produced {self._count} of {n} frames in {timeout} s: "
                                      "lower fps or the region size")
            idx = (np.arange(self._count - n, self._count)) % self.capacity
            return self._frames[idx].copy(), self._times[idx].copy()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> "FrameSource":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
