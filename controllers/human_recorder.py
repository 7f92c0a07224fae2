"""Record a person playing a window, a region or a monitor, with their real inputs drawn as the overlay.

The target is resolved and checked by ``ScreenCapture`` (a window by title, with no window manager
too; one-sentence errors for a missing display, a Wayland session, a region off the screen or an
unknown title); the recording itself is ``training.corpus.record_screen``: mss grabs at a fixed
fps, a pynput listener hears only the layout's keys and buttons (a key counts as held if it was
held at any moment of the interval ending at the frame), and the episode format of
``training/corpus.py`` is written. Esc (``stop_key``) ends it.

    from controllers.human_recorder import record_human
    record_human("corpus/mygame/ep_0", Layout.preset("arrows"), window="My Game", fps=10)
"""

from __future__ import annotations

from controllers.capture import ScreenCapture


def record_human(out_dir, layout, *, window: str | None = None, region: tuple[int, int, int, int] | None = None,
                 monitor: int | None = None, fps: float = 10.0, seconds: float | None = None,
                 size: tuple[int, int] | None = None, prompt: str | None = None, game: str = "screen",
                 stop_key: str = "esc", ready=None, overwrite: bool = False) -> dict:
    """Record one episode of a person playing; returns its meta dict.

    Args:
        out_dir: the episode folder to write.
        layout: ``overlays.Layout``; only its keys and buttons are heard, nothing else is stored.
        window, region, monitor: what to capture (see ``ScreenCapture``); a window is captured where
            it is when the recording starts.
        fps: frames per second. seconds: stop after this long (``None``: only ``stop_key`` stops).
        size: ``(height, width)`` to store frames at (``None``: the captured size, made even).
        prompt, game: stored in ``meta.json``.
        ready: called once the listeners run (tests send input from it).
        overwrite: replace an episode already in ``out_dir``; without it such a folder is refused
            before anything is captured, and nothing is deleted.
    """
    from training.corpus import (
        ScreenRecording,
        check_recording,
        record_screen,
        refuse_existing_episode,
    )
    check_recording(fps, seconds, size)
    if not overwrite:
        refuse_existing_episode(out_dir)  # said before the display is even opened
    with ScreenCapture(monitor=monitor, region=region, window=window) as cap:
        rect = cap.rect
    cfg = ScreenRecording(out_dir=out_dir, region=rect.as_tuple(), layout=layout, fps=fps, seconds=seconds,
                          size=size, prompt=prompt, game=game, stop_key=stop_key, overwrite=overwrite)
    return record_screen(cfg, ready=ready)
