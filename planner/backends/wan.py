"""Wan 2.1 first-last-frame-to-video as a framepilot world model (``WanImageToVideoPipeline``).

Wan conditions on ONE image (the last context frame) and, optionally, ONE last image: the goal.
So ``prefix_video=False`` and ``max_goals=1``; the generated video is

    frame 0 = the last context frame, frame j + 1 = future frame j, last frame = the goal.

Frame counts are 4k+1 (Wan's VAE compresses time by 4), so the goal lands on the first 4k+1
boundary at or after its offset: up to 3 frames (3/16 s) later than asked. ``last_plan`` says
where it went.
"""

from __future__ import annotations

import functools
import html
import math
import re
from dataclasses import dataclass

import numpy as np

from framepilot.errors import ConfigError
from planner.backends.loading import DiffusersConfig, load_pipeline
from planner.backends.timing import (
    PromptCache,
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
    UnsupportedRequest,
    WorldModel,
    decision_index,
    fit_frames,
    frames_needed,
)


@dataclass
class WanSettings:
    """How the Wan backend generates.

    Args:
        fps: frames per second Wan generates at (Wan 2.1: 16).
        size: (height, width), multiples of 16, or None for the context's size rounded up
            (FLF2V-14B-720P was trained around 720x1280).
        resize: ``"pad"`` or ``"resize"`` (see ``planner.world_model.fit_frames``).
        num_inference_steps: denoising steps.
        guidance_scale: classifier-free guidance (> 1 doubles the batch).
        negative_prompt: used when guidance_scale > 1.
        default_prompt: the prompt when a decision has none.
        max_sequence_length: prompt tokens (Wan: 512).
    """

    fps: float = 16.0
    size: tuple[int, int] | None = None
    resize: str = "pad"
    num_inference_steps: int = 30
    guidance_scale: float = 5.0
    negative_prompt: str = ""
    default_prompt: str = ""
    max_sequence_length: int = 512

    def __post_init__(self):
        if not self.fps > 0:
            raise ConfigError(f"fps must be positive, got {self.fps}")
        if self.size is not None:
            self.size = tuple(int(v) for v in self.size)
            if len(self.size) != 2 or min(self.size) < 16 or any(v % 16 for v in self.size):
                raise ConfigError(f"size must be (height, width) in multiples of 16, got {self.size}")
        if self.resize not in ("pad", "resize") or (self.resize == "resize" and self.size is None):
            raise ConfigError(f"resize must be 'pad', or 'resize' with a size, got {self.resize!r}")
        if self.num_inference_steps < 1 or self.max_sequence_length < 1:
            raise ConfigError("num_inference_steps and max_sequence_length must be at least 1")


@dataclass(frozen=True)
class WanPlan:
    """Frames of one decision: ``num_frames`` generated (4k+1), frame 0 the last context frame;
    ``goal_future_index`` is the future frame the goal was placed at (None without a goal)."""

    future_frames: int
    num_frames: int
    goal_future_index: int | None


def _clean_prompt(text: str) -> str:
    """Wan's prompt cleaning (``ftfy`` when installed, else HTML unescape), whitespace collapsed."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text))).strip()


@functools.cache
def _paired_image_pipeline_class():
    from diffusers import WanImageToVideoPipeline

    class PairedImageWanPipeline(WanImageToVideoPipeline):
        """FLF2V's image embedder reads CLIP tokens of (first, last) pairs and fails on one image;
        with no goal the first frame is given twice, while the VAE condition still holds the first
        frame only (plain image-to-video)."""

        def encode_image(self, image, device=None):
            embedder = getattr(self.transformer.condition_embedder, "image_embedder", None)
            if not isinstance(image, list) and getattr(embedder, "pos_embed", None) is not None:
                image = [image, image]
            return super().encode_image(image, device)

    return PairedImageWanPipeline


def _paired_image_pipeline(pipe):
    """``pipe`` (same components) as a ``PairedImageWanPipeline``."""
    cls = _paired_image_pipeline_class()
    if isinstance(pipe, cls):
        return pipe
    paired = cls(**pipe.components, boundary_ratio=pipe.config.boundary_ratio,
                 expand_timesteps=pipe.config.expand_timesteps)
    paired._framepilot = getattr(pipe, "_framepilot", None)
    paired.set_progress_bar_config(disable=True)
    return paired


class WanBackend(WorldModel):
    """Wan first-last-frame world model: last context frame (+ goal as last frame) + text -> n futures.

    Args:
        pipe: a ``WanImageToVideoPipeline`` (e.g. ``Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers``).
        settings: generation settings.
    """

    name = "wan-flf2v"

    def __init__(self, pipe, settings: WanSettings | None = None):
        self.pipe = pipe = _paired_image_pipeline(pipe)
        self.settings = s = settings or WanSettings()
        self.temporal_compression = pipe.vae_scale_factor_temporal
        self.spatial_multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]
        if s.size is not None and any(v % self.spatial_multiple for v in s.size):
            raise ConfigError(f"size {s.size} must be multiples of {self.spatial_multiple} for this model")
        self.capabilities = Capabilities(
            text=True, goal_frames=True, max_goals=1, prefix_video=False, native_fps=s.fps,
            size_multiple=self.spatial_multiple, temporal_compression=self.temporal_compression, resize=s.resize,
            size=s.size)
        self.prompts = PromptCache(self._encode_prompt)
        self.last_plan: WanPlan | None = None

    @classmethod
    def from_config(cls, config: DiffusersConfig, settings: WanSettings | None = None) -> WanBackend:
        from diffusers import WanImageToVideoPipeline

        if config.is_single_file:
            raise ConfigError("Wan loads from a diffusers folder or hub id, not a single checkpoint file")
        return cls(load_pipeline(WanImageToVideoPipeline, config), settings)

    @property
    def device(self):
        return self.pipe._execution_device

    def plan(self, rollout_length: float, goal_offset: float | None) -> WanPlan:
        tc = self.temporal_compression
        future = frames_needed(rollout_length, self.settings.fps)
        if goal_offset is None:
            return WanPlan(future, 1 + tc * math.ceil(future / tc), None)
        # the goal is the video's last frame: video index 1 + j for future frame j, rounded up to 4k+1
        last = tc * math.ceil((decision_index(goal_offset, self.settings.fps) + 1) / tc)
        if future > last:
            raise UnsupportedRequest(f"{self.name} puts the goal on the last generated frame, so the rollout "
                                     f"({rollout_length} s) must not outlast the goal ({goal_offset} s); "
                                     f"move the goal later or shorten the rollout")
        return WanPlan(future, last + 1, last - 1)

    def _encode_prompt(self, key):
        import torch

        text, max_len = key
        pipe, dtype = self.pipe, self.pipe.transformer.dtype
        if pipe.text_encoder is None or pipe.tokenizer is None:
            raise ConfigError(f"prompt {text!r} is not cached and this pipeline has no text encoder; load one")
        tokens = pipe.tokenizer([_clean_prompt(text)], padding="max_length", max_length=max_len, truncation=True,
                                add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        used = int(tokens.attention_mask.sum())
        encoder_device = next(pipe.text_encoder.parameters()).device
        hidden = pipe.text_encoder(tokens.input_ids.to(encoder_device),
                                   tokens.attention_mask.to(encoder_device)).last_hidden_state[:, :used]
        # as WanPipeline does: the used tokens, then zeros up to max_len
        hidden = torch.cat([hidden, hidden.new_zeros(1, max_len - used, hidden.shape[-1])], dim=1)
        return hidden.to(self.device, dtype)

    def _rollout(self, context: ContextClip, n: int, rollout_length: float, prompt: str | None,
                 goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        import PIL.Image
        import torch

        s, pipe = self.settings, self.pipe
        timer = StageTimer(self.device)
        # 1. Frames: the last context frame first, the goal (if any) last.
        plan = self.last_plan = self.plan(rollout_length, goals[0].offset if goals else None)
        first, undo = fit_frames(context.frames[-1], s.size, self.spatial_multiple, s.resize)
        last = fit_frames(goals[0].image, s.size, self.spatial_multiple, s.resize)[0] if goals else None
        height, width = first.shape[:2]
        timer.lap("prepare")

        # 2. Text: cached per prompt, repeated to the batch (no num_videos_per_prompt).
        embeds = self.prompts.get((prompt or s.default_prompt, s.max_sequence_length)).repeat(n, 1, 1)
        negative = None
        if s.guidance_scale > 1:
            negative = self.prompts.get((s.negative_prompt, s.max_sequence_length)).repeat(n, 1, 1)
        timer.lap("text")

        # 3. Encode image(s) + denoise + decode in the pipeline, one batch of n.
        video = pipe(image=PIL.Image.fromarray(first), last_image=None if last is None else PIL.Image.fromarray(last),
                     prompt_embeds=embeds, negative_prompt_embeds=negative, height=height, width=width,
                     num_frames=plan.num_frames, num_inference_steps=s.num_inference_steps,
                     guidance_scale=s.guidance_scale, generator=torch.Generator("cpu").manual_seed(seed_or_random(seed)),
                     output_type="np",
                     callback_on_step_end=end_of_denoising(timer, s.num_inference_steps)).frames
        timer.lap("decode")

        # 4. Future frames only, uint8, at the context's size.
        frames = undo(float_video_to_uint8(np.asarray(video)[:, 1:1 + plan.future_frames]))
        timer.lap("postprocess")
        return Rollouts(frames=frames, fps=s.fps, timings=dict(timer.timings))
