"""The search planner with a perfect world model: how far ranking imagined futures by their distance
to the goal image gets when the imagination itself is exact (an upper bound for any learnt model).

The "model" plays each candidate's keys in a copy of the live game and returns the real frames
(privileged: a measuring device, not an agent). Held-out seeds, the same planner code as
``framepilot play --plan search``.

    python benchmarks/bench_search.py --game maze --candidates 16 --horizon 8 --rounds 2 --episodes 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the perfect model is a test double

from standin import PerfectModel  # noqa: E402

import games  # noqa: E402
from games.heldout import EVAL_SEEDS  # noqa: E402
from overlays import NOOP, Layout, render_overlay  # noqa: E402
from planner import (  # noqa: E402
    Agent,
    GoalFrame,
    PlannerConfig,
    run_episode_sync,
)
from planner.search import SearchConfig  # noqa: E402
from training.evaluate import wilson  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="maze")
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--horizon", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--holds", action="store_true")
    ap.add_argument("--novelty", type=float, default=0.0)
    ap.add_argument("--no-warm-start", action="store_true")
    ap.add_argument("--top-k", type=int, default=1)
    ap.add_argument("--episodes", type=int, default=20)
    a = ap.parse_args(argv)
    layout = Layout.preset(games.env_class(a.game).layout_name)
    cfg = SearchConfig(candidates=a.candidates, horizon=a.horizon, rounds=a.rounds, elites=min(4, a.candidates),
                       holds=a.holds, novelty=a.novelty, warm_start=not a.no_warm_start, top_k=a.top_k)
    wins, t0 = [], time.time()
    for i in range(a.episodes):
        env = games.make(a.game)
        obs, info = env.reset(seed=EVAL_SEEDS[i])
        goal = GoalFrame(render_overlay(info["goal_frame"], NOOP, layout), a.horizon / 10)
        agent = Agent(PerfectModel(env), layout, PlannerConfig(rollouts=a.candidates, plan="search", search=cfg,
                                                               seed=EVAL_SEEDS[i]), goals=(goal,))
        wins.append(bool(run_episode_sync(env, agent, layout, obs=obs).success))
    ok = sum(wins)
    print(json.dumps({"game": a.game, "model": "perfect simulator", "search": vars(cfg), "episodes": a.episodes,
                      "success_rate": ok / a.episodes, "ci95": wilson(ok, a.episodes),
                      "seconds": round(time.time() - t0, 1)}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
