"""Small pieces the diffusers backends share: stage timings, a prompt-embedding cache, uint8 frames."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class StageTimer:
    """Seconds per named stage; waits for the GPU before each reading so the numbers are real.

    Usage: ``timer = StageTimer(device)``, then ``timer.lap("encode")`` after each stage;
    ``timer.timings`` is {"encode": s, ..., "total": s}.
    """

    def __init__(self, device=None):
        self._cuda = getattr(device, "type", str(device)) == "cuda"
        self._sync()
        self._start = self._last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def _sync(self):
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    def lap(self, stage: str) -> float:
        self._sync()
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now
        self.timings["total"] = now - self._start
        return self.timings[stage]


class PromptCache:
    """Prompt embeddings computed once per key and reused across decisions.

    Args:
        encode: key -> embeddings (any object), called on a miss.
    """

    def __init__(self, encode: Callable[[Hashable], object]):
        self._encode = encode
        self._store: dict = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable):
        if key in self._store:
            self.hits += 1
            return self._store[key]
        self.misses += 1
        value = self._store[key] = self._encode(key)
        return value

    def put(self, key: Hashable, value) -> None:
        self._store[key] = value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._store

    def clear(self) -> None:
        self._store.clear()


def video_to_uint8(video):
    """(n, 3, T, H, W) float in [-1, 1] torch tensor -> (n, T, H, W, 3) uint8 numpy array."""
    import torch

    frames = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return frames.permute(0, 2, 3, 4, 1).cpu().numpy()


def seed_or_random(seed: int | None) -> int:
    """The seed given, or a fresh random one."""
    if seed is not None:
        return int(seed)
    import secrets

    return secrets.randbits(63)


def end_of_denoising(timer: StageTimer, steps: int, stage: str = "denoise"):
    """A diffusers ``callback_on_step_end`` that records ``stage`` when the last step ends."""

    def callback(pipe, i, t, kwargs):
        if i == steps - 1:
            timer.lap(stage)
        return {}

    return callback


def float_video_to_uint8(frames):
    """(n, T, H, W, 3) float numpy in [0, 1] (diffusers ``output_type="np"``) -> uint8."""
    import numpy as np

    return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)
