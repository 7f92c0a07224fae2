"""Stable Video Diffusion as a framepilot world model: the simplest baseline.

SVD animates ONE image (the last context frame): no text, no goals, no context video. Its first
generated frame reproduces the image, so future frame j is generated frame j + 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from framepilot.errors import ConfigError
from planner.backends.loading import DiffusersConfig, load_pipeline
from planner.backends.timing import (
    StageTimer,
    end_of_denoising,
    float_video_to_uint8,
    seed_or_random,
)
from planner.world_model import (
    Capabilities,
    ContextClip,
    GoalFrame,
    Rollouts,
    WorldModel,
    fit_frames,
    frames_needed,
)


@dataclass
class SVDSettings:
    """How the SVD backend generates.

    Args:
        fps: frames per second of the output, also SVD's fps micro-conditioning (pipeline default 7).
        size: (height, width), multiples of 64 for the real UNet, or None for the context's size
            rounded up (SVD-XT was trained at 576x1024).
        resize: ``"pad"`` or ``"resize"``.
        num_inference_steps: denoising steps (pipeline default 25).
        min_guidance_scale, max_guidance_scale: SVD's per-frame guidance ramp (max > 1 doubles the batch).
        motion_bucket_id: amount of motion (SVD micro-conditioning).
        noise_aug_strength: noise added to the conditioning image.
        decode_chunk_size: frames decoded at once (None: all).
    """

    fps: float = 7.0
    size: tuple[int, int] | None = None
    resize: str = "pad"
    num_inference_steps: int = 25
    min_guidance_scale: float = 1.0
    max_guidance_scale: float = 3.0
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    decode_chunk_size: int | None = None

    def __post_init__(self):
        if not self.fps >= 1:
            raise ConfigError(f"fps must be at least 1 (SVD is conditioned on fps - 1), got {self.fps}")
        if self.size is not None:
            self.size = tuple(int(v) for v in self.size)
            if len(self.size) != 2 or min(self.size) < 8 or any(v % 8 for v in self.size):
                raise ConfigError(f"size must be (height, width) in multiples of 8, got {self.size}")
        if self.resize not in ("pad", "resize") or (self.resize == "resize" and self.size is None):
            raise ConfigError(f"resize must be 'pad', or 'resize' with a size, got {self.resize!r}")
        if self.num_inference_steps < 1:
            raise ConfigError(f"num_inference_steps must be at least 1, got {self.num_inference_steps}")
        if not 0 < self.min_guidance_scale <= self.max_guidance_scale:
            raise ConfigError("guidance scales must satisfy 0 < min_guidance_scale <= max_guidance_scale")


class SVDBackend(WorldModel):
    """SVD world model: last context frame -> n futures (image only, no text, no goals).

    Args:
        pipe: a ``StableVideoDiffusionPipeline`` (e.g. ``stabilityai/stable-video-diffusion-img2vid-xt``).
        settings: generation settings.
    """

    name = "stable-video-diffusion"

    def __init__(self, pipe, settings: SVDSettings | None = None):
        self.pipe = pipe
        self.settings = s = settings or SVDSettings()
        # the UNet halves the latent len(block_out_channels) - 1 times; the pipeline wants multiples of 8
        self.spatial_multiple = math.lcm(8, pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1))
        if s.size is not None and any(v % self.spatial_multiple for v in s.size):
            raise ConfigError(f"size {s.size} must be multiples of {self.spatial_multiple} for this model")
        self.capabilities = Capabilities(
            text=False, goal_frames=False, max_goals=0, prefix_video=False, native_fps=s.fps,
            size_multiple=self.spatial_multiple, temporal_compression=1, resize=s.resize, size=s.size)

    @classmethod
    def from_config(cls, config: DiffusersConfig, settings: SVDSettings | None = None) -> SVDBackend:
        from diffusers import StableVideoDiffusionPipeline

        if config.is_single_file:
            raise ConfigError("SVD loads from a diffusers folder or hub id, not a single checkpoint file")
        return cls(load_pipeline(StableVideoDiffusionPipeline, config), settings)

    def _rollout(self, context: ContextClip, n: int, rollout_length: float, prompt: str | None,
                 goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        import PIL.Image
        import torch

        s, pipe = self.settings, self.pipe
        timer = StageTimer(pipe._execution_device)
        future = frames_needed(rollout_length, s.fps)
        image, undo = fit_frames(context.frames[-1], s.size, self.spatial_multiple, s.resize)
        timer.lap("prepare")

        video = pipe(image=PIL.Image.fromarray(image), height=image.shape[0], width=image.shape[1],
                     num_frames=future + 1, num_inference_steps=s.num_inference_steps,
                     min_guidance_scale=s.min_guidance_scale, max_guidance_scale=s.max_guidance_scale,
                     fps=int(round(s.fps)), motion_bucket_id=s.motion_bucket_id,
                     noise_aug_strength=s.noise_aug_strength, decode_chunk_size=s.decode_chunk_size,
                     num_videos_per_prompt=n, generator=torch.Generator("cpu").manual_seed(seed_or_random(seed)),
                     output_type="np",
                     callback_on_step_end=end_of_denoising(timer, s.num_inference_steps)).frames
        timer.lap("decode")
        frames = undo(float_video_to_uint8(np.asarray(video)[:, 1:1 + future]))
        timer.lap("postprocess")
        return Rollouts(frames=frames, fps=s.fps, timings=dict(timer.timings))
