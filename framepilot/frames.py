"""The one resizer: how frames are brought to another size, the same way everywhere.

The corpus loader (``training.corpus``), the screen recorder (``controllers.human_recorder``), the
screen capture's ``downscale`` and the bundled backend (``planner.backends.bundled``) all resize with
``resize_frames``, so the network sees the frames it was trained on: a model trained on
bilinear-downscaled frames but fed box-filtered ones at play time sees a pointer a few pixels wide
drawn differently from every frame it learnt from.
"""

from __future__ import annotations

from dataclasses import dataclass

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



FITS = ("letterbox", "stretch")


@dataclass(frozen=True)
class FrameSpec:
    """The frame contract: how a corpus's frames are laid out, and so the frames a checkpoint trained on
    it must be given.

    A frame is a game area of ``height`` x ``width`` pixels with the layout's overlay strip
    (``strip`` rows) drawn below it, at ``fps``. Whatever is captured (a window of any size, a screen
    region) is brought to the game area by ``fit`` *before* the overlay is drawn, by one function
    (``fit_game``), in ``framepilot record --screen``, ``framepilot screen`` and ``framepilot play``
    alike; ``train`` takes the spec from the corpus and stores it in the checkpoint.

    - ``letterbox`` (the default of a new recording): scaled by one factor to fit, centred, black bars
      on the short sides; shapes keep their proportions.
    - ``stretch``: scaled to fill, each axis by its own factor (the bundled games' frames are already
      their game area's size, so nothing changes).

    The filter is ``resize_frames``'s: block means for whole-number downscales, repeats for
    whole-number upscales, bilinear otherwise.
    """

    height: int
    width: int
    layout: str
    strip: int
    fps: float
    fit: str = "letterbox"

    def __post_init__(self):
        from framepilot.errors import ConfigError
        if self.fit not in FITS:
            raise ConfigError(f"the frame fit must be letterbox or stretch, got {self.fit!r}")
        if min(self.height, self.width) < 1:
            raise ConfigError(f"a frame spec's game area must have pixels, got {self.height}x{self.width}")

    @classmethod
    def of(cls, size: tuple[int, int], layout, fps: float, fit: str = "letterbox") -> "FrameSpec":
        """The spec of game areas of ``size`` = (H, W) with ``layout``'s strip."""
        h, w = int(size[0]), int(size[1])
        return cls(h, w, layout.name, int(layout.strip_height(w)), float(fps), fit)

    @property
    def game_shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(H, W) of a whole frame, strip included."""
        return self.height + self.strip, self.width

    def strip_row(self, size: tuple[int, int]) -> int:
        """The strip's first row once a whole frame is resized to ``size`` (a model's frames)."""
        return int(round(self.height * size[0] / self.frame_shape[0]))

    def scale(self, height: int, width: int) -> tuple[float, float]:
        """Game-area pixels per captured pixel along (x, y), for a capture of ``height`` x ``width``."""
        if self.fit == "stretch":
            return self.width / width, self.height / height
        s = min(self.height / height, self.width / width)
        return s, s

    def fit_game(self, frame: np.ndarray) -> np.ndarray:
        """A captured (H, W, 3) uint8 frame brought to the game area (``height``, ``width``)."""
        H, W = frame.shape[:2]
        if (H, W) == self.game_shape:
            return frame
        if self.fit == "stretch":
            return resize_frames(frame[None], self.game_shape)[0]
        s = min(self.height / H, self.width / W)
        ih, iw = min(self.height, max(1, round(H * s))), min(self.width, max(1, round(W * s)))
        out = np.zeros((self.height, self.width, 3), np.uint8)
        y, x = (self.height - ih) // 2, (self.width - iw) // 2
        out[y:y + ih, x:x + iw] = resize_frames(frame[None], (ih, iw))[0]
        return out

    def describe(self) -> str:
        return (f"{self.width}x{self.height} game area with the {self.layout!r} strip ({self.strip} rows), "
                f"{self.fps:g} fps, {self.fit}")

    def same_layout(self, other: "FrameSpec") -> bool:
        """The same frames: game area, layout and strip, and frame rate (the fit may differ)."""
        return (self.height, self.width, self.layout, self.strip, self.fps) == \
            (other.height, other.width, other.layout, other.strip, other.fps)

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "layout": self.layout, "strip": self.strip,
                "fps": self.fps, "fit": self.fit}

    @classmethod
    def from_meta(cls, meta: dict) -> "FrameSpec | None":
        """The spec of an episode's ``meta.json`` or a checkpoint's ``framepilot.json``: its
        ``frame_spec``, or for files written before specs existed the one its frame shape implies
        (``frame_shape`` or ``source_shape``, the strip below; letterboxed, as a new recording is:
        their frames came from games drawn at that size, never fitted). None when neither says."""
        d = meta.get("frame_spec")
        if isinstance(d, dict):
            return cls(int(d["height"]), int(d["width"]), str(d["layout"]), int(d["strip"]), float(d["fps"]),
                       str(d.get("fit", "letterbox")))
        shape = meta.get("frame_shape") or meta.get("source_shape")
        layout = meta.get("layout")
        if not shape or not isinstance(layout, dict):
            return None
        from overlays import Layout
        lay = Layout.from_dict(layout)
        H, W = int(shape[0]), int(shape[1])
        strip = int(lay.strip_height(W))
        return cls(H - strip, W, lay.name, strip, float(meta.get("fps", 10.0)), "letterbox")


class FittedCapture:
    """A capture (``grab() -> (frame, t)``) whose frames come brought to a ``FrameSpec``'s game area
    (``FrameSpec.fit_game``), so that the agent draws its overlay where the model's training frames
    had it. Everything else (``rect``, ``window``, ``close``...) is the wrapped capture's; ``downscale``
    becomes screen pixels per game-area pixel (the executor moves the pointer in those)."""

    def __init__(self, capture, spec: FrameSpec):
        self._capture, self.spec = capture, spec
        width, height = capture.size
        sx, sy = spec.scale(height, width)
        self.downscale = getattr(capture, "downscale", 1) / min(sx, sy)

    @property
    def size(self) -> tuple[int, int]:
        return self.spec.width, self.spec.height

    def grab(self):
        frame, t = self._capture.grab()
        return self.spec.fit_game(frame), t

    def __getattr__(self, name):
        return getattr(self._capture, name)
