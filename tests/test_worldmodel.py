"""framepilot's own world model: the network, its training command and its checkpoint format."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from overlays import Layout, read_overlay
from worldmodel.checkpoints import MissingModel, load, read_metadata
from worldmodel.model import FramepilotUNet

torch.set_num_threads(1)
ARROWS = Layout.preset("arrows")


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8, as the bundled backend decodes its samples."""
    return ((x.movedim(1, -1) + 1) * 127.5).round().clamp(0, 255).byte().numpy()


def tiny_net(context_frames=1, **kw):
    torch.manual_seed(0)
    return FramepilotUNet(sample_size=(40, 32), strip_rows=32, block_out_channels=(16, 32, 32),
                          context_frames=context_frames, **kw).eval()


@pytest.mark.parametrize("keypoints", [0, 8])
def test_forward_shapes_and_context_overlay_is_masked(keypoints):
    net = tiny_net(context_frames=2, keypoints=keypoints)
    x = torch.randn(3, 3, 40, 32)
    ctx = torch.rand(3, 2, 3, 40, 32) * 2 - 1
    sigma = torch.full((3,), 0.7)
    with torch.no_grad():
        out = net(x, sigma, ctx)
        assert out.shape == (3, 3, 40, 32)
        # the context's overlay rows never reach the network (anti-copycat) ...
        ctx2 = ctx.clone()
        ctx2[..., 32:, :] = -ctx2[..., 32:, :]
        assert torch.allclose(net(x, sigma, ctx2), out)
        # ... while its game rows do
        ctx3 = ctx.clone()
        ctx3[..., :32, :] = -ctx3[..., :32, :]
        assert not torch.allclose(net(x, sigma, ctx3), out)


@pytest.mark.parametrize("keypoints", [0, 8])
def test_goal_and_text_condition_the_prediction(keypoints):
    net = tiny_net(keypoints=keypoints)
    x = torch.randn(2, 3, 40, 32)
    ctx = torch.rand(2, 1, 3, 40, 32) * 2 - 1
    sigma = torch.full((2,), 1.0)
    goal = torch.rand(2, 3, 40, 32) * 2 - 1
    with torch.no_grad():
        base = net(x, sigma, ctx)
        assert not torch.allclose(net(x, sigma, ctx, goal=goal), base)
        # has_goal = 0 is exactly "no goal"
        assert torch.allclose(net(x, sigma, ctx, goal=goal, has_goal=torch.zeros(2, 1, 1, 1)), base, atol=1e-6)
        assert not torch.allclose(net(x, sigma, ctx, text=torch.randn(2, 384)), base)


def test_keypoints_are_where_the_feature_is():
    """Spatial-softmax keypoints are expected coordinates in [-1, 1]; moving the frame's content moves them."""
    net = tiny_net(keypoints=4)
    frame = -torch.ones(1, 3, 40, 32)
    frame[..., 4:8, 4:8] = 1.0
    moved = -torch.ones(1, 3, 40, 32)
    moved[..., 24:28, 20:24] = 1.0
    with torch.no_grad():
        a, b = net.frame_keypoints(frame), net.frame_keypoints(moved)
    assert a.shape == (1, 8) and a.abs().max() <= 1
    assert not torch.allclose(a, b)


def test_the_strip_denoiser_owns_the_overlay_rows():
    """With ``strip_head`` the overlay rows come from the strip denoiser alone (the UNet's output there
    is unused), and the prompt reaches them through its gate."""
    net = tiny_net(keypoints=8, strip_head=True)
    x = torch.randn(2, 3, 40, 32)
    ctx = torch.rand(2, 1, 3, 40, 32) * 2 - 1
    sigma = torch.full((2,), 2.0)
    text = torch.randn(2, 384)
    with torch.no_grad():
        out = net(x, sigma, ctx, text=text)
        cond = net.conditions(ctx, text, None, None, x)
        assert torch.allclose(out[..., 32:, :], net.denoise_strip(x[..., 32:, :], sigma, cond))
        net.strip_mlp[-1].weight.add_(1.0)  # changing the strip denoiser leaves the game rows alone
        again = net(x, sigma, ctx, text=text)
        assert torch.equal(again[..., :32, :], out[..., :32, :]) and not torch.allclose(again[..., 32:, :], out[..., 32:, :])
        other = net(x, sigma, ctx, text=torch.randn(2, 384))
        assert not torch.allclose(other[..., 32:, :], again[..., 32:, :])
    with pytest.raises(ValueError, match="keypoints"):
        tiny_net(strip_head=True)


def test_sample_is_seeded():
    net = tiny_net()
    ctx = torch.rand(4, 1, 3, 40, 32) * 2 - 1
    a = net.sample(ctx, steps=2, generator=torch.Generator().manual_seed(1))
    b = net.sample(ctx, steps=2, generator=torch.Generator().manual_seed(1))
    c = net.sample(ctx, steps=2, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, 3, 40, 32) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_training_writes_a_loadable_checkpoint_with_metadata(tiny_checkpoint):
    net, meta = load(tiny_checkpoint)
    assert isinstance(net, FramepilotUNet)
    assert meta["layout"]["name"] == "arrows" and meta["fps"] == 10.0 and meta["size"] == [40, 32]
    assert meta["source_shape"] == [160, 128] and meta["steps"] == 2
    assert net.config.strip_rows == 32  # 128 game rows of 160, at 40 rows
    assert (tiny_checkpoint / "diffusion_pytorch_model.safetensors").exists()
    assert "python -m training.train" in meta["training_command"]


def test_training_resumes_exactly_where_it_stopped(tiny_corpus, tmp_path):
    from safetensors.torch import load_file

    from training.train import TrainConfig, train
    common = dict(corpus=str(tiny_corpus), games=("reach",), batch=4, block_out_channels=(16, 32, 32),
                  save_every=2, threads=1, seed=3)
    train(TrainConfig(out=str(tmp_path / "straight"), steps=4, **common), progress=False)
    train(TrainConfig(out=str(tmp_path / "resumed"), steps=2, **common), progress=False)
    train(TrainConfig(out=str(tmp_path / "resumed"), steps=4, **common), progress=False)
    a = load_file(str(tmp_path / "straight" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "diffusion_pytorch_model.safetensors"))
    # exact: one computation repeated (same process, same batches, one thread), split at a save
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "resumed" / "training_state.json").read_text())["step"] == 4


def test_training_never_reads_the_recorded_actions(tiny_corpus, tmp_path):
    """Delete every steps.jsonl (the actions): training still runs, so it cannot have used them."""
    from training.train import TrainConfig, train
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus / "reach", corpus / "reach")
    for f in corpus.rglob("steps.jsonl"):
        f.unlink()
    summary = train(TrainConfig(corpus=str(corpus), out=str(tmp_path / "m"), steps=1, batch=2,
                                block_out_channels=(16, 32, 32), threads=1), progress=False)
    assert summary["step"] == 1


def test_game_weights_steer_the_batches(tiny_corpus):
    from training.train import Batcher, _parse_weights, build_data, main
    data = build_data(str(tiny_corpus), (40, 32), None, progress=False)

    def coin_share(weights, seed=0):
        b = Batcher(data, 1, 0.0, "cpu", weights)
        rng = np.random.default_rng(seed)
        prompts = np.concatenate([b(64, rng)["text"].abs().sum(1).numpy() for _ in range(4)])
        return float((prompts > 0).mean())  # only coins episodes have a prompt here

    assert coin_share({"coins": 0.0}) == 0.0
    assert coin_share({"coins": 1e6}) == 1.0
    assert 0.15 < coin_share(None) < 0.55  # uniform over the three games
    assert _parse_weights("coins=3,reach=0.5") == {"coins": 3.0, "reach": 0.5}
    with pytest.raises(ValueError, match="do not fit the corpus's games"):
        Batcher(data, 1, 0.0, "cpu", {"pong": 1.0})
    with pytest.raises(ValueError, match="do not fit"):
        Batcher(data, 1, 0.0, "cpu", {"coins": -1.0})
    with pytest.raises(SystemExit):
        main(["--game-weights", "coins:3"])


def test_fine_tuning_refuses_another_layout(tiny_checkpoint, tmp_path):
    from training.corpus import record_scripted
    from training.train import TrainConfig, train
    record_scripted("buttons", 2, tmp_path / "buttons", progress=False)
    with pytest.raises(ValueError, match="layout"):
        train(TrainConfig(corpus=str(tmp_path / "buttons"), out=str(tmp_path / "ft"), steps=1, batch=2,
                          init_from=str(tiny_checkpoint), threads=1), progress=False)


def test_fine_tuning_starts_from_the_given_weights(tiny_checkpoint, tiny_corpus, tmp_path):
    from training.train import TrainConfig, train
    out = tmp_path / "ft"
    train(TrainConfig(corpus=str(tiny_corpus), games=("reach",), out=str(out), steps=1, batch=2, lr=0.0,
                      init_from=str(tiny_checkpoint), threads=1), progress=False)
    a, _ = load(tiny_checkpoint)
    b, _ = load(out)
    # lr 0: the fine-tuned weights are the starting ones
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_checkpoint_errors_are_one_sentence(tiny_checkpoint, tmp_path):
    with pytest.raises(MissingModel, match="not a framepilot world model"):
        read_metadata(tmp_path)
    bad = tmp_path / "old"
    shutil.copytree(tiny_checkpoint, bad)
    meta = json.loads((bad / "framepilot.json").read_text())
    meta["overlay_version"] = 999
    (bad / "framepilot.json").write_text(json.dumps(meta))
    with pytest.raises(MissingModel, match="overlay version 999"):
        load(bad)


def test_the_shipped_checkpoints_load_and_are_small():
    from worldmodel.checkpoints import BUNDLED_DIR, bundled_path
    path = bundled_path("arrows")
    net, meta = load(path)
    assert meta["layout"]["name"] == "arrows" and set(meta["games"]) == {"reach", "reach-goal", "coins"}
    size = sum(f.stat().st_size for f in path.iterdir() if f.name in ("diffusion_pytorch_model.safetensors",))
    assert size < 30e6
    assert str(path).startswith(str(BUNDLED_DIR))


def test_the_shipped_keypoints_track_the_objects_it_steers_by():
    """``probe --keypoints`` on the shipped model: some keypoint follows the marker and the target
    (correlation with their positions over held-out frames), which is what reach is played by."""
    from training.probe import keypoint_report
    r = keypoint_report("arrows", "reach", frames=60)["best_keypoint_correlation"]
    assert r["marker"] > 0.9 and r["target"] > 0.9, r


def test_text_keypoints_follow_the_prompt_and_grow_from_zero():
    """Prompt-conditioned keypoints move with the prompt; a checkpoint grown to have them predicts
    what it did before (their weights in the strip denoiser start at zero).

    The grown strip input has extra zero-weight columns, so base and grown are different networks:
    their float32 matmuls may accumulate in another order on another CPU's kernels (exact on an
    Intel Xeon, off in the last bits on an AMD EPYC). Their samples must agree to float32 rounding
    carried through two Euler steps (atol 1e-5 in [-1, 1]), and give the same actions."""
    from training.train import grown
    torch.manual_seed(0)
    base = FramepilotUNet(sample_size=(40, 32), strip_rows=32, context_frames=1, block_out_channels=(16, 32, 32),
                          keypoints=8, strip_head=True).eval()
    net = grown(base, text_keypoints=2).eval()
    frame = torch.rand(2, 3, 40, 32) * 2 - 1
    text = torch.randn(2, 384)
    xy, txy = net.frame_keypoints(frame, text)
    assert xy.shape == (2, 16) and txy.shape == (2, 4)
    assert torch.equal(xy, base.frame_keypoints(frame))
    _, other = net.frame_keypoints(frame, -text)
    assert not torch.allclose(txy, other)
    ctx = frame[:, None]
    a = base.sample(ctx, text, steps=2, generator=torch.Generator().manual_seed(1))
    b = net.sample(ctx, text, steps=2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, rtol=0, atol=1e-5), (a - b).abs().max()
    assert [read_overlay(f, ARROWS).action for f in to_pixels(a)] == [read_overlay(f, ARROWS).action for f in to_pixels(b)]
    with torch.no_grad():
        net.strip_in.weight[:, -4:] = 1.0  # once they carry weight, they matter
    assert not torch.allclose(a, net.sample(ctx, text, steps=2, generator=torch.Generator().manual_seed(1)),
                              rtol=0, atol=1e-2)
    with pytest.raises(ValueError, match="text_keypoints needs strip_head"):
        FramepilotUNet(sample_size=(40, 32), strip_rows=32, keypoints=8, strip_head=False, text_keypoints=2)


def test_transfer_to_another_size_keeps_what_does_not_depend_on_it():
    """``--transfer-from``: a model of another frame size starts with the old one's keypoint net, UNet
    and prompt paths (none depends on the frame size); of the strip denoiser
    only the columns reading keypoints, noise level and text keypoints carry over."""
    from training.train import transferred
    torch.manual_seed(0)
    old = FramepilotUNet(sample_size=(40, 32), strip_rows=32, context_frames=1, block_out_channels=(16, 32, 32),
                         keypoints=8, strip_head=True, text_keypoints=2).eval()
    torch.manual_seed(1)
    fresh = FramepilotUNet(sample_size=(60, 48), strip_rows=48, context_frames=1, block_out_channels=(16, 32, 32),
                           keypoints=8, strip_head=True, text_keypoints=2).eval()
    new = transferred(old, FramepilotUNet.from_config(fresh.config)).eval()
    frame = torch.rand(2, 3, 60, 48) * 2 - 1
    text = torch.randn(2, 384)
    for a, b in zip(new.frame_keypoints(frame, text), old.frame_keypoints(frame[..., :32, :32], text)):
        assert a.shape == b.shape
    assert all(torch.equal(p, q) for p, q in zip(new.keypoint_net.parameters(), old.keypoint_net.parameters()))
    assert torch.equal(new.text_query.weight, old.text_query.weight)
    assert not torch.allclose(fresh.frame_keypoints(frame), new.frame_keypoints(frame))
    n = 4 * 8 + 2 + 2 * 2
    assert torch.equal(new.strip_in.weight[:, -n:], old.strip_in.weight[:, -n:])
    assert torch.equal(new.unet.conv_in.weight, old.unet.conv_in.weight)
    assert new.strip_in.weight.shape != old.strip_in.weight.shape


def test_strip_x0_predicts_the_strip_without_the_skip():
    """With ``strip_x0`` the strip denoiser's output is the MLP's clean-strip estimate: at a tiny noise
    level EDM's skip would hand the noisy input straight back, x0-prediction does not."""
    torch.manual_seed(0)
    kw = dict(sample_size=(40, 32), strip_rows=32, context_frames=1, block_out_channels=(16, 32, 32),
              keypoints=8, strip_head=True, text_keypoints=2)
    edm, x0 = FramepilotUNet(**kw).eval(), FramepilotUNet(**kw, strip_x0=True).eval()
    x0.load_state_dict(edm.state_dict())
    ctx = torch.rand(2, 1, 3, 40, 32) * 2 - 1
    noisy = torch.randn(2, 3, 8, 32)
    sigma = torch.full((2,), 0.002)
    with torch.no_grad():
        cond = edm.conditions(ctx, None, None, None, ctx[:, 0])
        a, b = edm.denoise_strip(noisy, sigma, cond), x0.denoise_strip(noisy, sigma, cond)
    assert torch.allclose(a, noisy, atol=0.01)
    assert not torch.allclose(b, noisy, atol=0.1)
