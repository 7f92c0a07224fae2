"""The planner's memory: the last ~1 s of overlaid frames, resampled to the backend's frame rate."""

from __future__ import annotations

from collections import deque

import numpy as np

from framepilot.errors import ConfigError
from planner.world_model import ContextClip, resample_clip


class ContextBuffer:
    """Keeps the newest frames (overlay already drawn) and hands them out as a ``ContextClip``.

    Frames pushed at a steady ``fps`` (the in-process games) are resampled with
    ``world_model.resample_clip``; frames with irregular timestamps (screen capture) are resampled
    by their timestamps with the same rule: nearest earlier frame, aligned on the newest one.
    Until the buffer holds ``seconds`` of frames the oldest frame stands in for the missing past,
    so clips always have the same length.

    Args:
        fps: the rate frames are pushed at, frames per second.
        seconds: how much past a clip covers, seconds.
    """

    def __init__(self, fps: float, seconds: float = 1.0):
        if not fps > 0:
            raise ConfigError(f"context fps must be positive, got {fps}")
        if not seconds > 0:
            raise ConfigError(f"context seconds must be positive, got {seconds}")
        self.fps, self.seconds = float(fps), float(seconds)
        self._frames: deque[np.ndarray] = deque(maxlen=int(np.ceil(seconds * fps)) + 2)
        self._times: deque[float] = deque(maxlen=self._frames.maxlen)

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: np.ndarray, t: float | None = None) -> None:
        """Add the newest frame.

        Args:
            frame: (H, W, 3) uint8 with the overlay drawn; every frame must have the same shape.
            t: when it was taken, seconds (any clock); default: one ``1 / fps`` after the previous frame.
        """
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"context frames must be (H, W, 3) uint8, got {getattr(frame, 'shape', type(frame))}")
        if self._frames and frame.shape != self._frames[-1].shape:
            raise ValueError(f"frame shape {frame.shape} differs from the buffer's {self._frames[-1].shape}; "
                             "capture a fixed-size region")
        if t is None:
            t = self._times[-1] + 1.0 / self.fps if self._times else 0.0
        if self._times and t < self._times[-1]:
            raise ValueError(f"frame time {t} is earlier than the previous frame's {self._times[-1]}")
        self._frames.append(frame)
        self._times.append(float(t))

    def clip(self, target_fps: float) -> ContextClip:
        """The last ``seconds`` of frames at ``target_fps``; its last frame is the newest frame pushed."""
        if not self._frames:
            raise ValueError("the context buffer is empty; push a frame before asking for a clip")
        if not target_fps > 0:
            raise ConfigError(f"target fps must be positive, got {target_fps}")
        frames = np.stack(self._frames)
        times = np.asarray(self._times)
        steps = np.diff(times)
        if len(steps) == 0 or np.all(np.abs(steps - 1.0 / self.fps) <= 0.25 / self.fps):
            return ContextClip(resample_clip(frames, self.fps, target_fps, duration=self.seconds), target_fps)
        n = max(1, int(round(self.seconds * target_fps)))
        wanted = times[-1] - np.arange(n)[::-1] / target_fps
        idx = np.clip(np.searchsorted(times, wanted + 1e-6, side="right") - 1, 0, len(frames) - 1)
        return ContextClip(frames[idx], target_fps)
