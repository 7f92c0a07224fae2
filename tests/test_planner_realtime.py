"""The realtime loop on a real screen: a real ``reach`` window (``python -m games.window``) under Xvfb,
captured with mss, driven with real XTEST key events through pynput; the model is the
OracleStandIn test double, which reads the game state from the captured frames."""

from __future__ import annotations

import time

import pytest
import torch
from standin import OracleStandIn

from games.window import WindowProcess
from overlays import Layout, read_overlay
from planner import Agent, PlannerConfig, run_realtime

torch.set_num_threads(1)
ARROWS = Layout.preset("arrows")
TITLE = "framepilot planner realtime"
SCALE = 2


def test_realtime_loop_plays_a_real_window(xvfb_display, human):
    from controllers import PynputExecutor, SafetyConfig
    # seed 135: target in a corner (0, 7), 6 cells away. In the realtime game a key counts in every
    # 0.1 s game step during which it was down at any moment, and the agent's and the game's 10 Hz
    # clocks are not in step, so one 0.1 s hold moves the marker 2 cells; the stand-in imagines 1.
    # Walls absorb that overshoot at a corner target; elsewhere the marker can oscillate around it.
    window = WindowProcess("reach", seed=135, mode="realtime", scale=SCALE, title=TITLE, max_seconds=30,
                           position=(200, 150))
    try:
        cap = window.capture(shape=(128 * SCALE, 128 * SCALE))
        r = cap.rect
        human.warp(r.left + r.width // 2, r.top + r.height // 2)  # focus follows the pointer without a window manager
        safety = SafetyConfig(countdown=0.0, hotkeys=False, guardian=False, exit_handlers=False,
                              status=lambda msg: None)
        executor = PynputExecutor.for_capture(cap, ARROWS, safety)
        agent = Agent(OracleStandIn(ARROWS, corrupt=0.3, seed=0), ARROWS, PlannerConfig(rollouts=8, seed=0, rollout_length=0.3))  # 0.3 s: room to cover the latency
        steps = []
        try:
            result = run_realtime(cap, executor, agent, ARROWS, decision_interval=0.1, deadline=0.5,
                                  max_seconds=20, on_step=steps.append,
                                  should_stop=lambda: window.proc.poll() is not None)
        finally:
            executor.close()
            cap.close()
        window.proc.wait(10)
        time.sleep(0.2)
    finally:
        window.close()
    assert window.lines and window.lines[0]["step"] == 0
    last = window.lines[-1]
    assert last["success"], f"the agent did not reach the target: {window.lines[-3:]}, {len(steps)} agent steps"
    assert result.steps >= 2 and result.success is None
    # the game received the keys the agent executed
    pressed = {k for line in window.lines[1:] for k in line["action"]["keys"]}
    executed = {k for a in result.executed for k in a.keys}
    assert pressed and pressed <= executed
    # each planned frame shows the action the executor really held during the interval before it
    for before, after in zip(steps, steps[1:]):
        assert read_overlay(after.frame, ARROWS).action.keys == before.executed.keys
    # the horizon covers the measured latency; every stage is timed on every step
    for s in steps:
        assert {"capture", "overlay", "model", "read", "vote", "execute"} <= set(s.timings)
        assert s.timings["horizon"] >= 0.1 and s.timings["age"] < 0.5
    assert result.latency > 0
    for s in steps[1:]:  # the horizon covers the running latency estimate known before each step
        assert s.timings["latency"] > 0
        assert s.timings["horizon"] == pytest.approx(min(max(0.1, s.timings["latency"] + 0.05), 0.3))
        assert s.timings["horizon"] >= s.timings["latency"]
    assert not human.keys_down(), "keys were left held after the loop ended"


def test_decisions_older_than_the_deadline_are_dropped(xvfb_display):
    """A model slower than the deadline: every decision is dropped and nothing is ever held."""
    import numpy as np

    from controllers import DryRunExecutor, ScreenCapture
    from planner import Capabilities, Rollouts, WorldModel

    class SlowModel(WorldModel):
        capabilities = Capabilities(native_fps=10.0)

        def _rollout(self, context, n, rollout_length, prompt, goals, seed):
            time.sleep(0.15)
            frames = np.repeat(context.frames[-1][None, None], n, axis=0)
            frames[..., -20:, :, :] = 0  # every key drawn held: an action that must never be executed
            return Rollouts(frames, 10.0)

    with ScreenCapture(region=(0, 0, 128, 128)) as cap:
        executor = DryRunExecutor(ARROWS, region=cap.rect.as_tuple())
        result = run_realtime(cap, executor, Agent(SlowModel(), ARROWS), ARROWS, deadline=0.1, max_steps=3)
    assert result.steps == 3 and result.dropped == 3 and not result.decisions
    assert all(a.is_noop for a in result.executed) and not any("press" in line for line in executor.log)


def test_stepped_loop_moves_the_pointer_one_step_of_velocity(xvfb_display):
    """``sync`` on a real screen: the decided velocity moves the pointer by velocity / fps per step, the
    displacement one step of the game makes (a program that steps per input must see a whole step)."""
    import numpy as np

    from controllers import DryRunExecutor, ScreenCapture
    from overlays import Action, render_overlay
    from planner import Capabilities, Rollouts, WorldModel
    from planner.loop import run_stepped

    mouse = Layout.preset("mouse")

    class Rightward(WorldModel):
        capabilities = Capabilities(native_fps=10.0)

        def _rollout(self, context, n, rollout_length, prompt, goals, seed):
            last = context.frames[-1]
            game = last[:last.shape[0] - mouse.strip_height(last.shape[1])]
            future = render_overlay(np.ascontiguousarray(game), Action(mouse=(200.0, 0.0)), mouse)
            return Rollouts(np.repeat(future[None, None], n, axis=0), 10.0)

    with ScreenCapture(region=(0, 0, 256, 256), include_pointer=False) as cap:
        executor = DryRunExecutor(mouse, region=cap.rect.as_tuple())
        x0, y0 = executor._pointer()
        result = run_stepped(cap, executor, Agent(Rightward(), mouse, PlannerConfig(rollouts=2)), mouse,
                             wait_step=lambda timeout: True, max_steps=3)
    read = [d.action.mouse[0] for d in result.decisions]
    assert result.steps == 3 and all(150 < v < 250 for v in read)  # the arrow read back, near 200 px/s
    x, y = executor._pointer()
    # 0.1 s of motion per step (not the press's 0.05 s), whole pixels: under 1 px lost per step
    assert y == y0 and 0 <= sum(read) / 10.0 - (x - x0) < 3
