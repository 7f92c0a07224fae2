"""``framepilot record --screen``: a person playing a window or region of the real screen, recorded as
a corpus episode. The wiring of ``controllers.ScreenCapture``, ``controllers.listener.InputListener``,
``controllers.human_recorder.record`` and ``training.corpus.EpisodeWriter`` (the file format).

    from framepilot.record import record_human
    record_human("corpus/mygame/ep_0", Layout.preset("arrows"), window="My Game", fps=10)
"""

from __future__ import annotations

import sys
import time


def record_human(out_dir, layout, *, window: str | None = None, region: tuple[int, int, int, int] | None = None,
                 monitor: int | None = None, fps: float | None = 10.0, seconds: float | None = None,
                 size: tuple[int, int] | None = None, prompt: str | None = None, game: str = "screen",
                 stop_key: str = "esc", ready=None, live: bool = False, overwrite: bool = False,
                 fit: str = "letterbox") -> dict:
    """Record one episode of a person playing; returns its meta dict.

    Args:
        out_dir: the episode folder to write.
        layout: ``overlays.Layout``; only its keys and buttons are heard, nothing else is stored.
        window, region, monitor: what to capture (see ``ScreenCapture``); a window is followed where it
            moves, and the recording ends, kept, when it closes.
        fps: frames per second; ``None``: the window's own frame rate, measured for 1.5 s before the
            recording starts (``measure_frame_rate``; 10 when the picture does not change). A rate below
            the measured one is recorded as asked, with a warning: frames in between are never seen.
        seconds: stop after this long (``None``: only ``stop_key`` stops).
        size: ``(height, width)`` to store game frames at (``None``: the captured size, trimmed to what
            the video encoder takes: ``controllers.human_recorder.recording_size``).
        fit: how the capture is brought to ``size`` (``framepilot.frames.FrameSpec``): letterbox or
            stretch.
        prompt, game: stored in ``meta.json``.
        ready: called once the listeners run and frame 0 is written (tests send input from it).
        live: print a live line (seconds, frames, keys seen) to stderr while recording.
        overwrite: replace an episode already in ``out_dir``; without it such a folder is refused
            before anything is captured, and nothing is deleted.
    """
    from controllers import ScreenCapture
    from controllers.human_recorder import check_settings, record
    from controllers.human_recorder import measure_frame_rate
    from controllers.listener import InputListener
    from training.corpus import EpisodeWriter, refuse_existing_episode
    check_settings(10.0 if fps is None else fps, seconds, size, layout)  # before anything is opened
    from framepilot.frames import FITS
    if fit not in FITS:
        from framepilot.errors import ConfigError
        raise ConfigError(f"--fit must be letterbox or stretch, got {fit!r}")
    if not overwrite:
        refuse_existing_episode(out_dir)  # said before the display is even opened
    with ScreenCapture(monitor=monitor, region=region, window=window) as cap:
        measured = measure_frame_rate(cap)
        fps = _frame_rate(fps, measured, live)
        meta = {"game": game, "seed": None, "prompt": prompt, "fps": fps, "measured_fps": measured,
                "layout": layout.to_dict(),
                "overlay_version": layout.overlay_version, "source": "screen", "region": list(cap.rect.as_tuple())}
        progress = _LiveLine() if live else None
        with InputListener(layout, stop_key) as listener, EpisodeWriter(out_dir, meta, overwrite=overwrite) as writer:
            if live:
                print(f"recording {cap.rect}; press {stop_key} to stop", file=sys.stderr, flush=True)
            meta = record(cap, listener, writer, layout, fps=fps, seconds=seconds, size=size, ready=ready,
                          progress=progress, fit=fit)
        if progress is not None:
            progress.done()
    unused = [k for k in layout.keys if k not in progress.seen] if progress is not None else []
    if live and unused and progress.seen:
        used = [k for k in layout.keys if k in progress.seen]
        print(f"the player never pressed {', '.join(unused)}: a layout of the keys the game uses shows the model "
              f"(and the agent) no key the game ignores; record with --keys {','.join(used)}",
              file=sys.stderr, flush=True)
    return meta


def _frame_rate(fps: float | None, measured: float | None, say: bool) -> float:
    """The recording's frame rate: ``fps``, or the measured one rounded (10 when unknown); a warning when
    ``fps`` samples the window more slowly than it changes."""
    if fps is None:
        fps = float(min(30, max(1, round(measured)))) if measured else 10.0
        if say:
            how = (f"the window changes {measured:.1f} times a second" if measured else
                   "the window did not change while it was measured (pass --fps to choose)")
            print(f"{how}: recording at {fps:g} fps", file=sys.stderr, flush=True)
    elif measured and say and fps < 0.9 * measured:
        print(f"the window changes {measured:.1f} times a second but --fps is {fps:g}: frames in between are "
              f"never recorded; record at --fps {round(measured)} (or leave --fps out to use the window's rate)",
              file=sys.stderr, flush=True)
    return fps


class _LiveLine:
    """One status line, rewritten in place on a terminal, else printed every 5 s."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self.seen: set[str] = set()

    def __call__(self, seconds: float, frames: int, keys: list[str]) -> None:
        self.seen = set(keys)
        now = time.monotonic()
        line = f"recording: {seconds:6.1f} s, {frames} frames, keys seen: {', '.join(keys) or 'none yet'}"
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif now - self._last >= 5.0:
            self._last = now
            print(line, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)
