"""The world-model interface: context clip in, n imagined futures out.

Every backend (framepilot's bundled model, LTX-Video, Wan, SVD, test doubles) subclasses
``WorldModel`` and implements ``_rollout``. ``__call__`` checks the request against the backend's
``Capabilities`` first, so asking for something a backend cannot do is a clear error.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from framepilot.errors import ConfigError, UnsupportedRequest


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports.

    Args:
        text: takes a text prompt.
        goal_frames: takes goal frames at a time offset (interpolates toward them).
        max_goals: how many goal frames at most.
        prefix_video: conditions on several context frames (else only the last one).
        native_fps: frames per second the backend generates at.
        size_multiple: frame sides are made multiples of this (by padding or resizing).
        temporal_compression: frames per latent frame (1 for pixel-space models); generated
            frame counts are ``temporal_compression * k + 1`` when it is above 1.
        resize: ``"pad"`` keeps the frame's pixels and pads; ``"resize"`` rescales to ``size``.
        size: ``(height, width)`` the backend works at, or None for any size.
        overlay_inpainting: imagines the game area around given overlays (``model(..., actions=...)``:
            "what happens if I hold left?"), the search planner's question.
    """

    text: bool = False
    goal_frames: bool = False
    max_goals: int = 0
    prefix_video: bool = True
    native_fps: float = 10.0
    size_multiple: int = 1
    temporal_compression: int = 1
    resize: str = "pad"
    size: tuple[int, int] | None = None
    overlay_inpainting: bool = False


@dataclass(frozen=True)
class GoalFrame:
    """A goal to interpolate toward.

    Args:
        image: (H, W, 3) uint8, with the overlay drawn like the context frames.
        offset: seconds after the last context frame at which the goal should be reached.
    """

    image: np.ndarray
    offset: float

    def __post_init__(self):
        check_frames(self.image[None], "goal image")
        if not (np.isfinite(self.offset) and self.offset > 0):
            raise ConfigError(f"goal offset must be positive seconds after the last context frame, got {self.offset}")

    MAX_PIXELS = 4096 * 4096  # a goal image larger than this is refused before it is decoded (framepilot.options)

    @staticmethod
    def read_image(path) -> np.ndarray:
        """The image file at ``path`` (a PNG or JPEG screenshot) as (H, W, 3) uint8 RGB.

        Raises:
            ConfigError: it does not exist, cannot be read, or has more than ``MAX_PIXELS`` pixels
                (checked from its header, before decoding).
        """
        from pathlib import Path

        from PIL import Image, UnidentifiedImageError
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"goal image {path} does not exist; pass the path of a PNG or JPEG screenshot")
        try:
            with Image.open(p) as im:
                w, h = im.size
                if w * h > GoalFrame.MAX_PIXELS:
                    raise ConfigError(f"goal image {path} is {w}x{h} pixels, more than the {GoalFrame.MAX_PIXELS:,} "
                                      "a goal may have: pass a screenshot of the game (any size up to 4096x4096)")
                im.load()
                return np.asarray(im.convert("RGB"))
        except Image.DecompressionBombError:  # PIL's own cap, hit while reading the header
            raise ConfigError(f"goal image {path} is larger than the cap of {GoalFrame.MAX_PIXELS:,} pixels "
                              "(4096x4096); pass a screenshot of the game window") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"goal image {path} could not be read ({type(e).__name__}): "
                              "pass an intact PNG or JPEG") from None

    @classmethod
    def from_image(cls, image: np.ndarray, frame_shape: tuple[int, int], layout, offset: float) -> "GoalFrame":
        """A goal from a screenshot (``read_image``) for frames of ``frame_shape`` (the game frame's H, W,
        before the overlay strip). A screenshot of the game (any size: it is resized) gets a no-op overlay;
        an image that already has the overlay strip (the shape of an overlaid frame) is used as it is."""
        from PIL import Image

        from overlays import NOOP, render_overlay
        h, w = frame_shape
        if image.shape[:2] != (h + layout.strip_height(w), w):
            if image.shape[:2] != (h, w):
                image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
            image = render_overlay(image, NOOP, layout)
        return cls(image, offset)


@dataclass(frozen=True)
class ContextClip:
    """The last ~1 s of frames, overlay already drawn.

    Args:
        frames: (T, H, W, 3) uint8, oldest first; the last frame is "now".
        fps: frames per second of ``frames``.
    """

    frames: np.ndarray
    fps: float

    def __post_init__(self):
        check_frames(self.frames, "context clip")
        if not self.fps > 0:
            raise ConfigError(f"context fps must be positive, got {self.fps}")

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps


@dataclass
class Rollouts:
    """n imagined futures.

    Args:
        frames: (n, F, H, W, 3) uint8; frame k is at ``(k + 1) / fps`` seconds after the last
            context frame. Same H, W as the context.
        fps: frames per second of ``frames``.
        timings: seconds spent per stage, e.g. {"encode": .., "denoise": .., "decode": ..}.
    """

    frames: np.ndarray
    fps: float
    timings: dict = field(default_factory=dict)

    def frame_at(self, seconds: float) -> np.ndarray:
        """(n, H, W, 3): the first predicted frame at or after ``seconds`` after the last context frame."""
        return self.frames[:, min(decision_index(seconds, self.fps), self.frames.shape[1] - 1)]


def check_frames(frames: np.ndarray, what: str) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(f"{what} must be a uint8 numpy array, got {getattr(frames, 'dtype', type(frames).__name__)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"{what} must have shape (T, H, W, 3), got {frames.shape}")


def decision_index(seconds: float, fps: float) -> int:
    """Index of the first predicted frame at or after ``seconds`` (frame k is at (k+1)/fps)."""
    return max(0, math.ceil(seconds * fps - 1e-6) - 1)


def frames_needed(rollout_length: float, fps: float, temporal_compression: int = 1) -> int:
    """How many future frames cover ``rollout_length`` seconds, rounded up to the backend's rule."""
    n = decision_index(rollout_length, fps) + 1
    if temporal_compression > 1:
        n = math.ceil(n / temporal_compression) * temporal_compression
    return n


def resample_clip(frames: np.ndarray, fps: float, target_fps: float, duration: float | None = None) -> np.ndarray:
    """Nearest-earlier resampling of a clip to ``target_fps``, aligned on the last frame.

    Args:
        frames: (T, H, W, 3) uint8 at ``fps``.
        duration: seconds of context to keep (default: the whole clip).
    Returns:
        (T', H, W, 3) uint8; its last frame is ``frames[-1]``.
    """
    duration = len(frames) / fps if duration is None else duration
    n = max(1, int(round(duration * target_fps)))
    t_last = (len(frames) - 1) / fps
    times = t_last - np.arange(n)[::-1] / target_fps
    idx = np.clip(np.floor(times * fps + 1e-6).astype(int), 0, len(frames) - 1)
    return frames[idx]


def fit_frames(frames: np.ndarray, size: tuple[int, int] | None, multiple: int = 1, mode: str = "pad"):
    """Make frames fit a backend without cropping.

    Args:
        frames: (..., H, W, 3) uint8.
        size: (height, width) to reach, or None to only round up to ``multiple``.
        mode: ``"pad"``: scale down uniformly if needed, then pad bottom/right with black;
            ``"resize"``: rescale (possibly non-uniformly) to ``size``.
    Returns:
        (fitted, undo) where ``undo(frames)`` maps fitted-size frames back to (H, W).
    """
    import torch
    import torch.nn.functional as F

    h, w = frames.shape[-3:-1]
    if size is None:
        size = (math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple)
    th, tw = size
    if th % multiple or tw % multiple:
        raise ValueError(f"target size {size} is not a multiple of {multiple}")
    lead = frames.shape[:-3]

    def _resize(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        if x.shape[-3:-1] == tuple(hw):
            return x
        t = torch.from_numpy(np.ascontiguousarray(x.reshape(-1, *x.shape[-3:]))).permute(0, 3, 1, 2).float()
        t = F.interpolate(t, size=hw, mode="area" if hw[0] <= x.shape[-3] and hw[1] <= x.shape[-2] else "bilinear",
                          **({} if hw[0] <= x.shape[-3] and hw[1] <= x.shape[-2] else {"align_corners": False}))
        out = t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        return out.reshape(*x.shape[:-3], *hw, 3)

    if mode == "resize":
        return _resize(frames, (th, tw)), lambda y: _resize(y, (h, w))
    if mode != "pad":
        raise ValueError(f"fit mode must be 'pad' or 'resize', got {mode!r}")
    s = min(1.0, th / h, tw / w)
    ih, iw = min(th, max(1, round(h * s))), min(tw, max(1, round(w * s)))
    inner = _resize(frames, (ih, iw))
    out = np.zeros((*lead, th, tw, 3), np.uint8)
    out[..., :ih, :iw, :] = inner
    return out, lambda y: _resize(y[..., :ih, :iw, :], (h, w))


class WorldModel(ABC):
    """A video model that imagines futures. Subclasses set ``capabilities`` and implement ``_rollout``."""

    capabilities: Capabilities = Capabilities()
    name: str = "world-model"

    def __call__(self, context: ContextClip, n: int = 8, rollout_length: float = 0.1, prompt: str | None = None,
                 goals: tuple[GoalFrame, ...] | list[GoalFrame] = (), seed: int | None = None,
                 actions=None, layout=None) -> Rollouts:
        """Imagine ``n`` futures of ``rollout_length`` seconds after the last context frame.

        Args:
            context: the last ~1 s of overlaid frames.
            n: number of rollouts, generated in one batch where the backend allows.
            rollout_length: seconds of future to imagine.
            prompt: optional text prompt.
            goals: optional goal frames with offsets (seconds after the last context frame).
            seed: makes the rollouts repeatable.
            actions: optional, ``n`` sequences of ``frames_needed(rollout_length, native_fps)``
                ``overlays.Action``: each rollout's overlays are given (drawn with ``layout``) and the
                model imagines the game area around them, frame after frame (needs
                ``capabilities.overlay_inpainting``).
            layout: the overlay layout to draw ``actions`` with.
        Returns:
            ``Rollouts`` with frames (n, F, H, W, 3) uint8 at the backend's fps, H, W as the context.
        """
        goals = tuple(goals)
        self.check_request(context, n, rollout_length, prompt, goals)
        if actions is None:
            return self._rollout(context, n, rollout_length, prompt, goals, seed)
        if not self.capabilities.overlay_inpainting:
            raise UnsupportedRequest(f"{self.name} cannot imagine given actions (no overlay inpainting): use "
                                     "--plan vote, or a model that inpaints overlays such as the bundled one")
        if layout is None:
            raise UnsupportedRequest("imagining given actions needs the overlay layout to draw them with")
        f = frames_needed(rollout_length, self.capabilities.native_fps, self.capabilities.temporal_compression)
        actions = [list(a) for a in actions]
        if len(actions) != n or any(len(a) != f for a in actions):
            raise UnsupportedRequest(f"actions must be {n} sequences of {f} actions (one per imagined frame), got "
                                     f"{[len(a) for a in actions]}")
        return self._inpaint(context, actions, layout, rollout_length, prompt, goals, seed)

    def _inpaint(self, context: ContextClip, actions: list[list], layout, rollout_length: float,
                 prompt: str | None, goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        """Backends with ``overlay_inpainting`` imagine the futures of given actions here."""
        raise UnsupportedRequest(f"{self.name} cannot imagine given actions (no overlay inpainting)")

    def features(self, frames: np.ndarray) -> np.ndarray | None:
        """(n, D) features of (n, H, W, 3) overlaid frames in which near means alike (the search planner
        ranks imagined futures by their distance to the goal there), or None when the backend has none
        (the planner then compares pixels)."""
        return None

    def prepare(self, prompt: str | None = None) -> None:
        """Load what the first decision would otherwise load (a text encoder, say), so that it happens
        before the agent takes over and not in its first decision. The planner calls it once."""

    def check_request(self, context: ContextClip, n: int, rollout_length: float, prompt: str | None,
                      goals: tuple[GoalFrame, ...]) -> None:
        cap = self.capabilities
        if n < 1:
            raise UnsupportedRequest(f"the number of rollouts must be at least 1, got {n}")
        if not rollout_length > 0:
            raise UnsupportedRequest(f"rollout length must be positive seconds, got {rollout_length}")
        if prompt and not cap.text:
            raise UnsupportedRequest(f"{self.name} takes no text prompt; drop --prompt or use a text model")
        if goals and not cap.goal_frames:
            raise UnsupportedRequest(f"{self.name} takes no goal frames; drop --goal or use a model that does")
        if len(goals) > max(cap.max_goals, 0) and cap.goal_frames:
            raise UnsupportedRequest(f"{self.name} takes at most {cap.max_goals} goal frame(s), got {len(goals)}")
        for g in goals:
            if g.image.shape != context.frames.shape[1:]:
                raise UnsupportedRequest(f"goal image shape {g.image.shape} differs from the context frames' "
                                         f"{context.frames.shape[1:]}; draw the goal at the same size")

    @abstractmethod
    def _rollout(self, context: ContextClip, n: int, rollout_length: float, prompt: str | None,
                 goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        ...
