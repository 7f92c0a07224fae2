"""The network and the scheduler of framepilot's bundled world model.

``FramepilotUNet`` is a diffusers ``ModelMixin``/``ConfigMixin`` around a ``UNet2DModel``: it denoises
the next frame given the previous frames (channel-concatenated), an optional goal frame and an
optional prompt embedding. It is trained with EDM preconditioning (Karras et al. 2022, as in
DIAMOND) and sampled with diffusers' ``EDMEulerScheduler`` in a few Euler steps.

Against the copycat problem, the overlay strip of the CONTEXT frames is blanked before it reaches
the network (``mask_context_overlay``): the game frame carries the whole state, and the last held
key, which the next key usually repeats, is not there to be copied. The predicted frame keeps its
overlay: that is where the agent reads the action.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from diffusers import EDMEulerScheduler, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

SIGMA_DATA = 0.5


def make_scheduler(sigma_min: float = 0.002, sigma_max: float = 5.0) -> EDMEulerScheduler:
    """The sampler: EDM Euler with Karras sigmas (rho 7) between ``sigma_min`` and ``sigma_max``."""
    return EDMEulerScheduler(sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=SIGMA_DATA,
                             sigma_schedule="karras", prediction_type="epsilon", rho=7.0)


class FramepilotUNet(ModelMixin, ConfigMixin):
    """Next-frame denoiser.

    Args:
        sample_size: (H, W) of frames, overlay strip included, in pixels.
        strip_rows: first row of the overlay strip (rows ``strip_rows:`` are the overlay).
        context_frames: how many past frames condition the prediction.
        text_dim: size of the prompt embedding (all-MiniLM-L6-v2: 384).
        block_out_channels, layers_per_block, attention_head_dim, norm_num_groups: UNet2DModel's.
        mask_context_overlay: blank the overlay of context frames (see module docstring).
        keypoints: spatial-softmax keypoints taken from the newest context frame and from the goal
            frame (0: none). Each is the expected (x, y) of a learnt feature map (Levine et al.'s deep
            spatial autoencoders): where the marker, the target or each coin is, as numbers. They go,
            with the prompt embedding, through one MLP into the UNet's embedding, so every block
            knows where things are relative to each other, which is what the next key depends on.
        strip_head: denoise the overlay strip with its own network (needs ``keypoints``): an MLP from
            the noisy strip, the noise level, the keypoints and the prompt straight to the strip's
            pixels; the UNet then denoises only the game area. The strip is small and depends on where
            things are relative to each other, not on local texture, so a dense path from the
            keypoints learns it far faster, and training can give it a larger batch and more high
            noise levels (where the next input must be predicted, not merely cleaned) at little cost.
            The prompt gates the MLP's hidden units (a product, not only a sum), which is how "the red
            coin" picks the red coin's keypoints.
        text_keypoints: prompt-conditioned keypoints for the strip denoiser (needs ``strip_head``): each
            is the expected (x, y) of a map made from the keypoint net's last hidden features by a
            1x1 filter that the prompt embedding chooses (a linear map of it), so "the red coin" or
            "click Save" can point at the named object directly, whether or not a fixed keypoint
            happens to track it.
        strip_x0: the strip denoiser predicts the clean strip itself (x0-prediction) instead of EDM's
            skip-connected residual. The MLP reaches the strip's pixels only through its 512 hidden
            units: with EDM's skip it must reproduce the input noise to cancel it at low noise levels,
            which a mouse strip (1,728 pixels at 60x48) cannot pass through, and the sampled pad comes
            out speckled; an x0 prediction never has to carry the noise. Trained with a plain MSE.
    """

    @register_to_config
    def __init__(self, sample_size=(80, 64), strip_rows: int = 64, context_frames: int = 2, text_dim: int = 384,
                 block_out_channels=(32, 64, 128), layers_per_block: int = 1, attention_head_dim: int = 32,
                 norm_num_groups: int = 8, mask_context_overlay: bool = True, keypoints: int = 0,
                 strip_head: bool = False, text_keypoints: int = 0,
                 strip_x0: bool = False):
        super().__init__()
        in_ch = 3 + 3 * context_frames + 4 + 2  # noisy frame, context, goal + goal flag, coordinates
        n = len(block_out_channels)
        self.unet = UNet2DModel(
            sample_size=tuple(sample_size), in_channels=in_ch, out_channels=3,
            down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
            up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
            block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups,
            class_embed_type="identity")
        temb = block_out_channels[0] * 4
        # the prompt's projection without keypoints; with keypoints ``cond_proj`` takes the prompt. It is
        # created either way so that every later layer draws the same random initial weights for a
        # seed (the documented training commands reproduce the shipped checkpoints), then dropped when
        # unused, so no checkpoint carries dead weights.
        self.text_proj = nn.Sequential(nn.Linear(text_dim, temb), nn.SiLU(), nn.Linear(temb, temb))
        if keypoints:
            del self.text_proj
            width = 16
            self.keypoint_net = nn.Sequential(
                nn.Conv2d(5, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                nn.Conv2d(width, keypoints, 3, padding=1))
            # maps are standardised over space before the softmax, then sharpened: at exp(log 5) = 5 a
            # unit-variance map puts nearly all its weight on its few strongest pixels from the first
            # step (a flat softmax would give every keypoint the frame's centre and almost no gradient)
            self.keypoint_temperature = nn.Parameter(torch.full((keypoints,), math.log(5.0)))
            cond_in = text_dim + 4 * keypoints + 1
            self.cond_proj = nn.Sequential(nn.Linear(cond_in, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(),
                                           nn.Linear(256, temb))
        if strip_head:
            if not keypoints:
                raise ValueError("strip_head needs keypoints > 0")
            strip_px = 3 * (sample_size[0] - strip_rows) * sample_size[1]
            hidden = 512
            self.strip_in = nn.Linear(strip_px + 4 * keypoints + 2 + 2 * text_keypoints, hidden)
            self.strip_gate = nn.Linear(text_dim, hidden)
            self.strip_mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                           nn.SiLU(), nn.Linear(hidden, strip_px))
        if text_keypoints:
            if not strip_head:
                raise ValueError("text_keypoints needs strip_head")
            self.text_query = nn.Linear(text_dim, text_keypoints * width)
            self.text_keypoint_temperature = nn.Parameter(torch.full((text_keypoints,), math.log(5.0)))
        h, w = sample_size
        ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(1, 1, h, w)
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(1, 1, h, w)
        self.register_buffer("coords", torch.cat([xs, ys], 1), persistent=False)

    def mask_overlay(self, frames: torch.Tensor) -> torch.Tensor:
        """Blank the overlay rows of (B, C, H, W) frames in [-1, 1] (to mid grey, 0)."""
        if not self.config.mask_context_overlay:
            return frames
        frames = frames.clone()
        frames[..., self.config.strip_rows:, :] = 0.0
        return frames

    def frame_keypoints(self, frame: torch.Tensor, text: torch.Tensor | None = None):
        """(B, 3, H, W) frame in [-1, 1] (overlay already blanked) -> (B, 2 * keypoints) expected x, y;
        with ``text`` (B, text_dim) also the (B, 2 * text_keypoints) prompt-conditioned ones."""
        b = frame.shape[0]
        rows = self.config.strip_rows  # the game area only: the (blanked) strip holds no state
        coords = self.coords[..., :rows, :].expand(b, -1, -1, -1).to(frame.dtype)
        feats = self.keypoint_net[:-1](torch.cat([frame[..., :rows, :], coords], 1))
        xy = self._soft_argmax(self.keypoint_net[-1](feats), self.keypoint_temperature)
        if text is None:
            return xy
        query = self.text_query(text).view(b, self.config.text_keypoints, -1)
        return xy, self._soft_argmax(torch.einsum("bchw,bqc->bqhw", feats, query), self.text_keypoint_temperature)

    def _soft_argmax(self, maps: torch.Tensor, log_temperature: torch.Tensor) -> torch.Tensor:
        """(B, K, rows, W) maps -> (B, 2K) expected x, y of their spatial softmax."""
        rows = maps.shape[-2]
        maps = maps.flatten(2)
        maps = (maps - maps.mean(-1, keepdim=True)) / (maps.std(-1, keepdim=True) + 1e-4)
        attn = (maps * log_temperature.exp().view(1, -1, 1)).softmax(-1)  # (B, K, rows*W)
        xy = self.coords[..., :rows, :].flatten(2).to(maps.dtype)  # (1, 2, rows*W)
        return torch.einsum("bkn,cn->bkc", attn, xy[0]).flatten(1)

    def conditions(self, context: torch.Tensor, text: torch.Tensor | None, goal: torch.Tensor | None,
                   has_goal: torch.Tensor | None, like: torch.Tensor) -> dict:
        """What every denoising step of one prediction shares: masked context, goal planes, keypoints."""
        b = like.shape[0]
        ctx = self.mask_overlay(context.flatten(0, 1)).view(b, -1, *like.shape[-2:])
        if goal is None:
            g = torch.zeros_like(like[:, :1]).expand(b, 4, *like.shape[-2:])
        else:
            flag = torch.ones_like(goal[:, :1]) if has_goal is None else has_goal.to(goal.dtype).expand_as(goal[:, :1])
            g = torch.cat([self.mask_overlay(goal) * flag, flag], 1)
        if text is None:
            text = like.new_zeros(b, self.config.text_dim)
        out = {"ctx": ctx, "goal": g, "text": text}
        if self.config.keypoints:
            flag = g[:, 3:4, 0, 0]  # (B, 1): 1 where a goal is given
            if self.config.text_keypoints:
                kp_now, out["text_keypoints"] = self.frame_keypoints(ctx[:, -3:], text)
            else:
                kp_now = self.frame_keypoints(ctx[:, -3:])
            kp_goal = torch.zeros_like(kp_now)
            with_goal = flag[:, 0] > 0
            if with_goal.any():  # only frames that have a goal (most batches of mixed games have few)
                kp_goal = kp_goal.index_put((with_goal.nonzero()[:, 0],), self.frame_keypoints(g[with_goal, :3]))
            out["keypoints"] = torch.cat([kp_now, kp_goal, flag], 1)
            out["cond"] = self.cond_proj(torch.cat([text, out["keypoints"]], 1))
        else:
            out["cond"] = self.text_proj(text)
        return out

    @staticmethod
    def _precondition(sigma: torch.Tensor):
        s = sigma.view(-1, 1, 1, 1)
        c_skip = SIGMA_DATA ** 2 / (s ** 2 + SIGMA_DATA ** 2)
        c_out = s * SIGMA_DATA / (s ** 2 + SIGMA_DATA ** 2).sqrt()
        c_in = 1 / (s ** 2 + SIGMA_DATA ** 2).sqrt()
        return c_skip, c_out, c_in, sigma.log() / 4

    def denoise_strip(self, noisy_strip: torch.Tensor, sigma: torch.Tensor, cond: dict) -> torch.Tensor:
        """D(x; sigma) of the overlay strip alone: (B, 3, H - strip_rows, W) -> same (needs ``strip_head``)."""
        c_skip, c_out, c_in, c_noise = self._precondition(sigma)
        b = noisy_strip.shape[0]
        parts = [(c_in * noisy_strip).flatten(1), cond["keypoints"], c_noise.view(b, 1)]
        if self.config.text_keypoints:
            parts.append(cond["text_keypoints"])
        x = torch.cat(parts, 1)
        h = self.strip_in(x) * (1 + self.strip_gate(cond["text"]))
        f = self.strip_mlp(h).view_as(noisy_strip)
        if self.config.strip_x0:
            return f
        return c_skip * noisy_strip + c_out * f

    def denoise_unet(self, noisy: torch.Tensor, sigma: torch.Tensor, cond: dict) -> torch.Tensor:
        """D(x; sigma) of the whole frame by the UNet (with ``strip_head`` its strip rows are replaced)."""
        c_skip, c_out, c_in, c_noise = self._precondition(sigma)
        b = noisy.shape[0]
        x = torch.cat([c_in * noisy, cond["ctx"], cond["goal"], self.coords.expand(b, -1, -1, -1).to(noisy.dtype)], 1)
        return c_skip * noisy + c_out * self.unet(x, c_noise * 250.0, class_labels=cond["cond"]).sample

    def forward(self, noisy: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor,
                text: torch.Tensor | None = None, goal: torch.Tensor | None = None,
                has_goal: torch.Tensor | None = None, cond: dict | None = None) -> torch.Tensor:
        """Denoised next frame D(x; sigma).

        Args:
            noisy: (B, 3, H, W) next frame in [-1, 1] plus noise of level ``sigma``.
            sigma: (B,) noise levels.
            context: (B, K, 3, H, W) past frames in [-1, 1], oldest first.
            text: (B, text_dim) prompt embeddings, or None (zeros: no prompt).
            goal: (B, 3, H, W) goal frame in [-1, 1], or None.
            has_goal: (B, 1, 1, 1) 1 where ``goal`` holds a goal, 0 where not (default: all 1).
            cond: ``conditions(...)`` computed once for all steps of a prediction (else computed here).
        Returns:
            (B, 3, H, W) estimate of the clean next frame.
        """
        if cond is None:
            cond = self.conditions(context, text, goal, has_goal, noisy)
        out = self.denoise_unet(noisy, sigma, cond)
        if self.config.strip_head:
            rows = self.config.strip_rows
            out = torch.cat([out[..., :rows, :], self.denoise_strip(noisy[..., rows:, :], sigma, cond)], -2)
        return out

    @torch.no_grad()
    def sample(self, context: torch.Tensor, text: torch.Tensor | None = None, goal: torch.Tensor | None = None,
               steps: int = 3, generator: torch.Generator | None = None,
               scheduler: EDMEulerScheduler | None = None, frame_steps: int | None = None,
               shared: bool = False) -> torch.Tensor:
        """Sample the next frame: (B, K, 3, H, W) context -> (B, 3, H, W) in [-1, 1].

        ``steps`` Euler steps for the frame; with ``strip_head``, ``frame_steps`` (when given and
        different) sets the game area's steps apart from the overlay strip's ``steps``. The strip's
        denoiser never sees the noisy game area, so the strip (where the agent reads its action) is
        exactly what it would be at any ``frame_steps`` for the same noise; only the imagined game
        area changes (one step gives the model's mean estimate of it, a third of the time).

        ``shared``: the caller promises that all B rows have the same context, prompt and goal (the
        rollouts of one decision). Their conditions (masked context, keypoints) are computed once,
        and with ``strip_head`` and ``frame_steps`` the game area is imagined once, from the first
        row's noise, and given to every row; each row still samples its own strip, so B rollouts cost
        one UNet pass instead of B. The strips are those of the unshared call up to float rounding.
        """
        scheduler = scheduler or make_scheduler()
        b, _, c, h, w = context.shape
        x = torch.randn((b, c, h, w), generator=generator, device=context.device, dtype=context.dtype)
        if shared:
            one = self.conditions(context[:1], None if text is None else text[:1], None if goal is None else goal[:1],
                                  None, x[:1])
            cond = {k: v.expand(b, *v.shape[1:]) for k, v in one.items()}
        else:
            one = cond = self.conditions(context, text, goal, None, x)
        if not self.config.strip_head or frame_steps is None or frame_steps == steps:
            return self._euler(lambda xt, sig: self(xt, sig, context, text, goal, cond=cond), x, steps, scheduler)
        rows = self.config.strip_rows
        strip = self._euler(lambda xt, sig: self.denoise_strip(xt, sig, cond), x[..., rows:, :], steps, scheduler)
        # shared: the first row's game area, given to every row (unshared, ``one`` is ``cond``)
        game = self._euler(lambda xt, sig: self.denoise_unet(xt, sig, one), x[:1] if shared else x, frame_steps,
                           scheduler).expand(b, -1, -1, -1)
        return torch.cat([game[..., :rows, :], strip], -2)

    @torch.no_grad()
    def inpaint(self, context: torch.Tensor, strip: torch.Tensor, text: torch.Tensor | None = None,
                goal: torch.Tensor | None = None, steps: int = 4, generator: torch.Generator | None = None,
                scheduler: EDMEulerScheduler | None = None, common_noise: bool = False) -> torch.Tensor:
        """The next frame given its overlay strip: (B, K, 3, H, W) context and (B, 3, H - strip_rows, W)
        clean strip in [-1, 1] -> (B, 3, H, W), the game area imagined around the given strip.

        Overlay inpainting by replacement (as RePaint, without resampling): at every Euler step the
        strip rows of the noisy frame are set to the given strip plus noise of that step's level, so
        the UNet, which denoises the whole frame and was trained on frames whose strip shows the keys
        held, imagines the game area that goes with those keys. The strip of the result is the given
        one. Nothing is trained for this: it is the same next-frame video model.

        ``common_noise``: every row starts from the same noise (common random numbers), so rows that
        differ only in their strips differ in their game areas only by what the strips cause: what a
        planner comparing candidate actions wants.
        """
        scheduler = scheduler or make_scheduler()
        b, _, c, h, w = context.shape
        rows = self.config.strip_rows
        m = 1 if common_noise else b
        x = torch.randn((m, c, h, w), generator=generator, device=context.device, dtype=context.dtype).expand(b, -1, -1, -1)
        noise = torch.randn((m, c, h - rows, w), generator=generator, device=context.device,
                            dtype=context.dtype).expand(b, -1, -1, -1)
        cond = self.conditions(context, text, goal, None, x)
        scheduler.set_timesteps(steps, device=x.device)
        scheduler.is_scale_input_called = True
        x = x * scheduler.sigmas[0].to(x.dtype)
        for t in scheduler.timesteps:
            sigma = scheduler.sigmas[scheduler.step_index if scheduler.step_index is not None else 0].to(x.dtype)
            x = torch.cat([x[..., :rows, :], strip + sigma * noise], -2)
            denoised = self.denoise_unet(x, sigma.expand(b), cond)
            x = scheduler.step(denoised, t, x, pred_original_sample=denoised).prev_sample
        return torch.cat([x[..., :rows, :].clamp(-1, 1), strip], -2)

    @torch.no_grad()
    def sample_strip(self, context: torch.Tensor, text: torch.Tensor | None = None, goal: torch.Tensor | None = None,
                     steps: int = 3, generator: torch.Generator | None = None,
                     scheduler: EDMEulerScheduler | None = None) -> torch.Tensor:
        """The next frame's overlay strip alone, (B, 3, H - strip_rows, W): the model's prior over
        what the player does next (needs ``strip_head``)."""
        if not self.config.strip_head:
            raise ValueError("sample_strip needs a model with strip_head")
        scheduler = scheduler or make_scheduler()
        b, _, c, h, w = context.shape
        rows = self.config.strip_rows
        x = torch.randn((b, c, h - rows, w), generator=generator, device=context.device, dtype=context.dtype)
        cond = self.conditions(context, text, goal, None, torch.zeros((b, c, h, w), dtype=context.dtype,
                                                                        device=context.device))
        return self._euler(lambda xt, sig: self.denoise_strip(xt, sig, cond), x, steps, scheduler)

    @staticmethod
    def _euler(denoise, x: torch.Tensor, steps: int, scheduler: EDMEulerScheduler) -> torch.Tensor:
        """EDM Euler from unit noise ``x`` (scaled here to the first sigma) in ``steps`` steps of
        ``denoise(x, sigma) -> D(x; sigma)``; clamped to [-1, 1]."""
        scheduler.set_timesteps(steps, device=x.device)
        # the EDM input scaling (c_in) happens inside ``denoise``, so the scheduler's own
        # ``scale_model_input`` is not called; tell it so instead of letting it warn every step.
        scheduler.is_scale_input_called = True
        x = x * scheduler.sigmas[0].to(x.dtype)
        b = x.shape[0]
        for t in scheduler.timesteps:
            sigma = scheduler.sigmas[scheduler.step_index if scheduler.step_index is not None else 0]
            denoised = denoise(x, sigma.expand(b).to(x.dtype))
            # EDMEulerScheduler.step takes the raw network output; we pass the denoised estimate
            # through ``pred_original_sample`` so the preconditioning lives in one place.
            x = scheduler.step(denoised, t, x, pred_original_sample=denoised).prev_sample
        return x.clamp(-1, 1)
