"""The agent loop: grab -> draw the action held since the last grab -> plan -> execute. One loop, ``run``,
for every way framepilot acts; what differs is what it is given.

It is driven by four small interfaces that this module defines (``controllers/`` and ``games/``
implement them; ``planner/`` imports neither):

- a **capture**: ``grab() -> (frame (H, W, 3) uint8, t seconds)``: ``controllers.ScreenCapture`` for a
  real screen or window, ``EnvScreen`` for an in-process game;
- an **executor**: ``apply(action, dt) -> Action`` really held for the next ``dt`` seconds, and
  ``release_all()``; it may raise ``AgentStopped`` (stopped for good) and may have ``paused`` and
  ``stop_reason`` attributes (``controllers.PynputExecutor``, ``DryRunExecutor``, ``EnvScreen``);
- a **pacing**, how one step follows another: ``Lockstep`` (the program waits while the agent thinks:
  an in-process game steps once per ``apply``), ``Stepped`` (a real program that steps once per input:
  press, release, wait until it moved on) or ``Realtime`` (the screen keeps running: a decision every
  interval, stale decisions dropped);
- a **stop signal**, ``should_stop() -> bool``, polled before each step (the game ended, its window
  exited).

A frame's overlay shows the inputs held during the interval that ends at it, so frame ``k`` is the
grabbed frame with the action executed in step ``k - 1`` drawn on it (a no-op for the first).
``run_episode_sync``, ``run_stepped`` and ``run_realtime`` are the three configurations that the
command line uses, kept as functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from framepilot.errors import AgentStopped, ConfigError
from overlays import NOOP, Action, Layout, render_overlay
from planner.agent import Agent
from planner.context import ContextBuffer
from planner.vote import Decision
from planner.world_model import frames_needed


# ---- the interfaces -----------------------------------------------------------------------------------
class Capture(Protocol):
    def grab(self) -> tuple[np.ndarray, float]: ...


class Executor(Protocol):
    def apply(self, action: Action, dt: float) -> Action: ...

    def release_all(self) -> None: ...


@dataclass
class Step:
    """One step of the loop, handed to ``on_step``.

    Args:
        index: 0-based step number.
        frame: (H, W, 3) uint8 the agent planned from (overlay drawn).
        decision: what the planner decided (None when it was dropped).
        executed: what was really held during the following interval.
        timings: seconds per stage.
        info: what ``info()`` said after the step (an in-process game's info dict), else an empty dict.
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
        success: ``info()["success"]`` at the end (None without ``info``: a real screen, where it is unknown).
        steps: steps taken.
        decisions: one per step (realtime: only the decisions that were not dropped).
        timings: one dict of stage -> seconds per step.
        executed: the action really held in each step.
        dropped: decisions dropped for being older than the deadline (realtime).
        latency: the final running estimate of grab-to-execution latency, seconds (realtime).
        stopped: why the executor stopped the run (a stop key, the corner failsafe, a limit), else None.
    """

    success: bool | None
    steps: int
    decisions: list[Decision]
    timings: list[dict]
    executed: list[Action] = field(default_factory=list)
    dropped: int = 0
    latency: float = 0.0
    stopped: str | None = None

    def mean_timings(self) -> dict:
        """Mean seconds per stage over the steps."""
        keys = sorted({k for t in self.timings for k in t})
        return {k: float(np.mean([t[k] for t in self.timings if k in t])) for k in keys}


# ---- an in-process game as a screen ---------------------------------------------------------------
class EnvScreen:
    """A Gymnasium-style game that takes ``overlays.Action`` (``games.make("reach")``) as a capture and an
    executor: ``grab()`` is its newest observation (timed on the game's own clock, ``steps / fps``),
    ``apply()`` steps it once with the action (everything asked for is held). The game waits while the
    agent thinks, so it goes with ``Lockstep``.

    Args:
        env: the game, with ``fps``.
        seed: reset seed (ignored when ``obs`` is given).
        obs: the observation of a reset the caller already did.
    """

    def __init__(self, env, seed: int | None = None, obs: np.ndarray | None = None):
        self.env = env
        if obs is None:
            obs, info = env.reset(seed=seed)
        else:
            info = {}
        self.fps = float(getattr(env, "fps", 10))
        self.obs, self.info = obs, dict(info)
        self.steps = 0
        self.done = False

    def grab(self) -> tuple[np.ndarray, float]:
        return self.obs, self.steps / self.fps

    def apply(self, action: Action, dt: float) -> Action:
        self.obs, _, terminated, truncated, info = self.env.step(action)
        self.info = dict(info)
        self.steps += 1
        self.done = bool(terminated or truncated)
        return action

    def release_all(self) -> None:
        pass

    @property
    def success(self) -> bool:
        return bool(self.info.get("success", False))


# ---- pacing ------------------------------------------------------------------------------------------
class Lockstep:
    """The program waits while the agent thinks and advances one step per ``apply`` (``EnvScreen``).
    Frames are one ``1 / fps`` apart; a no-op decision still advances the game one step."""

    clock_time = False  # frames are pushed one game step apart, not by the grab's time

    def __init__(self, fps: float):
        if not fps > 0:
            raise ConfigError(f"the game's fps must be positive, got {fps}")
        self.fps = float(fps)

    def context_fps(self, agent: Agent) -> float:
        return self.fps

    def horizon(self) -> float | None:
        return None  # the planner's own decision horizon

    def stale(self, age: float) -> bool:
        return False

    def act(self, executor, action: Action, agent: Agent) -> Action:
        return executor.apply(action, 1.0 / self.fps)

    def after(self, held: Action, t_grab: float, t_done: float) -> dict:
        return {}

    def pace(self, until: float | None = None) -> None:
        pass


class Stepped:
    """A real program that steps once per input (a paused or turn-based game): move the pointer one
    step's worth (the decided velocity over one frame interval of the agent, ``1 / agent.fps``: what the
    program's own step would move it), press the decided keys/buttons for ``press_seconds`` and release
    them, then wait until ``wait_step(step_timeout)`` says the program moved on. A no-op decision presses
    nothing; the program does not advance and the agent decides again from the same screen.

    Args:
        wait_step: blocks until the program advanced one step or ``timeout`` seconds passed; True when it did.
        mark_step: called just before the input is sent, so ``wait_step`` counts steps from there.
    """

    clock_time = False

    def __init__(self, wait_step: Callable[[float], bool], mark_step: Callable[[], None] | None = None,
                 press_seconds: float = 0.05, step_timeout: float = 1.0):
        if not press_seconds > 0 or not step_timeout > 0:
            raise ConfigError(f"press_seconds and step_timeout must be positive, got {press_seconds}, {step_timeout}")
        self.wait_step, self.mark_step = wait_step, mark_step
        self.press_seconds, self.step_timeout = float(press_seconds), float(step_timeout)

    def context_fps(self, agent: Agent) -> float:
        return agent.fps

    def horizon(self) -> float | None:
        return None

    def stale(self, age: float) -> bool:
        return False

    def act(self, executor, action: Action, agent: Agent) -> Action:
        if self.mark_step is not None:
            self.mark_step()
        held = executor.apply(action, 1.0 / agent.fps)
        if not held.is_noop:
            time.sleep(self.press_seconds)
            executor.apply(NOOP, self.press_seconds)
        return held

    def after(self, held: Action, t_grab: float, t_done: float) -> dict:
        t = time.monotonic()
        if not held.is_noop:
            self.wait_step(self.step_timeout)
        return {"wait": time.monotonic() - t}

    def pace(self, until: float | None = None) -> None:
        pass


class Realtime:
    """The screen keeps running. Every ``interval`` seconds: grab, draw the action the executor really
    held since the last grab, plan, execute. The action is held from ``latency`` after the grab (a
    running estimate of grab-to-execution time) for one interval, so the overlay is best read at
    ``latency + interval / 2``: the predicted frame whose interval holds the middle of the execution
    interval. The loop reads there only within the future the planner imagines anyway (its rollout
    length, at least the decision horizon; ``--rollout-length`` lends it more): a later frame is more
    to imagine, so a slow decision that lengthened the next rollout made that one slower still
    (unbounded, under load it diverged to 32 s per decision; bounded one interval past the planner's
    horizon, a 15 fps model read three frames ahead instead of one and took 189 ms instead of about
    50 ms). The latency therefore never changes how much is imagined. A decision older than
    ``deadline`` when it is ready is dropped: everything is released for that step instead of acting
    on a stale plan.

    Args:
        interval: seconds between decisions.
        deadline: seconds after its grab at which a decision is stale.
        latency_smoothing: weight of the newest measurement in the running latency estimate.
        decision_horizon: the planner's own horizon, seconds (set by ``run`` from the agent).
        reach: seconds ahead of the last frame the planner's rollouts reach (set by ``run``).
    """

    clock_time = True

    def __init__(self, interval: float = 0.1, deadline: float = 0.5, latency_smoothing: float = 0.3):
        if not (np.isfinite(interval) and interval > 0):
            raise ConfigError(f"decision_interval must be positive seconds, got {interval}")
        if not (np.isfinite(deadline) and deadline > 0):
            raise ConfigError(f"deadline must be positive seconds, got {deadline}")
        if not 0 < latency_smoothing <= 1:
            raise ConfigError(f"latency_smoothing must be in (0, 1], got {latency_smoothing}")
        self.interval, self.deadline, self.smoothing = float(interval), float(deadline), float(latency_smoothing)
        self.decision_horizon = 0.1
        self.reach = 0.1
        self.latency = 0.0
        self._measured = 0
        self._next_tick: float | None = None

    def context_fps(self, agent: Agent) -> float:
        self.decision_horizon = agent.decision_horizon
        # the last imagined frame's time: the rollout length rounded up to whole frames of the model
        self.reach = max(self.decision_horizon, frames_needed(agent.rollout_length(), agent.fps) / agent.fps)
        return 1.0 / self.interval

    def horizon(self) -> float:
        return min(max(self.decision_horizon, self.latency + self.interval / 2), self.reach)

    def stale(self, age: float) -> bool:
        return age > self.deadline

    def act(self, executor, action: Action, agent: Agent) -> Action:
        return executor.apply(action, max(self.interval, self.latency))

    def after(self, held: Action, t_grab: float, t_done: float) -> dict:
        used = self.latency
        measured = t_done - t_grab
        self.latency = (1 - self.smoothing) * self.latency + self.smoothing * measured if self._measured else measured
        self._measured += 1
        self._next_tick = (self._next_tick if self._next_tick is not None else t_grab) + self.interval
        return {"latency": used}

    def pace(self, until: float | None = None) -> None:
        """Sleep until the next decision is due (never past ``until``, the run's end: a long interval
        does not outlive ``max_seconds``)."""
        now = time.monotonic()
        if self._next_tick is None:
            return
        if self._next_tick > now:
            end = self._next_tick if until is None else min(self._next_tick, until)
            time.sleep(max(0.0, end - now))
        else:  # planning overran the interval: start the next step now, do not try to catch up
            self._next_tick = now


# ---- the loop ----------------------------------------------------------------------------------------
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


def run(capture: Capture, executor: Executor, agent: Agent, layout: Layout, pacing, max_steps: int | None = None,
        max_seconds: float | None = None, on_step: Callable[[Step], None] | None = None,
        should_stop: Callable[[], bool] | None = None, info: Callable[[], dict] | None = None) -> EpisodeResult:
    """The agent loop: grab, draw the last executed action, plan, execute, until a limit or a stop.

    Args:
        capture: has ``grab() -> (frame, t)``.
        executor: has ``apply(action, dt) -> Action`` and ``release_all()``; may raise ``AgentStopped``.
            While its ``paused`` is true the loop waits (nothing is planned or pressed, no step counted).
        agent: the planner.
        layout: the overlay layout.
        pacing: ``Lockstep``, ``Stepped`` or ``Realtime``.
        max_steps, max_seconds: stop after this many steps or seconds (None: no limit).
        on_step: called after every step with a ``Step``.
        should_stop: polled before each step; True ends the run. When a grab fails and ``should_stop``
            turns True within 0.5 s, the run ends quietly.
        info: called after each step for the program's own report (an in-process game's info dict);
            its ``success`` is the result's.
    Returns:
        ``EpisodeResult``. Everything is released when the loop ends, however it ends.
    """
    if max_steps is not None and max_steps < 0:
        raise ConfigError(f"max_steps must be at least 0, got {max_steps}")
    if max_seconds is not None and not (np.isfinite(max_seconds) and max_seconds > 0):
        raise ConfigError(f"max_seconds must be a positive number of seconds, got {max_seconds}")
    buffer = ContextBuffer(pacing.context_fps(agent), agent.config.context_seconds)
    if hasattr(agent, "reset"):
        agent.reset()  # a run is an episode: the planner's memory starts empty
    executed = NOOP  # held during the interval that ends at the next grab
    decisions, timings, executed_all = [], [], []
    dropped = steps = 0
    stopped = None
    last_info = info() if info is not None else {}
    start = time.monotonic()

    def out_of_time() -> bool:
        return max_seconds is not None and time.monotonic() - start >= max_seconds

    try:
        while (max_steps is None or steps < max_steps) and not out_of_time():
            stopped = getattr(executor, "stop_reason", None)
            if stopped is not None:
                break
            if getattr(executor, "paused", False):  # paused: the run waits, it does not plan into the void
                if should_stop is not None and should_stop():
                    break
                time.sleep(0.05)
                continue
            t0 = time.monotonic()
            grabbed = _grab(capture, should_stop)
            if grabbed is None:
                break
            frame, t_grab = grabbed
            t1 = time.monotonic()
            frame = render_overlay(frame, executed, layout)
            t2 = time.monotonic()
            buffer.push(frame, t_grab if pacing.clock_time else None)
            context = buffer.clip(agent.fps)
            t3 = time.monotonic()
            horizon = pacing.horizon()
            decision = agent.decide(context, horizon=horizon)
            t4 = time.monotonic()
            age = t4 - t_grab if pacing.clock_time else 0.0
            stale = pacing.stale(age)
            try:
                executed = pacing.act(executor, NOOP if stale else decision.action, agent)
            except AgentStopped as e:
                stopped = str(e)
                break
            t5 = time.monotonic()
            stage = {"capture": t1 - t0, "overlay": t2 - t1, "context": t3 - t2, **decision.timings,
                     "plan": t4 - t3, "execute": t5 - t4, **pacing.after(executed, t_grab, t5)}
            if pacing.clock_time:
                stage.update(age=age, horizon=horizon)
            if stale:
                dropped += 1
            else:
                decisions.append(decision)
            timings.append(stage)
            executed_all.append(executed)
            if info is not None:
                last_info = info()
            if on_step is not None:
                on_step(Step(steps, frame, None if stale else decision, executed, stage, dict(last_info)))
            steps += 1
            pacing.pace(None if max_seconds is None else start + max_seconds)
    finally:
        executor.release_all()
    return EpisodeResult(success=bool(last_info.get("success", False)) if info is not None else None,
                         steps=steps, decisions=decisions, timings=timings, executed=executed_all,
                         dropped=dropped, latency=getattr(pacing, "latency", 0.0), stopped=stopped)


# ---- the three configurations the command line uses ------------------------------------------------
def run_episode_sync(env, agent: Agent, layout: Layout, max_steps: int | None = None,
                     on_step: Callable[[Step], None] | None = None, seed: int | None = None,
                     obs: np.ndarray | None = None) -> EpisodeResult:
    """One episode of an in-process game: ``run`` on ``EnvScreen(env)`` with ``Lockstep``.

    Args:
        env: a Gymnasium-style game taking ``overlays.Action`` (``games.make("reach")``), with ``fps``.
        max_steps: stop after this many steps (default: the game's ``step_cap``, else 1000).
        seed, obs: as ``EnvScreen``.
    """
    screen = EnvScreen(env, seed=seed, obs=obs)
    max_steps = max_steps if max_steps is not None else (getattr(env, "step_cap", 0) or 1000)
    return run(screen, screen, agent, layout, Lockstep(screen.fps), max_steps=max_steps, on_step=on_step,
               should_stop=lambda: screen.done, info=lambda: screen.info)


def run_realtime(capture, executor, agent: Agent, layout: Layout, decision_interval: float = 0.1,
                 deadline: float = 0.5, max_steps: int | None = None, max_seconds: float | None = None,
                 on_step: Callable[[Step], None] | None = None, should_stop: Callable[[], bool] | None = None,
                 latency_smoothing: float = 0.3) -> EpisodeResult:
    """A real screen that keeps running: ``run`` with ``Realtime(decision_interval, deadline)``; the
    result's ``success`` is None (unknown)."""
    return run(capture, executor, agent, layout, Realtime(decision_interval, deadline, latency_smoothing),
               max_steps=max_steps, max_seconds=max_seconds, on_step=on_step, should_stop=should_stop)


def run_stepped(capture, executor, agent: Agent, layout: Layout, wait_step: Callable[[float], bool],
                max_steps: int = 100, press_seconds: float = 0.05, step_timeout: float = 1.0,
                on_step: Callable[[Step], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                mark_step: Callable[[], None] | None = None,
                max_seconds: float | None = None) -> EpisodeResult:
    """``sync`` on a real screen, a program that waits for input: ``run`` with ``Stepped``; the result's
    ``success`` is None (unknown)."""
    return run(capture, executor, agent, layout, Stepped(wait_step, mark_step, press_seconds, step_timeout),
               max_steps=max_steps, max_seconds=max_seconds, on_step=on_step, should_stop=should_stop)
