"""LTX-Video as a framepilot world model, on diffusers' ``LTXConditionPipeline`` components.

The context clip is a video condition at frame 0, each goal image a keyframe condition at the
frame of its offset after the context, the prompt is text; the n rollouts are one batch through
the transformer. The denoising loop is written here (stages numbered like the pipeline's
``__call__``, whose helpers it reuses) because diffusers 0.42's ``__call__`` cannot do this:

- a keyframe at ``frame_index > 0`` with batch > 1 fails: ``prepare_latents`` leaves the extra
  condition latents at batch 1. Here conditions are encoded once and expanded to n.
- ``num_videos_per_prompt > 1`` breaks decoding with timestep-conditioned VAEs (the decode
  timestep list has the prompt batch, not the video batch). Here the prompt is encoded once,
  cached across decisions, and repeated to n; the decode timestep has n entries.
- it decodes the whole video; here only the latent frames the rollout needs are decoded.

Frame layout of one decision (t = temporal compression, 8 for LTX):

    pixel frames  [0 .. C-1]            context, C = 8k+1 newest frames at the model's fps
                  [C .. C+8m-1]         generated future; future frame j is pixel C+j
    latent frames [0 .. (C-1)/8]        context latents;  then m future latents
    goal at offset o seconds  ->  future frame j = decision_index(o, fps)  ->  keyframe at pixel C+j
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from framepilot.errors import ConfigError
from planner.backends.loading import (
    LTX_DISTILLED_TIMESTEPS,
    DiffusersConfig,
    load_pipeline,
)
from planner.backends.timing import (
    PromptCache,
    StageTimer,
    seed_or_random,
    video_to_uint8,
)
from planner.world_model import (
    Capabilities,
    ContextClip,
    GoalFrame,
    Rollouts,
    WorldModel,
    decision_index,
    fit_frames,
    frames_needed,
    resample_clip,
)

DEFAULT_NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"


@dataclass
class LTXSettings:
    """How the LTX backend generates.

    Args:
        fps: frames per second the model generates at (LTX-Video: 25; the RoPE frame rate).
        size: (height, width) to work at, multiples of 32, or None for the context's size rounded up.
        resize: ``"pad"`` (keep pixels, pad bottom/right) or ``"resize"`` (rescale to ``size``).
        context_seconds: seconds of context to condition on (the newest 8k+1 frames of it).
        num_inference_steps: denoising steps.
        timesteps: explicit timesteps in 0..1000 (overrides ``num_inference_steps``).
        distilled: guidance-distilled checkpoint: published few-step timesteps, guidance 1.
        guidance_scale: classifier-free guidance; None for 1 (distilled) or 3.
        guidance_rescale: rescale factor for guidance (0 = off).
        negative_prompt: used only when guidance_scale > 1.
        default_prompt: the prompt when a decision has none.
        image_cond_noise_scale: noise re-added to the hard conditions each step (motion continuity).
        decode_timestep: VAE decode timestep (timestep-conditioned VAEs, LTX >= 0.9.1).
        decode_noise_scale: noise mixed into the latents before decoding (same VAEs).
        context_strength: 1 = the context latents are kept exactly.
        goal_strength: 1 = the goal keyframes are kept exactly.
        max_goals: how many goal keyframes a decision may carry.
        max_sequence_length: prompt tokens.
        decode_context_latents: latent frames before the first future one that are decoded along
            (the decoder is not causal; at least 1 gives the future frames their left neighbour).
    """

    fps: float = 25.0
    size: tuple[int, int] | None = None
    resize: str = "pad"
    context_seconds: float = 1.0
    num_inference_steps: int = 8
    timesteps: tuple[float, ...] | None = None
    distilled: bool = False
    guidance_scale: float | None = None
    guidance_rescale: float = 0.0
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    default_prompt: str = ""
    image_cond_noise_scale: float = 0.025
    decode_timestep: float = 0.05
    decode_noise_scale: float = 0.025
    context_strength: float = 1.0
    goal_strength: float = 1.0
    max_goals: int = 4
    max_sequence_length: int = 128
    decode_context_latents: int = 1

    def __post_init__(self):
        if not self.fps > 0:
            raise ConfigError(f"fps must be positive, got {self.fps}")
        if self.size is not None:
            self.size = tuple(int(v) for v in self.size)
            if len(self.size) != 2 or min(self.size) < 32 or any(v % 32 for v in self.size):
                raise ConfigError(f"size must be (height, width) in multiples of 32, got {self.size}")
        if self.resize not in ("pad", "resize"):
            raise ConfigError(f"resize must be 'pad' or 'resize', got {self.resize!r}")
        if self.resize == "resize" and self.size is None:
            raise ConfigError("resize='resize' needs a size=(height, width) to resize to")
        if not self.context_seconds > 0:
            raise ConfigError(f"context_seconds must be positive, got {self.context_seconds}")
        if self.timesteps is not None:
            self.timesteps = tuple(float(t) for t in self.timesteps)
            if not self.timesteps or any(b >= a for a, b in zip(self.timesteps, self.timesteps[1:])):
                raise ConfigError(f"timesteps must be a non-empty descending sequence, got {self.timesteps}")
        elif self.num_inference_steps < 1:
            raise ConfigError(f"num_inference_steps must be at least 1, got {self.num_inference_steps}")
        elif self.distilled and self.num_inference_steps > len(LTX_DISTILLED_TIMESTEPS):
            raise ConfigError(f"distilled LTX checkpoints publish {len(LTX_DISTILLED_TIMESTEPS)} timesteps; "
                             f"use num_inference_steps <= {len(LTX_DISTILLED_TIMESTEPS)}")
        if self.guidance_scale is None:
            self.guidance_scale = 1.0 if self.distilled else 3.0
        for name in ("context_strength", "goal_strength"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.decode_context_latents < 1:
            raise ConfigError("decode_context_latents must be at least 1 (the decoder needs a left neighbour)")
        if self.max_goals < 0 or self.max_sequence_length < 1:
            raise ConfigError("max_goals must be >= 0 and max_sequence_length >= 1")

    def schedule(self) -> list[float]:
        """Timesteps (0..1000, descending) for one decision."""
        if self.timesteps is not None:
            return list(self.timesteps)
        if self.distilled:
            # a subset of the published schedule, first and last kept (the distilled model was
            # trained on these timesteps only)
            keep = np.unique(np.round(np.linspace(0, len(LTX_DISTILLED_TIMESTEPS) - 1,
                                                  self.num_inference_steps)).astype(int))
            return [LTX_DISTILLED_TIMESTEPS[i] for i in keep]
        from diffusers.pipelines.ltx.pipeline_ltx_condition import (
            linear_quadratic_schedule,
        )

        return (linear_quadratic_schedule(self.num_inference_steps) * 1000).tolist()


@dataclass(frozen=True)
class LTXPlan:
    """Where everything sits in one decision's generated video (pixel and latent frame indices).

    Args:
        context_frames: pixel frames of context, 8k+1.
        future_frames: frames returned (cover the rollout length).
        num_frames: pixel frames generated (context + future up to the farthest goal), 8k+1.
        goal_frames: pixel frame index of each goal keyframe.
        decode_latents: [start, stop) latent frames that are decoded.
        future_latent_start: latent index of the first future latent frame.
    """

    context_frames: int
    future_frames: int
    num_frames: int
    goal_frames: tuple[int, ...]
    decode_latents: tuple[int, int]
    future_latent_start: int


def plan_frames(available_context: int, rollout_length: float, goal_offsets, fps: float,
                temporal_compression: int = 8, decode_context_latents: int = 1) -> LTXPlan:
    """Frame layout for a decision (pure arithmetic; see the module docstring)."""
    tc = temporal_compression
    context = (max(available_context, 1) - 1) // tc * tc + 1
    future = frames_needed(rollout_length, fps)
    future_latents = math.ceil(future / tc)
    goal_future = [decision_index(o, fps) for o in goal_offsets]
    generated_latents = max([future_latents] + [math.ceil((j + 1) / tc) for j in goal_future])
    context_latents = (context - 1) // tc + 1
    start = max(0, context_latents - decode_context_latents)
    return LTXPlan(context_frames=context, future_frames=future, num_frames=context + tc * generated_latents,
                   goal_frames=tuple(context + j for j in goal_future),
                   decode_latents=(start, context_latents + future_latents), future_latent_start=context_latents)


class LTXBackend(WorldModel):
    """LTX-Video world model: context video + goal keyframes + text -> n futures in one batch.

    Args:
        pipe: an ``LTXConditionPipeline`` (its text encoder/tokenizer may be None when prompts are
            put in with ``cache_prompt``).
        settings: generation settings.
    """

    name = "ltx-video"

    def __init__(self, pipe, settings: LTXSettings | None = None):
        self.pipe = pipe
        self.settings = settings or LTXSettings()
        self.spatial_multiple = pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size
        self.temporal_compression = pipe.vae_temporal_compression_ratio * pipe.transformer_temporal_patch_size
        s = self.settings
        if s.size is not None and any(v % self.spatial_multiple for v in s.size):
            raise ConfigError(f"size {s.size} must be multiples of {self.spatial_multiple} for this model")
        self.capabilities = Capabilities(
            text=True, goal_frames=s.max_goals > 0, max_goals=s.max_goals, prefix_video=True, native_fps=s.fps,
            size_multiple=self.spatial_multiple, temporal_compression=self.temporal_compression,
            resize=s.resize, size=s.size)
        self.prompts = PromptCache(self._encode_prompt)
        self.last_plan: LTXPlan | None = None

    @classmethod
    def from_config(cls, config: DiffusersConfig, settings: LTXSettings | None = None) -> LTXBackend:
        """Load from a hub id, a diffusers folder or a single-file checkpoint (see ``loading``)."""
        from diffusers import LTXConditionPipeline

        pipe = load_pipeline(LTXConditionPipeline, config)
        if settings is None:
            settings = LTXSettings(distilled="distilled" in config.model.lower())
        return cls(pipe, settings)

    @property
    def device(self):
        return self.pipe._execution_device

    # -- text ------------------------------------------------------------------------------------

    def _prompt_key(self, prompt: str):
        s = self.settings
        return prompt, (s.negative_prompt if s.guidance_scale > 1 else None), s.max_sequence_length

    def _encode_prompt(self, key):
        prompt, negative, max_len = key
        pipe = self.pipe
        if pipe.text_encoder is None or pipe.tokenizer is None:
            raise ConfigError(f"prompt {prompt!r} is not cached and this pipeline has no text encoder; load one "
                             f"or call cache_prompt() first")
        dtype = pipe.transformer.dtype
        embeds, mask = pipe._get_t5_prompt_embeds(prompt=[prompt], max_sequence_length=max_len,
                                                  device=self.device, dtype=dtype)
        if negative is None:
            return embeds, mask, None, None
        neg, neg_mask = pipe._get_t5_prompt_embeds(prompt=[negative], max_sequence_length=max_len,
                                                   device=self.device, dtype=dtype)
        return embeds, mask, neg, neg_mask

    def cache_prompt(self, prompt: str, embeds, mask, negative_embeds=None, negative_mask=None) -> None:
        """Put precomputed T5 embeddings for ``prompt`` in the cache.

        Args:
            embeds: (1, S, D) float prompt embeddings.
            mask: (1, S) attention mask (1 = token).
            negative_embeds, negative_mask: the same for the negative prompt; needed when guidance > 1.
        """
        if self.settings.guidance_scale > 1 and negative_embeds is None:
            raise ConfigError("guidance_scale > 1 needs negative_embeds and negative_mask too")
        dev, dtype = self.device, self.pipe.transformer.dtype
        neg = None if negative_embeds is None else (negative_embeds.to(dev, dtype), negative_mask.to(dev).bool())
        self.prompts.put(self._prompt_key(prompt), (embeds.to(dev, dtype), mask.to(dev).bool(), *(neg or (None, None))))

    # -- one decision ----------------------------------------------------------------------------

    def _encode_frames(self, frames: np.ndarray):
        """(T, H, W, 3) uint8 -> (1, C, 1 + (T-1)/8, h, w) normalized float32 latents (the VAE's mode)."""
        import torch

        pipe, vae = self.pipe, self.pipe.vae
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(3, 0, 1, 2)[None].to(vae.dtype) / 127.5 - 1.0
        latents = vae.encode(x).latent_dist.mode()
        return pipe._normalize_latents(latents, vae.latents_mean, vae.latents_std).float()

    def _rollout(self, context: ContextClip, n: int, rollout_length: float, prompt: str | None,
                 goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        import torch
        from diffusers.pipelines.ltx.pipeline_ltx_condition import (
            calculate_shift,
            rescale_noise_cfg,
        )

        pipe, s, device = self.pipe, self.settings, self.device
        transformer, vae = pipe.transformer, pipe.vae
        tc, sp = self.temporal_compression, pipe.vae_spatial_compression_ratio
        ps, pt = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        timer = StageTimer(device)
        generator = torch.Generator("cpu").manual_seed(seed_or_random(seed))

        with torch.inference_mode():
            # 1. Frames: context at the model's fps, newest 8k+1 frames, sides to multiples of 32.
            frames = resample_clip(context.frames, context.fps, s.fps, duration=min(s.context_seconds,
                                                                                     context.duration))
            plan = plan_frames(len(frames), rollout_length, [g.offset for g in goals], s.fps, tc,
                               s.decode_context_latents)
            self.last_plan = plan
            frames, undo = fit_frames(frames[-plan.context_frames:], s.size, self.spatial_multiple, s.resize)
            goal_images = [fit_frames(g.image, s.size, self.spatial_multiple, s.resize)[0] for g in goals]
            height, width = frames.shape[1:3]
            timer.lap("prepare")

            # 2. Text: cached per prompt, repeated to the batch.
            embeds, mask, neg, neg_mask = self.prompts.get(self._prompt_key(prompt or s.default_prompt))
            do_cfg = s.guidance_scale > 1
            embeds, mask = embeds.expand(n, -1, -1), mask.expand(n, -1)
            if do_cfg:
                embeds = torch.cat([neg.expand(n, -1, -1), embeds])
                mask = torch.cat([neg_mask.expand(n, -1), mask])
            timer.lap("text")

            # 3. Conditions: encode the context video and each goal once (batch 1).
            context_latents = self._encode_frames(frames)
            goal_latents = [self._encode_frames(g[None]) for g in goal_images]
            timer.lap("encode")

            # 4. Latents: n noise samples; context latents over the first latent frames; each goal
            #    as extra tokens whose time coordinate is its pixel frame (LTX keyframe conditioning).
            channels = transformer.config.in_channels
            lat_frames, lat_h, lat_w = (plan.num_frames - 1) // tc + 1, height // sp, width // sp
            noise = torch.randn((n, channels, lat_frames, lat_h, lat_w), generator=generator).to(device)
            latents = noise.clone()
            n_ctx = context_latents.shape[2]
            latents[:, :, :n_ctx] = torch.lerp(noise[:, :, :n_ctx], context_latents.expand(n, -1, -1, -1, -1),
                                               s.context_strength)
            frame_mask = torch.zeros((n, lat_frames), device=device)
            frame_mask[:, :n_ctx] = s.context_strength
            ids = pipe._prepare_video_ids(n, lat_frames, lat_h, lat_w, patch_size=ps, patch_size_t=pt, device=device)
            cond_mask = frame_mask.gather(1, ids[:, 0])
            coords = [pipe._scale_video_ids(ids, scale_factor=sp, scale_factor_t=tc, frame_index=0, device=device)]
            tokens, masks = [pipe._pack_latents(latents, ps, pt)], [cond_mask]
            for goal, frame_index in zip(goal_latents, plan.goal_frames):
                goal_noise = torch.randn((n, *goal.shape[1:]), generator=generator).to(device)
                goal = pipe._pack_latents(torch.lerp(goal_noise, goal.expand(n, -1, -1, -1, -1), s.goal_strength),
                                          ps, pt)
                goal_ids = pipe._prepare_video_ids(n, 1, lat_h, lat_w, patch_size=ps, patch_size_t=pt, device=device)
                coords.insert(-1, pipe._scale_video_ids(goal_ids, scale_factor=sp, scale_factor_t=tc,
                                                        frame_index=frame_index, device=device))
                tokens.insert(-1, goal)
                masks.insert(-1, torch.full(goal.shape[:2], s.goal_strength, device=device))
            n_extra = sum(t.shape[1] for t in tokens[:-1])
            latents, cond_mask = torch.cat(tokens, 1), torch.cat(masks, 1)
            video_coords = torch.cat(coords, 2).float()
            video_coords[:, 0] = video_coords[:, 0] / s.fps  # the pipeline's frame_rate scaling
            if do_cfg:
                video_coords = torch.cat([video_coords, video_coords])
            init_latents = latents.clone()
            timer.lap("prepare")

            # 5. Denoise (the pipeline's loop, for one batch of n).
            schedule = s.schedule()
            shift = {}
            if pipe.scheduler.config.get("use_dynamic_shifting", False):
                c = pipe.scheduler.config
                shift["mu"] = calculate_shift(latents.shape[1], c.base_image_seq_len, c.max_image_seq_len,
                                              c.base_shift, c.max_shift)
            # timesteps as published, sigmas = timesteps / 1000 (what the pipeline derives, said explicitly)
            pipe.scheduler.set_timesteps(sigmas=[t / 1000 for t in schedule], timesteps=schedule, device=device,
                                         **shift)
            timesteps = pipe.scheduler.timesteps
            for t in timesteps:
                if s.image_cond_noise_scale > 0:
                    latents = pipe.add_noise_to_image_conditioning_latents(
                        t / 1000.0, init_latents, latents, s.image_cond_noise_scale, cond_mask, generator)
                model_input = torch.cat([latents, latents]) if do_cfg else latents
                mask_input = torch.cat([cond_mask, cond_mask]) if do_cfg else cond_mask
                timestep = t.expand(model_input.shape[0]).unsqueeze(-1).float()
                timestep = torch.min(timestep, (1 - mask_input) * 1000.0)
                with transformer.cache_context("cond_uncond"):
                    pred = transformer(hidden_states=model_input.to(embeds.dtype), encoder_hidden_states=embeds,
                                       timestep=timestep, encoder_attention_mask=mask, video_coords=video_coords,
                                       return_dict=False)[0]
                if do_cfg:
                    uncond, cond = pred.chunk(2)
                    pred = uncond + s.guidance_scale * (cond - uncond)
                    timestep = timestep.chunk(2)[0]
                    if s.guidance_rescale > 0:
                        pred = rescale_noise_cfg(pred, cond, guidance_rescale=s.guidance_rescale)
                denoised = pipe.scheduler.step(-pred, t, latents, per_token_timesteps=timestep, return_dict=False)[0]
                keep_denoising = (t / 1000 - 1e-6 < (1.0 - cond_mask)).unsqueeze(-1)
                latents = torch.where(keep_denoising, denoised, latents)
            timer.lap("denoise")

            # 6. Decode only the latent frames the rollout needs (plus the left neighbour(s)).
            latents = pipe._unpack_latents(latents[:, n_extra:], lat_frames, lat_h, lat_w, ps, pt)
            start, stop = plan.decode_latents
            latents = pipe._denormalize_latents(latents[:, :, start:stop], vae.latents_mean, vae.latents_std,
                                                vae.config.scaling_factor).to(vae.dtype)
            decode_t = None
            if vae.config.timestep_conditioning:
                decode_noise = torch.randn(latents.shape, generator=generator).to(device, vae.dtype)
                latents = (1 - s.decode_noise_scale) * latents + s.decode_noise_scale * decode_noise
                decode_t = torch.full((n,), s.decode_timestep, device=device, dtype=vae.dtype)
            video = vae.decode(latents, decode_t, return_dict=False)[0]
            future = video[:, :, video.shape[2] - tc * (stop - plan.future_latent_start):][:, :, :plan.future_frames]
            timer.lap("decode")

            # 7. uint8 at the context's size.
            out = undo(video_to_uint8(future))
            timer.lap("postprocess")
        return Rollouts(frames=out, fps=s.fps, timings=dict(timer.timings))
