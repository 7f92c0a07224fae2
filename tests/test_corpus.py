"""The on-disk episode format: round trip, overlay agreement, resume, loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import games
from overlays import NOOP, Action, Layout, read_overlay, render_overlay
from training.corpus import (
    EpisodeWriter,
    episode_dirs,
    load_corpus,
    main,
    read_episode,
    record_scripted,
    resize_frames,
)


def replay(game, seed, actions):
    """Frames a fresh env gives for the recorded actions, overlay drawn as the recorder does."""
    env = games.make(game)
    layout = Layout.preset(env.layout_name)
    obs, info = env.reset(seed=seed)
    frames = [render_overlay(obs, NOOP, layout)]
    for a in actions[1:]:
        obs, *_ = env.step(a)
        frames.append(render_overlay(obs, a, layout))
    return np.stack(frames), info


@pytest.mark.parametrize("game", ["reach-goal", "coins", "buttons"])
def test_scripted_round_trip(tmp_path, game):
    stats = record_scripted(game, 2, tmp_path, seed0=11, progress=False)
    assert stats["episodes"] == 2
    layout = Layout.preset(games.make(game).layout_name)
    for seed in (11, 12):
        ep = read_episode(tmp_path / f"ep_{seed}")
        m = ep.meta
        assert m["game"] == game and m["seed"] == seed and m["fps"] == 10
        assert m["n_frames"] == len(ep.frames) == len(ep.actions) == m["steps"] + 1
        assert m["frame_shape"] == [160, 128, 3] and ep.frames.dtype == np.uint8
        assert m["layout"] == layout.to_dict() and m["overlay_version"] == layout.overlay_version
        assert ep.actions[0] == NOOP
        # frames bit-exact: the env replayed with the recorded actions gives the same pixels
        frames, info = replay(game, seed, ep.actions)
        assert np.array_equal(frames, ep.frames)
        assert m["prompt"] == info["prompt"]
        # the overlay read back from every frame matches the recorded action
        for frame, action in zip(ep.frames, ep.actions):
            read = read_overlay(frame, layout).action
            assert read.keys == action.keys and read.buttons == action.buttons
            assert np.hypot(read.mouse[0] - action.mouse[0], read.mouse[1] - action.mouse[1]) <= 0.1 * layout.max_speed
        lines = [json.loads(s) for s in (tmp_path / f"ep_{seed}" / "steps.jsonl").read_text().splitlines()]
        assert [ln["index"] for ln in lines] == list(range(len(lines)))
        assert [ln["t"] for ln in lines] == pytest.approx([k / 10 for k in range(len(lines))])
        if game == "reach-goal":
            assert m["has_goal"] and ep.goal.shape == (160, 128, 3)
            assert np.array_equal(ep.goal, render_overlay(info["goal_frame"], NOOP, layout))
            assert not m["success"] or np.array_equal(ep.goal[:128], ep.frames[-1][:128])
        else:
            assert ep.goal is None and not m["has_goal"]


def test_writer_is_lossless_and_flushes_each_line(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 40, 32, 3), dtype=np.uint8)  # noise: the hardest case for a codec
    actions = [Action(keys={"left"}), NOOP, Action(mouse=(3.5, -2.0), buttons={"left"}), NOOP, Action(keys={"a"})]
    w = EpisodeWriter(tmp_path / "ep", {"game": "custom", "fps": 10, "seed": None})
    for i, (f, a) in enumerate(zip(frames, actions)):
        w.add(f, a, i / 10)
        # the line is on disk before close (a crash keeps what was written)
        assert len((tmp_path / "ep" / "steps.jsonl").read_text().splitlines()) == i + 1
    assert not (tmp_path / "ep" / "meta.json").exists()
    with pytest.raises(ValueError, match="not a finished episode"):
        read_episode(tmp_path / "ep")
    w.close(success=True)
    ep = read_episode(tmp_path / "ep")
    assert np.array_equal(ep.frames, frames) and ep.actions == actions and ep.meta["success"] is True


def test_writer_rejects_bad_frames_and_marks_interrupted(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        EpisodeWriter(tmp_path / "x", {"game": "g"})
    with pytest.raises(RuntimeError):
        with EpisodeWriter(tmp_path / "ep", {"fps": 10}) as w:
            w.add(np.zeros((8, 8, 3), np.uint8), NOOP, 0.0)
            with pytest.raises(ValueError, match="differs"):
                w.add(np.zeros((8, 10, 3), np.uint8), NOOP, 0.1)
            with pytest.raises(ValueError, match="uint8"):
                w.add(np.zeros((8, 8, 3), np.float32), NOOP, 0.1)
            raise RuntimeError("the player quit")
    ep = read_episode(tmp_path / "ep")
    assert ep.meta["interrupted"] is True and len(ep.frames) == 1
    with pytest.raises(FileExistsError):
        EpisodeWriter(tmp_path / "ep", {"fps": 10})


def test_record_resumes_and_guards_its_inputs(tmp_path):
    record_scripted("reach", 3, tmp_path / "reach", progress=False)
    mtime = (tmp_path / "reach" / "ep_1" / "meta.json").stat().st_mtime_ns
    stats = record_scripted("reach", 4, tmp_path / "reach", progress=False)
    assert stats["episodes"] == 4 and stats["success_rate"] >= 0.75
    assert (tmp_path / "reach" / "ep_1" / "meta.json").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="its own folder"):
        record_scripted("coins", 1, tmp_path / "reach", progress=False)
    with pytest.raises(ValueError, match="training range"):
        record_scripted("reach", 1, tmp_path / "eval", seed0=10_000_000, progress=False)
    record_scripted("buttons", 1, tmp_path / "buttons", progress=False, click_margin=0)
    assert json.loads((tmp_path / "buttons" / "ep_0" / "meta.json").read_text())["click_margin"] == 0
    with pytest.raises(ValueError, match="--click-margin 0"):  # resuming must not mix demonstrators
        record_scripted("buttons", 2, tmp_path / "buttons", progress=False)
    meta_path = tmp_path / "buttons" / "ep_0" / "meta.json"  # an episode from before the margin was recorded
    meta_path.write_text(json.dumps({k: v for k, v in json.loads(meta_path.read_text()).items() if k != "click_margin"}))
    with pytest.raises(ValueError, match="--click-margin 0"):
        record_scripted("buttons", 2, tmp_path / "buttons", progress=False)


def test_load_corpus(tmp_path):
    record_scripted("reach", 2, tmp_path / "reach", progress=False)
    record_scripted("buttons", 2, tmp_path / "buttons", progress=False)
    frames, metas = load_corpus(tmp_path)
    assert len(frames) == 4 == len(episode_dirs(tmp_path))
    assert all(f.shape[1:] == (160, 128, 3) and len(f) == m["n_frames"] for f, m in zip(frames, metas))
    small, metas2 = load_corpus(tmp_path, size=(80, 64), games=("reach",))
    assert len(small) == 2 and small[0].shape[1:] == (80, 64, 3) and {m["game"] for m in metas2} == {"reach"}
    with pytest.raises(ValueError, match="does not exist"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(ValueError, match="no finished episodes"):
        load_corpus(tmp_path, games=("coins",))


def test_resize_frames():
    f = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    assert np.array_equal(resize_frames(f, (4, 4)), f)
    half = resize_frames(f, (2, 2))
    assert half[0, 0, 0, 0] == round(f[0, :2, :2, 0].mean())
    assert resize_frames(f, (8, 8)).shape == (2, 8, 8, 3)
    assert resize_frames(f, (3, 5)).shape == (2, 3, 5, 3)


def test_cli(tmp_path, capsys):
    assert main(["coins", "2", str(tmp_path / "c"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    assert main(["pong", "2", str(tmp_path / "p"), "--quiet"]) == 2
    assert "no bundled game named 'pong'" in capsys.readouterr().err


# ---- recording the real screen under Xvfb ------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]




def test_record_human_captures_a_real_window_and_real_keys(xvfb_display, monkeypatch, tmp_path):
    from framepilot.record import record_human
    monkeypatch.setenv("DISPLAY", xvfb_display)
    env = dict(os.environ, DISPLAY=xvfb_display, PYTHONPATH=str(REPO), SDL_VIDEO_WINDOW_POS="0,0")
    game = subprocess.Popen([sys.executable, "-m", "games.window", "reach", "--seed", "2", "--mode", "sync",
                             "--scale", "1", "--stay", "--max-seconds", "15"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        game.stdout.readline()
        time.sleep(0.4)
        from pynput.keyboard import Controller, Key
        kb = Controller()

        def press_left():
            time.sleep(0.35)
            kb.press(Key.left)
            time.sleep(0.05)
            kb.release(Key.left)

        def ready():
            threading.Thread(target=press_left, daemon=True).start()

        layout = Layout.preset("arrows")
        meta = record_human(tmp_path / "ep", layout, region=(0, 0, 128, 128), seconds=1.0, prompt="play", ready=ready)
    finally:
        game.kill()
        game.wait()
    ep = read_episode(tmp_path / "ep")
    assert meta["n_frames"] == len(ep.frames) == 11 and ep.meta["source"] == "screen" and ep.meta["prompt"] == "play"
    start, info = games.make("reach").reset(seed=2)
    assert np.array_equal(ep.frames[0][:128], start)  # the capture is the game's pixels, bit-exact
    held = [k for k, a in enumerate(ep.actions) if a.keys == {"left"}]
    assert held and all(a.keys <= {"left"} for a in ep.actions)
    assert held[0] in (3, 4, 5)  # pressed ~0.35 s in
    for frame, action in zip(ep.frames, ep.actions):
        assert read_overlay(frame, layout).action.keys == action.keys
    moved = start.copy()
    env_ = games.make("reach")
    env_.reset(seed=2)
    moved, *_ = env_.step(Action(keys={"left"}))
    assert np.array_equal(ep.frames[-1][:128], moved)  # the game (sync mode) took exactly that one step


def test_screen_cli_rejects_bad_region(capsys):
    assert main(["screen", "/tmp/x", "--region", "1,2,3"]) == 2
    assert "--region needs 4 whole numbers" in capsys.readouterr().err
