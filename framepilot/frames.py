"""The one resizer: how frames are brought to another size, the same way everywhere.

The corpus loader (``training.corpus``), the screen recorder (``controllers.human_recorder``), the
screen capture's ``downscale`` and the bundled backend (``planner.backends.bundled``) all resize with
``resize_frames``, so the network sees the frames it was trained on: a model trained on
bilinear-downscaled frames but fed box-filtered ones at play time sees a pointer a few pixels wide
drawn differently from every frame it learnt from.
"""

from __future__ import annotations

import numpy as np


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames to ``size`` = (H', W'): exact block means for whole-number
    downscale factors, nearest neighbour for whole-number upscale factors, bilinear otherwise."""
    T, H, W, _ = frames.shape
    h, w = size
    if (h, w) == (H, W):
        return frames
    if H % h == 0 and W % w == 0:
        fy, fx = H // h, W // w
        x = frames.reshape(T, h, fy, w, fx, 3).astype(np.float32).mean(axis=(2, 4))
        return np.round(x).astype(np.uint8)
    if h % H == 0 and w % W == 0:
        return frames.repeat(h // H, axis=1).repeat(w // W, axis=2)
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])

