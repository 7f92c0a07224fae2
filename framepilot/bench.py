"""``framepilot bench``: decision latency p50/p95 for each rollout count (and denoising steps) on one
frame of a bundled game, and, in sync mode, the success rate over held-out episodes; JSON and a PNG plot.

    framepilot bench --game reach --rollouts 1,2,4,8,16,32 --episodes 20
    framepilot bench --no-success --denoise-steps 1,3 --json runs/latency.json
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from framepilot.errors import ConfigError
from framepilot.play import DEFAULT_GAME, DEFAULT_SEED


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

    def __post_init__(self):
        from framepilot.options import check_options
        check_options(self, "bench")


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
        raise ConfigError("--rollouts and --denoise-steps take comma-separated whole numbers, e.g. 1,2,4,8") from None
    if c.game not in games.GAME_NAMES:
        raise ConfigError(f"no bundled game named {c.game!r}; choose one of {', '.join(games.GAME_NAMES)}")
    env = games.make(c.game)
    layout = Layout.preset(env.layout_name)
    rows = []
    total = len(rollouts) * len(steps_list)
    from planner.backends import load_world_model
    first = load_world_model(c.model, layout.name, steps_list[0], frame_steps=c.frame_steps)  # a bad --model: said first
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total * (c.decisions + (0 if c.no_success else c.episodes)), desc="bench", unit="run")
    for ds in steps_list:
        model = first if first is not None else load_world_model(c.model, layout.name, ds, frame_steps=c.frame_steps)
        first = None
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
