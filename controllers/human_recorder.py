"""Record a person (or any program) playing on the real screen: a ``ScreenCapture`` (which follows a
window and notices when it is gone), an ``InputListener`` (their real keys and buttons) and a writer
of episodes (``training.corpus.EpisodeWriter``; any object with ``add(frame, action, t)``,
``close(**meta)``, ``n_frames`` and ``meta``). ``framepilot.record.record_human`` wires the three.

Frame 0 is grabbed at the start with a no-op overlay; frame k is grabbed at the end of interval k,
with the overlay of the inputs held during it (``InputListener``'s rule).
"""

from __future__ import annotations

import math
import time

import numpy as np

from framepilot.errors import ConfigError, ControllerError
from framepilot.frames import FrameSpec
from overlays import NOOP, Action, render_overlay


def recording_size(height: int, width: int, layout) -> tuple[int, int]:
    """The game-frame (H, W) a capture of ``height`` x ``width`` pixels is stored at when no size is
    asked for: the capture's own size, trimmed by at most a pixel per side so that the stored frame,
    overlay strip included, has the even height and width that the video encoder needs."""
    w = width - width % 2
    h = height - height % 2
    if layout.strip_height(w) % 2:
        h = h - 1 if h > 16 else h + 1  # (a capture this small is stretched by a pixel instead)
    return h, w


def measure_frame_rate(capture, seconds: float = 1.5) -> float | None:
    """How many times a second the captured picture changes (a game's own frame rate), from grabbing
    as fast as the capture allows for ``seconds``; None when it changed fewer than 4 times (a still
    picture says nothing about its rate)."""
    changes = []
    last = None
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        frame, _ = capture.grab()
        t = time.perf_counter()
        if last is not None and not np.array_equal(frame, last):
            changes.append(t)
        last = frame
    if len(changes) < 4:
        return None
    return (len(changes) - 1) / (changes[-1] - changes[0])


def check_settings(fps: float, seconds: float | None, size: tuple[int, int] | None, layout) -> None:
    """A recording's settings, checked before the screen is opened."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 1 <= fps <= 60:
        raise ConfigError(f"--fps must be between 1 and 60 frames per second, got {fps!r}")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not (math.isfinite(seconds) and 0 < seconds <= 1e6)):
        raise ConfigError(f"--seconds must be a finite number of seconds above 0 (at most 1e6), got {seconds!r}")
    if size is not None:
        check_size(size, layout)


def check_size(size: tuple[int, int], layout) -> None:
    if len(size) != 2 or max(size) > 4096:
        raise ConfigError(f"--size must be H,W in pixels, each from 16 to 4096, got {size}")
    h, w = size
    total = h + layout.strip_height(w)
    if w % 2 or total % 2 or min(h, w) < 16:
        raise ConfigError(f"--size {h},{w} gives stored frames of {total}x{w} pixels with the {layout.name!r} "
                          f"strip; the video encoder needs even sides, each at least 16: try --size "
                          f"{recording_size(h, w, layout)[0]},{w - w % 2}")


def record(capture, listener, writer, layout, fps: float = 10.0, seconds: float | None = None,
           size: tuple[int, int] | None = None, ready=None, progress=None, fit: str = "letterbox") -> dict:
    """Record until the listener's stop key, ``seconds``, or the window going away.

    Args:
        capture: has ``grab() -> (frame, t)`` and ``size`` (width, height) (``controllers.ScreenCapture``).
        listener: a started ``InputListener``.
        writer: where the frames go (see the module docstring).
        layout: the overlay layout drawn on every frame.
        fps: frames per second. seconds: stop after this long (None: the stop key only).
        size: (H, W) to store game frames at; mouse velocities are scaled to them. None:
            ``recording_size`` of the capture. The corpus's frame contract (``FrameSpec``: this size,
            the layout, ``fps`` and ``fit``) goes into ``meta.json`` as ``frame_spec``.
        fit: how captured frames are brought to ``size`` (``FrameSpec.fit_game``): ``letterbox``
            (one scale, black bars) or ``stretch``.
        ready: called once, after frame 0 (tests send input from it).
        progress: called after every frame with (seconds, frames, keys seen so far).
    Returns:
        The writer's meta after ``close``.
    """
    check_settings(fps, seconds, size, layout)
    width, height = capture.size
    out_h, out_w = size if size is not None else recording_size(height, width, layout)
    check_size((out_h, out_w), layout)
    spec = FrameSpec.of((out_h, out_w), layout, fps, fit)
    writer.meta["frame_spec"] = spec.to_dict()
    sx, sy = (s / getattr(capture, "downscale", 1) for s in spec.scale(height, width))

    def grab():
        frame, _ = capture.grab()
        return spec.fit_game(frame)

    seen: set[str] = set()
    last_pos = listener.pointer
    writer.add(render_overlay(grab(), NOOP, layout), NOOP, 0.0)
    if ready is not None:
        ready()
    listener.interval()  # the first interval starts with frame 0
    t0 = time.perf_counter()
    k = 0
    stop = listener.stopped
    while not stop.is_set():
        k += 1
        deadline = t0 + k / fps
        while time.perf_counter() < deadline and not stop.is_set():
            time.sleep(min(0.002, max(0.0, deadline - time.perf_counter())))
        if stop.is_set():
            break
        pos = listener.pointer
        keys, buttons = listener.interval()
        try:
            frame = grab()
        except ControllerError as e:  # the window closed or went away: the recording ends there, kept
            writer.meta["ended"] = str(e)
            break
        v = ((pos[0] - last_pos[0]) * fps * sx, (pos[1] - last_pos[1]) * fps * sy) if layout.has_mouse else (0.0, 0.0)
        last_pos = pos
        action = Action(keys=keys, mouse=v, buttons=buttons)
        writer.add(render_overlay(frame, action, layout), action, k / fps)
        seen |= keys | buttons
        if progress is not None:
            progress(k / fps, writer.n_frames, sorted(seen))
        if seconds is not None and k / fps >= seconds - 1e-9:
            break
    writer.close(success=None, steps=writer.n_frames - 1)
    return writer.meta
