"""Bad input over every subcommand: exit 2, exactly one ``error:`` line naming the option or the file,
no traceback, bounded time, and no file left behind.

The numeric cases are generated from the argument parsers: every option that takes a number gets
0, -1, nan, inf, -inf, 1e9, 'a', '', 1.5 and 99999999999. Which of them must be refused is this
file's own table (``VALID``: the values each option accepts, written down here, not read from the
code under test); values it accepts would start a real run and are left out. Every numeric option
of every subcommand must be in the table, so a new option cannot slip past. Hand-written cases
add text options, config files, goal images, layouts, checkpoints, training states and corpora.
Each case runs in-process through ``run_agent.main(argv)`` with a working directory of its own;
``test_cli_subprocess_sample`` (slow) runs a sample through the real command line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

import run_agent

ROOT = Path(__file__).resolve().parents[1]
BAD_NUMBERS = ("0", "-1", "nan", "inf", "-inf", "1e9", "a", "", "1.5", "99999999999")
CASE_SECONDS = 30  # a case that takes longer counts as a hang


def _between(lo, hi, lo_open=False):
    return lambda v: math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi


PLAN = {
    "goal_offset": _between(0, 60, True), "rollouts": _between(1, 1024), "decision_horizon": _between(0, 10, True),
    "rollout_length": _between(0.1, 60), "denoise_steps": _between(1, 1000), "frame_steps": _between(1, 1000),
    "abstain_below": _between(0, 1), "seed": _between(0, 2 ** 32 - 1), "max_steps": _between(1, 1e9),
    "search_horizon": _between(1, 64), "search_rounds": _between(0, 16), "search_top_k": _between(1, 8),  # <= --rollouts
    "search_novelty": _between(0, 100),
}
#: the values each numeric option accepts (anything else must be refused)
VALID = {
    "play": {**PLAN, "episodes": _between(1, 100_000), "scale": _between(1, 16)},
    "screen": {**PLAN, "mouse_scale": _between(0, 100, True), "decision_interval": _between(0, 10, True),
               "deadline": _between(0, 60, True), "max_seconds": _between(0, 1e7, True), "countdown": _between(0, 60)},
    "record": {"episodes": _between(1, 1_000_000), "seed0": _between(0, 999_999 - 99), "noise": _between(0, 1),
               "fps": _between(1, 60), "seconds": _between(0, 1e6, True)},
    "train": {"steps": _between(1, 1e7), "batch": _between(1, 65_536), "lr": _between(0, 1),
              "seed": _between(0, 2 ** 32 - 1), "context_frames": _between(1, 16), "strip_weight": _between(0, 1e308, True),
              "strip_batch": _between(0, 65_536), "text_keypoints": _between(0, 1024), "save_every": _between(1, 1e308),
              "threads": _between(0, 1024), "minutes": _between(0, 1e6, True)},
    "eval": {"episodes": _between(2, 100_000), "seed": _between(0, 2 ** 32 - 1), "denoise_steps": _between(1, 1000),
             "frame_steps": _between(1, 1000), "search_horizon": _between(1, 64),
             "search_novelty": _between(0, 100)},
    "bench": {"frame_steps": _between(1, 1000), "episodes": _between(1, 100_000), "decisions": _between(1, 100_000),
              "seed": _between(0, 2 ** 32 - 1)},
    "serve": {"denoise_steps": _between(1, 1000), "frame_steps": _between(1, 1000), "replicas": _between(1, 1024),
              "gpus_per_replica": _between(0, 1024), "cpus_per_replica": _between(0, 1024, True),
              "port": _between(1, 65535), "max_rollouts": _between(1, 1024), "max_request_mb": _between(0, 4096, True),
              "max_batch_size": _between(1, 1024), "num_cpus": _between(1, 4096)},
}
#: what the refusal of an option may call it besides its flag (the scripted recorder's own words)
ALIASES = {("record", "episodes"): ("n_episodes",), ("record", "seed0"): ("seed ",), ("record", "noise"): ("noise",)}
#: the arguments each subcommand's cases start from
BASE = {"play": ["play"], "screen": ["screen", "--dry-run"], "record": ["record", "--game", "reach"],
        "train": ["train"], "eval": ["eval"], "bench": ["bench", "--no-success"], "serve": ["serve"]}
SCREEN_RECORDING = {"fps", "seconds"}  # record options that need --screen


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    p = run_agent.build_parser()
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


def numeric_options() -> list[tuple[str, argparse.Action]]:
    return [(sub, a) for sub, sp in _subparsers().items() for a in sp._actions if a.type in (int, float)]


def generated_cases() -> list[tuple]:
    cases = []
    for sub, a in numeric_options():
        flag = a.option_strings[-1]
        for raw in BAD_NUMBERS:
            try:
                v = a.type(raw)
            except ValueError:
                v = None  # argparse refuses it
            if v is not None and VALID[sub][a.dest](v):
                continue  # a value the option accepts: it would start a real run
            base = BASE[sub] + (["--screen"] if sub == "record" and a.dest in SCREEN_RECORDING else [])
            expect = (flag, a.dest.replace("_", "-"), *ALIASES.get((sub, a.dest), ()))
            cases.append((f"{sub} {flag} {raw!r}", [*base, f"{flag}={raw}"], expect, {}))
    return cases


def _c(argv, *expect, env=None):
    return (" ".join(argv), list(argv), expect, env or {})


HAND_CASES = [
    # text options and combinations
    _c(["pong"], "invalid choice"), _c(["play", "--nope"], "--nope"), _c(["play", "--rollouts"], "--rollouts"),
    _c(["record", "--screen", "--keys", "up,down", "--layout", "arrows", "--out", "/nonexistent/ep"], "--keys or --layout"),
    _c(["play", "--game", "pong"], "'pong'"), _c(["play", "--game="], "''"), _c(["play", "--mode", "x"], "--mode"),
    _c(["play", "--vote", "x"], "--vote"), _c(["play", "--goal-mode", "best-of-n"], "--goal"),
    _c(["play", "--mode", "realtime"], "--real-window"), _c(["play", "--decision-horizon", "0.1", "--rollout-length", "0.05"], "--rollout-length"),
    _c(["play", "--out="], "--out"), _c(["play", "--model", "{tmp}/no/such/model"], "no model at"),
    _c(["play", "--goal", "{tmp}/none.png"], "does not exist"), _c(["play", "--goal", "{files}/corrupt.png"], "corrupt.png"),
    _c(["play", "--goal", "{files}/bomb.png"], "bomb.png", "larger than the cap"),
    _c(["play", "--goal", "{files}/big.png"], "big.png", "5000x5000"),
    _c(["screen", "--dry-run", "--region", "a"], "--region"), _c(["screen", "--dry-run", "--region", "0,0,10"], "--region"),
    _c(["screen", "--region", "0,0,10,10", "--window", "x"], "not both"),
    _c(["screen", "--dry-run", "--stop-key="], "--stop-key"), _c(["screen", "--dry-run", "--stop-key", "F12!"], "F12!"),
    _c(["screen", "--dry-run", "--pause-key", "f12"], "both 'f12'"),
    _c(["screen", "--dry-run", "--layout", "joystick"], "joystick"), _c(["screen", "--dry-run", "--layout="], "layout"),
    _c(["screen", "--dry-run", "--layout", "{files}/nan_box.json"], "nan_box.json", "finite"),
    _c(["screen", "--dry-run", "--layout", "{files}/text_box.json"], "text_box.json"),
    _c(["screen", "--dry-run", "--layout", "{files}/broken.json"], "broken.json", "not valid JSON"),
    _c(["screen", "--dry-run", "--layout", "{files}"], "cannot be read"),
    _c(["record"], "--game"), _c(["record", "--game", "pong"], "--game"), _c(["record", "--game", "reach", "--out="], "path"),
    _c(["record", "--screen", "--region", "a"], "--region"), _c(["record", "--screen", "--size", "a"], "--size"),
    _c(["record", "--screen", "--size", "15,16"], "--size"), _c(["record", "--screen", "--layout", "joystick"], "joystick"),
    _c(["record", "--screen", "--out", "{files}/episode"], "already holds a finished episode", "--overwrite"),
    _c(["train", "--size", "a"], "--size"), _c(["train", "--size", "41,32"], "--size"), _c(["train", "--size", "0,0"], "--size"),
    _c(["train", "--game-weights", "coins:3"], "--game-weights"),
    _c(["train", "--game-weights", "coins=nan"], "--game-weights"), _c(["train", "--corpus", "{tmp}/nope"], "does not exist"),
    _c(["train", "--corpus="], "--corpus"), _c(["train", "--out="], "--out"), _c(["train", "--out", "{files}/corrupt.png"], "is a file"),
    _c(["train", "--device", "tpu"], "--device"), _c(["train", "--init-from", "{tmp}/nope"], "--init-from"),
    _c(["eval", "--game", "pong"], "'pong'"), _c(["eval", "--rollouts", "a"], "--rollouts"),
    _c(["eval", "--rollouts", "0,1"], "rollout"), _c(["eval", "--rollouts="], "--rollouts"),
    _c(["eval", "--episodes", "1"], "--episodes"), _c(["eval", "--json="], "--json"),
    _c(["bench", "--rollouts", "a"], "--rollouts"), _c(["bench", "--rollouts", "0"], "--rollouts"),
    _c(["bench", "--rollouts", "1,,2"], "--rollouts"), _c(["bench", "--rollouts", "2000"], "--rollouts"),
    _c(["bench", "--denoise-steps", "0"], "--denoise-steps"), _c(["bench", "--denoise-steps", "1001"], "--denoise-steps"),
    _c(["bench", "--game", "pong"], "'pong'"), _c(["bench", "--json="], "--json"),
    # config files
    *(_c([sub, "--config", f"{{files}}/{name}.toml"], f"{name}.toml", *extra) for sub, name, extra in [
        ("play", "list", ("'rollouts'",)), ("play", "text", ("'rollouts'",)), ("play", "half", ("'rollouts'",)),
        ("play", "switch", ("'quiet'",)), ("play", "choice", ("'vote'",)), ("play", "table", ("[play]",)),
        ("play", "invalid", ("not valid TOML",)), ("play", "latin1", ("not valid TOML",)),
        ("play", "unknown", ("'rollout'",)), ("train", "size_list", ("'size'",)), ("train", "lr_text", ("'lr'",)),
        ("screen", "interval_text", ("'decision-interval'",)), ("bench", "rollouts_list", ("'rollouts'",)),
    ]),
    _c(["play", "--config", "{files}/negative_seed.toml"], "negative_seed.toml: --seed"),
    _c(["play", "--config", "{files}/nan_horizon.toml"], "nan_horizon.toml: --decision-horizon"),
    _c(["train", "--config", "{files}/zero_steps.toml"], "zero_steps.toml: --steps"),
    _c(["screen", "--dry-run", "--config", "{files}/long_interval.toml"], "long_interval.toml: --decision-interval"),
    _c(["play", "--config", "{tmp}/none.toml"], "none.toml", "does not exist"),
    _c(["play", "--config", "{files}"], "cannot be read"),
    # checkpoints, training states, corpora
    _c(["play", "--model", "{ckpt}/nan"], "178 non-finite weights", "diffusion_pytorch_model.safetensors"),
    _c(["play", "--model", "{ckpt}/size"], "framepilot.json", "size [80, 64]"),
    _c(["play", "--model", "{ckpt}/empty_meta"], "framepilot.json is damaged (empty)"),
    _c(["play", "--model", "{ckpt}/cut"], "could not load"),
    _c(["eval", "--model", "{ckpt}/nan", "--game", "reach", "--episodes", "2"], "non-finite weights"),
    _c(["bench", "--model", "{ckpt}/size", "--no-success"], "size [80, 64]"),
    _c(["train", "--corpus", "{ckpt}/corpus", "--out", "{ckpt}/state_cut", "--steps", "3"],
       "training_state.safetensors in", "is damaged", "delete"),
    _c(["train", "--corpus", "{ckpt}/bad_corpus", "--out", "{tmp}/run"], "no intact finished episodes"),
]


def all_cases() -> list[tuple]:
    return generated_cases() + HAND_CASES


# ---- files the hand-written cases read ---------------------------------------------------------------
def _png_header(path: Path, w: int, h: int) -> None:
    """A PNG whose header claims w x h pixels (the pixel data is a stub: only the header matters)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad_inputs")
    _png_header(d / "bomb.png", 20000, 20000)
    _png_header(d / "big.png", 5000, 5000)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    from overlays import Layout
    lay = Layout.preset("arrows").to_dict()
    lay["cells"][0]["box"][2] = float("nan")
    (d / "nan_box.json").write_text(json.dumps(lay))
    lay["cells"][0]["box"][2] = "a"
    (d / "text_box.json").write_text(json.dumps(lay))
    (d / "broken.json").write_text("{nope")
    tomls = {"list": "rollouts = [1, 2]", "text": 'rollouts = "a"', "half": "rollouts = 2.5", "switch": 'quiet = "yes"',
             "choice": 'vote = "x"', "table": "play = 3", "invalid": "rollouts = = 3", "unknown": "rollout = 3",
             "size_list": "size = [40, 32]", "lr_text": 'lr = "fast"', "interval_text": 'decision-interval = "a"',
             "rollouts_list": "rollouts = [1, 2]", "negative_seed": "seed = -1", "nan_horizon": "decision-horizon = nan", "zero_steps": "[train]\nsteps = 0",
             "long_interval": "decision-interval = 1e9"}
    for name, text in tomls.items():
        (d / f"{name}.toml").write_text(text + "\n")
    (d / "latin1.toml").write_bytes('prompt = "caf\xe9"\n'.encode("latin-1"))
    from training.corpus import EpisodeWriter
    EpisodeWriter(d / "episode", {"fps": 10}).close()
    return d


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_checkpoint, tiny_corpus) -> Path:
    import torch
    from safetensors.torch import load_file, save_file
    d = tmp_path_factory.mktemp("bad_checkpoints")
    for name in ("nan", "size", "empty_meta", "cut", "state_cut"):
        shutil.copytree(tiny_checkpoint, d / name)
    w = d / "nan" / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(w))
    big = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() >= 178)
    sd[big].view(-1)[:178] = torch.nan
    save_file(sd, str(w))
    meta = json.loads((d / "size" / "framepilot.json").read_text())
    (d / "size" / "framepilot.json").write_text(json.dumps(dict(meta, size=[80, 64])))
    (d / "empty_meta" / "framepilot.json").write_text("")
    cut = d / "cut" / "diffusion_pytorch_model.safetensors"
    cut.write_bytes(cut.read_bytes()[:1000])
    state = d / "state_cut" / "training_state.safetensors"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    shutil.copytree(tiny_corpus / "reach", d / "corpus")
    shutil.copytree(tiny_corpus / "reach", d / "bad_corpus")
    for ep in (d / "bad_corpus").iterdir():
        (ep / "meta.json").write_text("")
    return d


# ---- the cases -------------------------------------------------------------------------------------
class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


CASES = all_cases()


def test_the_cases_cover_every_numeric_option_and_number_at_least_100():
    missing = [(sub, a.dest) for sub, a in numeric_options() if a.dest not in VALID[sub]]
    assert not missing, f"add these options to VALID: {missing}"
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)
    print(f"{len(CASES)} bad-input cases ({len(generated_cases())} generated from the parsers)")


@pytest.mark.parametrize("name,argv,expect,env", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_sentence(name, argv, expect, env, request, tmp_path, monkeypatch, capsys):
    places = {"tmp": str(tmp_path / "elsewhere")}
    if any("{files}" in a for a in argv):
        places["files"] = str(request.getfixturevalue("files"))
    if any("{ckpt}" in a for a in argv):
        places["ckpt"] = str(request.getfixturevalue("ckpt"))
    argv = [a.format(**places) for a in argv]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("DISPLAY", "")  # nothing here may reach a screen
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    t0 = time.monotonic()
    try:
        code = run_agent.main(argv)
    except _Hang:
        pytest.fail(f"{name}: still running after {CASE_SECONDS} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2, f"{name}: exit {code}, stderr {err[-500:]!r}"
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert err.strip().splitlines()[-1] == errors[0], err  # the sentence is the last thing said
    assert any(e in errors[0] for e in expect), f"{errors[0]!r} names none of {expect}"
    assert not list(cwd.iterdir()), f"{name} left {[p.name for p in cwd.iterdir()]}"
    assert not (tmp_path / "elsewhere").exists() or not list((tmp_path / "elsewhere").rglob("*"))
    assert seconds < CASE_SECONDS


# ---- a sample through the real command line ----------------------------------------------------------
SAMPLE = ["play --decision-horizon 'nan'", "screen --decision-interval '0'", "screen --decision-interval '1e9'",
          "play --seed '-1'", "play --max-steps '0'", "screen --max-seconds 'nan'", "play --denoise-steps '99999999999'",
          "train --steps '-1'", "train --batch '0'", "record --seconds 'nan'", "eval --episodes 'a'", "bench --rollouts 0",
          "play --goal {files}/bomb.png", "play --config {files}/list.toml", "pong"]


@pytest.mark.slow
def test_cli_subprocess_sample(files, tmp_path):
    by_name = {c[0]: c for c in CASES}
    assert set(SAMPLE) <= set(by_name)
    for name in SAMPLE:
        _, argv, expect, env = by_name[name]
        argv = [a.format(files=files, tmp=tmp_path / "elsewhere") for a in argv]
        cwd = tmp_path / "cwd"
        cwd.mkdir(exist_ok=True)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, str(ROOT / "run_agent.py"), *argv], capture_output=True, text=True,
                           check=False, cwd=cwd, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1", DISPLAY="", **env))
        assert p.returncode == 2 and "Traceback" not in p.stderr, (name, p.stderr[-800:])
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and any(e in lines[0] for e in expect), (name, lines)
        assert not list(cwd.iterdir()) and time.monotonic() - t0 < 120
