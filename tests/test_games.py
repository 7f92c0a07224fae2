"""The bundled games: API, determinism, success rules, demonstrators, held-out sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import games
from games import heldout, prompts
from games.demonstrators import Demonstrator, random_action
from games.grid import CELL, TARGET, move
from overlays import NOOP, Action

GRID_GAMES = ("reach", "reach-goal", "coins")


def play(env, policy, seed):
    obs, info = env.reset(seed=seed)
    frames, done = [obs], False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy())
        frames.append(obs)
        done = terminated or truncated
    return frames, info


def keys_to(src, dst):
    """Single arrow keys that walk from cell ``src`` to ``dst`` (horizontal first)."""
    dx, dy = dst[0] - src[0], dst[1] - src[1]
    return ["right" if dx > 0 else "left"] * abs(dx) + ["down" if dy > 0 else "up"] * abs(dy)


# ---- API ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", games.GAME_NAMES)
def test_api_and_attributes(name):
    env = games.make(name)
    obs, info = env.reset(seed=0)
    assert obs.shape == (128, 128, 3) and obs.dtype == np.uint8
    assert env.fps == 10 and env.step_cap in (24, 30)
    assert env.layout_name == ("mouse" if name == "buttons" else "arrows")
    assert {"success", "prompt", "state"} <= set(info)
    assert info["success"] is False
    assert (info["prompt"] is None) == (name in ("reach", "reach-goal", "maze"))
    if name in ("reach-goal", "maze"):
        assert info["goal_frame"].shape == (128, 128, 3) and info["goal_frame"].dtype == np.uint8
    obs2, reward, terminated, truncated, info2 = env.step(NOOP)
    assert obs2.shape == (128, 128, 3) and reward == 0.0 and not terminated and not truncated
    assert np.array_equal(env.render(), obs2)
    env.close()


def test_make_rejects_unknown_name():
    with pytest.raises(ValueError, match="reach, reach-goal, coins, buttons"):
        games.make("pong")


@pytest.mark.parametrize("gym_id", ["framepilot/Reach-v0", "framepilot/ReachGoal-v0", "framepilot/Coins-v0",
                                    "framepilot/Buttons-v0", "framepilot/Maze-v0"])
def test_gymnasium_ids(gym_id):
    env = gymnasium.make(gym_id)
    obs, info = env.reset(seed=1)
    assert obs.shape == (128, 128, 3)
    assert isinstance(env.action_space.sample(), Action)
    env.step(env.action_space.sample())
    env.close()


def test_step_after_end_and_bad_action_are_clear_errors():
    env = games.make("reach")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="overlays.Action"):
        env.step("left")
    play(env, lambda: NOOP, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(NOOP)


@pytest.mark.parametrize("name", games.GAME_NAMES)
def test_determinism_under_seed(name):
    def run(seed):
        env = games.make(name)
        rng = np.random.default_rng(7)
        frames, info = play(env, lambda: random_action(env.layout_name, rng), seed)
        return np.stack(frames), info
    a, ia = run(5)
    b, ib = run(5)
    c, _ = run(6)
    assert np.array_equal(a, b) and ia["state"] == ib["state"] and ia["prompt"] == ib["prompt"]
    assert not (a.shape == c.shape and np.array_equal(a, c))


# ---- grid games --------------------------------------------------------------------------------------
def test_movement_rule():
    assert move((0, 0), frozenset({"left"})) == (0, 0)  # walls clamp
    assert move((7, 7), frozenset({"down", "right"})) == (7, 7)
    assert move((3, 3), frozenset({"left", "right"})) == (3, 3)  # opposite keys cancel
    assert move((3, 3), frozenset({"up", "right"})) == (4, 2)  # horizontal + vertical: diagonal
    assert move((3, 3), frozenset({"space", "a"})) == (3, 3)


@pytest.mark.parametrize("name", ["reach", "reach-goal"])
def test_reach_success_rule(name):
    env = games.make(name)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        s = info["state"]
        start, target = tuple(s["marker"]), tuple(s["target"])
        assert start != target and abs(start[0] - target[0]) + abs(start[1] - target[1]) >= 2
        path = keys_to(start, target)
        for i, k in enumerate(path):
            obs, reward, terminated, truncated, info = env.step(Action(keys={k}))
            last = i == len(path) - 1
            assert terminated == last and info["success"] == last and reward == float(last)
        if name == "reach-goal":
            assert np.array_equal(obs, info["goal_frame"])


def test_reach_draws_target_and_reach_goal_does_not():
    for name, drawn in (("reach", True), ("reach-goal", False)):
        env = games.make(name)
        obs, info = env.reset(seed=3)
        tx, ty = info["state"]["target"]
        cell = obs[ty * CELL:(ty + 1) * CELL, tx * CELL:(tx + 1) * CELL]
        assert (cell == TARGET).all(axis=-1).any() == drawn


def test_reach_truncates_at_step_cap():
    env = games.make("reach")
    frames, info = play(env, lambda: NOOP, seed=4)
    assert len(frames) == 25 and not info["success"]


def test_reach_goal_training_goals_avoid_heldout_cells_and_eval_uses_them():
    env = games.make("reach-goal")
    train_goals = {tuple(env.reset(seed=s)[1]["state"]["target"]) for s in range(1500)}
    assert not train_goals & set(heldout.HELDOUT_GOAL_CELLS)
    assert len(train_goals) == 56
    eval_goals = [tuple(env.reset(seed=s)[1]["state"]["target"]) for s in heldout.EVAL_SEEDS]
    n_held = sum(g in heldout.HELDOUT_GOAL_CELLS for g in eval_goals)
    assert 50 <= n_held <= 150
    assert set(heldout.HELDOUT_GOAL_CELLS) <= set(eval_goals)


def test_coins_success_and_failure_rules():
    env = games.make("coins")
    n_fail = 0
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        s = info["state"]
        assert len(s["coins"]) == 3 and s["target_colour"] in s["coins"]
        assert s["target_colour"] in info["prompt"]
        # walk to a wrong coin along any path: collecting it first fails (unless the named coin is on the way)
        wrong = next(c for c in s["coins"] if c != s["target_colour"])
        for k in keys_to(tuple(s["marker"]), tuple(s["coins"][wrong])):
            obs, reward, terminated, truncated, info = env.step(Action(keys={k}))
            if terminated:
                break
        assert terminated
        first = info["state"]["collected"][0]
        assert info["success"] == (first == s["target_colour"])
        assert first not in info["state"]["coins"]  # collected coins disappear
        n_fail += not info["success"]
    assert n_fail >= 20


# ---- buttons -----------------------------------------------------------------------------------------
def pointer_to(env, label):
    """Velocities that put the pointer on ``label``'s centre in whole steps."""
    cx, cy = env.button_centre(label)
    while not env.pointer_in(label):
        px, py = env.pointer
        v = np.array([cx - px, cy - py]) * env.fps
        v *= min(1.0, env.max_speed / max(1e-9, np.hypot(*v)))
        yield Action(mouse=tuple(v))


def test_buttons_click_rules():
    env = games.make("buttons")
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        target = info["state"]["target"]
        assert info["prompt"].endswith(target) or target in info["prompt"]
        wrong = next(b for b in info["state"]["buttons"] if b != target)
        for a in pointer_to(env, wrong):
            obs, _, terminated, _, info = env.step(a)
            assert not terminated
        # a press on the wrong button fails
        obs, reward, terminated, truncated, info = env.step(Action(buttons={"left"}))
        assert terminated and not info["success"] and info["state"]["clicked"] == wrong and reward == 0.0

        env.reset(seed=seed)
        for a in pointer_to(env, target):
            env.step(a)
        obs, reward, terminated, truncated, info = env.step(Action(buttons={"left"}))
        assert terminated and info["success"] and reward == 1.0


def test_buttons_click_counts_on_press_only():
    env = games.make("buttons")
    env.reset(seed=2)
    target = env.target_label
    env.step(Action(buttons={"left"}))  # press on the background: nothing
    for a in pointer_to(env, target):  # drag onto the button with the button held: still no click
        obs, _, terminated, _, info = env.step(Action(mouse=a.mouse, buttons={"left"}))
        assert not terminated
    obs, _, terminated, _, info = env.step(Action(buttons={"left"}))
    assert not terminated and info["state"]["clicked"] is None
    env.step(NOOP)  # release
    obs, _, terminated, _, info = env.step(Action(buttons={"left"}))
    assert terminated and info["success"]


def test_buttons_pointer_speed_and_frame_clamp():
    env = games.make("buttons")
    env.reset(seed=0)
    x0, y0 = env.pointer
    env.step(Action(mouse=(6000.0, 0.0)))  # clamped to 600 px/s -> 60 px
    assert env.pointer[0] == pytest.approx(min(127.0, x0 + 60.0)) and env.pointer[1] == pytest.approx(y0)
    for _ in range(5):
        env.step(Action(mouse=(-600.0, -600.0)))
    assert env.pointer == (0.0, 0.0)


def test_buttons_layout_is_well_formed():
    env = games.make("buttons")
    for seed in range(200):
        env.reset(seed=seed)
        rects = list(env.buttons.values())
        assert len(rects) == 3 and len(set(env.buttons)) == 3
        for i, (x, y, w, h) in enumerate(rects):
            assert (w, h) == (36, 20) and x >= 0 and y >= 12 and x + w <= 128 and y + h <= 128
            for (x2, y2, w2, h2) in rects[i + 1:]:
                assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y
        assert env.button_at(*env.hotspot) is None


# ---- demonstrators and the random agent -------------------------------------------------------------
def success_rate(name, policy_factory, seeds):
    env = games.make(name)
    wins = 0
    for seed in seeds:
        env.reset(seed=seed)
        policy = policy_factory(env, seed)
        _, info = play_from_reset(env, policy)
        wins += info["success"]
    return wins / len(seeds)


def play_from_reset(env, policy):
    done, info = False, None
    while not done:
        _, _, terminated, truncated, info = env.step(policy())
        done = terminated or truncated
    return None, info


@pytest.mark.parametrize("name", [g for g in games.GAME_NAMES if g != "maze"])  # maze: an undirected explorer (tests/test_maze.py)
def test_demonstrator_succeeds_and_random_agent_does_not(name):
    demo = success_rate(name, lambda env, s: Demonstrator(env, np.random.default_rng(s), noise=0.1).act, range(50))
    rnd = success_rate(name, lambda env, s: (lambda rng=np.random.default_rng(s): random_action(env.layout_name, rng)),
                       range(50))
    assert demo >= 0.95, f"{name}: demonstrator success {demo}"
    assert rnd <= 0.35, f"{name}: random agent success {rnd}"


def test_demonstrator_switches_among_equally_good_keys():
    env = games.make("reach")
    same = total = 0
    for seed in range(100):
        env.reset(seed=seed)
        demo = Demonstrator(env, np.random.default_rng(seed), noise=0.0)
        prev, done = None, False
        while not done:
            tx, ty = env.target
            both_axes = env.marker[0] != tx and env.marker[1] != ty
            a = demo.act()
            assert len(a.keys) == 1
            if prev is not None and both_axes:
                same += a.keys == prev
                total += 1
            prev = a.keys
            _, _, te, tr, _ = env.step(a)
            done = te or tr
    assert total > 100 and 0.35 < same / total < 0.65  # ~0.5: the previous key predicts nothing


@pytest.mark.parametrize("margin", [0, 3])
def test_buttons_demonstrator_clicks_only_its_margin_inside_the_button(margin):
    env = games.make("buttons")
    edge_clicks = 0
    for seed in range(200):
        env.reset(seed=seed)
        demo = Demonstrator(env, np.random.default_rng(seed), noise=0.3, click_margin=margin)
        done = False
        while not done:
            a = demo.act()
            if "left" in a.buttons:
                bx, by, w, h = env.buttons[env.target_label]
                x, y = env.hotspot
                inset = min(x - bx, bx + w - 1 - x, y - by, by + h - 1 - y)
                assert inset >= margin
                edge_clicks += inset < 3
            _, _, te, tr, info = env.step(a)
            done = te or tr
        assert info["success"]
    assert (edge_clicks > 0) == (margin == 0)  # with no margin some clicks land at an edge, with 3 none do
    with pytest.raises(ValueError, match="click_margin"):
        Demonstrator(env, np.random.default_rng(0), click_margin=10)


def test_random_action_shapes():
    rng = np.random.default_rng(0)
    arrows = [random_action("arrows", rng) for _ in range(500)]
    assert all(len(a.keys) <= 1 and a.keys <= {"left", "right", "up", "down"} for a in arrows)
    assert 60 < sum(a.is_noop for a in arrows) < 140
    mouse = [random_action("mouse", rng) for _ in range(500)]
    assert all(np.hypot(*a.mouse) <= 600.0 + 1e-6 and not a.keys for a in mouse)
    assert 20 < sum("left" in a.buttons for a in mouse) < 90


# ---- held-out sets -----------------------------------------------------------------------------------
def test_heldout_sets_do_not_overlap_training():
    assert not set(heldout.EVAL_SEEDS) & set(range(heldout.TRAIN_SEEDS.start, heldout.TRAIN_SEEDS.stop))
    assert len(heldout.EVAL_SEEDS) >= 100
    assert len(heldout.HELDOUT_GOAL_CELLS) == 8
    assert not set(heldout.HELDOUT_GOAL_CELLS) & set(heldout.TRAIN_GOAL_CELLS)
    assert len(heldout.TRAIN_GOAL_CELLS) + 8 == 64
    for game, train, ev in (("coins", prompts.COINS_TRAIN, prompts.COINS_EVAL),
                            ("buttons", prompts.BUTTONS_TRAIN, prompts.BUTTONS_EVAL)):
        assert not prompts.all_prompts(train, game) & prompts.all_prompts(ev, game)
    with pytest.raises(ValueError, match="outside the training range"):
        heldout.check_train_seed(heldout.EVAL_SEEDS[0])


@pytest.mark.parametrize("name", ["coins", "buttons"])
def test_prompts_follow_the_split(name):
    env = games.make(name)
    train_set = prompts.all_prompts(prompts.COINS_TRAIN if name == "coins" else prompts.BUTTONS_TRAIN, name)
    eval_set = prompts.all_prompts(prompts.COINS_EVAL if name == "coins" else prompts.BUTTONS_EVAL, name)
    train_prompts = {env.reset(seed=s)[1]["prompt"] for s in range(300)}
    eval_prompts = {env.reset(seed=s)[1]["prompt"] for s in heldout.EVAL_SEEDS}
    assert train_prompts <= train_set and eval_prompts <= eval_set
    assert len(eval_prompts) >= 8
    canonical = "collect the red coin" if name == "coins" else "click Save"
    assert canonical in train_prompts


# ---- real windows under Xvfb -------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]




def open_window(display, *args):
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-m", "games.window", *args, "--max-seconds", "20"], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = json.loads(p.stdout.readline())
    time.sleep(0.3)  # let the window map before input arrives
    return p, first


def finish(p):
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]




def test_window_sync_keyboard(xvfb_display, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    from pynput.keyboard import Controller, Key
    env = games.make("reach")
    _, info = env.reset(seed=3)
    p, first = open_window(xvfb_display, "reach", "--seed", "3", "--mode", "sync")
    assert first["step"] == 0 and first["done"] is False
    kb = Controller()
    path = keys_to(tuple(info["state"]["marker"]), tuple(info["state"]["target"]))
    for k in path:
        kb.press(getattr(Key, k))
        time.sleep(0.05)
        kb.release(getattr(Key, k))
        time.sleep(0.05)
    lines = finish(p)
    assert [ln["action"]["keys"] for ln in lines] == [[k] for k in path]
    assert lines[-1]["success"] and lines[-1]["done"] and lines[-1]["step"] == len(path)


def test_window_sync_mouse(xvfb_display, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    from pynput.mouse import Button, Controller
    env = games.make("buttons")
    env.reset(seed=5)
    hx, hy = env.hotspot
    cx, cy = env.button_centre(env.target_label)
    p, first = open_window(xvfb_display, "buttons", "--seed", "5", "--mode", "sync", "--scale", "3")
    assert first["prompt"] == env.prompt
    mouse = Controller()  # the window warped the OS pointer onto the game's start position
    mouse.move(int(round(cx - hx)) * 3, int(round(cy - hy)) * 3)
    time.sleep(0.2)
    mouse.click(Button.left)
    lines = finish(p)
    assert lines[-1]["success"] and lines[-1]["done"]
    assert lines[0]["action"]["mouse"] == [pytest.approx((round(cx) - hx) * 10), pytest.approx((round(cy) - hy) * 10)]


def test_agent_starts_a_mouse_episode_where_the_window_put_the_pointer(xvfb_display, monkeypatch):
    """``framepilot play --real-window`` parks the OS pointer for focus before the agent's first
    step; in ``buttons`` that must be the episode's own start (``games.window.start_pointer``), or the
    parking would be the first input and move the pointer off its seed's position."""
    monkeypatch.setenv("DISPLAY", xvfb_display)
    from pynput.mouse import Controller

    from controllers import ScreenCapture
    from games.window import start_pointer
    p, first = open_window(xvfb_display, "buttons", "--seed", "7", "--mode", "sync", "--scale", "3",
                           "--title", "fp start pointer")
    with ScreenCapture(window="fp start pointer") as cap:
        r = cap.rect
    try:
        assert tuple(Controller().position) == start_pointer("buttons", 7, (r.left, r.top, r.width, r.height), 3)
        assert start_pointer("reach", 7, (10, 20, 100, 50), 3) == (60, 45)
    finally:
        p.kill()
        p.communicate(timeout=30)


def test_window_realtime_runs_at_ten_steps_per_second(xvfb_display):
    t0 = time.perf_counter()
    p, first = open_window(xvfb_display, "reach", "--seed", "1", "--mode", "realtime")
    lines = finish(p)
    elapsed = time.perf_counter() - t0
    assert len(lines) == 24 and lines[-1]["done"] and not lines[-1]["success"]
    assert 2.3 <= elapsed <= 6.0


def test_window_bad_input_is_one_sentence(xvfb_display):
    env = dict(os.environ, DISPLAY=xvfb_display, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "games.window", "pong"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "no bundled game named 'pong'" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "games.window", "reach", "--mode", "fast"], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "realtime" in r.stderr and "Traceback" not in r.stderr
    env["DISPLAY"] = ":9999"
    r = subprocess.run([sys.executable, "-m", "games.window", "reach"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "Xvfb" in r.stderr and "Traceback" not in r.stderr


def test_human_render_mode(xvfb_display, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    env = games.make("coins", render_mode="human", scale=2)
    env.reset(seed=0)
    env.step(Action(keys={"left"}))
    assert env.render() is None
    env.close()
