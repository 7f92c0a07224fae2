"""``framepilot play`` and ``framepilot screen``: configs, and the wiring of a game or a screen, a model,
the planner and an executor into ``planner.loop.run``.

- ``play``: a bundled game, in-process (``EnvScreen`` + ``Lockstep``) or in a real window
  (``games.window.WindowProcess`` + ``ScreenCapture`` + ``PynputExecutor``, ``Stepped`` or ``Realtime``),
  for ``episodes`` episodes. In a real window one ``RunControl`` spans the episodes: the stop key and
  the corner failsafe end the whole run (one STOPPED line), the pause key pauses the run.
- ``screen``: a region or window of the real screen, ``Realtime``, safety on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from framepilot.errors import AgentStopped, ConfigError

DEFAULT_GAME = "reach"
DEFAULT_SEED = 10_000_000  # the first held-out evaluation seed: the default run is one no training saw


# ---- configs ------------------------------------------------------------------------------------------
@dataclass
class PlanOptions:
    """What every agent-running subcommand shares."""

    model: str = "bundled"
    prompt: str | None = None
    goal: str | None = None
    goal_offset: float = 0.1
    rollouts: int = 8
    decision_horizon: float | None = None
    rollout_length: float | None = None
    denoise_steps: int | None = None
    frame_steps: int | None = None
    vote: str = "joint"
    plan: str = "vote"
    search_horizon: int = 3
    search_rounds: int = 0
    search_top_k: int = 1
    search_novelty: float = 0.2
    goal_mode: str = "vote"
    abstain_below: float = 0.0
    seed: int = DEFAULT_SEED
    max_steps: int | None = None
    out: str = "runs"
    record: bool = True
    gif: bool = False
    quiet: bool = False

    def check(self) -> None:
        """The option values a planner can run with: each option's kind and range
        (``framepilot.options``), then how they go together."""
        from framepilot.options import check_options
        check_options(self)
        c = self
        if c.rollout_length is not None and c.decision_horizon is not None and c.rollout_length < c.decision_horizon:
            raise ConfigError(f"--rollout-length ({c.rollout_length} s) must be at least --decision-horizon "
                              f"({c.decision_horizon} s)")
        if c.vote not in ("joint", "per-key"):
            raise ConfigError(f"--vote must be joint or per-key, got {c.vote!r}")
        if c.plan not in ("vote", "search"):
            raise ConfigError(f"--plan must be vote or search, got {c.plan!r}")
        if c.plan == "search" and not c.goal and not _game_gives_goal(getattr(c, "game", None)):
            raise ConfigError("--plan search ranks imagined futures against a goal image: pass --goal IMAGE")
        if c.search_top_k > c.rollouts:
            raise ConfigError(f"--search-top-k ({c.search_top_k}) must not exceed --rollouts ({c.rollouts})")
        if c.goal_mode != "vote" and not c.goal and not _game_gives_goal(getattr(c, "game", None)):
            raise ConfigError(f"--goal-mode {c.goal_mode} needs a goal image: pass --goal IMAGE")


def _game_gives_goal(game: str | None) -> bool:
    """True for a bundled game whose episodes come with their goal frame (reach-goal, maze)."""
    import games
    return game in games.GAME_NAMES and games.env_class(game).gives_goal_frame


@dataclass
class PlayConfig(PlanOptions):
    """``framepilot play``: a bundled game, in-process or in a real window."""

    game: str = DEFAULT_GAME
    mode: str = "sync"
    real_window: bool = False
    scale: int = 4
    episodes: int = 1

    def __post_init__(self):
        import games
        self.check()
        if self.game not in games.GAME_NAMES:
            raise ConfigError(f"no bundled game named {self.game!r}; choose one of {', '.join(games.GAME_NAMES)}")
        if self.mode not in ("sync", "realtime"):
            raise ConfigError(f"--mode must be sync or realtime, got {self.mode!r}")
        if self.mode == "realtime" and not self.real_window:
            raise ConfigError("--mode realtime needs --real-window (an in-process game always waits for the agent)")


@dataclass
class ScreenConfig(PlanOptions):
    """``framepilot screen``: the agent on a region or window of the real screen."""

    region: str | None = None
    window: str | None = None
    layout: str | None = None  # None: the checkpoint's own (model_layout)
    dry_run: bool = False
    mouse_scale: float = 1.0
    decision_interval: float = 0.1
    deadline: float = 0.5
    max_seconds: float | None = 60.0
    stop_key: str = "f12"
    pause_key: str = "f11"
    countdown: float = 3.0
    no_focus_guard: bool = False
    no_corner_failsafe: bool = False
    allow_dangerous: bool = False

    def __post_init__(self):
        self.check()
        if self.region and self.window:
            raise ConfigError("pass either --region or --window, not both")


# ---- shared pieces ------------------------------------------------------------------------------------
def make_model(c: PlanOptions, layout):
    from planner.backends import load_world_model
    model = load_world_model(c.model, layout.name, c.denoise_steps, frame_steps=c.frame_steps,
                             game=getattr(c, "game", None))
    if hasattr(model, "check_layout"):
        model.check_layout(layout)
    return model


def model_layout(model: str):
    """The layout a framepilot checkpoint was trained with (``--model`` a checkpoint folder or
    ``bundled:NAME``), so that ``screen`` needs no ``--layout`` for it; ``arrows`` for any other model."""
    from overlays import Layout
    if not model.startswith("http") and (model.startswith("bundled") or Path(model).is_dir()):
        from planner.backends.bundled import resolve_checkpoint
        from worldmodel.checkpoints import read_metadata
        try:
            meta = read_metadata(resolve_checkpoint(model))
        except (OSError, ValueError):
            meta = {}
        if isinstance(meta.get("layout"), dict):
            return Layout.from_dict(meta["layout"], source=f"the checkpoint {model}")
    return Layout.preset("arrows")


def fitted(capture, model):
    """``capture`` with its frames brought to the model's frame contract (``FrameSpec``) before the
    overlay is drawn, for a model that states one; else ``capture`` as it is."""
    from framepilot.frames import FittedCapture
    spec = getattr(model, "frame_spec", None)
    return capture if spec is None else FittedCapture(capture, spec)


def make_agent(c: PlanOptions, model, layout, prompt, goals):
    from planner import Agent, PlannerConfig
    search = None
    if c.plan == "search":
        from planner.search import SearchConfig
        search = SearchConfig(candidates=c.rollouts, horizon=c.search_horizon, rounds=c.search_rounds,
                              elites=min(4, c.rollouts), top_k=c.search_top_k,
                              novelty=c.search_novelty)
    cfg = PlannerConfig(rollouts=c.rollouts, decision_horizon=c.decision_horizon, rollout_length=c.rollout_length,
                        vote=c.vote, abstain_below=c.abstain_below, goal_mode=c.goal_mode, seed=c.seed,
                        plan=c.plan, search=search)
    return Agent(model, layout, cfg, prompt=prompt, goals=goals)


def run_folder(c: PlanOptions, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(c.out) / f"{name}-{stamp}"
    n = 1
    while out.exists():
        n += 1
        out = Path(c.out) / f"{name}-{stamp}-{n}"
    return out


def step_recorder(recorder, status, agent):
    """The ``on_step`` callback: record the step, update the live status."""

    def on_step(step):
        imagined = None
        if agent.last_rollouts is not None and step.decision is not None:
            imagined = agent.last_rollouts.frame_at(step.decision.horizon or agent.decision_horizon)
        if recorder is not None:
            recorder.add(step.frame, step.decision, step.executed, imagined, step.timings,
                         success=step.info.get("success") if step.info else None)
        status.update(step.index, step.decision, step.timings)

    return on_step


def _ms(result) -> dict:
    return {k: round(v * 1000, 2) for k, v in result.mean_timings().items()}


# ---- play ---------------------------------------------------------------------------------------------
def play(c: PlayConfig) -> dict:
    """Play ``c.episodes`` episodes of a bundled game; returns a summary (also printed)."""
    import games
    from overlays import NOOP, Layout, render_overlay
    from planner.world_model import GoalFrame

    env = games.make(c.game, render_mode="rgb_array")
    layout = Layout.preset(env.layout_name)
    goal_pixels = GoalFrame.read_image(c.goal) if c.goal else None  # before the model loads: a bad path costs no wait
    control = None
    if c.real_window:
        from controllers import RunControl, SafetyConfig, check_display
        check_display()
        control = RunControl(SafetyConfig(countdown=0.0)).start()  # hotkeys heard from before the first window
    model = make_model(c, layout)
    results = []
    try:
        for e in range(c.episodes):
            if control is not None:
                control.wait_while_paused()
                if control.stopped:
                    break
            seed = c.seed + e
            obs, info = env.reset(seed=seed)
            prompt = c.prompt if c.prompt is not None else info.get("prompt")
            goal = None
            if goal_pixels is not None:
                goal = GoalFrame.from_image(goal_pixels, obs.shape[:2], layout, c.goal_offset)
            elif info.get("goal_frame") is not None:
                goal = GoalFrame(render_overlay(info["goal_frame"], NOOP, layout), c.goal_offset)
            agent = make_agent(c, model, layout, prompt, (goal,) if goal is not None else ())
            out = run_folder(c, f"play-{c.game}-{seed}")
            title = f"framepilot play {c.game} (seed {seed}) · {model.name} · {c.rollouts} rollouts" + \
                (f" · prompt: {prompt!r}" if prompt else "")
            if c.real_window:
                res = _play_window(c, seed, layout, agent, control, out, title, model.name, prompt)
                if res is None:  # stopped while its window opened: not an episode
                    break
            else:
                res = _play_in_process(c, env, obs, layout, agent, out, title, model.name, seed, prompt)
            res.update(game=c.game, seed=seed, prompt=prompt, recording=str(out) if c.record else None)
            results.append(res)
            if not c.quiet:
                print(f"{c.game} seed {seed}: {'success' if res['success'] else 'no success'} in {res['steps']} "
                      f"steps" + (f"; recording in {out}" if c.record else ""), file=sys.stderr)
    finally:
        if control is not None:
            control.close()
        env.close()
    summary = {"episodes": results,
               "success_rate": sum(bool(r["success"]) for r in results) / len(results) if results else 0.0}
    if control is not None and control.stopped:
        summary["stopped"] = control.stop_reason
        print(f"STOPPED: {control.stop_reason}; the run ended after {len(results)} of {c.episodes} episodes",
              file=sys.stderr, flush=True)
    return summary


def _play_in_process(c: PlayConfig, env, obs, layout, agent, out, title, model_name, seed, prompt) -> dict:
    from planner.loop import run_episode_sync
    from planner.recording import RunRecorder
    from planner.status import LiveStatus
    recorder = RunRecorder(out, fps=env.fps, gif=c.gif) if c.record else None
    try:
        with LiveStatus(title, enabled=not c.quiet) as status:
            r = run_episode_sync(env, agent, layout, max_steps=c.max_steps, obs=obs,
                                 on_step=step_recorder(recorder, status, agent))
            status.set_state("done: success" if r.success else "done: no success")
    finally:
        if recorder is not None:
            recorder.close(game=c.game, seed=seed, prompt=prompt, model=model_name)
    res = {"success": r.success, "steps": r.steps, "timings_ms": _ms(r)}
    if recorder is not None:
        (out / "summary.json").write_text(json.dumps({**json.loads((out / "summary.json").read_text()), **res},
                                                     indent=1))
    return res


def _play_window(c: PlayConfig, seed, layout, agent, control, out, title, model_name, prompt) -> dict | None:
    """One episode in a real window under X11: mss capture, pynput input, safety on, under ``control``
    (None when the run was stopped before the episode's first input)."""
    from pynput.mouse import Controller

    from controllers import PynputExecutor, SafetyConfig
    from games.window import WindowProcess, start_pointer
    from planner.loop import Realtime, Stepped, run
    from planner.recording import RunRecorder
    from planner.status import LiveStatus

    with WindowProcess(c.game, seed=seed, mode=c.mode, scale=c.scale,
                       title=f"framepilot {c.game} {os.getpid()}") as win:
        # each game pixel is scale x scale screen pixels: block-averaged back, the frames are the game's own
        cap = fitted(win.capture(downscale=c.scale), agent.model)
        try:
            r = cap.rect
            # focus follows the pointer; in a mouse game it stays where the window put the episode's start
            # (moving it would be the agent's first input). Never after the corner failsafe fired.
            if control.check_corner():
                return None
            Controller().position = start_pointer(c.game, seed, (r.left, r.top, r.width, r.height), c.scale)
            with LiveStatus(title + " · real window", enabled=not c.quiet) as status:
                safety = SafetyConfig(countdown=0.0, status=status.set_state)
                # the model's arrows are in game pixels, the capture's frame pixels: the executor moves the
                # pointer c.scale screen pixels per game pixel (the capture's downscale)
                executor = PynputExecutor.for_capture(cap, layout, safety)
                control.attach(executor)
                recorder = RunRecorder(out, fps=10, gif=c.gif) if c.record else None
                pacing = Stepped(win.wait_step, win.mark_step) if c.mode == "sync" else Realtime()
                try:
                    if control.stopped:
                        return None
                    with executor:
                        res = run(cap, executor, agent, layout, pacing, max_steps=c.max_steps or 100,
                                  on_step=step_recorder(recorder, status, agent), should_stop=lambda: win.done)
                        win.proc.wait(timeout=5) if win.done else None
                        status.set_state("done: success" if win.success else "done: no success")
                except AgentStopped:  # stopped as the executor started: before this episode's first input
                    if control.stopped:
                        return None
                    raise
                finally:
                    control.detach(executor)
                    if recorder is not None:
                        recorder.close(game=c.game, seed=seed, prompt=prompt, model=model_name,
                                       success=win.success)
        finally:
            cap.close()
        return {"success": win.success, "steps": win.steps, "agent_steps": res.steps, "timings_ms": _ms(res)}


def keep_up_note(res, interval: float, rollouts: int) -> str | None:
    """One sentence when the model did not keep up with the realtime loop (over 5% of decisions
    dropped or a p50 latency past the interval), with the figures and what to change; else None."""
    if not res.steps:
        return None
    lat = sorted(t.get("plan", 0.0) for t in res.timings)
    p50 = lat[len(lat) // 2]
    share = res.dropped / res.steps
    if share <= 0.05 and p50 <= interval:
        return None
    return (f"the model did not keep up: decisions took {p50 * 1000:.0f} ms p50 against a {interval * 1000:.0f} ms "
            f"interval and {share:.0%} were dropped; use fewer --rollouts (now {rollouts}), fewer --denoise-steps, "
            "a longer --decision-interval, or a smaller model")


# ---- screen -------------------------------------------------------------------------------------------
def screen(c: ScreenConfig) -> dict:
    """The agent on a region or window of the real screen (realtime), safety on."""
    from controllers import DryRunExecutor, PynputExecutor, SafetyConfig, ScreenCapture
    from controllers.display import Rect
    from overlays import Layout
    from planner.loop import Realtime, run
    from planner.recording import RunRecorder
    from planner.status import LiveStatus
    from planner.world_model import GoalFrame

    layout = Layout.resolve(c.layout) if c.layout is not None else model_layout(c.model)
    region = Rect.parse(c.region).as_tuple() if c.region else None
    goal_pixels = GoalFrame.read_image(c.goal) if c.goal else None
    pacing = Realtime(c.decision_interval, c.deadline)
    # the screen first: no display, a region off the screen or no such window is said before the model loads
    with ScreenCapture(region=region, window=c.window, include_pointer=layout.has_mouse) as screen_cap:
        model = make_model(c, layout)
        cap = fitted(screen_cap, model)  # the frames the model trained on: its game area, then the overlay
        frame, _ = cap.grab()
        goals = (GoalFrame.from_image(goal_pixels, frame.shape[:2], layout, c.goal_offset),) if c.goal else ()
        agent = make_agent(c, model, layout, c.prompt, goals)
        out = run_folder(c, "screen")
        title = f"framepilot screen {c.window or c.region or 'monitor 1'} · {model.name}"
        status = LiveStatus(title, enabled=not c.quiet)
        if c.dry_run:
            executor = DryRunExecutor(layout, region=cap.rect.as_tuple())
            executor.mouse_scale = c.mouse_scale
        else:
            safety = SafetyConfig(stop_key=c.stop_key, pause_key=c.pause_key, countdown=c.countdown,
                                  focus_guard=not c.no_focus_guard, corner_failsafe=not c.no_corner_failsafe,
                                  deadline=c.deadline, max_steps=c.max_steps, max_seconds=c.max_seconds,
                                  allow_dangerous=c.allow_dangerous, status=status.set_state)
            executor = PynputExecutor.for_capture(cap, layout, safety, mouse_scale=c.mouse_scale)
        recorder = RunRecorder(out, fps=1 / c.decision_interval, gif=c.gif) if c.record else None
        try:
            with executor, status:
                # a window that closes ends the run there (quietly, with its summary), not at --max-seconds
                res = run(cap, executor, agent, layout, pacing, max_steps=c.max_steps, max_seconds=c.max_seconds,
                          on_step=step_recorder(recorder, status, agent), should_stop=screen_cap.window_closed)
                status.set_state("done")
        finally:
            if recorder is not None:
                recorder.close(model=model.name, layout=layout.name)
    summary = {"steps": res.steps, "dropped": res.dropped, "recording": str(out) if c.record else None,
               "timings_ms": _ms(res)}
    if res.stopped:
        summary["stopped"] = res.stopped
    slow = keep_up_note(res, c.decision_interval, c.rollouts)
    if slow:
        summary["too_slow"] = slow
        print(slow, file=sys.stderr, flush=True)
    if c.dry_run:
        summary["dry_run_log"] = list(executor.log)[-20:]
    return summary
