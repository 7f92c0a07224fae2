"""The command line: help, config files, the subcommands on a tiny model, and one-sentence errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run_agent

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None, timeout=300):
    """Run ``python run_agent.py ARGS`` as a user would; returns (code, stdout, stderr)."""
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    p = subprocess.run([sys.executable, str(ROOT / "run_agent.py"), *args], capture_output=True, text=True,
                       env=e, cwd=ROOT, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def assert_one_sentence(code, err, *phrases):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for ph in phrases:
        assert ph in lines[0], lines[0]


def test_help_lists_every_subcommand_and_defaults():
    code, out, _ = cli("--help")
    assert code == 0
    for sub in ("play", "screen", "record", "train", "eval", "bench"):
        assert sub in out
    code, out, _ = cli("play", "--help")
    assert code == 0 and "--rollouts" in out and "(default: 8)" in out and "framepilot play --game coins" in out
    code, out, _ = cli("screen", "--help")
    assert code == 0 and "F12" in out and "--dry-run" in out


@pytest.mark.slow
def test_play_records_video_and_a_jsonl_log(tiny_checkpoint, tmp_path):
    code, out, err = cli("play", "--model", str(tiny_checkpoint), "--game", "reach", "--max-steps", "3",
                         "--rollouts", "2", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    result = json.loads(out)
    rec = Path(result["episodes"][0]["recording"])
    lines = [json.loads(x) for x in (rec / "decisions.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and {"action", "executed", "confidence", "votes", "timings_ms"} <= set(lines[0])
    assert len(lines[0]["votes"]) == 2
    from planner.recording import read_segments
    frames = read_segments(rec)
    assert len(frames) == 3 and frames.shape[2] > frames.shape[1]  # real frame beside the imagined grid
    assert json.loads((rec / "summary.json").read_text())["steps"] == 3


@pytest.mark.slow
def test_recording_survives_a_kill(tiny_checkpoint, tmp_path):
    """SIGKILL mid-run: the JSONL lines and the video frames written so far are still readable."""
    import signal
    import time
    p = subprocess.Popen([sys.executable, str(ROOT / "run_agent.py"), "play", "--model", str(tiny_checkpoint),
                          "--game", "coins", "--rollouts", "2", "--out", str(tmp_path), "--quiet", "--max-steps", "30"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    log = None
    while time.monotonic() < deadline:
        logs = list(tmp_path.glob("*/decisions.jsonl"))
        if logs and len(logs[0].read_text().splitlines()) >= 4:
            log = logs[0]
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    assert log is not None, "the run wrote no steps"
    n = len(log.read_text().splitlines())
    assert n >= 4 and all(json.loads(x) for x in log.read_text().splitlines())
    from planner.recording import read_segments
    assert len(read_segments(log.parent)) >= n  # every logged step's frame is in the video


@pytest.mark.slow
def test_config_file_sets_defaults_and_rejects_unknown_keys(tiny_checkpoint, tmp_path):
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'model = "{tiny_checkpoint}"\n[play]\nrollouts = 3\nmax-steps = 1\nquiet = true\n')
    code, out, err = cli("play", "--config", str(cfg), "--out", str(tmp_path / "runs"))
    assert code == 0, err
    rec = Path(json.loads(out)["episodes"][0]["recording"])
    assert len(json.loads((rec / "decisions.jsonl").read_text().splitlines()[0])["votes"]) == 3
    bad = tmp_path / "bad.toml"
    bad.write_text("rollout = 3\n")
    assert_one_sentence(*cli("play", "--config", str(bad))[::2], "'rollout'")


@pytest.mark.slow
def test_bench_writes_json_and_a_plot(tiny_checkpoint, tmp_path):
    out = tmp_path / "bench.json"
    code, _, err = cli("bench", "--model", str(tiny_checkpoint), "--rollouts", "1,2", "--decisions", "2",
                       "--episodes", "1", "--json", str(out))
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["device"] and result["model"] == str(tiny_checkpoint)
    assert [r["rollouts"] for r in result["rows"]] == [1, 2]
    for r in result["rows"]:
        assert r["denoise_steps"] == 3 and r["latency_ms"]["p95"] >= r["latency_ms"]["p50"] > 0
        assert 0.0 <= r["success_rate"] <= 1.0
    from PIL import Image
    assert Image.open(out.with_suffix(".png")).size == (640, 360)


@pytest.mark.slow
def test_eval_json_has_the_documented_shape(tiny_checkpoint, tmp_path):
    out = tmp_path / "eval.json"
    code, _, err = cli("eval", "--model", str(tiny_checkpoint), "--game", "coins", "--episodes", "2",
                       "--rollouts", "1,2", "--json", str(out))
    assert code == 0, err
    g = json.loads(out.read_text())["games"]["coins"]
    assert g["episodes"] == 2 and g["step_cap"] == 30 and set(g["agent"]) == {"1", "2"}
    assert set(g["baselines"]) == {"random", "demonstrator", "untrained"}
    for r in [*g["agent"].values(), *g["baselines"].values()]:
        assert {"success_rate", "ci95", "mean_steps"} <= set(r)
        assert 0 <= r["ci95"][0] <= r["success_rate"] <= r["ci95"][1] <= 1
    assert "latency_ms" in g["agent"]["2"] and "latency_ms" not in g["baselines"]["random"]
    assert g["baselines"]["demonstrator"]["success_rate"] == 1.0
    assert {"per_colour", "named_not_nearest", "shuffled_prompt"} <= set(g["coins"])


def test_wilson_interval():
    from training.evaluate import wilson
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


# ---- bad input: one sentence, exit code 2, no traceback -------------------------------------------------
def test_unknown_game():
    assert_one_sentence(*cli("play", "--game", "pong")[::2], "no bundled game named 'pong'")


def test_corrupt_and_missing_goal_image(tiny_checkpoint, tmp_path):
    bad = tmp_path / "goal.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    assert_one_sentence(*cli("play", "--model", str(tiny_checkpoint), "--game", "reach-goal", "--goal", str(bad))[::2],
                        "could not be read")
    assert_one_sentence(*cli("play", "--model", str(tiny_checkpoint), "--goal", str(tmp_path / "none.png"))[::2],
                        "does not exist")


def test_missing_model_and_unknown_layout(tmp_path):
    assert_one_sentence(*cli("play", "--model", str(tmp_path / "nope"))[::2], "no model at")
    assert_one_sentence(*cli("screen", "--layout", "joystick", "--dry-run")[::2], "joystick")


def test_conflicting_flags():
    assert_one_sentence(*cli("play", "--mode", "realtime")[::2], "--real-window")
    assert_one_sentence(*cli("screen", "--region", "0,0,10,10", "--window", "x")[::2], "not both")
    assert_one_sentence(*cli("play", "--rollouts", "0")[::2], "--rollouts")
    assert_one_sentence(*cli("screen", "--mouse-scale", "0", "--dry-run")[::2], "--mouse-scale")


def test_no_display_for_screen(tiny_checkpoint):
    code, _, err = cli("screen", "--model", str(tiny_checkpoint), "--dry-run", env={"DISPLAY": ""})
    assert_one_sentence(code, err, "no X display")


def test_region_outside_the_screen(xvfb_display, tiny_checkpoint):
    code, _, err = cli("screen", "--model", str(tiny_checkpoint), "--region", "5000,0,100,100", "--dry-run",
                       env={"DISPLAY": xvfb_display})
    assert_one_sentence(code, err, "1280")


@pytest.mark.slow
def test_screen_dry_run_on_a_real_display(xvfb_display, tiny_checkpoint, tmp_path):
    code, out, err = cli("screen", "--model", str(tiny_checkpoint), "--region", "0,0,256,256", "--dry-run",
                         "--max-steps", "3", "--rollouts", "2", "--out", str(tmp_path), "--quiet",
                         env={"DISPLAY": xvfb_display})
    assert code == 0, err
    result = json.loads(out)
    assert result["steps"] == 3 and (Path(result["recording"]) / "decisions.jsonl").exists()


def test_a_bug_shows_its_traceback_and_debug_shows_it_for_user_errors(monkeypatch, capsys):
    """Only ``FramepilotError`` is bad input (one sentence, exit 2); any other exception is a bug and
    propagates with its traceback, even a ``ValueError``. ``--debug`` lets a user error propagate too."""
    from framepilot.errors import ConfigError

    def bug(c):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(run_agent, "play", bug)
    with pytest.raises(ValueError, match="internal invariant"):
        run_agent.main(["play"])

    def user_error(c):
        raise ConfigError("--rollouts must be at least 1, got 0")

    monkeypatch.setattr(run_agent, "play", user_error)
    assert run_agent.main(["play"]) == 2
    assert capsys.readouterr().err.strip() == "error: --rollouts must be at least 1, got 0"
    with pytest.raises(ConfigError):
        run_agent.main(["play", "--debug"])
