"""Closed-loop evaluation of a world model on the bundled games, against baselines.

Per game, on the committed held-out seeds (``games.heldout.EVAL_SEEDS``, evaluation prompts are
paraphrases never used in training, ``reach-goal`` goal cells include ones no training episode
ended on):

- the agent with the largest rollout count (default 8) and the baselines ``demonstrator`` and
  ``random`` play ``episodes`` episodes (default 100);
- the agent with the other rollout counts (default 1) and the ``untrained`` control (same
  architecture and planner, fresh weights, 8 rollouts) play half as many (default 50);
- ``coins`` adds: success per named colour and on episodes whose named coin is not the nearest
  one (agent with the most rollouts), and a shuffled-prompt control (the agent is told another
  colour present on the board; success = that colour collected first).

Every figure is a success rate with its 95% Wilson interval, the mean steps of successful
episodes and, for planning agents, the decision latency p50/p95 (model + read + vote).

    python -m training.evaluate --json runs/eval.json
    python -m training.evaluate --game coins --episodes 40 --rollouts 1,8
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict

import numpy as np

from framepilot.errors import ConfigError


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of k successes out of n."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def summarise(successes: list[bool], steps: list[int], latencies: list[float] | None = None) -> dict:
    """The ``R`` record: success rate, CI, mean steps of successes, latency percentiles (ms)."""
    n, k = len(successes), int(sum(successes))
    ok_steps = [s for s, ok in zip(steps, successes) if ok]
    r = {"episodes": n, "success_rate": round(k / n, 4) if n else 0.0, "ci95": wilson(k, n),
         "mean_steps": round(float(np.mean(ok_steps)), 2) if ok_steps else None}
    if latencies is not None:
        lat = np.asarray(latencies) * 1000
        r["latency_ms"] = {"p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
                           "p95": round(float(np.percentile(lat, 95)), 1) if len(lat) else None}
    return r


def game_model_name(game: str) -> str:
    """Which shipped checkpoint plays ``game`` (the one for the game's layout)."""
    from games import env_class
    from worldmodel.checkpoints import shipped_for_game
    return shipped_for_game(game, env_class(game).layout_name)


def episode_inputs(env, info: dict, layout, goal_offset: float):
    """(prompt, goals) the agent gets for an episode, from the game's reset ``info``."""
    from overlays import NOOP, render_overlay
    from planner.world_model import GoalFrame
    goals = ()
    if info.get("goal_frame") is not None:
        goals = (GoalFrame(render_overlay(info["goal_frame"], NOOP, layout), goal_offset),)
    return info.get("prompt"), goals


def play_agent(env, model, layout, seed: int, rollouts: int, denoise_seed: int, goal_offset: float = 0.1,
               prompt_override: str | None = None, on_step=None, plan: str = "vote", search=None):
    """One episode of the planning agent; returns (success, steps, latencies, info). ``plan="search"``:
    ``rollouts`` candidates per round (``search``: a ``SearchConfig`` for the rest)."""
    from planner.agent import Agent, PlannerConfig
    from planner.loop import run_episode_sync
    obs, info = env.reset(seed=seed)
    prompt, goals = episode_inputs(env, info, layout, goal_offset)
    if prompt_override is not None:
        prompt = prompt_override
    if plan == "search":
        import dataclasses

        from planner.search import SearchConfig
        search = search or SearchConfig()
        search = dataclasses.replace(search, candidates=rollouts, elites=min(search.elites, rollouts),
                                     top_k=min(search.top_k, rollouts))
    agent = Agent(model, layout, PlannerConfig(rollouts=rollouts, seed=denoise_seed, plan=plan, search=search),
                  prompt=prompt, goals=goals)
    first_info = info
    res = run_episode_sync(env, agent, layout, obs=obs, on_step=on_step)
    lat = [sum(d.timings.get(k, 0.0) for k in ("model", "read", "vote", "score")) for d in res.decisions]
    return bool(res.success), res.steps, lat, first_info, env.unwrapped if hasattr(env, "unwrapped") else env


def play_scripted(env, seed: int, kind: str):
    """One episode of the demonstrator or the random agent; returns (success, steps)."""
    from games.demonstrators import Demonstrator, random_action
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng([seed, 7])
    demo = Demonstrator(env, rng, noise=0.1) if kind == "demonstrator" else None
    policy = _game_policy(env, kind) if kind in ("greedy", "oracle") else None
    done, steps = False, 0
    while not done:
        action = demo.act() if demo else policy(env.unwrapped, rng) if policy else random_action(env.layout_name, rng)
        obs, _, term, trunc, info = env.step(action)
        steps += 1
        done = term or trunc
    return bool(info["success"]), steps


def _game_policy(env, kind: str):
    """The game module's own ``greedy_action`` / ``oracle_action`` baseline (maze has both), else None."""
    import importlib
    module = importlib.import_module(type(env.unwrapped).__module__)
    return getattr(module, f"{kind}_action", None)


def _nearest_is_target(state: dict) -> bool:
    from games.grid import manhattan
    m = tuple(state["marker"])
    d = {c: manhattan(m, tuple(cell)) for c, cell in state["coins"].items()}
    return d[state["target_colour"]] <= min(d.values())


def evaluate_game(game: str, model_spec: str = "bundled", episodes: int = 100, rollouts=(1, 8), seed: int = 0,
                  denoise_steps: int = 3, baselines: bool = True, progress: bool = True,
                  frame_steps: int | None = 1, plan: str = "vote", search_horizon: int = 3,
                  search_novelty: float | None = None) -> dict:
    """Evaluate one game; returns the ``eval`` JSON record of issue 7 for it (``plan``: the planner,
    ``vote`` or ``search`` with ``rollouts`` candidates of ``search_horizon`` frames)."""
    import games
    from games.heldout import EVAL_SEEDS
    from overlays import Layout, LayoutError
    from planner.backends.bundled import BundledWorldModel
    from worldmodel.checkpoints import MissingModel
    env = games.make(game)
    layout = Layout.preset(env.layout_name)
    name = game_model_name(game) if model_spec == "bundled" else model_spec
    try:
        model = BundledWorldModel(name, denoise_steps=denoise_steps, frame_steps=frame_steps)
        model.check_layout(layout)
    except (MissingModel, LayoutError) as e:
        if model_spec != "bundled":
            raise
        # no shipped model for this game's layout: the baselines alone, and say so
        out = evaluate_baselines(env, game, episodes, seed, progress)
        out["agent"], out["note"] = {}, f"no agent figures: {e}"
        return out
    seeds = [EVAL_SEEDS[(seed + i) % len(EVAL_SEEDS)] for i in range(episodes)]
    small = max(1, episodes // 2)
    top = max(rollouts)
    bar = None
    if progress:
        from tqdm import tqdm
        total = episodes * (1 + 2 * baselines) + small * (len(rollouts) - 1 + baselines) + (small if game == "coins" else 0)
        bar = tqdm(total=total, desc=f"eval {game}", unit="ep")

    def tick():
        if bar is not None:
            bar.update(1)

    out = {"episodes": episodes, "seed": seed, "step_cap": env.step_cap, "model": str(model.path),
           "denoise_steps": denoise_steps, "frame_steps": model.frame_steps, "planner": plan, "agent": {},
           "baselines": {}}
    search = None
    if plan == "search":
        from planner.search import SearchConfig
        search = SearchConfig(horizon=search_horizon) if search_novelty is None else \
            SearchConfig(horizon=search_horizon, novelty=search_novelty)
        out["search_horizon"] = search_horizon
        out["search_novelty"] = search.novelty
    per_colour, not_nearest = defaultdict(list), []
    for r in sorted(rollouts, reverse=True):
        n = episodes if r == top else small
        succ, steps, lat = [], [], []
        for i, s in enumerate(seeds[:n]):
            ok, k, l, info, _ = play_agent(env, model, layout, s, r, denoise_seed=s, plan=plan, search=search,
                                           goal_offset=search_horizon / 10 if plan == "search" else 0.1)
            succ.append(ok), steps.append(k), lat.extend(l)
            if game == "coins" and r == top:
                st = info["state"]
                per_colour[st["target_colour"]].append(ok)
                if not _nearest_is_target(st):
                    not_nearest.append(ok)
            tick()
        out["agent"][str(r)] = summarise(succ, steps, lat)
    if baselines:
        out["baselines"].update(evaluate_baselines(env, game, episodes, seed, False)["baselines"])
        if bar is not None:
            bar.update(2 * episodes)
        untrained = BundledWorldModel.untrained(name, seed=seed, denoise_steps=denoise_steps, frame_steps=frame_steps)
        succ, steps, lat = [], [], []
        for s in seeds[:small]:
            ok, k, l, _, _ = play_agent(env, untrained, layout, s, top, denoise_seed=s, plan=plan, search=search,
                                        goal_offset=search_horizon / 10 if plan == "search" else 0.1)
            succ.append(ok), steps.append(k), lat.extend(l)
            tick()
        out["baselines"]["untrained"] = summarise(succ, steps, lat)
    if game == "coins":
        out["coins"] = {"agent_rollouts": top,
                        "per_colour": {c: summarise(v, [0] * len(v)) for c, v in sorted(per_colour.items())},
                        "named_not_nearest": summarise(not_nearest, [0] * len(not_nearest))}
        for d in out["coins"]["per_colour"].values():
            d.pop("mean_steps")
        out["coins"]["named_not_nearest"].pop("mean_steps")
        succ, steps = [], []
        for s in seeds[:small]:
            _, info = env.reset(seed=s)
            st = info["state"]
            others = sorted(c for c in st["coins"] if c != st["target_colour"])
            told = others[s % len(others)]
            prompt = info["prompt"].replace(st["target_colour"], told)
            ok, k, _, _, envu = play_agent(env, model, layout, s, top, denoise_seed=s, prompt_override=prompt)
            collected = envu.collected
            succ.append(bool(collected) and collected[0] == told), steps.append(k)
            tick()
        sh = summarise(succ, steps)
        sh["note"] = "the agent is told another colour on the board; success = that colour collected first"
        out["coins"]["shuffled_prompt"] = sh
    if bar is not None:
        bar.close()
    env.close()
    return out


def evaluate_baselines(env, game: str, episodes: int, seed: int, progress: bool) -> dict:
    """The demonstrator and random baselines alone (for a game without a model)."""
    from games.heldout import EVAL_SEEDS
    seeds = [EVAL_SEEDS[(seed + i) % len(EVAL_SEEDS)] for i in range(episodes)]
    out = {"episodes": episodes, "seed": seed, "step_cap": env.step_cap, "baselines": {}}
    kinds = ["demonstrator", "random"] + [k for k in ("greedy", "oracle") if _game_policy(env, k) is not None]
    for kind in kinds:
        succ, steps = [], []
        for s in seeds:
            ok, k = play_scripted(env, s, kind)
            succ.append(ok), steps.append(k)
        out["baselines"][kind] = summarise(succ, steps)
    return out


def evaluate(games_: tuple[str, ...] | None = None, **kw) -> dict:
    """``evaluate_game`` for each of ``games_`` (None: every registered game, ``games.GAME_NAMES``)."""
    import platform

    import games
    games_ = games.GAME_NAMES if games_ is None else games_
    t0 = time.time()
    result = {"games": {}}
    for g in games_:
        result["games"][g] = evaluate_game(g, **kw)
    import torch
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    result["seconds"] = round(time.time() - t0, 1)
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--game", default=None, help="evaluate only this game (default: all bundled games)")
    p.add_argument("--episodes", type=int, default=100, help="episodes for the agent with the most rollouts and the "
                   "baselines; half as many for the others (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="offset into the held-out seeds (default: %(default)s)")
    p.add_argument("--rollouts", default="1,8", help="comma-separated rollout counts (default: %(default)s)")
    p.add_argument("--denoise-steps", type=int, default=3, help="Euler steps of the overlay strip, where the action is read (default: %(default)s)")
    p.add_argument("--frame-steps", type=int, default=1, help="Euler steps of the imagined game area (the overlay "
                   "takes --denoise-steps; default: %(default)s)")
    p.add_argument("--model", default="bundled", help="bundled (the shipped checkpoint for each game) or a checkpoint folder")
    p.add_argument("--no-baselines", action="store_true", help="skip demonstrator, random and untrained")
    p.add_argument("--plan", default="vote", choices=("vote", "search"), help="the planner (default: %(default)s)")
    p.add_argument("--search-horizon", type=int, default=3, help="with --plan search: frames per candidate "
                   "(default: %(default)s)")
    p.add_argument("--search-novelty", type=float, default=None, help="with --plan search: the penalty per "
                   "earlier visit of an imagined state (default: planner.search.SearchConfig's)")
    p.add_argument("--json", default=None, help="write the results here")


def run(a: argparse.Namespace) -> int:
    import games as games_mod
    if a.game is not None and a.game not in games_mod.GAME_NAMES:
        raise ConfigError(f"no bundled game named {a.game!r}; choose one of {', '.join(games_mod.GAME_NAMES)}")
    try:
        rollouts = tuple(sorted({int(v) for v in a.rollouts.split(",")}))
    except ValueError:
        raise ConfigError(f"--rollouts must be comma-separated whole numbers, e.g. 1,8; got {a.rollouts!r}") from None
    if a.episodes < 2 or min(rollouts) < 1:
        raise ConfigError("--episodes must be at least 2 and every rollout count at least 1")
    from framepilot.options import MAX_DENOISE_STEPS, MAX_ROLLOUTS, Spec, check_value
    check_value("episodes", a.episodes, Spec("int", 2, 100_000))
    for r in rollouts:
        check_value("rollouts", r, Spec("int", 1, MAX_ROLLOUTS))
    for name in ("denoise_steps", "frame_steps"):
        check_value(name, getattr(a, name), Spec("int", 1, MAX_DENOISE_STEPS))
    check_value("seed", a.seed)
    check_value("search_horizon", a.search_horizon, Spec("int", 1, 64))
    if a.search_novelty is not None:
        check_value("search_novelty", a.search_novelty, Spec("float", 0, 100))
    if a.json is not None and not str(a.json).strip():
        raise ConfigError("--json must be a path, got an empty string")
    result = evaluate((a.game,) if a.game else None, model_spec=a.model, episodes=a.episodes,
                      rollouts=rollouts, seed=a.seed, denoise_steps=a.denoise_steps, baselines=not a.no_baselines,
                      frame_steps=a.frame_steps, plan=a.plan, search_horizon=a.search_horizon,
                      search_novelty=a.search_novelty)
    text = json.dumps(result, indent=1)
    if a.json:
        from pathlib import Path
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    try:
        return run(p.parse_args(argv))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
