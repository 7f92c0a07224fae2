"""Wan (first-last-frame) and SVD backends end to end on tiny random-weight pipelines loaded from disk."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from planner import ContextClip, GoalFrame, UnsupportedRequest, frames_needed  # noqa: E402
from planner.backends.loading import DiffusersConfig  # noqa: E402
from planner.backends.svd import SVDBackend, SVDSettings  # noqa: E402
from planner.backends.tiny import tiny_svd_pipeline, tiny_wan_pipeline  # noqa: E402
from planner.backends.wan import WanBackend, WanSettings  # noqa: E402

H, W = 30, 44  # padded to 32x48 (Wan, multiple of 16) and 32x48 (tiny SVD, multiple of 16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-wan")
    tiny_wan_pipeline().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def svd_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-svd")
    tiny_svd_pipeline().save_pretrained(path)
    return str(path)


def wan(folder, **kw):
    kw = {"num_inference_steps": 2, "guidance_scale": 1.0, "max_sequence_length": 8, **kw}
    return WanBackend.from_config(DiffusersConfig(folder, local_files_only=True), WanSettings(**kw))


def svd(folder, **kw):
    kw = {"num_inference_steps": 2, **kw}
    return SVDBackend.from_config(DiffusersConfig(folder, local_files_only=True), SVDSettings(**kw))


@pytest.fixture(scope="module")
def wan_backend(wan_folder):
    return wan(wan_folder)


@pytest.fixture(scope="module")
def svd_backend(svd_folder):
    return svd(svd_folder)


def clip(seed=0, t=6, fps=10.0):
    return ContextClip(np.random.default_rng(seed).integers(0, 256, (t, H, W, 3), dtype=np.uint8), fps=fps)


def goal(seed=1, offset=0.5):
    return GoalFrame(np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8), offset=offset)


def with_older_frames_changed(c: ContextClip) -> ContextClip:
    frames = c.frames.copy()
    frames[:-1] = 255 - frames[:-1]
    return ContextClip(frames, c.fps)


# -- Wan ---------------------------------------------------------------------------------------------


def test_wan_capabilities_are_honest(wan_backend):
    cap = wan_backend.capabilities
    assert cap.text and cap.goal_frames and cap.max_goals == 1 and not cap.prefix_video
    assert cap.native_fps == 16.0 and cap.temporal_compression == 4 and cap.size_multiple == 16


def test_wan_shapes_fps_and_seeds(wan_backend):
    a = wan_backend(clip(), n=3, rollout_length=0.3, seed=1)
    b = wan_backend(clip(), n=3, rollout_length=0.3, seed=1)
    c = wan_backend(clip(), n=3, rollout_length=0.3, seed=2)
    assert a.frames.shape == (3, frames_needed(0.3, 16.0), H, W, 3) and a.fps == 16.0
    assert wan_backend.last_plan.num_frames % 4 == 1
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames) and not np.array_equal(a.frames[0], a.frames[1])
    assert {"text", "denoise", "decode", "total"} <= set(a.timings)


def test_wan_prompt_cache(wan_folder):
    b = wan(wan_folder)
    calls = []
    b.pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    b(clip(), n=2, rollout_length=0.1, prompt="press left", seed=0)
    b(clip(1), n=2, rollout_length=0.1, prompt="press left", seed=0)
    assert (b.prompts.misses, b.prompts.hits, len(calls)) == (1, 1, 1)


def test_wan_goal_and_last_frame_matter_but_older_frames_do_not(wan_backend):
    base = wan_backend(clip(), n=2, rollout_length=0.1, goals=[goal(1)], seed=3).frames
    other_goal = wan_backend(clip(), n=2, rollout_length=0.1, goals=[goal(2)], seed=3).frames
    other_last = wan_backend(clip(5), n=2, rollout_length=0.1, goals=[goal(1)], seed=3).frames
    older = wan_backend(with_older_frames_changed(clip()), n=2, rollout_length=0.1, goals=[goal(1)], seed=3).frames
    assert not np.array_equal(base, other_goal) and not np.array_equal(base, other_last)
    np.testing.assert_array_equal(base, older)  # prefix_video=False: only the last frame conditions


def test_wan_goal_reaches_the_transformer_as_the_last_frame(wan_folder):
    b = wan(wan_folder)
    seen = []
    b.pipe.transformer.register_forward_pre_hook(lambda m, a, kw: seen.append(kw), with_kwargs=True)
    b(clip(), n=2, rollout_length=0.1, goals=[goal(1, offset=0.5)], seed=0)
    b(clip(), n=2, rollout_length=0.1, goals=[goal(2, offset=0.5)], seed=0)
    plan = b.last_plan
    assert plan.goal_future_index >= 7 and plan.goal_future_index - 7 < 4  # 0.5 s at 16 fps is future frame 7
    first, second = seen[0], seen[2]  # first step of each call
    x1, x2 = first["hidden_states"], second["hidden_states"]
    lat_frames = (plan.num_frames - 1) // 4 + 1
    assert x1.shape[:3] == (2, 4 + 4 + 4, lat_frames)  # noise | frame mask | condition latents
    mask = x1[:, 4:8]
    assert torch.all(mask[:, :, 0] == 1) and torch.all(mask[:, -1, -1] == 1)  # first and last frame given
    assert torch.all(mask[:, :, 1:-1] == 0)
    cond1, cond2 = x1[:, 8:], x2[:, 8:]
    # only the goal differs, the VAE encoder is causal: the condition changes at the last latent frame only
    torch.testing.assert_close(cond1[:, :, :-1], cond2[:, :, :-1])
    assert not torch.allclose(cond1[:, :, -1], cond2[:, :, -1])
    assert first["encoder_hidden_states_image"].shape[:2] == (2 * 2, 17)  # CLIP of first and last, per rollout


def test_wan_refuses_what_it_cannot_do(wan_backend):
    with pytest.raises(UnsupportedRequest, match="at most 1"):
        wan_backend(clip(), n=1, goals=[goal(offset=0.3), goal(offset=0.6)])
    with pytest.raises(UnsupportedRequest, match="must not outlast the goal"):
        wan_backend(clip(), n=1, rollout_length=1.0, goals=[goal(offset=0.2)])


# -- SVD ---------------------------------------------------------------------------------------------


def test_svd_capabilities_are_honest(svd_backend):
    cap = svd_backend.capabilities
    assert not cap.text and not cap.goal_frames and cap.max_goals == 0 and not cap.prefix_video
    assert cap.native_fps == 7.0 and cap.temporal_compression == 1


def test_svd_shapes_fps_and_seeds(svd_backend):
    a = svd_backend(clip(), n=2, rollout_length=0.5, seed=1)
    b = svd_backend(clip(), n=2, rollout_length=0.5, seed=1)
    c = svd_backend(clip(), n=2, rollout_length=0.5, seed=2)
    assert a.frames.shape == (2, frames_needed(0.5, 7.0), H, W, 3) and a.fps == 7.0
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames) and not np.array_equal(a.frames[0], a.frames[1])


def test_svd_conditions_on_the_last_frame_only(svd_backend):
    base = svd_backend(clip(), n=1, rollout_length=0.2, seed=4).frames
    other = svd_backend(clip(9), n=1, rollout_length=0.2, seed=4).frames
    older = svd_backend(with_older_frames_changed(clip()), n=1, rollout_length=0.2, seed=4).frames
    assert not np.array_equal(base, other)
    np.testing.assert_array_equal(base, older)


def test_svd_refuses_prompt_and_goal(svd_backend):
    with pytest.raises(UnsupportedRequest, match="takes no text prompt"):
        svd_backend(clip(), n=1, prompt="press left")
    with pytest.raises(UnsupportedRequest, match="takes no goal frames"):
        svd_backend(clip(), n=1, goals=[goal()])


def test_single_file_is_refused_for_wan_and_svd(tmp_path):
    for cls in (WanBackend, SVDBackend):
        with pytest.raises(ValueError, match="not a single checkpoint file"):
            cls.from_config(DiffusersConfig(str(tmp_path / "model.safetensors")))
