"""``maze``: determinism, walls, the goal frame, held-out mazes and goals, the baselines' bars, the explorer."""

from __future__ import annotations

import numpy as np

import games
from games import heldout
from games.demonstrators import random_action
from games.grid import CELL, MARKER, distances_to, manhattan
from games.maze import (
    MAX_PATH,
    MIN_DETOUR,
    MIN_PATH,
    WALL,
    MazeEnv,
    free_moves,
    greedy_action,
    layout_split,
    oracle_action,
)
from overlays import NOOP, Action

EVAL = list(heldout.EVAL_SEEDS[:100])


def run(env, policy, seed):
    obs, info = env.reset(seed=seed)
    frames, actions, done = [obs], [], False
    while not done:
        a = policy()
        obs, _, te, tr, info = env.step(a)
        frames.append(obs), actions.append(a)
        done = te or tr
    return frames, actions, info


def rate(policy_factory, seeds):
    env = MazeEnv()
    wins = 0
    for s in seeds:
        env.reset(seed=s)
        _, _, info = run(env, policy_factory(env, s), s)
        wins += info["success"]
    return wins / len(seeds)


def test_registered_and_attributes():
    env = games.make("maze")
    assert "maze" in games.GAME_NAMES and games.GAMES["maze"][0] == "framepilot/Maze-v0"
    obs, info = env.reset(seed=0)
    assert obs.shape == (128, 128, 3) and env.fps == 10 and env.layout_name == "arrows"
    assert info["prompt"] is None and info["goal_frame"].shape == (128, 128, 3)
    import gymnasium
    g = gymnasium.make("framepilot/Maze-v0")
    g.reset(seed=1)
    g.step(g.action_space.sample())


def test_determinism_per_seed():
    env = games.make("maze")
    a = env.reset(seed=11)[1]["state"]
    b = env.reset(seed=11)[1]["state"]
    c = env.reset(seed=12)[1]["state"]
    assert a == b and a["walls"] != c["walls"]
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    f1, _, _ = run(env, lambda: random_action("arrows", rng1), 11)
    f2, _, _ = run(env, lambda: random_action("arrows", rng2), 11)
    assert np.array_equal(np.stack(f1), np.stack(f2))


def test_drawing_walls_marker_and_goal_frame():
    env = games.make("maze")
    obs, info = env.reset(seed=5)
    walls, (gx, gy) = env.walls, env.target
    for (x, y) in walls:
        assert (obs[y * CELL:(y + 1) * CELL, x * CELL:(x + 1) * CELL] == WALL).all()
    assert not (obs == (235, 50, 50)).all(axis=-1).any()  # no target drawn
    goal = info["goal_frame"]
    assert (goal[gy * CELL + 8, gx * CELL + 8] == MARKER).all()
    assert not (goal[env.marker[1] * CELL + 8, env.marker[0] * CELL + 8] == MARKER).all()
    # walking the oracle's path ends on a frame equal to the goal frame
    frames, _, info = run(env, lambda: oracle_action(env), 5)
    assert info["success"] and np.array_equal(frames[-1], goal)


def test_walls_block_and_every_free_cell_is_reachable():
    env = games.make("maze")
    blocked_seen = 0
    for seed in range(40):
        env.reset(seed=seed)
        free = [(x, y) for y in range(8) for x in range(8) if (x, y) not in env.walls]
        d = distances_to(env.target, env.walls)
        assert all(d[y, x] >= 0 for x, y in free)
        for k in ("left", "right", "up", "down"):
            env.reset(seed=seed)
            start = env.marker
            env.step(Action(keys={k}))
            if k in free_moves(env.walls, start):
                assert env.marker == free_moves(env.walls, start)[k]
            else:
                assert env.marker == start
                blocked_seen += 1
        env.reset(seed=seed)
        env.step(Action(keys={"left", "up"}))
        assert env.marker not in env.walls
    assert blocked_seen > 20


def test_paths_need_a_detour_and_fit_the_cap():
    env = games.make("maze")
    for seed in list(range(50)) + EVAL[:50]:
        env.reset(seed=seed)
        d = distances_to(env.target, env.walls)[env.marker[1], env.marker[0]]
        assert MIN_PATH <= d <= MAX_PATH and d - manhattan(env.marker, env.target) >= MIN_DETOUR
        assert d <= env.step_cap // 2


def test_oracle_reaches_every_heldout_goal_within_the_cap():
    assert rate(lambda env, s: (lambda: oracle_action(env)), EVAL) == 1.0


def test_baseline_bars_on_heldout_seeds():
    # measured (python -m games.maze --episodes 100): greedy 0.05, explorer 0.11, random 0.01
    def seeded(policy):
        def factory(env, s):
            rng = np.random.default_rng([s, 7])
            return lambda: policy(env, rng)
        return factory
    greedy = rate(seeded(greedy_action), EVAL)
    explorer = rate(lambda env, s: env.demonstrator(np.random.default_rng([s, 7]), noise=0.1).act, EVAL)
    rnd = rate(seeded(lambda env, rng: random_action("arrows", rng)), EVAL)
    assert greedy <= 0.25, greedy
    assert explorer <= 0.25, explorer
    assert rnd <= 0.15, rnd


def test_training_and_eval_use_disjoint_mazes_and_goals():
    env = games.make("maze")
    train_mazes, train_goals = set(), set()
    for s in range(600):
        st = env.reset(seed=s)[1]["state"]
        walls = frozenset(tuple(c) for c in st["walls"])
        assert layout_split(walls) == "train" and st["maze_split"] == "train"
        train_mazes.add(walls), train_goals.add(tuple(st["target"]))
    eval_mazes, eval_goals = set(), []
    for s in heldout.EVAL_SEEDS:
        st = env.reset(seed=s)[1]["state"]
        walls = frozenset(tuple(c) for c in st["walls"])
        assert layout_split(walls) == "eval" and st["maze_split"] == "eval"
        eval_mazes.add(walls), eval_goals.append(tuple(st["target"]))
    assert not train_mazes & eval_mazes
    assert not train_goals & set(heldout.HELDOUT_GOAL_CELLS)
    assert 50 <= sum(g in heldout.HELDOUT_GOAL_CELLS for g in eval_goals) <= 150
    # split= overrides the seed's own set
    assert env.__class__(split="eval").reset(seed=3)[1]["state"]["maze_split"] == "eval"


def test_explorer_never_reads_the_goal():
    for seed in range(20):
        runs = []
        for shift in (False, True):
            env = MazeEnv(run_to_cap=True)
            env.reset(seed=seed)
            if shift:  # another goal in the same maze
                free = [(x, y) for y in range(8) for x in range(8) if (x, y) not in env.walls
                        and (x, y) not in (env.target, env.marker)]
                env.target = free[seed % len(free)]
            demo = env.demonstrator(np.random.default_rng(seed), noise=0.1)
            acts, done = [], False
            while not done:
                a = demo.act()
                acts.append(a.to_dict())
                _, _, te, tr, _ = env.step(a)
                done = te or tr
            runs.append(acts)
        assert runs[0] == runs[1] and len(runs[0]) == env.step_cap


def test_explorer_moves_holds_keys_and_sometimes_waits():
    env = MazeEnv(run_to_cap=True)
    same = total = noops = moved = 0
    for seed in range(30):
        env.reset(seed=seed)
        demo = env.demonstrator(np.random.default_rng(seed), noise=0.1)
        prev, done = None, False
        while not done:
            a = demo.act()
            before = env.marker
            _, _, te, tr, _ = env.step(a)
            done = te or tr
            noops += a.is_noop
            moved += env.marker != before
            if prev is not None and not a.is_noop:
                same += a.keys == prev
                total += 1
            if not a.is_noop:
                prev = a.keys
    n = 30 * env.step_cap
    assert 0.03 < noops / n < 0.2 and moved / n > 0.6 and 0.4 < same / total < 0.9


def test_run_to_cap_keeps_going_after_the_goal():
    env = MazeEnv(run_to_cap=True)
    env.reset(seed=2)
    rewards, done = [], False
    while not done:
        a = oracle_action(env)
        _, r, te, tr, info = env.step(a)
        rewards.append(r)
        assert not te
        done = tr
    assert env.steps == env.step_cap and info["success"] and sum(rewards) == 1.0
    assert MazeEnv().reset(seed=2) and not MazeEnv().run_to_cap


def test_recorded_corpus_runs_to_the_cap(tmp_path):
    from training.corpus import load_corpus, record_scripted
    stats = record_scripted("maze", 3, tmp_path / "maze", progress=False)
    assert stats["frames"] == 3 * (30 + 1)
    frames, metas = load_corpus(tmp_path, games=("maze",))
    assert all(m["run_to_cap"] and m["steps"] == 30 and m["has_goal"] for m in metas)
    assert frames[0].shape == (31, 160, 128, 3)


def test_greedy_prefers_distance_reducing_moves():
    env = MazeEnv()
    rng = np.random.default_rng(0)
    for seed in range(30):
        env.reset(seed=seed)
        moves = free_moves(env.walls, env.marker)
        good = {k for k, c in moves.items() if manhattan(c, env.target) < manhattan(env.marker, env.target)}
        a = greedy_action(env, rng)
        if good:
            assert a.keys <= good and a.keys
        else:
            assert a == NOOP or next(iter(a.keys)) in moves
