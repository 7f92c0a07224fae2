"""Recording and training an own game: the rule for keys that change within a frame, a layout of the
game's own keys, the window's frame rate, the model size a new game trains at, a time budget for
training, and the Atari chain through the command line (a few seconds of each stage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from controllers.human_recorder import measure_frame_rate
from controllers.listener import InputListener
from overlays import Action, Layout, read_overlay, render_overlay

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def listener_on(clock) -> InputListener:
    lis = InputListener(Layout.preset("arrows"))
    lis._clock = clock
    lis._start = clock()
    return lis


class Key:
    def __init__(self, name):
        self.name = name


def test_a_key_counts_in_the_intervals_it_mostly_covers():
    c = Clock()
    lis = listener_on(c)
    lis._on_press(Key("up"))
    c.t = 0.1
    assert lis.interval()[0] == {"up"}
    c.t = 0.133  # up let go and down pressed a third of the way into the frame
    lis._on_release(Key("up"))
    lis._on_press(Key("down"))
    c.t = 0.2
    assert lis.interval()[0] == {"down"}  # never up and down together
    c.t = 0.3
    assert lis.interval()[0] == {"down"}  # held on: every interval
    c.t = 0.33
    lis._on_release(Key("down"))
    c.t = 0.4
    assert lis.interval()[0] == frozenset()  # down was already shown; 30% of this frame is not held


def test_no_press_is_lost():
    c = Clock()
    lis = listener_on(c)
    c.t = 0.02
    lis._on_press(Key("left"))
    c.t = 0.05
    lis._on_release(Key("left"))  # a tap inside one frame
    c.t = 0.1
    assert lis.interval()[0] == {"left"}
    c.t = 0.17
    lis._on_press(Key("right"))
    c.t = 0.2
    assert lis.interval()[0] == frozenset()  # 30% of this frame so far
    c.t = 0.24
    lis._on_release(Key("right"))  # 70 ms in all, never half of either frame: shown where it ends
    c.t = 0.3
    assert lis.interval()[0] == {"right"}
    c.t = 0.4
    assert lis.interval()[0] == frozenset()
    lis._on_press(Key("esc"))
    assert lis.stopped.is_set()


def test_a_layout_of_the_games_own_keys():
    layout = Layout.resolve("keys:up,down")
    assert layout.keys == ("up", "down") and layout.name == "keys:up,down"
    assert Layout.of_keys(["up", "down"]) == layout  # the same keys, the same layout (a checkpoint's)
    Layout.from_dict(layout.to_dict()).check_compatible(layout)
    frame = np.full((64, 80, 3), 90, np.uint8)
    for keys in ({"up"}, {"down"}, set(), {"up", "down"}):
        assert read_overlay(render_overlay(frame, Action(keys=keys), layout), layout).action.keys == keys
    with pytest.raises(ValueError, match="unknown key"):
        Layout.resolve("keys:up,nokey")
    with pytest.raises(ValueError, match="twice"):
        Layout.resolve("keys:up,up")
    with pytest.raises(ValueError, match="at least one key"):
        Layout.resolve("keys:")


class FakeCapture:
    def __init__(self, fps):
        import time
        self.fps, self.t0, self.time = fps, time.perf_counter(), time.perf_counter

    def grab(self):
        k = int((self.time() - self.t0) * self.fps) if self.fps else 0
        return np.full((4, 4, 3), k % 256, np.uint8), 0.0


def test_the_windows_frame_rate_is_measured():
    assert measure_frame_rate(FakeCapture(15), seconds=0.6) == pytest.approx(15, rel=0.1)
    assert measure_frame_rate(FakeCapture(0), seconds=0.2) is None  # a still picture


def test_a_new_game_trains_at_a_size_that_keeps_small_things(tmp_path):
    from training.train import DEFAULT_SIZE, default_size

    def episode(name, shape):
        d = tmp_path / name / "ep_0"
        d.mkdir(parents=True)
        (d / "meta.json").write_text(json.dumps({"frame_shape": list(shape), "n_frames": 2, "fps": 15.0}))
        return str(tmp_path / name)

    assert default_size(episode("bundled", (160, 128, 3))) == DEFAULT_SIZE
    assert default_size(episode("atari", (96, 64, 3))) == (96, 64)  # 80x64 game area + its 16-row strip
    assert default_size(episode("big", (275, 300, 3))) == (88, 96)
    assert default_size(str(tmp_path / "none")) == DEFAULT_SIZE
    assert default_size("unused", init_from="bundled:arrows") == DEFAULT_SIZE


def test_training_stops_at_its_time_budget(tmp_path):
    from training.corpus import record_scripted
    from training.train import TrainConfig, train
    record_scripted("reach", 2, tmp_path / "corpus")
    cfg = TrainConfig(corpus=str(tmp_path / "corpus"), out=str(tmp_path / "run"), steps=100000, batch=2,
                      strip_batch=2, minutes=0.05, threads=1)
    summary = train(cfg, progress=False)
    assert 0 < summary["step"] < 100000 and summary["seconds"] < 30
    assert (tmp_path / "run" / "training_state.safetensors").exists()
    with pytest.raises(ValueError, match="--minutes"):
        TrainConfig(minutes=0)


@pytest.mark.slow
def test_the_atari_chain_through_the_command_line(tmp_path):
    """benchmarks/bench_atari.py on a tiny budget: every stage (baselines, record, train, screen) runs
    through framepilot's CLI on a real Breakout window and scores come back (plumbing, not skill)."""
    pytest.importorskip("ale_py")
    pytest.importorskip("av")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)  # the benchmark starts its own Xvfb
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_atari.py"), "breakout",
                        "--record-minutes", "0.25", "--train-minutes", "0.1", "--play-seconds", "6",
                        "--baseline-seconds", "4", "--rollouts", "2", "--out", str(tmp_path / "chain"),
                        "--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["scores_per_1000_frames"]) == {"scripted", "random", "idle", "agent"}
    assert r["recorded_minutes"] >= 0.24 and r["train_steps"] >= 1
    assert r["agent"]["steps"] >= 3 and r["agent"]["score"]["frames"] >= 10
    meta = json.loads((tmp_path / "chain" / "corpus" / "ep_000" / "meta.json").read_text())
    assert meta["layout"]["name"] == "keys:left,right,space" and meta["fps"] == 15.0
    assert meta["frame_spec"]["height"] == 80 and meta["frame_spec"]["width"] == 64
    keys = {k for line in (tmp_path / "chain" / "corpus" / "ep_000" / "steps.jsonl").read_text().splitlines()
            for k in json.loads(line)["action"]["keys"]}
    assert keys & {"left", "right", "space"}  # the scripted player's XTEST keys were heard


@pytest.mark.slow
def test_screen_ends_when_its_window_closes(make_probe, human, tmp_path):
    """The game window closing ends ``framepilot screen`` there, with its summary (a run once went on
    83 s past its window's end, to --max-seconds)."""
    import time
    probe = make_probe("framepilot-closing", pos=(200, 150), size=(200, 200))
    human.warp(*probe.center)
    p = subprocess.Popen([sys.executable, str(ROOT / "run_agent.py"), "screen", "--window", "framepilot-closing",
                          "--dry-run", "--max-seconds", "300", "--rollouts", "1", "--countdown", "0", "--quiet",
                          "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        end = time.monotonic() + 120
        while not any(f.stat().st_size for f in tmp_path.glob("*/decisions.jsonl")):  # the agent is running
            assert p.poll() is None and time.monotonic() < end, p.communicate()[1][-2000:]
            time.sleep(0.2)
        probe.close()
        t = time.monotonic()
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0, err[-2000:]
    assert time.monotonic() - t < 30  # not --max-seconds
    assert json.loads(out[out.index("{"):])["steps"] >= 1


@pytest.mark.slow
def test_the_atari_player_releases_its_keys_when_terminated(xvfb_display):
    """bench_atari.py ends a recording's scripted player with SIGTERM; the Up it holds in Freeway must
    not stay held on the display (it did, before SIGTERM unwound its ``finally``)."""
    pytest.importorskip("ale_py")
    import time

    import Xlib.display
    env = {**os.environ, "DISPLAY": xvfb_display}
    win = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "atari" / "window.py"), "freeway", "--title",
                            "held-test", "--seconds", "30"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        win.stdout.readline()
        time.sleep(0.5)
        pl = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "atari" / "player.py"), "freeway", "--window",
                               "held-test", "--seconds", "30", "--noise", "0"], env=env)
        d = Xlib.display.Display(xvfb_display)
        end = time.monotonic() + 20
        while not any(d.query_keymap()) and time.monotonic() < end:  # the player holds Up
            time.sleep(0.1)
        assert any(d.query_keymap()), "the player never pressed a key"
        pl.terminate()
        pl.wait(timeout=10)
        assert not any(d.query_keymap())
        d.close()
    finally:
        win.terminate()
        win.wait(timeout=10)
