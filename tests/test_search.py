"""Planning by imagination: overlay inpainting in the shipped model (the imagined game area follows the
keys drawn into the overlay), the search planner's plumbing and choice (with a perfect simulator as
the world model, and with the shipped model), the distance it ranks futures by, and its refusals."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from standin import PerfectModel

import games
from framepilot.errors import ConfigError, UnsupportedRequest
from games.grid import CELL, MARKER
from games.heldout import EVAL_SEEDS
from overlays import NOOP, Action, Layout, read_overlay, render_overlay
from planner import (
    Agent,
    Capabilities,
    ContextClip,
    GoalFrame,
    PlannerConfig,
    Rollouts,
    WorldModel,
    run_episode_sync,
)
from planner.search import SearchConfig, SearchMemory, goal_distance, search

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ARROWS = Layout.preset("arrows")
DIRS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def marker_at(frame: np.ndarray) -> np.ndarray | None:
    """The marker's centre (x, y) in pixels, measured with the game's own colour; None if not seen."""
    g = frame[:frame.shape[0] - ARROWS.strip_height(frame.shape[1])].astype(np.float32)
    w = np.clip(1 - np.linalg.norm(g - np.array(MARKER, np.float32), axis=-1) / 60.0, 0, None)
    if w.sum() < 1:
        return None
    ys, xs = np.mgrid[0:g.shape[0], 0:g.shape[1]]
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


@pytest.fixture(scope="module")
def shipped():
    from planner.backends.bundled import BundledWorldModel
    return BundledWorldModel("arrows")


def test_the_imagined_move_follows_the_key_drawn_into_the_overlay(shipped):
    """Held-out states of ``reach``; each arrow key drawn into the next frame's overlay; the marker in
    the imagined game area (measured by its colour) must move that way in at least 95% of the cases
    where the real game moves it (against a wall the real marker stays, and those are not counted)."""
    agree = moved = 0
    for seed in EVAL_SEEDS[:12]:
        env = games.make("reach")
        obs, _ = env.reset(seed=seed)
        now = render_overlay(obs, NOOP, ARROWS)
        acts = [[Action(keys={k})] for k in DIRS]
        r = shipped(ContextClip(now[None], 10.0), n=4, rollout_length=0.1, seed=seed, actions=acts, layout=ARROWS)
        for (key, (dx, dy)), frames in zip(DIRS.items(), r.frames):
            real = copy.deepcopy(env)
            after, *_ = real.step(Action(keys={key}))
            if np.array_equal(after, obs):
                continue  # against a wall
            moved += 1
            a, b = marker_at(now), marker_at(frames[0])
            if a is None or b is None:
                continue
            d = b - a
            agree += bool(abs(d[0] - dx * CELL) < CELL / 2 and abs(d[1] - dy * CELL) < CELL / 2)
            assert read_overlay(frames[0], ARROWS).action.keys == {key}  # the given overlay is kept
    assert moved >= 35 and agree >= 0.95 * moved, f"the imagined move followed the given key in {agree} of {moved}"


def test_a_backend_without_overlay_inpainting_refuses_given_actions():
    class Plain(WorldModel):
        capabilities = Capabilities(native_fps=10.0)

        def _rollout(self, context, n, rollout_length, prompt, goals, seed):
            return Rollouts(np.repeat(context.frames[-1][None, None], n, 0), 10.0)

    clip = ContextClip(np.zeros((1, 160, 128, 3), np.uint8), 10.0)
    with pytest.raises(UnsupportedRequest, match="cannot imagine given actions"):
        Plain()(clip, n=1, actions=[[NOOP]], layout=ARROWS)
    goal = GoalFrame(np.zeros((160, 128, 3), np.uint8), 0.1)
    with pytest.raises(UnsupportedRequest, match="inpaints overlays"):
        Agent(Plain(), ARROWS, PlannerConfig(plan="search"), goals=(goal,))
    with pytest.raises(ConfigError, match="needs a goal frame"):
        Agent(Plain(), ARROWS, PlannerConfig(plan="search"))


def test_given_actions_must_cover_every_imagined_frame(shipped):
    clip = ContextClip(np.zeros((1, 160, 128, 3), np.uint8), 10.0)
    with pytest.raises(UnsupportedRequest, match="2 sequences of 3 actions"):
        shipped(clip, n=2, rollout_length=0.3, actions=[[NOOP], [NOOP]], layout=ARROWS)


def test_search_with_a_perfect_model_reaches_the_goal_image():
    """With a world model that imagines exactly, the planner's ranking by ``goal_distance`` must bring
    the marker to the goal cell (shown only as an image) on every held-out ``reach-goal`` episode."""
    wins = []
    for seed in EVAL_SEEDS[:10]:
        env = games.make("reach-goal")
        obs, info = env.reset(seed=seed)
        goal = GoalFrame(render_overlay(info["goal_frame"], NOOP, ARROWS), 0.3)
        agent = Agent(PerfectModel(env), ARROWS, PlannerConfig(plan="search", search=SearchConfig(candidates=16, horizon=3),
                                                            seed=seed), goals=(goal,))
        wins.append(run_episode_sync(env, agent, ARROWS, obs=obs).success)
    assert all(wins), wins


def test_the_memory_of_visits_leads_a_one_step_search_round_maze_walls():
    """Held-out mazes need a detour (the shortest path is at least 4 steps longer than the straight
    line). One frame of lookahead toward the goal image stops against a wall; with the penalty for
    states already visited the same search finds the way round (perfect model: the plan, not the
    imagination, is under test)."""
    seeds = EVAL_SEEDS[:8]
    plain = _search_wins("maze", PerfectModel, seeds, novelty=0.0)
    remembering = _search_wins("maze", PerfectModel, seeds, novelty=0.2)
    assert sum(plain) <= 2, plain
    assert sum(remembering) >= 5, remembering


def test_search_memory_counts_visits_of_matching_states():
    m = SearchMemory(match=0.5)
    a, b = np.zeros(4, np.float32), np.full(4, 1.0, np.float32)
    m.observe(a, goal_distance=8.0)
    m.observe(b, goal_distance=8.0)  # a move of 1.0: the tolerance becomes 0.5
    m.observe(a + 0.1, goal_distance=8.0)  # back at a, give or take noise
    assert m.counts == [2, 1]
    v = m.visits(np.stack([a, b + 0.2, np.full(4, 3.0, np.float32)]), goal_distance=8.0)
    assert v.tolist() == [2.0, 1.0, 0.0]
    m.reset()
    assert m.keys == [] and m.plan is None and m.visits(a[None], 8.0).tolist() == [0.0]


def test_search_records_every_candidate_and_its_score():
    env = games.make("reach-goal")
    obs, info = env.reset(seed=EVAL_SEEDS[0])
    goal = GoalFrame(render_overlay(info["goal_frame"], NOOP, ARROWS), 0.3)
    d, r = search(PerfectModel(env), ARROWS, ContextClip(render_overlay(obs, NOOP, ARROWS)[None], 10.0), goal,
                  SearchConfig(candidates=8, horizon=2), seed=0)
    assert len(d.search["candidates"]) == 8 and len(d.search["scores"]) == 8
    assert d.search["chosen"] == int(np.argmin(d.search["scores"]))
    firsts = {tuple(sorted(c[0]["keys"])) for c in d.search["candidates"]}
    assert firsts >= {(), ("left",), ("right",), ("up",), ("down",), ("space",)}  # every first action tried
    assert d.action.keys == set(d.search["candidates"][d.search["chosen"]][0]["keys"])


def test_goal_distance_prefers_nearer_and_does_not_reward_a_vanished_marker():
    env = games.make("reach-goal")
    obs, info = env.reset(seed=EVAL_SEEDS[3])
    now = render_overlay(obs, NOOP, ARROWS)
    goal = render_overlay(info["goal_frame"], NOOP, ARROWS)
    (mx, my), (tx, ty) = info["state"]["marker"], info["state"]["target"]
    step = ("right" if tx > mx else "left") if tx != mx else ("down" if ty > my else "up")
    nearer = render_overlay(copy.deepcopy(env).step(Action(keys={step}))[0], NOOP, ARROWS)
    vanished = now.copy()
    rows = now.shape[0] - ARROWS.strip_height(now.shape[1])
    bg = np.median(now[:rows].reshape(-1, 3), axis=0).astype(np.uint8)
    vanished[:rows][np.linalg.norm(now[:rows].astype(float) - MARKER, axis=-1) < 60] = bg
    d = goal_distance(np.stack([goal, nearer, now, vanished]), goal, ARROWS, now=now)
    assert d[0] < d[1] < d[2], d
    assert d[3] > d[1], f"a frame with the marker gone scored {d[3]:.1f}, better than one step closer {d[1]:.1f}"


def _own_overlay_agreement(model, seeds) -> float:
    """How often the imagined marker move agrees with the key read from the same rollout's overlay
    (a no-op or several keys: the marker stays), over every imagined step of 8 rollouts of 2 frames."""
    ok = n = 0
    for seed in seeds:
        obs, _ = games.make("reach").reset(seed=seed)
        now = render_overlay(obs, NOOP, ARROWS)
        r = model(ContextClip(now[None], 10.0), n=8, rollout_length=0.2, seed=seed)
        for frames in r.frames:
            prev = now
            for f in frames:
                keys = read_overlay(f, ARROWS).action.keys
                a, b = marker_at(prev), marker_at(f)
                prev = f
                if a is None or b is None:
                    continue
                d = b - a
                moved = np.abs(d).max() > CELL / 2
                if len(keys) == 1 and next(iter(keys)) in DIRS:
                    if not moved:
                        continue  # against a wall
                    dx, dy = DIRS[next(iter(keys))]
                    good = abs(d[0] - dx * CELL) < CELL / 2 and abs(d[1] - dy * CELL) < CELL / 2
                else:
                    good = not moved
                ok += bool(good)
                n += 1
    return ok / max(n, 1)


@pytest.mark.slow
def test_coherent_rollouts_imagine_what_their_own_overlay_says():
    """The default rollouts share one imagined game area and sample the overlay apart from it, so a
    rollout's game area and its overlay disagree often; coherent ones imagine the game area around
    their own (snapped) overlay. Measured: coherent 87%, default 41% (20 held-out states)."""
    from planner.backends.bundled import BundledWorldModel
    seeds = EVAL_SEEDS[20:30]
    coherent = _own_overlay_agreement(BundledWorldModel("arrows", coherent=True), seeds)
    default = _own_overlay_agreement(BundledWorldModel("arrows"), seeds)
    assert coherent >= 0.8 and default <= 0.6, (coherent, default)


def _search_wins(game: str, model_of, seeds, futile: bool = True, **search) -> list[bool]:
    """Held-out episodes of ``game`` played by one-frame search (6 candidates: every first action) with
    the world model ``model_of(env)``."""
    wins = []
    for seed in seeds:
        env = games.make(game)
        obs, info = env.reset(seed=seed)
        goal = GoalFrame(render_overlay(info["goal_frame"], NOOP, ARROWS), 0.1)
        agent = Agent(model_of(env), ARROWS, PlannerConfig(rollouts=6, plan="search", seed=seed,
                                                           search=SearchConfig(candidates=6, horizon=1, **search)),
                      goals=(goal,))
        if not futile:
            agent.memory.futile_here = lambda *a: set()
        wins.append(bool(run_episode_sync(env, agent, ARROWS, obs=obs).success))
    return wins


@pytest.mark.slow
def test_relative_scoring_ranks_a_blurry_imagination_by_what_it_changes():
    """A perfect model blurred as a learnt one is (4-pixel Gaussian): scored by their own frames the
    imagined futures all look far from the goal and the ranking is noise; scored by what each changes
    against a no-op imagined from the same noise, it is as good as sharp. Measured: 10 and 6 of 10."""
    seeds = EVAL_SEEDS[:10]
    blurry = lambda env: PerfectModel(env, blur=4)  # noqa: E731
    relative = _search_wins("reach-goal", blurry, seeds)
    absolute = _search_wins("reach-goal", blurry, seeds, relative=False)
    assert sum(relative) >= 9 and sum(absolute) <= 7, (relative, absolute)


@pytest.mark.slow
def test_what_really_happened_overrides_an_imagination_blind_to_walls():
    """A model that imagines the maze without its walls keeps choosing the move through a wall; the
    search remembers the first actions the real game showed futile in a state and ranks them last.
    Measured on 10 held-out mazes: 9 with the memory, 0 without."""
    seeds = EVAL_SEEDS[:10]
    blind = lambda env: PerfectModel(env, walls=False)  # noqa: E731
    remembering = _search_wins("maze", blind, seeds)
    forgetting = _search_wins("maze", blind, seeds, futile=False)
    assert sum(remembering) >= 7 and sum(forgetting) <= 2, (remembering, forgetting)


@pytest.mark.slow
def test_states_are_remembered_by_blurred_features_so_a_blurry_imagination_matches_them(monkeypatch):
    """The visit memory matches imagined states with real ones; a blurry imagination matched none by
    sharp features, and the search went back and forth. Measured: 8 of 10 mazes, 2 unblurred."""
    import planner.search
    seeds = EVAL_SEEDS[:10]
    blurry = lambda env: PerfectModel(env, blur=4)  # noqa: E731
    blurred = _search_wins("maze", blurry, seeds)
    monkeypatch.setattr(planner.search, "FEATURE_BLUR", 0.0)
    sharp = _search_wins("maze", blurry, seeds)
    assert sum(blurred) >= 6 and sum(sharp) <= 4, (blurred, sharp)


def test_futile_actions_are_remembered_per_state():
    m = SearchMemory(match=0.5)
    a, b = np.zeros(4, np.float32), np.full(4, 1.0, np.float32)
    m.observe(a, goal_distance=8.0)
    m.action = 2  # executed in a ...
    m.observe(b, goal_distance=8.0)  # ... and it moved: not futile
    assert m.futile == {}
    m.action = 3  # executed in b ...
    m.observe(b + 0.01, goal_distance=8.0)  # ... and nothing changed
    assert m.futile_here(b, 8.0) == {3} and m.futile_here(a, 8.0) == set()
    assert m.futile_here(np.full(4, 5.0, np.float32), 8.0) == set()  # a state never seen


@pytest.fixture(scope="module")
def maze_model():
    from planner.backends.bundled import BundledWorldModel
    return BundledWorldModel("maze")


@pytest.mark.slow
def test_the_maze_model_imagines_moves_and_walls_as_the_game_has_them(maze_model):
    """Held-out mazes, five random moves in (the context), each arrow drawn into the next frame's
    overlay: where the real game moves the marker the imagined one moves that way, and where a wall
    stops it the imagined one mostly stays. Measured on 30 states: 98% of free moves, 76% of walls."""
    stats = {"free": [0, 0], "wall": [0, 0]}
    for seed in EVAL_SEEDS[:20]:
        env = games.make("maze")
        obs, _ = env.reset(seed=seed)
        frames = [render_overlay(obs, NOOP, ARROWS)]
        rng = np.random.default_rng(seed)
        for _ in range(5):
            a = Action(keys={list(DIRS)[int(rng.integers(4))]})
            obs, *_ = env.step(a)
            frames.append(render_overlay(obs, a, ARROWS))
        r = maze_model(ContextClip(np.stack(frames), 10.0), n=4, rollout_length=0.1, seed=seed,
                       actions=[[Action(keys={k})] for k in DIRS], layout=ARROWS)
        for (key, (dx, dy)), imagined in zip(DIRS.items(), r.frames):
            after, *_ = copy.deepcopy(env).step(Action(keys={key}))
            kind = "wall" if np.array_equal(after, obs) else "free"
            want = np.zeros(2) if kind == "wall" else np.array([dx, dy]) * CELL
            a, b = marker_at(frames[-1]), marker_at(imagined[0])
            stats[kind][1] += 1
            stats[kind][0] += bool(a is not None and b is not None and np.all(np.abs(b - a - want) < CELL / 2))
    (free, n_free), (wall, n_wall) = stats["free"], stats["wall"]
    assert n_free >= 30 and free >= 0.9 * n_free, stats
    assert n_wall >= 20 and wall >= 0.6 * n_wall, stats


@pytest.mark.slow
def test_one_frame_search_with_the_maze_model_finds_detours_to_the_goal_image(maze_model):
    """The shipped maze model (trained only on an undirected explorer's play) with one-frame search:
    held-out mazes whose shortest path is a detour, the goal given only as an image. The explorer
    reaches 11% of such mazes and greedy steps toward the goal 5%; measured here: 5 of 6."""
    wins = _search_wins("maze", lambda env: maze_model, EVAL_SEEDS[:6])
    assert sum(wins) >= 3, wins
