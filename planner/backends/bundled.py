"""framepilot's own world model as a planner backend: the embedded default that runs on a laptop CPU.

It knows only the bundled games (and what you fine-tune it on): it was trained on recordings of
them with the overlay drawn (see ``training/train.py``). Frames of any size are resized to the
model's size (the overlay strip included, never cropped), futures are sampled one frame at a time
(each predicted frame becomes context for the next), and resized back to the context's size.

    from planner.backends.bundled import BundledWorldModel
    model = BundledWorldModel("arrows")        # or a checkpoint folder written by training.train
    rollouts = model(clip, n=8, rollout_length=0.1, prompt="collect the red coin")
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from framepilot.errors import ConfigError
from framepilot.frames import resize_frames
from overlays import Layout
from planner.world_model import (
    Capabilities,
    ContextClip,
    GoalFrame,
    Rollouts,
    WorldModel,
    fit_frames,
    frames_needed,
    resample_clip,
)


def resolve_checkpoint(model: str, layout_name: str = "arrows") -> Path:
    """The checkpoint folder for ``model``: ``bundled`` (the shipped one for ``layout_name``),
    ``bundled:NAME`` or a shipped name, or a checkpoint folder."""
    from worldmodel.checkpoints import (
        MissingModel,
        bundled_path,
        shipped,
        shipped_for_layout,
    )
    name = shipped_for_layout(layout_name) if model == "bundled" else \
        model.split(":", 1)[1] if model.startswith("bundled:") else model
    if name in shipped() or model.startswith("bundled:"):
        return bundled_path(name)
    path = Path(model)
    if not path.is_dir():
        names = ", ".join(f"bundled:{n}" for n in shipped())
        raise MissingModel(f"no world model at {model!r}: pass bundled, {names} or a checkpoint folder written by "
                           "python -m training.train")
    return path


class BundledWorldModel(WorldModel):
    """The bundled next-frame diffusion model behind the ``WorldModel`` interface.

    Args:
        model: ``"arrows"``/``"mouse"`` (shipped checkpoints) or a checkpoint folder.
        denoise_steps: Euler steps of the overlay strip, where the action is read.
        frame_steps: Euler steps of the imagined game area (default 1: the model's mean estimate of
            the next frame, a third of the cost of 3 steps). The strip's denoiser never sees the noisy
            game area, so the actions read are the same at any ``frame_steps`` for the same seed;
            more steps only sharpen the imagined game (worth it for rollouts of several frames,
            whose later frames are predicted from the earlier ones). None: ``denoise_steps``.
        device: torch device (``"cpu"`` default; ``"cuda"`` works).
        share_first_frame: the rollouts' first predicted frame is conditioned on the same context,
            prompt and goal for all of them, so compute those conditions once and (when
            ``frame_steps`` differs from ``denoise_steps``) imagine its game area once, from the first
            rollout's noise; every rollout still samples its own overlay strip, where its action is
            read. N rollouts then cost one UNet pass instead of N, and the actions read are those of
            the unshared model up to float rounding. The rollouts' first frames then show the same
            game area. False: every rollout imagines its own.
        coherent: each rollout samples its own overlay strip first (the model's prior over what the
            player does next) and then imagines the game area around it (``FramepilotUNet.inpaint``), so
            a rollout's game area is the consequence of its own overlay, frame after frame. N
            rollouts then cost N UNet passes per frame (``share_first_frame`` does not apply).
        inpaint_steps: Euler steps of a game area imagined around a given strip (coherent rollouts and
            ``model(..., actions=...)``); fewer than 3 lose the strip's information in the noise.
    """

    name = "framepilot-bundled"

    def __init__(self, model: str = "arrows", denoise_steps: int = 3, device: str = "cpu", frame_steps: int | None = 1,
                 share_first_frame: bool = True, coherent: bool = False, inpaint_steps: int = 4):
        import torch

        from worldmodel.checkpoints import load
        from worldmodel.model import make_scheduler
        if denoise_steps < 1:
            raise ConfigError(f"denoise_steps must be at least 1, got {denoise_steps}")
        if frame_steps is not None and frame_steps < 1:
            raise ConfigError(f"frame_steps must be at least 1, got {frame_steps}")
        self.path = resolve_checkpoint(model)
        self.net, self.meta = load(self.path)
        self.device = torch.device(device)
        self.net.to(self.device)
        self.denoise_steps = denoise_steps
        self.frame_steps = denoise_steps if frame_steps is None else frame_steps
        self.share_first_frame = bool(share_first_frame)
        if inpaint_steps < 1:
            raise ConfigError(f"inpaint_steps must be at least 1, got {inpaint_steps}")
        if coherent and not self.net.config.strip_head:
            raise ConfigError(f"{self.path.name} has no strip denoiser, so it cannot sample coherent rollouts")
        self.coherent = bool(coherent)
        self.inpaint_steps = int(inpaint_steps)
        self._strips: dict = {}
        self.scheduler = make_scheduler()
        self.layout = Layout.from_dict(self.meta["layout"])
        self.size = tuple(self.meta["size"])
        from framepilot.frames import FrameSpec
        self.frame_spec = FrameSpec.from_meta(self.meta)  # what captures are brought to before the overlay
        self.k = int(self.net.config.context_frames)
        self.capabilities = Capabilities(text=True, goal_frames=True, max_goals=1, prefix_video=self.k > 1,
                                         native_fps=float(self.meta["fps"]), resize="resize", size=self.size,
                                         overlay_inpainting=True)
        self._text = None
        self.name = f"framepilot-bundled:{self.path.name}"

    @classmethod
    def untrained(cls, model: str = "arrows", seed: int = 0, **kw) -> "BundledWorldModel":
        """The control: the same architecture, metadata and planner with fresh random weights."""
        import torch

        from worldmodel.model import FramepilotUNet
        self = cls(model, **kw)
        torch.manual_seed(seed)
        self.net = FramepilotUNet.from_config(self.net.config).eval().to(self.device)
        self.name = f"framepilot-untrained:{self.path.name}"
        return self

    def check_layout(self, layout: Layout) -> None:
        """Refuse a layout other than the one the model learnt (one clear sentence)."""
        layout.check_compatible(self.meta["layout"], what=f"the world model {self.path.name}")

    def features(self, frames: np.ndarray) -> np.ndarray | None:
        """The network's own keypoints of the game area (the spatial soft-argmax of its keypoint net,
        ``FramepilotUNet.frame_keypoints``): where things are, as the model sees them. None for a
        model without keypoints."""
        import torch
        if not self.net.config.keypoints:
            return None
        x = self.net.mask_overlay(self._to_unit(resize_frames(frames, self.size)))
        with torch.inference_mode():
            return self.net.frame_keypoints(x).cpu().numpy()

    def prepare(self, prompt: str | None = None) -> None:
        if prompt:
            self._embed(prompt, 1)  # the text encoder loads now, not in the first decision

    def _embed(self, prompt: str | None, n: int):
        import torch
        if not prompt:
            return torch.zeros(n, 384, device=self.device)
        if self._text is None:
            from worldmodel.text import shared_text_encoder
            self._text = shared_text_encoder()
        return torch.from_numpy(self._text(prompt)).to(self.device).expand(n, -1)

    def _to_unit(self, frames: np.ndarray):
        import torch
        return torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).movedim(-1, -3).float() / 127.5 - 1.0

    def _inputs(self, context: ContextClip, n: int, prompt: str | None, goals: tuple[GoalFrame, ...], seed):
        """What a rollout starts from: (context (n, K, 3, H, W), text, goal, generator, undo)."""
        import torch
        fps = self.capabilities.native_fps
        clip = resample_clip(context.frames, context.fps, fps)[-self.k:]
        if len(clip) < self.k:
            clip = np.concatenate([np.repeat(clip[:1], self.k - len(clip), 0), clip])
        # resampled as the training corpus was (framepilot.frames); outputs go back to the context's size
        _, undo = fit_frames(clip[:1], self.size, mode="resize")
        fitted = resize_frames(clip, self.size)
        ctx = self._to_unit(fitted)[None].expand(n, -1, -1, -1, -1).contiguous()
        text = self._embed(prompt, n)
        goal = None
        if goals:
            # the model was trained with the episode's goal frame (where it should end up); the offset
            # only sets how far the planner imagines, not what the network sees
            g = resize_frames(goals[-1].image[None], self.size)
            goal = self._to_unit(g).expand(n, -1, -1, -1).contiguous()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed) if seed is not None else int(torch.seed() % (2 ** 63)))
        return ctx, text, goal, gen, undo

    def _frames(self, out: list, undo) -> np.ndarray:
        import torch
        frames = ((torch.stack(out, 1).movedim(-3, -1) + 1) * 127.5).round().clamp(0, 255).byte().cpu().numpy()
        return undo(frames)

    def _rollout(self, context: ContextClip, n: int, rollout_length: float, prompt: str | None,
                 goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        import torch
        t0 = time.perf_counter()
        fps = self.capabilities.native_fps
        ctx, text, goal, gen, undo = self._inputs(context, n, prompt, goals, seed)
        t1 = time.perf_counter()
        out = []
        with torch.inference_mode():
            for f in range(frames_needed(rollout_length, fps)):
                if self.coherent:  # the rollout's own overlay first, then the game area that goes with it
                    strip = self.net.sample_strip(ctx, text, goal, steps=self.denoise_steps, generator=gen,
                                                  scheduler=self.scheduler)
                    strip = self._snap(strip, context.frames.shape[1:])
                    x = self.net.inpaint(ctx, strip, text, goal, steps=self.inpaint_steps, generator=gen,
                                         scheduler=self.scheduler)
                else:
                    # the first frame's conditions are the same for every rollout (one context, prompt, goal)
                    x = self.net.sample(ctx, text, goal, steps=self.denoise_steps, generator=gen,
                                        scheduler=self.scheduler, frame_steps=self.frame_steps,
                                        shared=self.share_first_frame and f == 0)
                out.append(x)
                ctx = torch.cat([ctx[:, 1:], x[:, None]], 1)
        t2 = time.perf_counter()
        frames = self._frames(out, undo)
        t3 = time.perf_counter()
        return Rollouts(frames=frames, fps=fps, timings={"encode": t1 - t0, "denoise": t2 - t1, "decode": t3 - t2})

    def _strip_of(self, action, layout, frame_shape: tuple[int, int, int]):
        """The overlay strip of ``action`` as the network sees it: drawn on a frame of the context's size,
        then resized to the model's, as the corpus was (cached per action)."""
        key = (action.keys, action.buttons, action.mouse, frame_shape)
        if key not in self._strips:
            from overlays import render_overlay
            h, w, _ = frame_shape
            blank = np.zeros((h - layout.strip_height(w), w, 3), np.uint8)
            framed = resize_frames(render_overlay(blank, action, layout)[None], self.size)
            self._strips[key] = self._to_unit(framed)[0, :, self.net.config.strip_rows:, :]
        return self._strips[key]

    def _snap(self, strip, frame_shape: tuple[int, int, int]):
        """Sampled strips redrawn as the codec draws the action read from them (read at the context's
        size, as the agent reads), so the game area is imagined around exactly the action the agent
        will read from this rollout."""
        import torch

        from overlays import read_overlay
        rows = self.net.config.strip_rows
        game = torch.zeros((strip.shape[0], 3, rows, strip.shape[-1]), dtype=strip.dtype, device=strip.device)
        frames = self._frames([torch.cat([game, strip], -2)], lambda f: f)[:, 0]
        h, w, _ = frame_shape
        big = resize_frames(frames, (h, w))
        return torch.stack([self._strip_of(read_overlay(f, self.layout).action, self.layout, frame_shape)
                            for f in big])

    def _inpaint(self, context: ContextClip, actions: list[list], layout, rollout_length: float,
                 prompt: str | None, goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        import torch
        self.check_layout(layout)
        t0 = time.perf_counter()
        n = len(actions)
        ctx, text, goal, gen, undo = self._inputs(context, n, prompt, goals, seed)
        t1 = time.perf_counter()
        out = []
        with torch.inference_mode():
            for f in range(len(actions[0])):
                strip = torch.stack([self._strip_of(a[f], layout, context.frames.shape[1:]) for a in actions])
                # common random numbers: candidates differ only by what their keys cause
                x = self.net.inpaint(ctx, strip, text, goal, steps=self.inpaint_steps, generator=gen,
                                     scheduler=self.scheduler, common_noise=True)
                out.append(x)
                ctx = torch.cat([ctx[:, 1:], x[:, None]], 1)  # each frame follows from the imagined ones before it
        t2 = time.perf_counter()
        frames = self._frames(out, undo)
        t3 = time.perf_counter()
        return Rollouts(frames=frames, fps=self.capabilities.native_fps,
                        timings={"encode": t1 - t0, "denoise": t2 - t1, "decode": t3 - t2})
