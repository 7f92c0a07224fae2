"""Recordings of agent runs: what it saw beside what it imagined, and a JSONL log of every decision.

A run folder holds:

- ``decisions.jsonl``: one JSON line per step, written and flushed as the step ends: ``step``,
  ``t`` (seconds since the run started), ``action`` and ``executed`` (``Action.to_dict()``),
  ``confidence`` (vote agreement), ``votes`` (the action read in each rollout), ``chosen_index``
  (best-of-n), ``abstained``, ``timings_ms`` (per stage) and the game's ``success`` when known.
- ``video/segment_NNN.ts``: H.264 in MPEG-TS, one video frame per decision: the real frame with
  its overlay on the left, the n imagined frames at the decision horizon on the right, each
  framed green when its overlay reads as the chosen action and red otherwise, the chosen action
  written below. Each frame is encoded without lookahead (x264 ``zerolatency``) and flushed to
  disk as it is added (MPEG-TS has no index to finish), so a crash or a SIGKILL loses no frame
  already added. A new segment starts every ``segment_steps`` decisions (files stay small).
- ``summary.json``: written at the end (steps, success, mean timings).
- ``run.gif``: with ``gif=True``, a small animated GIF of the whole run (for READMEs).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

PANEL_H = 192  # height of the real frame in the recording, pixels


def _resize_h(img: np.ndarray, h: int) -> np.ndarray:
    from PIL import Image
    w = max(1, round(img.shape[1] * h / img.shape[0]))
    return np.asarray(Image.fromarray(img).resize((w, h), Image.NEAREST))


def _border(img: np.ndarray, colour, px: int = 3) -> np.ndarray:
    out = img.copy()
    out[:px], out[-px:], out[:, :px], out[:, -px:] = colour, colour, colour, colour
    return out


def action_text(action) -> str:
    """Short human text for an action: ``left+space``, ``mouse (120, -40) +left``, ``no-op``."""
    parts = sorted(action.keys)
    if action.mouse != (0.0, 0.0):
        parts.append(f"mouse ({action.mouse[0]:.0f}, {action.mouse[1]:.0f})")
    parts += [f"click {b}" for b in sorted(action.buttons)]
    return "+".join(parts) if parts else "no-op"


def compose(frame: np.ndarray, imagined: np.ndarray | None, decision) -> np.ndarray:
    """One recording frame: real frame | grid of imagined frames, chosen action written below.

    Args:
        frame: (H, W, 3) uint8, the frame the agent planned from (overlay drawn).
        imagined: (n, H', W', 3) uint8 imagined frames at the decision horizon, or None.
        decision: the ``planner.vote.Decision`` (None: the decision was dropped).
    Returns:
        (h, w, 3) uint8 with even sides.
    """
    from PIL import Image, ImageDraw
    left = _resize_h(frame, PANEL_H)
    tiles = []
    if imagined is not None and len(imagined):
        n = len(imagined)
        rows = 1 if n <= 2 else 2 if n <= 8 else 4
        cols = math.ceil(n / rows)
        th = PANEL_H // rows
        chosen = decision.action if decision is not None else None
        for i, img in enumerate(imagined):
            t = _resize_h(img, th)
            agree = decision is not None and i < len(decision.votes) and \
                decision.votes[i].keys == chosen.keys and decision.votes[i].buttons == chosen.buttons
            tiles.append(_border(t, (40, 200, 60) if agree else (210, 50, 50)))
        tw = max(t.shape[1] for t in tiles)
        grid = np.zeros((PANEL_H, cols * tw, 3), np.uint8)
        for i, t in enumerate(tiles):
            r, c = divmod(i, cols)
            grid[r * th:r * th + t.shape[0], c * tw:c * tw + t.shape[1]] = t
        body = np.concatenate([left, np.full((PANEL_H, 8, 3), 255, np.uint8), grid], 1)
    else:
        body = left
    text_h = 22
    canvas = np.full((PANEL_H + text_h, body.shape[1], 3), 255, np.uint8)
    canvas[:PANEL_H] = body
    img = Image.fromarray(canvas)
    if decision is None:
        msg = "decision dropped (older than the deadline): everything released"
    else:
        msg = f"chose {action_text(decision.action)}   agreement {decision.confidence:.0%}"
        if decision.abstained:
            msg += " (abstained)"
    ImageDraw.Draw(img).text((6, PANEL_H + 5), msg, fill=(0, 0, 0))
    out = np.asarray(img)
    h, w = out.shape[:2]
    return np.ascontiguousarray(out[: h - h % 2, : w - w % 2])


class RunRecorder:
    """Writes a run folder (see the module docstring); use as a context manager or call ``close``.

    Args:
        out_dir: the run folder (created).
        fps: video frame rate (one frame per decision).
        segment_steps: decisions per video segment.
        video: write the video (the JSONL log is always written).
        gif: also write ``run.gif`` at the end.
    """

    def __init__(self, out_dir: str | Path, fps: float = 10.0, segment_steps: int = 50, video: bool = True,
                 gif: bool = False):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.fps, self.segment_steps, self.video, self.gif = fps, segment_steps, video, gif
        self._log = open(self.out / "decisions.jsonl", "w")
        self._container = self._stream = None
        self._segment = -1
        self._in_segment = 0
        self._gif_frames: list[np.ndarray] = []
        self.steps = 0
        self.t0 = time.monotonic()
        self.closed = False

    def _open_segment(self, shape) -> None:
        import av
        self._close_segment()
        self._segment += 1
        (self.out / "video").mkdir(exist_ok=True)
        path = self.out / "video" / f"segment_{self._segment:03d}.ts"
        self._container = av.open(str(path), "w", format="mpegts", options={"flush_packets": "1"})
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=max(1, round(self.fps)))
        self._stream.width, self._stream.height = shape[1], shape[0]
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": "18", "preset": "veryfast", "tune": "zerolatency"}
        self._in_segment = 0
        self._shape = shape

    def _close_segment(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._container = self._stream = None

    def add(self, frame: np.ndarray, decision, executed, imagined: np.ndarray | None = None,
            timings: dict | None = None, success: bool | None = None) -> None:
        """Record one step (see the module docstring)."""
        import av
        now = time.monotonic()  # (the system's monotonic clock: other programs' logs can be matched to it)
        rec = {"step": self.steps, "t": round(now - self.t0, 4), "clock": round(now, 4), "executed": executed.to_dict(),
               "timings_ms": {k: round(v * 1000, 3) for k, v in (timings or {}).items()
                              if isinstance(v, (int, float)) and k not in ("latency", "horizon", "age")}}
        if decision is not None:
            rec.update(action=decision.action.to_dict(), confidence=round(decision.confidence, 4),
                       votes=[v.to_dict() for v in decision.votes], chosen_index=decision.chosen_index,
                       abstained=decision.abstained, horizon=decision.horizon)
            if getattr(decision, "search", None) is not None:  # the search planner: every candidate, scored
                rec["search"] = decision.search
        else:
            rec.update(action=None, dropped=True)
        if success is not None:
            rec["success"] = bool(success)
        if self.video or self.gif:
            img = compose(frame, imagined, decision)
            if self.video:
                if self._container is None or self._in_segment >= self.segment_steps or img.shape != self._shape:
                    self._open_segment(img.shape)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                for packet in self._stream.encode(vf):
                    self._container.mux(packet)
                self._in_segment += 1
            if self.gif:
                self._gif_frames.append(img)
        # the log line last: every step it lists is already in the video
        self._log.write(json.dumps(rec) + "\n")
        self._log.flush()
        self.steps += 1

    def close(self, **summary) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._close_segment()
        finally:
            self._log.close()
            summary = {"steps": self.steps, "seconds": round(time.monotonic() - self.t0, 2), **summary}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
            if self.gif and self._gif_frames:
                from PIL import Image
                frames = [Image.fromarray(_resize_h(f, 160)) for f in self._gif_frames]
                frames[0].save(self.out / "run.gif", save_all=True, append_images=frames[1:],
                               duration=int(1000 / self.fps), loop=0)

    def __enter__(self) -> "RunRecorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(interrupted=exc_type is not None)


def read_segments(run_dir: str | Path) -> np.ndarray:
    """All recorded video frames of a run folder, (N, h, w, 3) uint8 (for tests and tools)."""
    import av
    frames = []
    for seg in sorted((Path(run_dir) / "video").glob("segment_*.ts")):
        try:
            with av.open(str(seg)) as c:
                frames += [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        except av.error.InvalidDataError:
            continue  # a segment cut off before its first frame was written
    return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)
