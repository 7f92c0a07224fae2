"""The synchronous agent loop on the real ``reach`` game with the OracleStandIn test double.

The stand-in corrupts 30% of the rollouts (the player holds a wrong key). The episodes get a tight
step budget, the shortest path plus one spare step, so every wrong step counts: voting over 8
rollouts must still win (nearly) always, one rollout must do clearly worse, and so must a planner
whose vote is replaced by "take the first rollout".
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from standin import OracleStandIn

import games
import planner.agent
from overlays import NOOP, Layout, read_overlay, render_overlay
from planner import (
    Agent,
    Capabilities,
    Decision,
    GoalFrame,
    PlannerConfig,
    Rollouts,
    WorldModel,
    run_episode_sync,
)
from planner.world_model import ContextClip, frames_needed

torch.set_num_threads(1)
ARROWS = Layout.preset("arrows")
SEEDS = range(20)


def play(seed: int, rollouts: int, corrupt: float = 0.3, spare: int | None = 1, config: dict | None = None,
         on_step=None):
    env = games.make("reach")
    obs, info = env.reset(seed=seed)
    (mx, my), (tx, ty) = info["state"]["marker"], info["state"]["target"]
    budget = None if spare is None else abs(mx - tx) + abs(my - ty) + spare
    agent = Agent(OracleStandIn(ARROWS, corrupt=corrupt, seed=1000 + seed), ARROWS,
                  PlannerConfig(rollouts=rollouts, seed=seed, **(config or {})))
    return run_episode_sync(env, agent, ARROWS, max_steps=budget, obs=obs, on_step=on_step)


def success_rate(rollouts: int, **kw) -> float:
    return float(np.mean([play(s, rollouts, **kw).success for s in SEEDS]))


def test_voting_beats_one_rollout():
    voted, single = success_rate(8), success_rate(1)
    assert voted >= 0.9, f"8-rollout voting succeeded on only {voted:.0%} of the seeds"
    assert single <= voted - 0.3, f"one rollout ({single:.0%}) is not clearly worse than voting ({voted:.0%})"


def test_taking_the_first_rollout_instead_of_voting_fails(monkeypatch):
    def first_rollout(readings, mode="joint", abstain_below=0.0):
        votes = [r.action for r in readings]
        return Decision(action=votes[0], confidence=1.0, votes=votes)

    voted = success_rate(8)
    monkeypatch.setattr(planner.agent, "choose", first_rollout)
    first = success_rate(8)
    assert first <= voted - 0.3, f"taking the first rollout ({first:.0%}) does as well as voting ({voted:.0%})"


def test_clean_model_always_wins_and_game_step_cap_is_the_default_budget():
    assert success_rate(1, corrupt=0.0, spare=0) == 1.0
    r = play(3, 8, spare=None)
    assert r.success and r.steps <= games.make("reach").step_cap


def test_timing_convention_the_frame_after_a_step_shows_the_executed_action():
    steps = []
    result = play(5, 8, spare=None, on_step=steps.append)
    assert result.success and len(steps) >= 2
    assert read_overlay(steps[0].frame, ARROWS).action == NOOP  # frame 0: reset, nothing held yet
    for before, after in zip(steps, steps[1:]):
        assert not before.executed.is_noop
        assert read_overlay(after.frame, ARROWS).action.keys == before.executed.keys
    for s in steps:
        assert {"context", "model", "read", "vote", "execute", "overlay"} <= set(s.timings)


def test_a_noop_decision_still_advances_the_game():
    env = games.make("reach")
    # every rollout holds a random wrong key (3 to choose from): 8 rollouts (nearly) never all agree
    agent = Agent(OracleStandIn(ARROWS, corrupt=1.0), ARROWS, PlannerConfig(rollouts=8, abstain_below=1.0, seed=0))
    obs, info = env.reset(seed=0)
    result = run_episode_sync(env, agent, ARROWS, max_steps=3, obs=obs)
    assert result.steps == 3 and env.steps == 3
    assert all(d.abstained and d.action == NOOP and d.confidence < 1 for d in result.decisions)
    assert env.marker == tuple(info["state"]["marker"])  # no-ops: the game advanced, the marker did not move


@pytest.mark.parametrize("goal_mode", ["best-of-n", "vote+best-of-n"])
def test_goal_frame_modes_play_reach_goal(goal_mode):
    """``reach-goal`` draws no target: the stand-in takes it from the goal frame; best-of-n picks the
    rollouts that end on it."""
    wins = 0
    for seed in range(8):
        env = games.make("reach-goal")
        obs, info = env.reset(seed=seed)
        goal = GoalFrame(render_overlay(info["goal_frame"], NOOP, ARROWS), offset=1.5)
        agent = Agent(OracleStandIn(ARROWS, corrupt=0.5, seed=seed), ARROWS,
                      PlannerConfig(rollouts=4, goal_mode=goal_mode, seed=seed), goals=[goal])
        (mx, my), (tx, ty) = info["state"]["marker"], info["state"]["target"]
        result = run_episode_sync(env, agent, ARROWS, max_steps=abs(mx - tx) + abs(my - ty) + 1, obs=obs)
        wins += result.success
        assert all(d.chosen_index is not None for d in result.decisions)
    assert wins >= 7


def test_the_realtime_horizon_stays_within_what_the_planner_imagines_so_latency_cannot_slow_it():
    """Under load the horizon (latency + interval / 2) once lengthened every rollout, which raised the
    latency again: 6.7 s, then 32 s per decision. The loop now reads the latency's frame only within the
    rollout the planner imagines anyway: the latency never changes how much is imagined."""
    from planner.loop import Realtime
    pacing = Realtime(interval=0.1, deadline=0.5)
    pacing.decision_horizon, pacing.reach = 0.1, 0.1
    for latency in (0.0, 0.1, 0.2, 2.0, 32.0):
        pacing.latency = latency
        assert pacing.horizon() == pytest.approx(0.1)
    pacing.reach = 0.3  # --rollout-length 0.3: it may read up to 0.3 s ahead
    for latency, want in ((0.0, 0.1), (0.1, 0.15), (0.2, 0.25), (0.45, 0.3), (32.0, 0.3)):
        pacing.latency = latency
        assert pacing.horizon() == pytest.approx(want)
    # and a deliberately slow model, in the loop: it imagines the same length at every decision, so its
    # decisions stay within the deadline (bounded by the deadline instead, this one settled at 0.55 s a
    # decision, every one dropped)
    import time as _time

    from controllers import DryRunExecutor
    from planner import Capabilities, Rollouts, WorldModel
    from planner.loop import run

    lengths = []

    class Slow(WorldModel):
        capabilities = Capabilities(native_fps=10.0)

        def _rollout(self, context, n, rollout_length, prompt, goals, seed):
            lengths.append(rollout_length)
            _time.sleep(0.15 + rollout_length)  # slower the further it imagines, and slower than the interval
            return Rollouts(np.repeat(context.frames[-1][None, None], n, 0).repeat(int(rollout_length * 10) + 1, 1), 10.0)

    class Still:
        def grab(self):
            return np.zeros((128, 128, 3), np.uint8), _time.monotonic()

    steps = []
    r = run(Still(), DryRunExecutor(ARROWS), Agent(Slow(), ARROWS), ARROWS, Realtime(0.1, 0.5), max_steps=6,
            on_step=steps.append)
    assert r.steps == 6 and {round(s.timings["horizon"], 9) for s in steps} == {0.1}
    assert len(set(lengths)) == 1 and lengths[0] == pytest.approx(0.1)
    assert max(s.timings["plan"] for s in steps) < 0.5, [round(s.timings["plan"], 2) for s in steps]
    assert r.dropped == 0


def test_the_decision_horizon_defaults_to_the_models_next_frame():
    """0.1 s for the bundled 10 fps models; one frame of a 15 fps model (0.067 s), which the realtime loop
    then imagines alone: a fixed 0.1 s horizon took two frames there, and the second cost four times the
    first."""
    from planner import Capabilities, Rollouts, WorldModel
    from planner.loop import Realtime

    asked = []

    class Fifteen(WorldModel):
        capabilities = Capabilities(native_fps=15.0)

        def _rollout(self, context, n, rollout_length, prompt, goals, seed):
            asked.append(rollout_length)
            k = frames_needed(rollout_length, 15.0)
            return Rollouts(np.repeat(context.frames[-1][None, None], n, 0).repeat(k, 1), 15.0)

    agent = Agent(Fifteen(), ARROWS, PlannerConfig(rollouts=2))
    assert agent.decision_horizon == pytest.approx(1 / 15)
    pacing = Realtime(0.1, 0.5)
    pacing.context_fps(agent)
    pacing.latency = 0.2
    assert pacing.horizon() == pytest.approx(1 / 15)
    agent.decide(ContextClip(np.zeros((3, 64, 64, 3), np.uint8), 15.0), horizon=pacing.horizon())
    assert frames_needed(asked[-1], 15.0) == 1
    # a longer rollout lends the loop frames to cover its latency with
    agent = Agent(Fifteen(), ARROWS, PlannerConfig(rollouts=2, rollout_length=0.2))
    pacing.context_fps(agent)
    assert pacing.horizon() == pytest.approx(0.2)
    assert Agent(Fifteen(), ARROWS, PlannerConfig(rollouts=2, decision_horizon=0.1)).decision_horizon == 0.1


def test_a_model_that_cannot_keep_up_is_said_with_its_figures_and_what_to_change():
    from framepilot.play import keep_up_note
    from planner.loop import EpisodeResult
    fast = EpisodeResult(None, 10, [], [{"plan": 0.04}] * 10, dropped=0)
    slow = EpisodeResult(None, 10, [], [{"plan": 0.33}] * 10, dropped=4)
    assert keep_up_note(fast, 0.1, 8) is None
    note = keep_up_note(slow, 0.1, 8)
    assert "330 ms p50 against a 100 ms interval" in note and "40% were dropped" in note and "--rollouts (now 8)" in note


def test_the_text_encoder_is_loaded_before_the_first_decision():
    calls = []

    class Model(WorldModel):
        capabilities = Capabilities(text=True, native_fps=10.0)

        def prepare(self, prompt=None):
            calls.append(prompt)

        def _rollout(self, context, n, rollout_length, prompt, goals, seed):
            return Rollouts(np.repeat(context.frames[-1][None, None], n, 0), 10.0)

    Agent(Model(), ARROWS, prompt="go left")
    assert calls == ["go left"]
