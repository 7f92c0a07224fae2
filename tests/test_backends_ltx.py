"""LTX backend end to end on a tiny random-weight pipeline saved to disk and loaded like real weights."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from planner import (  # noqa: E402
    ContextClip,
    GoalFrame,
    UnsupportedRequest,
    fit_frames,
    frames_needed,
)
from planner.backends.loading import LTX_DISTILLED_TIMESTEPS, DiffusersConfig  # noqa: E402
from planner.backends.ltx import LTXBackend, LTXSettings, plan_frames  # noqa: E402
from planner.backends.tiny import tiny_ltx_pipeline  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"
H, W = 50, 70  # not multiples of 32: the backend pads to 64x96 and maps back


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-ltx")
    tiny_ltx_pipeline().save_pretrained(path)
    return str(path)


def load(folder, **settings):
    settings.setdefault("num_inference_steps", 3)
    settings.setdefault("guidance_scale", 1.0)
    return LTXBackend.from_config(DiffusersConfig(folder, local_files_only=True), LTXSettings(**settings))


@pytest.fixture(scope="module")
def backend(folder):
    return load(folder)


def clip(seed=0, t=12, fps=10.0):
    rng = np.random.default_rng(seed)
    return ContextClip(rng.integers(0, 256, (t, H, W, 3), dtype=np.uint8), fps=fps)


def goal(seed=1, offset=0.5):
    return GoalFrame(np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8), offset=offset)


def test_shapes_fps_and_frame_rules(backend):
    out = backend(clip(), n=3, rollout_length=0.2, seed=0)
    assert out.frames.shape == (3, frames_needed(0.2, 25.0), H, W, 3) and out.frames.dtype == np.uint8
    assert out.fps == 25.0
    plan = backend.last_plan
    assert plan.context_frames % 8 == 1 and plan.num_frames % 8 == 1
    assert plan.context_frames == 25  # 12 frames at 10 fps = 1.2 s -> 1 s at 25 fps = 25 = 8*3 + 1
    assert plan.decode_latents == (3, 5)  # one left neighbour + the one future latent frame
    assert {"text", "encode", "denoise", "decode", "total"} <= set(out.timings)


def test_fps_is_configurable(folder):
    b = load(folder, fps=12.0)
    out = b(clip(), n=1, rollout_length=1.0, seed=0)
    assert out.fps == 12.0 and out.frames.shape[1] == frames_needed(1.0, 12.0) == 12
    assert b.last_plan.context_frames == 9  # 12 frames at 12 fps -> newest 8k+1 = 9


def test_plan_frames_rules():
    plan = plan_frames(25, 0.1, [0.96], fps=25.0)
    assert plan.future_frames == 3 and plan.goal_frames == (25 + 23,)
    assert plan.num_frames == 25 + 24 and plan.num_frames % 8 == 1  # extended to reach the goal
    assert plan.decode_latents == (3, 5)  # but only the rollout's latent frame is decoded
    assert plan_frames(30, 0.1, [], 25.0).context_frames == 25
    assert plan_frames(1, 0.5, [], 25.0).decode_latents == (0, 3)


def test_rollouts_differ_and_repeat_with_seed(backend):
    a = backend(clip(), n=3, rollout_length=0.2, seed=7).frames
    b = backend(clip(), n=3, rollout_length=0.2, seed=7).frames
    c = backend(clip(), n=3, rollout_length=0.2, seed=8).frames
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])


def test_prompt_is_encoded_once_and_cached(folder):
    b = load(folder)
    calls = []
    b.pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    b(clip(), n=2, rollout_length=0.1, prompt="press left", seed=0)
    assert (b.prompts.misses, b.prompts.hits, len(calls)) == (1, 0, 1)
    b(clip(1), n=4, rollout_length=0.1, prompt="press left", seed=1)
    assert (b.prompts.misses, b.prompts.hits, len(calls)) == (1, 1, 1)
    b(clip(1), n=4, rollout_length=0.1, prompt="press right", seed=1)
    assert (b.prompts.misses, len(calls)) == (2, 2)


def test_prompt_changes_output(backend):
    a = backend(clip(), n=1, rollout_length=0.1, prompt="press left", seed=3).frames
    b = backend(clip(), n=1, rollout_length=0.1, prompt="jump fire", seed=3).frames
    assert not np.array_equal(a, b)


def test_goal_and_context_change_output(backend):
    base = backend(clip(0), n=2, rollout_length=0.2, goals=[goal(1)], seed=5).frames
    other_goal = backend(clip(0), n=2, rollout_length=0.2, goals=[goal(2)], seed=5).frames
    other_context = backend(clip(3), n=2, rollout_length=0.2, goals=[goal(1)], seed=5).frames
    again = backend(clip(0), n=2, rollout_length=0.2, goals=[goal(1)], seed=5).frames
    np.testing.assert_array_equal(base, again)
    assert not np.array_equal(base, other_goal)
    assert not np.array_equal(base, other_context)


def test_goal_latents_reach_the_transformer_at_the_goals_frame(folder):
    b = load(folder, image_cond_noise_scale=0.0)
    seen = []
    b.pipe.transformer.register_forward_pre_hook(lambda m, a, kw: seen.append({k: v.clone() for k, v in kw.items()
                                                                                if torch.is_tensor(v)}),
                                                 with_kwargs=True)
    g = goal(4, offset=0.5)
    n = 2
    b(clip(), n=n, rollout_length=0.1, goals=[g], seed=0)
    plan = b.last_plan
    assert plan.goal_frames == (25 + 12,)  # 0.5 s at 25 fps is future frame 12
    first = seen[0]
    lat_h, lat_w = 64 // 32, 96 // 32
    per_frame = lat_h * lat_w
    lat_frames = (plan.num_frames - 1) // 8 + 1
    hidden, coords, timestep = first["hidden_states"], first["video_coords"], first["timestep"]
    assert hidden.shape[:2] == (n, per_frame + lat_frames * per_frame)  # goal tokens first, then the video
    # the goal's tokens: its VAE latents, exactly (strength 1, no re-noising), at its frame, never noised
    fitted, _ = fit_frames(g.image, None, 32, "pad")
    expected = b.pipe._pack_latents(b._encode_frames(fitted[None]), 1, 1)[0]
    for step in seen:  # kept exactly through every step
        for i in range(n):
            torch.testing.assert_close(step["hidden_states"][i, :per_frame].float(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(coords[:, 0, :per_frame], torch.full((n, per_frame), plan.goal_frames[0] / 25.0))
    assert torch.all(coords[:, 0, per_frame:] < plan.num_frames / 25.0)
    assert torch.all(timestep[:, :per_frame] == 0)
    # the context's latent frames are conditioned too (timestep 0), the future ones are noisy
    n_ctx_tokens = ((plan.context_frames - 1) // 8 + 1) * per_frame
    assert torch.all(timestep[:, per_frame:per_frame + n_ctx_tokens] == 0)
    assert torch.all(timestep[:, per_frame + n_ctx_tokens:] > 0)
    assert len(seen) == 3 and all(s["hidden_states"].shape[0] == n for s in seen)  # one batch per step


def test_only_needed_latents_are_decoded(folder):
    b = load(folder)
    shapes = []
    b.pipe.vae.decoder.register_forward_pre_hook(lambda m, a: shapes.append(a[0].shape))
    b(clip(), n=2, rollout_length=0.1, goals=[goal(offset=1.0)], seed=0)
    assert b.last_plan.num_frames == 25 + 32  # generated up to the goal...
    assert shapes[0][0] == 2 and shapes[0][2] == 2  # ...but only 2 latent frames decoded, for the batch of 2


def test_resize_mode_and_size(folder):
    b = load(folder, size=(64, 64), resize="resize")
    out = b(clip(), n=1, rollout_length=0.1, seed=0)
    assert out.frames.shape == (1, 3, H, W, 3)


def test_guidance_uses_negative_prompt(folder):
    b = load(folder, guidance_scale=2.0)
    calls, batches = [], []
    b.pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    b.pipe.transformer.register_forward_pre_hook(lambda m, a, kw: batches.append(kw["hidden_states"].shape[0]),
                                                 with_kwargs=True)
    out = b(clip(), n=2, rollout_length=0.1, prompt="press up", seed=0)
    assert out.frames.shape[0] == 2 and b.prompts.misses == 1 and len(calls) == 2  # prompt + negative, once
    assert batches == [4, 4, 4]  # uncond + cond for 2 rollouts, in one batch


def test_too_many_goals_is_refused(folder):
    b = load(folder, max_goals=1)
    with pytest.raises(UnsupportedRequest, match="at most 1"):
        b(clip(), n=1, goals=[goal(offset=0.2), goal(offset=0.4)])


def test_cached_prompt_without_text_encoder():
    pipe = tiny_ltx_pipeline()
    pipe.text_encoder, pipe.tokenizer = None, None
    b = LTXBackend(pipe, LTXSettings(num_inference_steps=2, guidance_scale=1.0))
    with pytest.raises(ValueError, match="cache_prompt"):
        b(clip(), n=1, rollout_length=0.1)
    b.cache_prompt("", torch.randn(1, 8, 16), torch.ones(1, 8))
    assert b(clip(), n=2, rollout_length=0.1, seed=0).frames.shape == (2, 3, H, W, 3)


def test_settings_validation_and_schedules():
    with pytest.raises(ValueError, match="multiples of 32"):
        LTXSettings(size=(50, 64))
    with pytest.raises(ValueError, match="num_inference_steps <= 8"):
        LTXSettings(distilled=True, num_inference_steps=9)
    assert LTXSettings(distilled=True).guidance_scale == 1.0
    assert LTXSettings(distilled=True, num_inference_steps=8).schedule() == list(LTX_DISTILLED_TIMESTEPS)
    four = LTXSettings(distilled=True, num_inference_steps=4).schedule()
    assert len(four) == 4 and four[0] == 1000.0 and four[-1] == 0.03 and set(four) <= set(LTX_DISTILLED_TIMESTEPS)
    assert len(LTXSettings(num_inference_steps=5).schedule()) == 5


@pytest.mark.parametrize("name", ["ltx-2b", "ltx-13b"])
def test_full_size_configs_match_published_parameter_counts(name):
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel

    spec = json.loads((CONFIGS / f"{name}.json").read_text())
    with torch.device("meta"):
        transformer = LTXVideoTransformer3DModel.from_config(spec["transformer"])
        vae = AutoencoderKLLTXVideo.from_config(spec["vae"])
    count = sum(p.numel() for p in transformer.parameters())
    assert next(transformer.parameters()).device.type == "meta"
    assert abs(count - spec["published_transformer_params"]) / spec["published_transformer_params"] < 0.02
    assert vae.spatial_compression_ratio == 32 and vae.temporal_compression_ratio == 8
