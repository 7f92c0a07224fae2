"""Planner core without a game loop: horizons, fitting, context, voting, best-of-n, config, requests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from standin import OracleStandIn

from overlays import NOOP, Action, Layout, OverlayReading, read_overlay, render_overlay
from planner import (
    Agent,
    Capabilities,
    ContextBuffer,
    ContextClip,
    GoalFrame,
    PlannerConfig,
    UnsupportedRequest,
    best_of_n,
    choose,
    choose_with_goal,
    decision_index,
    fit_frames,
    frames_needed,
    goal_distances,
    resample_clip,
)

torch.set_num_threads(1)
ARROWS = Layout.preset("arrows")
FPS_LIST = (7, 10, 24, 25, 30)


# ---- horizons --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fps,index", [(7, 0), (10, 0), (24, 2), (25, 2), (30, 2)])
def test_decision_index_reads_first_frame_at_or_after_horizon(fps, index):
    i = decision_index(0.1, fps)
    assert i == index
    assert (i + 1) / fps >= 0.1 - 1e-9  # at or after 0.1 s ...
    assert i == 0 or i / fps < 0.1  # ... and the first such frame


@settings(max_examples=200, deadline=None, derandomize=True)
@given(fps=st.sampled_from(FPS_LIST), seconds=st.floats(0.01, 3.0), tc=st.sampled_from([1, 4, 8]))
def test_frames_needed_cover_the_rollout_and_obey_compression(fps, seconds, tc):
    i = decision_index(seconds, fps)
    assert (i + 1) / fps >= seconds - 1e-6 and (i == 0 or i / fps < seconds + 1e-6)
    n = frames_needed(seconds, fps, tc)
    assert n >= i + 1 and n % tc == 0 and n - (i + 1) < tc


@pytest.mark.parametrize("fps", FPS_LIST)
def test_frames_needed_with_temporal_compression_8(fps):
    n = frames_needed(0.1, fps, 8)
    assert n == 8  # a tenth of a second always fits in one latent frame of 8
    n2 = frames_needed(2.0, fps, 8)
    assert n2 % 8 == 0 and n2 / fps >= 2.0 - 1e-9 and (n2 - 8) / fps < 2.0


# ---- fit_frames never crops the overlay ------------------------------------------------------------
@pytest.mark.parametrize("shape,size,multiple,mode", [
    ((128, 128), (64, 96), 1, "pad"), ((128, 128), (480, 704), 32, "pad"), ((100, 90), None, 32, "pad"),
    ((128, 128), (256, 256), 1, "resize"), ((96, 160), (320, 512), 32, "resize"), ((128, 128), (96, 64), 32, "pad")])
def test_fit_frames_keeps_the_overlay(shape, size, multiple, mode):
    rng = np.random.default_rng(0)
    action = Action(keys={"left", "space"})
    frame = render_overlay(rng.integers(0, 255, (*shape, 3), dtype=np.uint8), action, ARROWS)
    fitted, undo = fit_frames(frame[None], size, multiple, mode)
    if size is not None:
        assert fitted.shape[1:3] == size
    assert fitted.shape[1] % multiple == 0 and fitted.shape[2] % multiple == 0
    back = undo(fitted)
    assert back.shape == frame[None].shape
    assert read_overlay(back[0], ARROWS).action.keys == action.keys


# ---- context -----------------------------------------------------------------------------------------
def numbered(i: int) -> np.ndarray:
    return np.full((8, 16, 3), i, np.uint8)


@pytest.mark.parametrize("target", FPS_LIST)
def test_context_buffer_keeps_one_second_at_the_backend_fps(target):
    buf = ContextBuffer(fps=10, seconds=1.0)
    for i in range(25):
        buf.push(numbered(i))
    clip = buf.clip(target)
    assert clip.fps == target and len(clip.frames) == target and abs(clip.duration - 1.0) < 1e-9
    ids = clip.frames[:, 0, 0, 0].astype(int)
    assert ids[-1] == 24 and np.all(np.diff(ids) >= 0) and ids[0] >= 14  # 1 s before frame 24 is frame 14
    assert np.array_equal(clip.frames, resample_clip(np.stack([numbered(i) for i in range(13, 25)]), 10, target, 1.0))


def test_context_buffer_repeats_the_oldest_frame_until_full_and_follows_timestamps():
    buf = ContextBuffer(fps=10)
    buf.push(numbered(0), t=5.0)
    assert np.all(buf.clip(10).frames[:, 0, 0, 0] == 0) and len(buf.clip(10).frames) == 10
    for i, t in enumerate([5.13, 5.21, 5.37, 5.42], start=1):  # irregular capture times
        buf.push(numbered(i), t=t)
    ids = buf.clip(10).frames[:, 0, 0, 0].astype(int)
    # targets 5.42, 5.32, 5.22, 5.12 -> nearest earlier frames 4, 2, 2, 0
    assert ids[-4:].tolist() == [0, 2, 2, 4]
    with pytest.raises(ValueError, match="differs from the buffer"):
        buf.push(np.zeros((9, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        ContextBuffer(10).clip(10)


# ---- voting ----------------------------------------------------------------------------------------
def reading(keys=(), mouse=(0.0, 0.0), buttons=(), probs=None, layout=ARROWS) -> OverlayReading:
    probs = dict(probs or {})
    kp = {k: probs.get(k, 1.0 if k in keys else 0.0) for k in layout.keys}
    bp = {b: probs.get(b, 1.0 if b in buttons else 0.0) for b in layout.buttons}
    return OverlayReading(Action(keys=frozenset(keys), mouse=mouse, buttons=frozenset(buttons)), kp, bp, 1.0)


def test_joint_vote_takes_the_most_common_whole_action():
    rs = [reading({"left"})] * 3 + [reading({"left", "up"})] * 2 + [reading({"up"})] * 2 + [reading()]
    d = choose(rs)
    assert d.action == Action(keys={"left"}) and d.confidence == 3 / 8 and len(d.votes) == 8 and not d.abstained


def test_per_key_vote_holds_keys_held_by_at_least_half():
    rs = [reading({"left", "up"}), reading({"left"}), reading({"up"}), reading()]
    d = choose(rs, mode="per-key")
    assert d.action.keys == {"left", "up"} and d.confidence == 1 / 4
    d5 = choose(rs + [reading()], mode="per-key")
    assert d5.action.keys == frozenset() and d5.confidence == 2 / 5
    # joint on the same four: a 1-1-1-1 tie
    assert choose(rs).confidence == 1 / 4


def test_joint_tie_broken_by_per_key_agreement_then_deterministic_order():
    confident = [reading({"left"}, probs={"left": 0.9, "up": 0.1})] * 2
    shaky = [reading({"up"}, probs={"up": 0.55, "left": 0.45})] * 2
    for rs in (confident + shaky, shaky + confident):
        assert choose(rs).action.keys == {"left"}
    crisp = [reading({"up"}), reading({"down"})]
    assert choose(crisp).action.keys == {"down"} and choose(crisp[::-1]).action.keys == {"down"}
    assert choose([reading({"left"}), reading()]).action == NOOP  # fewer inputs first


def test_mouse_velocity_is_the_medoid():
    mouse = Layout.preset("mouse")
    rs = [reading(mouse=v, buttons={"left"}, layout=mouse) for v in [(10, 0), (20, 5), (300, -7)]]
    rs.append(reading(mouse=(1000, 1000), layout=mouse))
    d = choose(rs)
    assert d.action.buttons == {"left"} and d.action.mouse == (20.0, 5.0)  # the winners' most central move
    assert choose(rs, mode="per-key").action.mouse == (20.0, 5.0)  # among all four, the outlier does not pull it
    scattered = [reading(mouse=v, layout=mouse) for v in [(400, 0), (0, 300), (200, 400)]]
    assert choose(scattered).action.mouse == (200.0, 400.0)  # a move one rollout made, not the median's (200, 300)
    tied = [reading(mouse=v, layout=mouse) for v in [(0, 0), (100, 0)]]
    assert choose(tied).action.mouse == (0.0, 0.0) and choose(tied[::-1]).action.mouse == (100.0, 0.0)


def test_abstain_below_threshold_is_a_noop():
    rs = [reading({"left"})] * 3 + [reading({"up"})] * 2 + [reading({"down"})] * 2 + [reading({"right"})]
    d = choose(rs, abstain_below=0.5)
    assert d.abstained and d.action == NOOP and d.confidence == 3 / 8 and len(d.votes) == 8
    assert not choose(rs, abstain_below=0.375).abstained
    with pytest.raises(ValueError, match="no rollout readings"):
        choose([])
    with pytest.raises(ValueError, match="'joint' or 'per-key'"):
        choose(rs, mode="majority")


# ---- best-of-n -----------------------------------------------------------------------------------
def board(marker: tuple[int, int], action: Action = NOOP) -> np.ndarray:
    from games.grid import background, draw_marker
    img = background()
    draw_marker(img, marker)
    return render_overlay(img, action, ARROWS)


def test_best_of_n_picks_the_closest_ignoring_the_overlay():
    goal = board((5, 5))  # drawn with no key held
    frames = np.stack([board((0, 0), Action(keys={"left"})), board((5, 4), Action(keys={"up"})),
                       board((5, 5), Action(keys={"right", "space"})), board((7, 7))])
    d = goal_distances(frames, goal, ARROWS)
    assert d[2] == 0.0 and np.argmin(d) == 2 and d[1] > 0
    assert best_of_n(frames, goal, ARROWS) == 2
    # without excluding the strip the overlay would count
    assert goal_distances(frames, goal)[2] > 0


def test_goal_modes_combine_vote_and_best_of_n():
    goal = board((5, 5))
    far = 255 - board((0, 0))  # pixel MSE does not know grid distance: make the far frames differ everywhere
    frames = np.stack([far, far, far, board((5, 5)), board((5, 4)), board((5, 4))])
    rs = [reading({"left"})] * 3 + [reading({"down"}), reading({"right"}), reading({"right"})]
    assert choose_with_goal(rs, frames, goal, "vote").action.keys == {"left"}
    b = choose_with_goal(rs, frames, goal, "best-of-n")
    assert b.chosen_index == 3 and b.action.keys == {"down"} and b.confidence == 1 / 6
    v = choose_with_goal(rs, frames, goal, "vote+best-of-n", layout=ARROWS)  # the closer half: 3, 4, 5
    assert v.chosen_index == 3 and v.action.keys == {"right"} and v.confidence == 2 / 3 and len(v.votes) == 6


# ---- config, agent, requests ------------------------------------------------------------------------
@pytest.mark.parametrize("kw,msg", [
    ({"rollout_length": 0.05, "decision_horizon": 0.1}, "at least the decision horizon"), ({"rollouts": 0}, "at least 1"),
    ({"vote": "majority"}, "'joint' or 'per-key'"), ({"goal_mode": "closest"}, "goal_mode must be one of"),
    ({"abstain_below": 1.5}, "between 0 and 1"), ({"decision_horizon": 0}, "positive")])
def test_planner_config_refuses_bad_values_in_one_sentence(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        PlannerConfig(**kw)
    assert str(e.value).count(". ") == 0 and "\n" not in str(e.value)


def test_unsupported_requests_are_refused():
    model = OracleStandIn(ARROWS)
    ctx = ContextClip(board((1, 1))[None], 10)
    with pytest.raises(UnsupportedRequest, match="takes no text prompt"):
        Agent(model, ARROWS, prompt="reach the red square")
    with pytest.raises(UnsupportedRequest, match="takes no text prompt"):
        model(ctx, n=2, prompt="reach the red square")

    class NoGoals(OracleStandIn):
        capabilities = Capabilities(goal_frames=False, native_fps=10.0)

    goal = GoalFrame(board((5, 5)), offset=1.0)
    with pytest.raises(UnsupportedRequest, match="takes no goal frames"):
        Agent(NoGoals(ARROWS), ARROWS, goals=[goal])
    Agent(NoGoals(ARROWS), ARROWS, PlannerConfig(goal_mode="best-of-n"), goals=[goal])  # selection only: fine
    with pytest.raises(ValueError, match="needs a goal frame"):
        Agent(model, ARROWS, PlannerConfig(goal_mode="best-of-n"))


def test_rollout_length_extends_for_horizon_and_goals():
    model = OracleStandIn(ARROWS)
    assert Agent(model, ARROWS).rollout_length() == 0.1
    assert Agent(model, ARROWS, PlannerConfig(rollout_length=0.3)).rollout_length(0.25) == 0.3
    assert Agent(model, ARROWS).rollout_length(0.35) == 0.35
    goal = GoalFrame(board((5, 5)), offset=0.8)
    assert Agent(model, ARROWS, goals=[goal]).rollout_length() == 0.8


def test_agent_reads_the_horizon_frame_and_times_its_stages():
    from games.grid import background, draw_marker, draw_target
    img = background()
    draw_target(img, (6, 2))
    draw_marker(img, (2, 2))
    ctx = ContextClip(render_overlay(img, NOOP, ARROWS)[None], 10)
    agent = Agent(OracleStandIn(ARROWS, corrupt=0.0), ARROWS, PlannerConfig(rollouts=4, seed=1))
    d = agent.decide(ctx)
    assert d.action.keys == {"right"} and d.confidence == 1.0 and d.horizon == 0.1
    assert {"model", "read", "vote", "model.render"} <= set(d.timings) and all(v >= 0 for v in d.timings.values())
    # reading further ahead: a later frame of the same futures, still "right" (target 4 cells away)
    assert agent.decide(ctx, horizon=0.3).action.keys == {"right"}
    # the stand-in sees the state only in the frames: a different frame, a different answer
    img2 = background()
    draw_target(img2, (2, 6))
    draw_marker(img2, (2, 2))
    assert agent.decide(ContextClip(render_overlay(img2, NOOP, ARROWS)[None], 10)).action.keys == {"down"}
    assert math.isclose(agent.rollout_length(), 0.1)
