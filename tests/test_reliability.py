"""Reliability (issue 18): the refusal list, layouts with non-finite numbers, atomic state and damaged
files named in one sentence, corpora with damaged episodes, and config values checked at the edge."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from controllers.safety import DANGEROUS_COMBOS, MEDIA_KEYS, SafetyConfig, screen_action
from framepilot.errors import LayoutError
from overlays import Action, Layout


# ---- refusals ---------------------------------------------------------------------------------------
def _key_layout(names):
    return Layout.from_dict({"name": "t", "cells": [
        {"kind": "key", "name": n, "box": [i / len(names), 0, 1 / len(names), 1]} for i, n in enumerate(names)]})


@pytest.mark.parametrize("combo", [
    ("ctrl_l", "esc"), ("ctrl_r", "shift", "esc"), ("ctrl_l", "c"), ("ctrl_l", "d"), ("ctrl_l", "z"),
    ("ctrl_l", "\\"), ("ctrl_l", "shift", "q"), ("ctrl_l", "shift_r", "w"), ("menu",), ("caps_lock",),
    ("num_lock",), ("scroll_lock",), ("print_screen",), ("pause",), *((k,) for k in MEDIA_KEYS),
])
def test_dangerous_combinations_are_refused(combo):
    layout = _key_layout(combo)
    cfg = SafetyConfig(status=lambda m: None)
    allowed, why = screen_action(Action(keys=set(combo)), layout, cfg)
    assert allowed.keys < set(combo), why  # at least one key of it was dropped
    assert why and all("can hurt the session" in w for w in why)
    # a modifier is kept, the key that completes the combination is dropped
    assert not {k for k in combo if k not in ("ctrl_l", "ctrl_r", "shift", "shift_r")} <= allowed.keys
    ok = SafetyConfig(allow_dangerous=True, status=lambda m: None)
    assert screen_action(Action(keys=set(combo)), layout, ok)[0].keys == set(combo)


def test_ordinary_keys_stay_allowed():
    layout = _key_layout(["ctrl_l", "shift", "a", "c", "esc", "space"])
    cfg = SafetyConfig(status=lambda m: None)
    for keys in ({"c"}, {"esc"}, {"shift", "c"}, {"ctrl_l", "a"}, {"ctrl_l", "space"}, {"shift", "esc"}):
        assert screen_action(Action(keys=keys), layout, cfg) == (Action(keys=keys), [])


def test_refusal_list_is_documented():
    """Every combination in DANGEROUS_COMBOS is named in the README's safety table."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| refused combinations"))
    for name in ("ctrl+esc", "ctrl+shift+esc", "ctrl+c", "ctrl+d", "ctrl+z", "ctrl+\\", "ctrl+shift+q",
                 "ctrl+shift+w", "menu", "caps_lock", "num_lock", "scroll_lock", "print_screen", "pause", "media"):
        assert name in row, name
    assert len(DANGEROUS_COMBOS) == len(set(DANGEROUS_COMBOS))


# ---- layouts with non-finite numbers --------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["box", "strip_ratio", "max_speed"])
def test_layout_refuses_non_finite_numbers(tmp_path, where, bad):
    d = Layout.preset("arrows").to_dict()
    if where == "box":
        d["cells"][0]["box"][2] = bad
    else:
        d[where] = bad
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))  # NaN / Infinity: what json writes and reads back
    with pytest.raises(LayoutError, match="finite") as e:
        Layout.from_file(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_layout_number_that_is_text_names_the_file(tmp_path):
    d = Layout.preset("arrows").to_dict()
    d["cells"][0]["box"][0] = "a"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(LayoutError, match="bad.json") as e:
        Layout.from_file(path)
    assert "could not convert" in str(e.value) and "number" in str(e.value)


def test_layout_mismatch_says_what_differs():
    arrows = Layout.preset("arrows")
    d = arrows.to_dict()
    d["cells"][0]["box"] = [0.0, 0.0, 0.1, 0.5]
    moved = Layout.from_dict(d)
    with pytest.raises(LayoutError) as e:
        moved.check_compatible(arrows)
    msg = str(e.value)
    assert "cells differ" in msg and "'left'" in msg
    assert "not 'arrows' (version 1)" not in msg


# ---- atomic writes --------------------------------------------------------------------------------
def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    from framepilot.atomic import atomic_path, atomic_write, replace_into
    target = tmp_path / "state.json"
    atomic_write(target, '{"step": 1}')
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"st')  # a writer that dies half-way
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"step": 1}  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]

    def two_files(folder):
        (Path(folder) / "a.txt").write_text("a")
        (Path(folder) / "b.txt").write_text("b")

    assert [p.name for p in replace_into(tmp_path, two_files)] == ["a.txt", "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "state.json"]


# ---- training state, checkpoints -------------------------------------------------------------------
def _train(corpus, out, steps, **kw):
    from training.train import TrainConfig, train
    kw = {"batch": 2, "strip_batch": 4, "block_out_channels": (16, 32, 32), "save_every": 1, "threads": 1,
          "games": ("reach",)} | kw
    return train(TrainConfig(corpus=str(corpus), out=str(out), steps=steps, **kw), progress=False)


def test_training_state_is_one_consistent_file_pair(tiny_corpus, tmp_path):
    """The step lives inside the safetensors too: an empty training_state.json (a kill between the two
    renames of an older framepilot) no longer stops the resume; a damaged safetensors is named."""
    from framepilot.errors import ConfigError
    out = tmp_path / "run"
    _train(tiny_corpus, out, 1)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    (out / "training_state.json").write_text("")
    assert _train(tiny_corpus, out, 2)["step"] == 2
    assert json.loads((out / "training_state.json").read_text())["step"] == 2
    state = out / "training_state.safetensors"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(ConfigError, match=r"training_state.safetensors in .*run is damaged.*delete") as e:
        _train(tiny_corpus, out, 3)
    assert "\n" not in str(e.value)
    state.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"is damaged \(empty\)"):
        _train(tiny_corpus, out, 3)


def test_an_old_state_with_a_damaged_json_is_named(tiny_corpus, tmp_path):
    """A state written before the step moved into the safetensors: its JSON is what holds the step."""
    from safetensors.torch import load_file, save_file

    from framepilot.errors import ConfigError
    out = tmp_path / "run"
    _train(tiny_corpus, out, 1)
    state = out / "training_state.safetensors"
    save_file(load_file(str(state)), str(state))  # no metadata: the old format
    for text, why in (("", "empty"), ("{nope", "Expecting"), ('{"numpy_rng": {}}', "no step")):
        (out / "training_state.json").write_text(text)
        with pytest.raises(ConfigError, match=f"training_state.json in .*run is damaged \\({why}"):
            _train(tiny_corpus, out, 2)


def test_a_non_finite_loss_stops_training_and_saves_nothing(tiny_corpus, tmp_path, monkeypatch):
    import torch

    import training.train as tt
    from framepilot.errors import ConfigError
    monkeypatch.setattr(tt, "edm_loss", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="loss became nan at step 1; stopped without saving"):
        _train(tiny_corpus, out, 3)
    assert not (out / "config.json").exists() and not (out / "training_state.safetensors").exists()


@pytest.mark.parametrize("field,value", [
    ("steps", 0), ("steps", -5), ("batch", 0), ("lr", float("nan")), ("lr", -1e-3), ("lr", float("inf")),
    ("seed", -1), ("save_every", 0), ("warmup", 0), ("ema", 1.0), ("text_dropout", 1.5), ("strip_weight", 0.0),
    ("size", (41, 32)), ("size", (0, 32)), ("threads", -1), ("steps", 2.5), ("batch", True), ("device", "tpu"),
    ("game_weights", {"coins": float("nan")}), ("context_frames", 0), ("out", ""),
])
def test_train_config_is_validated(field, value):
    from framepilot.errors import ConfigError
    from training.train import TrainConfig
    with pytest.raises(ConfigError, match=field.replace("_", "[-_]")) as e:
        TrainConfig(**{field: value})
    assert "\n" not in str(e.value)


def _copy_checkpoint(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_checkpoint_with_non_finite_weights_is_refused(tiny_checkpoint, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from framepilot.errors import MissingModel
    from worldmodel.checkpoints import load
    bad = _copy_checkpoint(tiny_checkpoint, tmp_path / "nan")
    w = bad / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(w))
    name = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() >= 178)
    sd[name].view(-1)[:178] = torch.nan
    save_file(sd, str(w))
    with pytest.raises(MissingModel, match=r"diffusion_pytorch_model.safetensors holds 178 non-finite weights"):
        load(bad)


def test_checkpoint_metadata_is_checked_against_the_weights(tiny_checkpoint, tmp_path):
    from framepilot.errors import MissingModel
    from worldmodel.checkpoints import load
    bad = _copy_checkpoint(tiny_checkpoint, tmp_path / "size")
    meta = json.loads((bad / "framepilot.json").read_text())
    (bad / "framepilot.json").write_text(json.dumps(dict(meta, size=[80, 64])))
    with pytest.raises(MissingModel, match=r"says size \[80, 64\] but the weights .* work at \[40, 32\]"):
        load(bad)
    (bad / "framepilot.json").write_text(json.dumps(dict(meta, source_shape=[160, 64])))
    with pytest.raises(MissingModel, match="overlay strip at row"):
        load(bad)
    (bad / "framepilot.json").write_text("")
    with pytest.raises(MissingModel, match=r"framepilot.json is damaged \(empty\)"):
        load(bad)
    w = bad / "diffusion_pytorch_model.safetensors"
    (bad / "framepilot.json").write_text(json.dumps(meta))
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(MissingModel, match="could not load the world model"):
        load(bad)


# ---- corpora ---------------------------------------------------------------------------------------
def test_damaged_episodes_are_skipped_by_name(tiny_corpus, tmp_path, capsys):
    import shutil

    from framepilot.errors import CorpusError
    from training.corpus import load_corpus
    corpus = tmp_path / "c"
    shutil.copytree(tiny_corpus / "reach", corpus)
    eps = sorted(p for p in corpus.iterdir() if p.is_dir())
    assert len(eps) == 6
    (eps[0] / "meta.json").write_text("")                                        # empty meta
    meta = json.loads((eps[1] / "meta.json").read_text())
    (eps[1] / "meta.json").write_text(json.dumps(dict(meta, n_frames=0)))        # a crashed recording
    (eps[1] / "frames.mkv").write_bytes(b"")
    video = eps[2] / "frames.mkv"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])           # truncated to half
    (eps[3] / "frames.mkv").unlink()                                             # no video at all
    frames, metas = load_corpus(corpus)
    assert [m["path"] for m in metas] == [str(eps[4]), str(eps[5])] and len(frames) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("warning: skipped")]
    assert len(lines) == 4
    for ep, why in zip(eps[:4], ("is damaged (empty)", "0 frames", "frames but meta.json says", "no frames.mkv")):
        assert any(str(ep) in x and why in x for x in lines), (ep, why, lines)
    for ep in eps[4:]:
        shutil.rmtree(ep)
    with pytest.raises(CorpusError, match=r"no intact finished episodes .*\(4 damaged ones skipped\)"):
        load_corpus(corpus)


def test_train_skips_a_crashed_episode(tiny_corpus, tmp_path, capsys):
    import shutil

    from training.corpus import EpisodeWriter
    corpus = tmp_path / "c"
    shutil.copytree(tiny_corpus / "reach", corpus / "reach")
    with pytest.raises(KeyboardInterrupt), EpisodeWriter(corpus / "crashed", {"fps": 10, "layout": {}}):
        raise KeyboardInterrupt  # closed by an exception before its first frame: 0 frames
    assert json.loads((corpus / "crashed" / "meta.json").read_text())["n_frames"] == 0
    assert _train(corpus, tmp_path / "run", 1, games=None)["episodes"] == 6
    assert "crashed" in capsys.readouterr().err


def test_recording_again_into_a_folder_deletes_nothing(tmp_path):
    import numpy as np

    from overlays import NOOP
    from training.corpus import EpisodeExists, EpisodeWriter, read_frames
    ep = tmp_path / "ep_0"
    w = EpisodeWriter(ep, {"fps": 10})
    for i in range(3):
        w.add(np.full((16, 16, 3), i * 40, np.uint8), NOOP, i / 10)
    # the process dies here: no close, no meta.json (an unfinished episode)
    before = {p.name: p.stat().st_size for p in ep.iterdir()}
    with pytest.raises(EpisodeExists, match="unfinished episode.*--overwrite") as e:
        EpisodeWriter(ep, {"fps": 10})
    assert isinstance(e.value, FileExistsError) and "\n" not in str(e.value)
    assert {p.name: p.stat().st_size for p in ep.iterdir()} == before
    w._container.close()  # (only to read the file back in this same process)
    assert len(read_frames(ep)) == 3
    with EpisodeWriter(ep, {"fps": 10}, overwrite=True) as w2:
        w2.add(np.zeros((16, 16, 3), np.uint8), NOOP, 0.0)
    assert json.loads((ep / "meta.json").read_text())["n_frames"] == 1


def test_screen_recording_refuses_an_existing_episode_before_capturing(tmp_path, monkeypatch):
    import run_agent
    from training.corpus import EpisodeWriter
    ep = tmp_path / "ep_0"
    EpisodeWriter(ep, {"fps": 10}).close()
    monkeypatch.setenv("DISPLAY", "")  # refused before the display is even looked at
    assert run_agent.main(["record", "--screen", "--out", str(ep)]) == 2


def test_a_killed_recording_keeps_its_frames(tmp_path):
    """kill -9 while frames are being added: every frame added before the last is in the file."""
    import signal
    import subprocess
    import sys
    import textwrap

    from framepilot.errors import CorpusError
    from training.corpus import EpisodeWriter, read_frames
    ep = tmp_path / "ep"
    code = textwrap.dedent(f"""
        import time, numpy as np
        from overlays import NOOP
        from training.corpus import EpisodeWriter
        w = EpisodeWriter({str(ep)!r}, {{"fps": 10}})
        for i in range(40):
            w.add(np.full((32, 32, 3), i % 256, np.uint8), NOOP, i / 10)
            print(i + 1, flush=True)
        time.sleep(60)  # recording on: killed here
    """)
    root = Path(__file__).resolve().parents[1]
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=root,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)})
    n = 0
    for line in p.stdout:
        n = int(line)
        if n >= 40:
            break
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    frames = read_frames(ep)
    assert n == 40 and 39 <= len(frames) <= 40, len(frames)  # before: 0 (the muxer buffered whole clusters)
    assert all((f == i % 256).all() for i, f in enumerate(frames))
    # the unfinished episode is kept: recording again is refused, and finishing it makes it a whole episode
    from training.corpus import EpisodeExists, finish_episode, main, read_episode
    with pytest.raises(EpisodeExists, match="training.corpus finish"):
        EpisodeWriter(ep, {"fps": 10})
    assert main(["finish", str(ep)]) == 0
    done = read_episode(ep)
    assert done.meta["interrupted"] is True and done.meta["n_frames"] == len(done.frames) >= 39
    assert (done.frames == frames[: len(done.frames)]).all() and not (ep / "meta.partial.json").exists()
    with pytest.raises(CorpusError, match="finished episode already"):
        finish_episode(ep)


# ---- planner and safety settings -------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("decision_horizon", math.inf), ("decision_horizon", math.nan), ("rollout_length", math.inf),
    ("seed", -1), ("seed", 1.5), ("rollouts", [1, 2]), ("rollouts", 2.0), ("context_seconds", math.inf),
    ("abstain_below", math.nan),
])
def test_planner_config_refuses_non_finite_and_negative_values(field, value):
    from framepilot.errors import ConfigError
    from planner import PlannerConfig
    with pytest.raises(ConfigError, match=field):
        PlannerConfig(**{field: value})


@pytest.mark.parametrize("field", ["deadline", "max_seconds", "countdown"])
def test_safety_config_refuses_nan(field):
    from controllers import ControllerError
    with pytest.raises(ControllerError, match=field):
        SafetyConfig(**{field: math.nan})


def test_a_long_decision_interval_does_not_outlive_max_seconds():
    """--decision-interval 10 --max-seconds 0.3: the loop ends at 0.3 s, not after a 10 s sleep."""
    import time

    import numpy as np

    from overlays import NOOP
    from planner.loop import run_realtime
    from planner.vote import Decision

    class Capture:
        def grab(self):
            return np.zeros((32, 32, 3), np.uint8), time.monotonic()

    class Executor:
        def apply(self, action, dt):
            return action

        def release_all(self):
            pass

    class FakeAgent:
        class config:
            decision_horizon, context_seconds = 0.1, 1.0
        fps, decision_horizon = 10.0, 0.1

        def rollout_length(self):
            return 0.1

        def decide(self, context, horizon=None):
            return Decision(action=NOOP, confidence=1.0, votes=(NOOP,), timings={})

    t0 = time.monotonic()
    r = run_realtime(Capture(), Executor(), FakeAgent(), Layout.preset("arrows"), decision_interval=10.0,
                     deadline=0.5, max_seconds=0.3)
    assert r.steps == 1 and time.monotonic() - t0 < 2.0
