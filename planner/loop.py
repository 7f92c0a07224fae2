"""The agent loop, capture -> draw last action -> plan -> execute, in two modes.

- ``run_episode_sync``: an in-process game (Gymnasium API) waits while the agent thinks. Frame 0 is
  the reset observation with a no-op overlay; after each step the new observation is overlaid with
  the action just executed (a frame's overlay shows the inputs held during the interval ending at
  it). A no-op decision still advances the game one step.
- ``run_realtime``: the real screen keeps running. Every ``decision_interval`` seconds: grab a frame,
  draw the action the executor really held since the last step, plan, execute. The action will be
  held from ``latency`` after the grab (a running estimate of grab-to-execution time) for one
  interval, so the overlay is read at ``max(decision_horizon, latency + decision_interval / 2)``:
  the predicted frame whose interval holds the middle of the execution interval (with no latency,
  the plain decision horizon). A decision older than ``deadline`` when it is ready is dropped:
  everything is released for that step instead of acting on a stale plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from framepilot.errors import AgentStopped, ConfigError
from overlays import NOOP, Action, Layout, render_overlay
from planner.agent import Agent
from planner.context import ContextBuffer
from planner.vote import Decision


@dataclass
class Step:
    """One step of the loop, handed to ``on_step``.

    Args:
        index: 0-based step number.
        frame: (H, W, 3) uint8 the agent planned from (overlay drawn).
        decision: what the planner decided (None when it was dropped).
        executed: what was really held during the following interval.
        timings: seconds per stage.
        info: the game's info dict after the step (sync), else an empty dict.
    """

    index: int
    frame: np.ndarray
    decision: Decision | None
    executed: Action
    timings: dict
    info: dict = field(default_factory=dict)


@dataclass
class EpisodeResult:
    """How a run went.

    Args:
        success: the game's ``info["success"]`` at the end (None in realtime, where it is unknown).
        steps: steps taken.
        decisions: one per step (realtime: only the decisions that were not dropped).
        timings: one dict of stage -> seconds per step.
        executed: the action really held in each step.
        dropped: decisions dropped for being older than the deadline (realtime).
        latency: the final running estimate of grab-to-execution latency, seconds (realtime).
    """

    success: bool | None
    steps: int
    decisions: list[Decision]
    timings: list[dict]
    executed: list[Action] = field(default_factory=list)
    dropped: int = 0
    latency: float = 0.0

    def mean_timings(self) -> dict:
        """Mean seconds per stage over the steps."""
        keys = sorted({k for t in self.timings for k in t})
        return {k: float(np.mean([t[k] for t in self.timings if k in t])) for k in keys}


def run_episode_sync(env, agent: Agent, layout: Layout, max_steps: int | None = None,
                     on_step: Callable[[Step], None] | None = None, seed: int | None = None,
                     obs: np.ndarray | None = None) -> EpisodeResult:
    """Play one episode of an in-process game; the game waits while the agent thinks.

    Args:
        env: a Gymnasium-style game taking ``overlays.Action`` (``games.make("reach")``), with ``fps``.
        agent: the planner.
        layout: the overlay layout (the game's, e.g. ``Layout.preset(env.layout_name)``).
        max_steps: stop after this many steps (default: the game's ``step_cap``, else 1000).
        on_step: called after every step with a ``Step``.
        seed: reset seed (ignored when ``obs`` is given).
        obs: the observation of a reset the caller already did (to read ``info`` before building the agent).
    Returns:
        ``EpisodeResult``.
    """
    if obs is None:
        obs, info = env.reset(seed=seed)
    else:
        info = {}
    fps = float(getattr(env, "fps", 10))
    max_steps = max_steps if max_steps is not None else (getattr(env, "step_cap", 0) or 1000)
    buffer = ContextBuffer(fps, agent.config.context_seconds)
    frame = render_overlay(obs, NOOP, layout)
    buffer.push(frame)
    decisions, timings, executed_all = [], [], []
    steps, success = 0, bool(info.get("success", False))
    for index in range(max_steps):
        t0 = time.perf_counter()
        context = buffer.clip(agent.fps)
        t1 = time.perf_counter()
        decision = agent.decide(context)
        t2 = time.perf_counter()
        executed = decision.action  # in-process: everything asked for is held
        obs, reward, terminated, truncated, info = env.step(executed)
        t3 = time.perf_counter()
        new_frame = render_overlay(obs, executed, layout)
        buffer.push(new_frame)
        t4 = time.perf_counter()
        stage = {"context": t1 - t0, **decision.timings, "plan": t2 - t1, "execute": t3 - t2, "overlay": t4 - t3}
        decisions.append(decision)
        timings.append(stage)
        executed_all.append(executed)
        steps = index + 1
        success = bool(info.get("success", False))
        if on_step is not None:
            on_step(Step(index, frame, decision, executed, stage, info))
        frame = new_frame
        if terminated or truncated:
            break
    return EpisodeResult(success=success, steps=steps, decisions=decisions, timings=timings, executed=executed_all)


def _within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Whether ``condition()`` becomes true within ``seconds``."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _grab(capture, should_stop: Callable[[], bool] | None):
    """(frame, t) from ``capture``, or None when the run should end (``should_stop`` says so).

    A failed grab just as the program under control ends (its window gone) is the end of the run
    when ``should_stop`` turns True within 0.5 s; otherwise it is a real error and is raised.
    """
    if should_stop is not None and should_stop():
        return None
    try:
        return capture.grab()
    except Exception:
        if should_stop is not None and _within(0.5, should_stop):
            return None
        raise


def run_realtime(capture, executor, agent: Agent, layout: Layout, decision_interval: float = 0.1,
                 deadline: float = 0.5, max_steps: int | None = None, max_seconds: float | None = None,
                 on_step: Callable[[Step], None] | None = None, should_stop: Callable[[], bool] | None = None,
                 latency_smoothing: float = 0.3) -> EpisodeResult:
    """Drive a real screen: capture -> draw last executed action -> plan -> execute, every interval.

    Args:
        capture: has ``grab() -> (frame (H, W, 3) uint8, t seconds of time.monotonic())``
            (``controllers.ScreenCapture``).
        executor: has ``apply(action, dt) -> Action`` really held, and ``release_all()``
            (``controllers.PynputExecutor`` or ``DryRunExecutor``).
        agent: the planner.
        layout: the overlay layout (the executor's).
        decision_interval: seconds between decisions.
        deadline: a decision whose frame is older than this many seconds when it is ready is dropped.
        max_steps, max_seconds: stop after this many steps or seconds (None: no limit).
        on_step: called after every step with a ``Step``.
        should_stop: polled before each step; True ends the run (e.g. the game window exited). When a
            grab fails and ``should_stop`` turns True within 0.5 s, the run ends quietly.
        latency_smoothing: weight of the newest measurement in the running latency estimate.
    Returns:
        ``EpisodeResult`` with ``success=None``. Everything is released when the loop ends, however it ends.
    """
    if not decision_interval > 0:
        raise ConfigError(f"decision_interval must be positive seconds, got {decision_interval}")
    if not deadline > 0:
        raise ConfigError(f"deadline must be positive seconds, got {deadline}")
    if not 0 < latency_smoothing <= 1:
        raise ConfigError(f"latency_smoothing must be in (0, 1], got {latency_smoothing}")
    buffer = ContextBuffer(1.0 / decision_interval, agent.config.context_seconds)
    executed = NOOP  # held during the interval that ends at the next grab
    latency = 0.0
    decisions, timings, executed_all = [], [], []
    dropped = steps = 0
    start = time.monotonic()
    next_tick = start
    try:
        while (max_steps is None or steps < max_steps) and \
                (max_seconds is None or time.monotonic() - start < max_seconds):
            t0 = time.monotonic()
            grabbed = _grab(capture, should_stop)
            if grabbed is None:
                break
            frame, t_grab = grabbed
            t1 = time.monotonic()
            frame = render_overlay(frame, executed, layout)
            buffer.push(frame, t_grab)
            context = buffer.clip(agent.fps)
            t2 = time.monotonic()
            latency_used = latency
            horizon = max(agent.config.decision_horizon, latency + decision_interval / 2)
            decision = agent.decide(context, horizon=horizon)
            t3 = time.monotonic()
            age = t3 - t_grab
            stale = age > deadline
            action = NOOP if stale else decision.action
            try:
                executed = executor.apply(action, max(decision_interval, latency))
            except AgentStopped:
                break
            t4 = time.monotonic()
            latency = (1 - latency_smoothing) * latency + latency_smoothing * (t4 - t_grab) if steps else t4 - t_grab
            stage = {"capture": t1 - t0, "overlay": t2 - t1,
                     **{k: v for k, v in decision.timings.items()}, "plan": t3 - t2, "execute": t4 - t3,
                     "age": age, "latency": latency_used, "horizon": horizon}
            if stale:
                dropped += 1
            else:
                decisions.append(decision)
            timings.append(stage)
            executed_all.append(executed)
            if on_step is not None:
                on_step(Step(steps, frame, None if stale else decision, executed, stage))
            steps += 1
            next_tick += decision_interval
            now = time.monotonic()
            if next_tick > now:  # never past max_seconds: a long interval does not outlive the run
                end = next_tick if max_seconds is None else min(next_tick, start + max_seconds)
                time.sleep(max(0.0, end - now))
            else:  # planning overran the interval: start the next step now, do not try to catch up
                next_tick = now
    finally:
        executor.release_all()
    return EpisodeResult(success=None, steps=steps, decisions=decisions, timings=timings, executed=executed_all,
                         dropped=dropped, latency=latency)


def run_stepped(capture, executor, agent: Agent, layout: Layout, wait_step: Callable[[float], bool],
                max_steps: int = 100, press_seconds: float = 0.05, step_timeout: float = 1.0,
                on_step: Callable[[Step], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                mark_step: Callable[[], None] | None = None) -> EpisodeResult:
    """``sync`` on a real screen: a program that waits for input (a paused game, a turn-based one).

    Each step: grab, draw the action executed last step, plan, then move the pointer one step's
    worth (the decided velocity over one frame interval of the agent, ``1 / agent.fps``: what the
    program's own step would move it), press the decided keys/buttons for ``press_seconds`` and
    release them (the program steps once per press), and wait until
    ``wait_step(timeout)`` says the program has moved on. The executor reports what it really held,
    which is what the next frame's overlay shows. A no-op decision presses nothing; the program does
    not advance and the agent decides again from the same screen.

    Args:
        capture: has ``grab() -> (frame, t)``.
        executor: has ``apply(action, dt) -> Action`` and ``release_all()``.
        wait_step: blocks until the program advanced one step or ``timeout`` seconds passed; returns
            True when it advanced.
        max_steps: decisions at most.
        should_stop: polled before each step; True ends the run (e.g. the program exited).
        mark_step: called just before the input is sent, so ``wait_step`` counts steps from there.
    Returns:
        ``EpisodeResult`` with ``success=None``; everything is released when it ends.
    """
    buffer = ContextBuffer(agent.fps, agent.config.context_seconds)
    executed = NOOP
    decisions, timings, executed_all = [], [], []
    steps = 0
    try:
        while steps < max_steps:
            t0 = time.monotonic()
            grabbed = _grab(capture, should_stop)
            if grabbed is None:
                break
            frame = grabbed[0]
            t1 = time.monotonic()
            frame = render_overlay(frame, executed, layout)
            buffer.push(frame)
            context = buffer.clip(agent.fps)
            t2 = time.monotonic()
            decision = agent.decide(context)
            t3 = time.monotonic()
            if mark_step is not None:
                mark_step()
            try:
                held = executor.apply(decision.action, 1.0 / agent.fps)
                if not held.is_noop:
                    time.sleep(press_seconds)
                    executor.apply(NOOP, press_seconds)
            except AgentStopped:
                break
            executed = held
            t4 = time.monotonic()
            if not held.is_noop:
                wait_step(step_timeout)
            t5 = time.monotonic()
            stage = {"capture": t1 - t0, "overlay": t2 - t1, **decision.timings, "plan": t3 - t2,
                     "execute": t4 - t3, "wait": t5 - t4}
            decisions.append(decision)
            timings.append(stage)
            executed_all.append(executed)
            if on_step is not None:
                on_step(Step(steps, frame, decision, executed, stage))
            steps += 1
    finally:
        executor.release_all()
    return EpisodeResult(success=None, steps=steps, decisions=decisions, timings=timings, executed=executed_all)
