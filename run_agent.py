"""framepilot: an agent that acts by imagining video.

It draws a virtual keyboard/mouse overlay onto the frames it sees, asks a video model for several
possible futures, reads the overlay 0.1 s ahead in each, votes, and presses the winning keys.

Examples::

    framepilot                                         # the agent plays `reach` with the shipped model
    framepilot play --game coins --prompt "collect the blue coin" --rollouts 8
    framepilot play --game reach-goal --goal my_goal.png
    framepilot play --game reach --real-window --mode sync        # a real window, real keys (X11)
    framepilot screen --window "My Game" --layout arrows --dry-run
    framepilot record --game reach --episodes 200 --out corpus/reach
    framepilot record --screen --window "My Game" --layout arrows --out corpus/mine/ep_0
    framepilot train --corpus corpus/mine --init-from bundled:arrows --out runs/mine --steps 2000
    framepilot eval --game coins --episodes 40 --json runs/eval.json
    framepilot bench --game reach --episodes 20 --json runs/bench.json

Every subcommand takes ``--config settings.toml`` (keys are option names, e.g. ``rollouts = 4``,
at the top level or under a ``[play]``-style table) and ``--help``. A mistake you can fix (an option,
a file, the display) is said in one sentence with exit code 2; anything else is a bug and shows its
traceback. ``--debug`` anywhere on the line shows the traceback of both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_GAME = "reach"
DEFAULT_SEED = 10_000_000  # the first held-out evaluation seed: the default run is one no training saw


from framepilot.errors import ConfigError as UsageError  # bad input from the command line: one sentence
from framepilot.errors import FramepilotError


# ---- configs ------------------------------------------------------------------------------------------
@dataclass
class PlanOptions:
    """What every agent-running subcommand shares."""

    model: str = "bundled"
    prompt: str | None = None
    goal: str | None = None
    goal_offset: float = 0.1
    rollouts: int = 8
    decision_horizon: float = 0.1
    rollout_length: float | None = None
    denoise_steps: int | None = None
    frame_steps: int | None = None
    vote: str = "joint"
    goal_mode: str = "vote"
    abstain_below: float = 0.0
    seed: int = DEFAULT_SEED
    max_steps: int | None = None
    out: str = "runs"
    record: bool = True
    gif: bool = False
    quiet: bool = False


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
        if self.game not in games.GAME_NAMES:
            raise UsageError(f"no bundled game named {self.game!r}; choose one of {', '.join(games.GAME_NAMES)}")
        if self.mode not in ("sync", "realtime"):
            raise UsageError(f"--mode must be sync or realtime, got {self.mode!r}")
        if self.mode == "realtime" and not self.real_window:
            raise UsageError("--mode realtime needs --real-window (an in-process game always waits for the agent)")
        if self.episodes < 1:
            raise UsageError(f"--episodes must be at least 1, got {self.episodes}")
        _check_plan(self)


@dataclass
class ScreenConfig(PlanOptions):
    """``framepilot screen``: the agent on a region or window of the real screen."""

    region: str | None = None
    window: str | None = None
    layout: str = "arrows"
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
        if self.region and self.window:
            raise UsageError("pass either --region or --window, not both")
        if not self.mouse_scale > 0:
            raise UsageError(f"--mouse-scale must be a positive number of screen pixels per overlay pixel, "
                             f"got {self.mouse_scale}")
        _check_plan(self)


@dataclass
class BenchConfig:
    """``framepilot bench``: rollouts against decision latency (and success on a bundled game)."""

    model: str = "bundled"
    game: str = DEFAULT_GAME
    rollouts: str = "1,2,4,8,16,32"
    denoise_steps: str = "3"
    frame_steps: int | None = None
    episodes: int = 20
    decisions: int = 30
    seed: int = DEFAULT_SEED
    no_success: bool = False
    json: str = "runs/bench.json"
    plot: str | None = None


def _check_plan(c: PlanOptions) -> None:
    if c.rollouts < 1:
        raise UsageError(f"--rollouts must be at least 1, got {c.rollouts}")
    if c.decision_horizon <= 0:
        raise UsageError(f"--decision-horizon must be positive seconds, got {c.decision_horizon}")
    if c.rollout_length is not None and c.rollout_length < c.decision_horizon:
        raise UsageError(f"--rollout-length ({c.rollout_length} s) must be at least --decision-horizon "
                         f"({c.decision_horizon} s)")
    if c.vote not in ("joint", "per-key"):
        raise UsageError(f"--vote must be joint or per-key, got {c.vote!r}")
    if c.goal_mode != "vote" and not c.goal and getattr(c, "game", None) != "reach-goal":
        raise UsageError(f"--goal-mode {c.goal_mode} needs a goal image: pass --goal IMAGE")
    if c.denoise_steps is not None and c.denoise_steps < 1:
        raise UsageError(f"--denoise-steps must be at least 1, got {c.denoise_steps}")
    if c.frame_steps is not None and c.frame_steps < 1:
        raise UsageError(f"--frame-steps must be at least 1, got {c.frame_steps}")
    if c.goal_offset <= 0:
        raise UsageError(f"--goal-offset must be positive seconds, got {c.goal_offset}")


# ---- shared pieces ------------------------------------------------------------------------------------
def read_goal_image(path: str):
    """The goal image at ``path`` as (H, W, 3) uint8 RGB; a missing or unreadable file is a ``UsageError``
    (called before the model loads, so a bad path costs no wait)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"goal image {path} does not exist; pass the path of a PNG or JPEG screenshot")
    try:
        with Image.open(p) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise UsageError(f"goal image {path} could not be read ({type(e).__name__}): pass an intact PNG or JPEG") from None


def fit_goal_image(img, frame_shape: tuple[int, int], layout):
    """A goal image (``read_goal_image``) as an overlaid frame of ``frame_shape`` (game frame H, W).

    A screenshot of the game (any size: it is resized) gets a no-op overlay; an image that already
    has the overlay strip (the shape of an overlaid frame) is used as it is.
    """
    import numpy as np
    from PIL import Image

    from overlays import NOOP, render_overlay
    h, w = frame_shape
    framed_h = h + layout.strip_height(w)
    if img.shape[:2] == (framed_h, w):
        return img
    if img.shape[:2] != (h, w):
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    return render_overlay(img, NOOP, layout)


def make_model(c, layout):
    from planner.backends import load_world_model
    model = load_world_model(c.model, layout.name, c.denoise_steps, frame_steps=c.frame_steps)
    if hasattr(model, "check_layout"):
        model.check_layout(layout)
    return model


def make_agent(c: PlanOptions, model, layout, prompt, goals):
    from planner import Agent, PlannerConfig
    cfg = PlannerConfig(rollouts=c.rollouts, decision_horizon=c.decision_horizon, rollout_length=c.rollout_length,
                        vote=c.vote, abstain_below=c.abstain_below, goal_mode=c.goal_mode, seed=c.seed)
    return Agent(model, layout, cfg, prompt=prompt, goals=goals)


def run_folder(c: PlanOptions, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(c.out) / f"{name}-{stamp}"
    n = 1
    while out.exists():
        n += 1
        out = Path(c.out) / f"{name}-{stamp}-{n}"
    return out


def step_recorder(recorder, status, agent, success_of=None):
    """The ``on_step`` callback: record the step, update the live status."""

    def on_step(step):
        imagined = None
        if agent.last_rollouts is not None and step.decision is not None:
            imagined = agent.last_rollouts.frame_at(step.decision.horizon or agent.config.decision_horizon)
        if recorder is not None:
            recorder.add(step.frame, step.decision, step.executed, imagined, step.timings,
                         success=step.info.get("success") if step.info else None)
        status.update(step.index, step.decision, step.timings)

    return on_step


# ---- play ---------------------------------------------------------------------------------------------
def play(c: PlayConfig) -> dict:
    """Play ``c.episodes`` episodes of a bundled game; returns a summary (also printed)."""
    import games
    from overlays import Layout
    from planner.recording import RunRecorder
    from planner.status import LiveStatus
    from planner.world_model import GoalFrame

    env = games.make(c.game, render_mode="rgb_array")
    layout = Layout.preset(env.layout_name)
    goal_pixels = read_goal_image(c.goal) if c.goal else None
    model = make_model(c, layout)
    results = []
    for e in range(c.episodes):
        seed = c.seed + e
        obs, info = env.reset(seed=seed)
        prompt = c.prompt if c.prompt is not None else info.get("prompt")
        goal_img = None
        if c.goal:
            goal_img = fit_goal_image(goal_pixels, obs.shape[:2], layout)
        elif info.get("goal_frame") is not None:
            from overlays import NOOP, render_overlay
            goal_img = render_overlay(info["goal_frame"], NOOP, layout)
        out = run_folder(c, f"play-{c.game}-{seed}")
        title = f"framepilot play {c.game} (seed {seed}) · {model.name} · {c.rollouts} rollouts" + \
            (f" · prompt: {prompt!r}" if prompt else "")
        if c.real_window:
            res = _play_window(c, seed, layout, model, prompt, goal_img, out, title)
        else:
            goals = (GoalFrame(goal_img, c.goal_offset),) if goal_img is not None else ()
            agent = make_agent(c, model, layout, prompt, goals)
            from planner.loop import run_episode_sync
            recorder = RunRecorder(out, fps=env.fps, gif=c.gif) if c.record else None
            try:
                with LiveStatus(title, enabled=not c.quiet) as status:
                    r = run_episode_sync(env, agent, layout, max_steps=c.max_steps, obs=obs,
                                         on_step=step_recorder(recorder, status, agent))
                    status.set_state("done: success" if r.success else "done: no success")
            finally:
                if recorder is not None:
                    recorder.close(game=c.game, seed=seed, prompt=prompt, model=model.name)
            res = {"success": r.success, "steps": r.steps, "timings_ms": {k: round(v * 1000, 2) for k, v in
                                                                            r.mean_timings().items()}}
            if recorder is not None:
                (out / "summary.json").write_text(json.dumps({**json.loads((out / "summary.json").read_text()),
                                                              **res}, indent=1))
        res.update(game=c.game, seed=seed, prompt=prompt, recording=str(out) if c.record else None)
        results.append(res)
        if not c.quiet:
            print(f"{c.game} seed {seed}: {'success' if res['success'] else 'no success'} in {res['steps']} steps"
                  + (f"; recording in {out}" if c.record else ""), file=sys.stderr)
    env.close()
    return {"episodes": results, "success_rate": sum(bool(r["success"]) for r in results) / len(results)}


def start_pointer(game: str, seed, rect: tuple[int, int, int, int], scale: int) -> tuple[int, int]:
    """Screen position for the OS pointer when an agent starts an episode in a real game window at
    ``rect`` (left, top, width, height): a mouse game's own start pointer (``games.window`` warps the
    pointer there), the window's centre otherwise."""
    import games
    left, top, width, height = rect
    env = games.make(game)
    if env.layout_name != "mouse":
        return left + width // 2, top + height // 2
    env.reset(seed=seed)
    hx, hy = env.hotspot
    return left + hx * scale + scale // 2, top + hy * scale + scale // 2


def _play_window(c: PlayConfig, seed, layout, model, prompt, goal_img, out, title) -> dict:
    """One episode in a real window under X11: mss capture, pynput input, safety on."""
    from controllers import PynputExecutor, SafetyConfig, ScreenCapture, check_display
    from games.window import WindowProcess
    from planner.loop import run_realtime, run_stepped
    from planner.recording import RunRecorder
    from planner.status import LiveStatus
    from planner.world_model import GoalFrame

    check_display()
    wtitle = f"framepilot {c.game} {os.getpid()}"
    with WindowProcess(c.game, seed=seed, mode=c.mode, scale=c.scale, title=wtitle) as win:
        cap = None
        deadline = time.monotonic() + 20
        win.wait_shown(20)  # what lies there before its first frame is not the game (an exit is said below)
        while cap is None:
            try:
                # the game window hides the OS cursor and draws its own pointer: drawing one more would
                # put a second pointer, of another size, into the frames the model sees. Each game pixel
                # is scale x scale screen pixels: block-averaged back, the frames are the game's own.
                cap = ScreenCapture(window=wtitle, include_pointer=False, downscale=c.scale)
                frame, _ = cap.grab()
                if frame.max() == 0:
                    cap.close()
                    cap = None
                    raise LookupError
            except Exception:
                if win.proc.poll() is not None:
                    raise UsageError(f"the game window exited before it could be captured: {win.error()[-300:]}")
                if time.monotonic() > deadline:
                    raise UsageError("the game window did not appear within 20 s; check that the X display works")
                time.sleep(0.1)
        try:
            # the frames are at the game's size, so the goal (an overlaid game frame) is used as it is
            goals = (GoalFrame(goal_img, c.goal_offset),) if goal_img is not None else ()
            agent = make_agent(c, model, layout, prompt, goals)
            r = cap.rect
            from pynput.mouse import Controller
            # focus follows the pointer; in a mouse game it stays where the window put the episode's
            # start (moving it would be the agent's first input)
            Controller().position = start_pointer(c.game, seed, (r.left, r.top, r.width, r.height), c.scale)
            safety = SafetyConfig(countdown=0.0, status=lambda msg: None)
            # the model's arrows are in game pixels, the capture's frame pixels: the executor moves the
            # pointer c.scale screen pixels per game pixel (the capture's downscale)
            executor = PynputExecutor.for_capture(cap, layout, safety)
            recorder = RunRecorder(out, fps=10, gif=c.gif) if c.record else None
            try:
                with executor, LiveStatus(title + " · real window", enabled=not c.quiet) as status:
                    cb = step_recorder(recorder, status, agent)
                    max_steps = c.max_steps or 100
                    if c.mode == "sync":
                        res = run_stepped(cap, executor, agent, layout, win.wait_step, max_steps=max_steps,
                                          on_step=cb, should_stop=lambda: win.done, mark_step=win.mark_step)
                    else:
                        res = run_realtime(cap, executor, agent, layout, max_steps=max_steps, on_step=cb,
                                           should_stop=lambda: win.done)
                    win.proc.wait(timeout=5) if win.done else None
                    status.set_state("done: success" if win.success else "done: no success")
            finally:
                if recorder is not None:
                    recorder.close(game=c.game, seed=seed, prompt=prompt, model=model.name, success=win.success)
        finally:
            cap.close()
        return {"success": win.success, "steps": win.steps, "agent_steps": res.steps,
                "timings_ms": {k: round(v * 1000, 2) for k, v in res.mean_timings().items()}}


# ---- screen -------------------------------------------------------------------------------------------
def screen(c: ScreenConfig) -> dict:
    """The agent on a region or window of the real screen (realtime), safety on."""
    from controllers import DryRunExecutor, PynputExecutor, SafetyConfig, ScreenCapture
    from overlays import Layout
    from planner.loop import run_realtime
    from planner.recording import RunRecorder
    from planner.status import LiveStatus
    from planner.world_model import GoalFrame

    layout = Layout.resolve(c.layout)
    region = None
    if c.region:
        try:
            region = tuple(int(v) for v in c.region.split(","))
            assert len(region) == 4
        except (ValueError, AssertionError):
            raise UsageError(f"--region must be L,T,W,H in screen pixels, e.g. 0,0,640,480; got {c.region!r}") from None
    goal_pixels = read_goal_image(c.goal) if c.goal else None
    # the screen first: no display, a region off the screen or no such window is said before the model loads
    with ScreenCapture(region=region, window=c.window, include_pointer=layout.has_mouse) as cap:
        model = make_model(c, layout)
        frame, _ = cap.grab()
        goals = ()
        if c.goal:
            goals = (GoalFrame(fit_goal_image(goal_pixels, frame.shape[:2], layout), c.goal_offset),)
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
                res = run_realtime(cap, executor, agent, layout, decision_interval=c.decision_interval,
                                   deadline=c.deadline, max_steps=c.max_steps, max_seconds=c.max_seconds,
                                   on_step=step_recorder(recorder, status, agent))
                status.set_state("done")
        finally:
            if recorder is not None:
                recorder.close(model=model.name, layout=layout.name)
    summary = {"steps": res.steps, "dropped": res.dropped, "recording": str(out) if c.record else None,
               "timings_ms": {k: round(v * 1000, 2) for k, v in res.mean_timings().items()}}
    if c.dry_run:
        summary["dry_run_log"] = list(executor.log)[-20:]
    return summary


# ---- bench --------------------------------------------------------------------------------------------
def bench(c: BenchConfig, progress: bool = True) -> dict:
    """Rollouts (and denoising steps) against decision latency p50/p95 and success on a bundled game."""
    import platform

    import numpy as np
    import torch

    import games
    from overlays import NOOP, Layout, render_overlay
    from planner import ContextClip
    from training.evaluate import episode_inputs, play_agent, wilson

    try:
        rollouts = [int(v) for v in c.rollouts.split(",")]
        steps_list = [int(v) for v in c.denoise_steps.split(",")]
    except ValueError:
        raise UsageError("--rollouts and --denoise-steps take comma-separated whole numbers, e.g. 1,2,4,8") from None
    if c.game not in games.GAME_NAMES:
        raise UsageError(f"no bundled game named {c.game!r}; choose one of {', '.join(games.GAME_NAMES)}")
    env = games.make(c.game)
    layout = Layout.preset(env.layout_name)
    rows = []
    total = len(rollouts) * len(steps_list)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total * (c.decisions + (0 if c.no_success else c.episodes)), desc="bench", unit="run")
    from planner.backends import load_world_model
    for ds in steps_list:
        model = load_world_model(c.model, layout.name, ds, frame_steps=c.frame_steps)
        for n in rollouts:
            from planner import Agent, PlannerConfig
            obs, info = env.reset(seed=c.seed)
            prompt, goals = episode_inputs(env, info, layout, 0.1)
            agent = Agent(model, layout, PlannerConfig(rollouts=n, seed=0), prompt=prompt, goals=goals)
            clip = ContextClip(np.stack([render_overlay(obs, NOOP, layout)] * 10), 10.0)
            agent.decide(clip)  # warm-up
            lat = []
            for _ in range(c.decisions):
                t0 = time.perf_counter()
                agent.decide(clip)
                lat.append(time.perf_counter() - t0)
                if bar is not None:
                    bar.update(1)
            row = {"rollouts": n, "denoise_steps": ds, "frame_steps": getattr(model, "frame_steps", None),
                   "latency_ms": {"p50": round(float(np.percentile(lat, 50)) * 1000, 1),
                                  "p95": round(float(np.percentile(lat, 95)) * 1000, 1)},
                   "success_rate": None}
            if not c.no_success:
                ok = 0
                for i in range(c.episodes):
                    s, *_ = play_agent(env, model, layout, c.seed + i, n, denoise_seed=c.seed + i)
                    ok += s
                    if bar is not None:
                        bar.update(1)
                row["success_rate"] = round(ok / c.episodes, 4)
                row["ci95"] = wilson(ok, c.episodes)
                row["episodes"] = c.episodes
            rows.append(row)
    if bar is not None:
        bar.close()
    device = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        device = f"{cpu}, {torch.get_num_threads()} threads" if not torch.cuda.is_available() else device
    except (OSError, StopIteration):
        pass
    result = {"device": device, "model": c.model, "game": c.game, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    Path(c.json).parent.mkdir(parents=True, exist_ok=True)
    Path(c.json).write_text(json.dumps(result, indent=1))
    plot = c.plot or str(Path(c.json).with_suffix(".png"))
    write_bench_plot(result, plot)
    result["plot"] = plot
    return result


def write_bench_plot(result: dict, path: str) -> None:
    """A PNG: decision latency p50 (and p95) and success rate against rollouts, one line per denoising steps."""
    from PIL import Image, ImageDraw
    rows = result["rows"]
    W, H, m = 640, 360, 56
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    ns = sorted({r["rollouts"] for r in rows})
    lat_max = max(r["latency_ms"]["p95"] for r in rows) * 1.1 or 1
    import math
    lx = [math.log2(n) for n in ns]
    x_of = (lambda n: m + (math.log2(n) - min(lx)) / max(1e-9, max(lx) - min(lx)) * (W - 2 * m)) if len(ns) > 1 \
        else (lambda n: W / 2)
    y_lat = lambda v: H - m - v / lat_max * (H - 2 * m)  # noqa: E731
    y_suc = lambda v: H - m - v * (H - 2 * m)  # noqa: E731
    d.line([(m, m), (m, H - m), (W - m, H - m), (W - m, m)], fill="black")
    for n in ns:
        d.line([(x_of(n), H - m), (x_of(n), H - m + 4)], fill="black")
        d.text((x_of(n) - 6, H - m + 8), str(n), fill="black")
    for i in range(5):
        v = lat_max * i / 4
        d.text((4, y_lat(v) - 6), f"{v:.0f}", fill="blue")
        d.text((W - m + 6, y_suc(i / 4) - 6), f"{i * 25}%", fill="darkgreen")
    d.text((W / 2 - 30, H - 20), "rollouts", fill="black")
    d.text((4, 8), "latency ms (blue: p50, light: p95)", fill="blue")
    d.text((W - 200, 8), "success rate (green)", fill="darkgreen")
    d.text((m, 24), f"{result['model']} on {result['game']} - {result['device']}"[:95], fill="black")
    for k, ds in enumerate(sorted({r["denoise_steps"] for r in rows})):
        rs = sorted((r for r in rows if r["denoise_steps"] == ds), key=lambda r: r["rollouts"])
        p50 = [(x_of(r["rollouts"]), y_lat(r["latency_ms"]["p50"])) for r in rs]
        p95 = [(x_of(r["rollouts"]), y_lat(r["latency_ms"]["p95"])) for r in rs]
        if len(rs) > 1:
            d.line(p95, fill=(150, 150, 255), width=1)
            d.line(p50, fill="blue", width=2)
        for p in p50:
            d.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill="blue")
        d.text((p50[-1][0] - 40, p50[-1][1] - 14), f"{ds} steps", fill="blue")
        suc = [(x_of(r["rollouts"]), y_suc(r["success_rate"])) for r in rs if r["success_rate"] is not None]
        if len(suc) > 1:
            d.line(suc, fill="darkgreen", width=2)
        for p in suc:
            d.rectangle([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill="darkgreen")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


# ---- record, train, eval ------------------------------------------------------------------------------
def record(a: argparse.Namespace) -> dict:
    """Scripted demonstrator episodes of a bundled game, or a person playing the real screen."""
    if a.screen:
        from controllers.human_recorder import record_human
        from overlays import Layout
        region = None
        if a.region:
            try:
                region = tuple(int(v) for v in a.region.split(","))
                assert len(region) == 4
            except (ValueError, AssertionError):
                raise UsageError(f"--region must be L,T,W,H in screen pixels, got {a.region!r}") from None
        size = None
        if a.size:
            try:
                size = tuple(int(v) for v in a.size.split(","))
            except ValueError:
                raise UsageError(f"--size must be H,W in pixels, got {a.size!r}") from None
        return record_human(a.out, Layout.resolve(a.layout), window=a.window, region=region, fps=a.fps,
                            seconds=a.seconds, size=size, prompt=a.prompt, game=a.game or "screen")
    from training.corpus import record_scripted
    import games
    if not a.game or a.game not in games.GAME_NAMES:
        raise UsageError(f"record needs --game, one of {', '.join(games.GAME_NAMES)} (or --screen to record yourself)")
    return record_scripted(a.game, a.episodes, a.out, seed0=a.seed0, noise=a.noise)


# ---- the command line ---------------------------------------------------------------------------------
def _add_plan_options(p: argparse.ArgumentParser, d: PlanOptions) -> None:
    g = p.add_argument_group("planning")
    g.add_argument("--model", default=d.model, help="bundled (the shipped model), bundled:arrows, a checkpoint "
                   "folder, a diffusers hub id, a local diffusers folder, a single .safetensors file, or http://HOST:PORT "
                   "(a model served by framepilot serve; token in $FRAMEPILOT_TOKEN) (default: %(default)s)")
    g.add_argument("--prompt", default=d.prompt, help="text prompt (default: the game's own prompt)")
    g.add_argument("--goal", default=d.goal, help="goal image (PNG/JPEG screenshot) to steer toward (default: none)")
    g.add_argument("--goal-offset", type=float, default=d.goal_offset, help="seconds after now at which the goal "
                   "should be reached (default: %(default)s)")
    g.add_argument("--rollouts", type=int, default=d.rollouts, help="imagined futures per decision (default: %(default)s)")
    g.add_argument("--decision-horizon", type=float, default=d.decision_horizon, help="seconds ahead at which the "
                   "overlay is read (default: %(default)s)")
    g.add_argument("--rollout-length", type=float, default=d.rollout_length, help="seconds of future to imagine "
                   "(default: the decision horizon, or the goal offset)")
    g.add_argument("--denoise-steps", type=int, default=d.denoise_steps, help="denoising steps (default: the model's)")
    g.add_argument("--frame-steps", type=int, default=d.frame_steps, help="the bundled model's denoising steps for the "
                   "imagined game area; the overlay, where the action is read, takes --denoise-steps (default: 1)")
    g.add_argument("--vote", default=d.vote, choices=("joint", "per-key"), help="(default: %(default)s)")
    g.add_argument("--goal-mode", default=d.goal_mode, choices=("vote", "best-of-n", "vote+best-of-n"),
                   help="how a goal image picks the action (default: %(default)s)")
    g.add_argument("--abstain-below", type=float, default=d.abstain_below, help="do nothing when fewer than this "
                   "fraction of rollouts agree (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="episode and sampling seed (default: %(default)s, a held-out seed)")
    g.add_argument("--max-steps", type=int, default=d.max_steps, help="stop after this many steps (default: the game's cap)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=d.out, help="folder for run recordings (default: %(default)s)")
    o.add_argument("--no-record", dest="record", action="store_false", help="write no recording")
    o.add_argument("--gif", action="store_true", help="also write run.gif")
    o.add_argument("--quiet", action="store_true", help="no live status")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="framepilot", description=__doc__, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    pp = sub.add_parser("play", help="the agent plays a bundled game", formatter_class=fmt, description="""\
The agent plays a bundled game with a world model (the shipped one by default).

    framepilot play --game coins --prompt "collect the blue coin"
    framepilot play --game reach-goal --goal goal.png --rollouts 16
    framepilot play --game reach --real-window --mode realtime""")
    d = PlayConfig()
    pp.add_argument("--game", default=d.game, help="reach, reach-goal, coins or buttons (default: %(default)s)")
    pp.add_argument("--episodes", type=int, default=d.episodes, help="episodes, seeds counting up (default: %(default)s)")
    pp.add_argument("--real-window", action="store_true", help="play the game in a real window through mss and pynput")
    pp.add_argument("--mode", default=d.mode, choices=("sync", "realtime"), help="sync: the game waits for the "
                    "agent; realtime: it runs at 10 steps/s (needs --real-window) (default: %(default)s)")
    pp.add_argument("--scale", type=int, default=d.scale, help="window pixels per game pixel (default: %(default)s)")
    _add_plan_options(pp, d)

    ps = sub.add_parser("screen", help="the agent on your real screen (X11)", formatter_class=fmt, description="""\
The agent on a region or window of the real screen, in realtime, with safety on:
F12 stops (releases everything), F11 pauses/resumes, the pointer in a screen corner stops,
a focus guard pauses when the window loses focus, and dangerous combinations are refused.

    framepilot screen --window "My Game" --layout arrows --prompt "reach the flag"
    framepilot screen --region 0,0,640,480 --layout wasd --dry-run""")
    d = ScreenConfig()
    ps.add_argument("--region", default=None, help="L,T,W,H in screen pixels")
    ps.add_argument("--window", default=None, help="window title (exact, else a case-insensitive part of it)")
    ps.add_argument("--layout", default=d.layout, help="arrows, wasd, mouse, desktop or a layout JSON file (default: %(default)s)")
    ps.add_argument("--dry-run", action="store_true", help="send no input; log what would have been sent")
    ps.add_argument("--mouse-scale", type=float, default=d.mouse_scale,
                    help="screen pixels per pixel of the overlay's mouse velocity: the window's size over the frame "
                         "size the model learnt on, e.g. 2 for a bundled game at twice its size (default: %(default)s)")
    ps.add_argument("--decision-interval", type=float, default=d.decision_interval, help="seconds between decisions (default: %(default)s)")
    ps.add_argument("--deadline", type=float, default=d.deadline, help="drop decisions older than this and release (default: %(default)s)")
    ps.add_argument("--max-seconds", type=float, default=d.max_seconds, help="stop after this long (default: %(default)s)")
    ps.add_argument("--stop-key", default=d.stop_key, help="emergency stop hotkey (default: %(default)s)")
    ps.add_argument("--pause-key", default=d.pause_key, help="pause/resume hotkey (default: %(default)s)")
    ps.add_argument("--countdown", type=float, default=d.countdown, help="seconds before the agent acts (default: %(default)s)")
    ps.add_argument("--no-focus-guard", action="store_true", help="do not pause when the window loses focus")
    ps.add_argument("--no-corner-failsafe", action="store_true", help="do not stop when the pointer hits a corner")
    ps.add_argument("--allow-dangerous", action="store_true", help="allow super, alt+f4, ctrl+alt+delete and similar")
    _add_plan_options(ps, d)

    pr = sub.add_parser("record", help="record a corpus: scripted episodes or yourself playing", formatter_class=fmt,
                        description="""\
Record episodes in framepilot's corpus format (frames with the overlay, prompt, goal, inputs).

    framepilot record --game coins --episodes 500 --out corpus/coins
    framepilot record --screen --window "My Game" --layout arrows --out corpus/mine/ep_0 --size 160,128""")
    pr.add_argument("--game", default=None, help="a bundled game (scripted) or a name stored with --screen")
    pr.add_argument("--episodes", type=int, default=100, help="scripted episodes (default: %(default)s)")
    pr.add_argument("--out", required=False, default="corpus", help="corpus folder (scripted) or episode folder (--screen) (default: %(default)s)")
    pr.add_argument("--seed0", type=int, default=0, help="first training seed (default: %(default)s)")
    pr.add_argument("--noise", type=float, default=0.1, help="demonstrator noise (default: %(default)s)")
    pr.add_argument("--screen", action="store_true", help="record a person playing on the real screen (Esc stops)")
    pr.add_argument("--window", default=None, help="with --screen: window title")
    pr.add_argument("--region", default=None, help="with --screen: L,T,W,H")
    pr.add_argument("--layout", default="arrows", help="with --screen: the keys to hear and draw (default: %(default)s)")
    pr.add_argument("--fps", type=float, default=10.0, help="with --screen: frames per second (default: %(default)s)")
    pr.add_argument("--seconds", type=float, default=None, help="with --screen: stop after this long (default: Esc only)")
    pr.add_argument("--size", default=None, help="with --screen: H,W to store frames at (default: captured size)")
    pr.add_argument("--prompt", default=None, help="with --screen: what the player was asked to do")

    pt = sub.add_parser("train", help="train or fine-tune the bundled world model", formatter_class=fmt,
                        description=__import__("training.train", fromlist=["__doc__"]).__doc__)
    from training.train import add_arguments as train_args
    train_args(pt)

    pe = sub.add_parser("eval", help="closed-loop evaluation against baselines", formatter_class=fmt,
                        description=__import__("training.evaluate", fromlist=["__doc__"]).__doc__)
    from training.evaluate import add_arguments as eval_args
    eval_args(pe)

    pb = sub.add_parser("bench", help="rollouts vs decision latency and success; JSON and a PNG plot",
                        formatter_class=fmt, description="""\
Decision latency p50/p95 for each rollout count (and denoising steps) on one frame of a bundled
game, and, in sync mode, the success rate over held-out episodes; writes JSON and a PNG plot.

    framepilot bench --game reach --rollouts 1,2,4,8,16,32 --episodes 20
    framepilot bench --no-success --denoise-steps 1,3 --json runs/latency.json""")
    d = BenchConfig()
    pb.add_argument("--model", default=d.model, help="(default: %(default)s)")
    pb.add_argument("--game", default=d.game, help="(default: %(default)s)")
    pb.add_argument("--rollouts", default=d.rollouts, help="(default: %(default)s)")
    pb.add_argument("--denoise-steps", default=d.denoise_steps, help="comma-separated (default: %(default)s)")
    pb.add_argument("--frame-steps", type=int, default=d.frame_steps, help="the bundled model's steps for the imagined "
                    "game area (default: the model's, 1)")
    pb.add_argument("--episodes", type=int, default=d.episodes, help="episodes per row for the success rate (default: %(default)s)")
    pb.add_argument("--decisions", type=int, default=d.decisions, help="timed decisions per row (default: %(default)s)")
    pb.add_argument("--seed", type=int, default=d.seed, help="first held-out seed (default: %(default)s)")
    pb.add_argument("--no-success", action="store_true", help="latency only")
    pb.add_argument("--json", default=d.json, help="(default: %(default)s)")
    pb.add_argument("--plot", default=None, help="PNG path (default: the JSON path with .png)")

    from framepilot.serve import DESCRIPTION as serve_doc
    from framepilot.serve import add_arguments as serve_args
    pv = sub.add_parser("serve", help="serve a world model to agents on other machines (Ray Serve)",
                        formatter_class=fmt, description=serve_doc)
    serve_args(pv)

    for sp in (pp, ps, pr, pt, pe, pb, pv):
        sp.add_argument("--config", default=None, help="a TOML file of settings (option names as keys)")
    return p


def apply_config_file(parser: argparse.ArgumentParser, command: str, path: str) -> None:
    """Set ``parser``'s defaults from the TOML file ``path`` (top-level keys, or a ``[command]`` table)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config file {path} is not valid TOML ({e})") from None
    values = {k: v for k, v in data.items() if not isinstance(v, dict)}
    values.update(data.get(command, {}))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    dests = {a.dest for a in sub._actions}
    out = {}
    for k, v in values.items():
        dest = k.replace("-", "_")
        if dest not in dests or dest in ("help", "config"):
            raise UsageError(f"config file {path} sets {k!r}, which `framepilot {command}` does not take; "
                             f"see framepilot {command} --help")
        out[dest] = v
    sub.set_defaults(**out)


def _config_of(cls, ns: argparse.Namespace):
    return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # the traceback of a user error too (a bug always shows its own)
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    if not argv:
        argv = ["play"]  # the main job: the shipped model plays a bundled game and records it
    try:
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("command", nargs="?")
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(argv)
        if known.config and known.command:
            apply_config_file(parser, known.command, known.config)
        a = parser.parse_args(argv)
        if a.command is None:
            parser.print_help()
            return 0
        if a.command == "play":
            result = play(_config_of(PlayConfig, a))
        elif a.command == "screen":
            result = screen(_config_of(ScreenConfig, a))
        elif a.command == "bench":
            result = bench(_config_of(BenchConfig, a))
        elif a.command == "record":
            result = record(a)
        elif a.command == "serve":
            from framepilot.serve import run as serve
            return serve(a)
        elif a.command == "train":
            from training.train import config_from_args, train
            result = train(config_from_args(a))
        else:
            from training.evaluate import run
            return run(a)
        print(json.dumps(result, indent=1, default=str))
        return 0
    except KeyboardInterrupt:
        print("interrupted; everything was released", file=sys.stderr)
        return 130
    except FramepilotError as e:
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
