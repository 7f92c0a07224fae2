"""The bundled world model behind the planner's WorldModel interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import games
from overlays import NOOP, Layout, LayoutError, read_overlay, render_overlay
from planner import ContextClip, GoalFrame, UnsupportedRequest
from planner.backends import load_world_model, model_family
from planner.backends.bundled import BundledWorldModel

torch.set_num_threads(1)
ARROWS = Layout.preset("arrows")


def clip_of(game="reach", seed=10_000_000, scale=1):
    env = games.make(game)
    obs, info = env.reset(seed=seed)
    frame = render_overlay(obs.repeat(scale, 0).repeat(scale, 1), NOOP, ARROWS)
    return ContextClip(np.stack([frame] * 10), 10.0), info


def test_rollouts_have_the_context_size_and_fps(tiny_checkpoint):
    m = BundledWorldModel(str(tiny_checkpoint), denoise_steps=2)
    assert m.capabilities.text and m.capabilities.goal_frames and m.capabilities.native_fps == 10.0
    clip, _ = clip_of()
    r = m(clip, n=3, rollout_length=0.3, seed=0)
    assert r.frames.shape == (3, 3, 160, 128, 3) and r.frames.dtype == np.uint8 and r.fps == 10.0
    assert {"encode", "denoise", "decode"} <= set(r.timings)
    big, _ = clip_of(scale=4)  # a real window at scale 4: resized, never cropped
    assert m(big, n=2, rollout_length=0.1, seed=0).frames.shape == (2, 1, 640, 512, 3)


def test_seeds_repeat_and_differ(tiny_checkpoint):
    m = BundledWorldModel(str(tiny_checkpoint), denoise_steps=2)
    clip, _ = clip_of()
    a = m(clip, n=4, seed=5).frames
    assert np.array_equal(a, m(clip, n=4, seed=5).frames)
    assert not np.array_equal(a, m(clip, n=4, seed=6).frames)
    assert not np.array_equal(a[0], a[1])  # the rollouts of one call differ


def test_prompt_and_goal_change_the_futures(tiny_checkpoint):
    m = BundledWorldModel(str(tiny_checkpoint), denoise_steps=2)
    clip, _ = clip_of("reach-goal")
    _, info = clip_of("reach-goal")
    goal = GoalFrame(render_overlay(info["goal_frame"], NOOP, ARROWS), 0.1)
    base = m(clip, n=2, seed=1).frames
    assert not np.array_equal(base, m(clip, n=2, seed=1, goals=[goal]).frames)
    assert not np.array_equal(base, m(clip, n=2, seed=1, prompt="collect the red coin").frames)
    with pytest.raises(UnsupportedRequest, match="at most 1 goal"):
        m(clip, n=2, goals=[goal, goal])


def test_layout_and_model_errors(tiny_checkpoint, tmp_path):
    m = BundledWorldModel(str(tiny_checkpoint))
    m.check_layout(ARROWS)
    with pytest.raises(LayoutError, match="layout 'arrows'"):
        m.check_layout(Layout.preset("wasd"))
    from planner.backends.loading import ModelNotFound
    from worldmodel.checkpoints import MissingModel
    with pytest.raises(ModelNotFound, match="no model at"):
        load_world_model(str(tmp_path / "nothing"))
    with pytest.raises(MissingModel, match="no bundled world model for layout 'desktop'"):
        load_world_model("bundled", "desktop")


def test_model_family_by_spec(tiny_checkpoint):
    assert model_family("bundled") == "bundled" and model_family(str(tiny_checkpoint)) == "bundled"
    assert model_family("Lightricks/LTX-Video-0.9.5") == "ltx"
    assert model_family("Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers") == "wan"
    assert model_family("stabilityai/stable-video-diffusion-img2vid-xt") == "svd"


def test_untrained_control_has_fresh_weights(tiny_checkpoint):
    a = BundledWorldModel(str(tiny_checkpoint))
    b = BundledWorldModel.untrained(str(tiny_checkpoint), seed=0)
    assert a.net.config == b.net.config and a.meta == b.meta
    assert not all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))


def test_frame_steps_change_only_the_imagined_game_area(tiny_checkpoint):
    """The strip's denoiser never sees the noisy game area: with the same seed the overlay rows (where
    the action is read) are identical at any number of game-area steps, while the game area differs."""
    clip, _ = clip_of("coins")
    one = BundledWorldModel(str(tiny_checkpoint), denoise_steps=3, frame_steps=1)
    three = BundledWorldModel(str(tiny_checkpoint), denoise_steps=3, frame_steps=3)
    net, rows = one.net, one.net.config.strip_rows
    ctx = torch.rand(4, net.config.context_frames, 3, *net.config.sample_size) * 2 - 1
    text = torch.randn(4, 384)
    x1 = net.sample(ctx, text, steps=3, frame_steps=1, generator=torch.Generator().manual_seed(3))
    x3 = net.sample(ctx, text, steps=3, frame_steps=3, generator=torch.Generator().manual_seed(3))
    # exact on any CPU: one network, one batch size, and the strip's ops see the same inputs either way
    assert torch.equal(x1[..., rows:, :], x3[..., rows:, :])
    assert not torch.allclose(x1[..., :rows, :], x3[..., :rows, :])
    # through the backend: the same overlay read from every rollout
    a = one(clip, n=4, seed=3, prompt="collect the red coin").frames
    b = three(clip, n=4, seed=3, prompt="collect the red coin").frames
    assert [read_overlay(f[0], ARROWS).action for f in a] == [read_overlay(f[0], ARROWS).action for f in b]
    # frame_steps equal to denoise_steps is the joint sampler: the same code path, so exact on any CPU
    same = BundledWorldModel(str(tiny_checkpoint), denoise_steps=3, frame_steps=None)
    assert np.array_equal(b, same(clip, n=4, seed=3, prompt="collect the red coin").frames)
    with pytest.raises(ValueError, match="frame_steps must be at least 1"):
        BundledWorldModel(str(tiny_checkpoint), frame_steps=0)


def test_rollouts_of_one_decision_share_one_game_area_pass(tiny_checkpoint):
    """``shared``: rows with the same context, prompt and goal get their conditions and their 1-step game
    area computed once (the first row's), while each row keeps its own strip, equal to the unshared one's."""
    net = BundledWorldModel(str(tiny_checkpoint)).net
    rows = net.config.strip_rows
    ctx = (torch.rand(1, net.config.context_frames, 3, *net.config.sample_size) * 2 - 1).expand(5, -1, -1, -1, -1)
    text, goal = torch.randn(1, 384).expand(5, -1), (torch.rand(1, 3, *net.config.sample_size) * 2 - 1).expand(5, -1, -1, -1)
    calls = []
    hook = net.unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    kw = dict(steps=3, frame_steps=1)
    own = net.sample(ctx, text, goal, generator=torch.Generator().manual_seed(3), **kw)
    shared = net.sample(ctx, text, goal, generator=torch.Generator().manual_seed(3), shared=True, **kw)
    hook.remove()
    assert calls == [5, 1]  # one UNet pass over 5 rollouts, then one over 1
    # shared vs unshared are different batch sizes (1 vs 5 rows through the same layers): float32 rounding
    assert torch.allclose(shared[..., rows:, :], own[..., rows:, :], atol=1e-4)
    assert torch.allclose(shared[0, :, :rows], own[0, :, :rows], atol=1e-4)
    assert all(torch.equal(shared[i, :, :rows], shared[0, :, :rows]) for i in range(5))
    assert not torch.allclose(own[1, :, :rows], own[0, :, :rows])  # unshared rows imagine their own
    # through the backend: the same actions read either way, and several frames still work
    clip, _ = clip_of("coins")
    on, off = BundledWorldModel(str(tiny_checkpoint)), BundledWorldModel(str(tiny_checkpoint), share_first_frame=False)
    a = on(clip, n=4, seed=3, rollout_length=0.2, prompt="collect the red coin").frames
    b = off(clip, n=4, seed=3, rollout_length=0.2, prompt="collect the red coin").frames
    assert a.shape == b.shape and a.shape[:2] == (4, 2)
    assert [read_overlay(f[0], ARROWS).action for f in a] == [read_overlay(f[0], ARROWS).action for f in b]


def test_context_and_goal_are_resampled_as_the_training_corpus_was(tiny_checkpoint):
    """The network sees ``framepilot.frames.resize_frames`` of the context and goal (what the corpus
    loader gives it in training), also at a size that is no whole multiple of the model's."""
    from framepilot.frames import resize_frames
    m = BundledWorldModel(str(tiny_checkpoint), denoise_steps=1)
    clip, info = clip_of("reach-goal")
    odd = ContextClip(np.ascontiguousarray(clip.frames[:, :150, :121]), 10.0)  # 150x121: factors 3.75 and 3.03
    goal = np.ascontiguousarray(render_overlay(info["goal_frame"], NOOP, ARROWS)[:150, :121])
    seen = {}
    sample = m.net.sample

    def spy(ctx, text, goal_in, **kw):
        seen["ctx"], seen["goal"] = ctx, goal_in
        return sample(ctx, text, goal_in, **kw)

    m.net.sample = spy
    m(odd, n=2, rollout_length=0.1, goals=(GoalFrame(goal, 0.1),), seed=0)
    want = resize_frames(odd.frames[-m.k:], m.size)
    got = ((seen["ctx"][0] + 1.0) * 127.5).round().movedim(-3, -1).byte().numpy()
    assert got.shape == want.shape and np.array_equal(got, want)
    got_goal = ((seen["goal"][0] + 1.0) * 127.5).round().movedim(-3, -1).byte().numpy()
    assert np.array_equal(got_goal, resize_frames(goal[None], m.size)[0])
