"""Teacher-forced probe of a world model's imagined actions on held-out states (a diagnostic, not
the evaluation: closed-loop success in ``training.evaluate`` is what counts).

For held-out seeds of a grid game, walk the demonstrator's trajectory; at each state ask the model
for ``n`` one-frame futures of the current frame (overlay of the last executed action drawn) and read
the overlay of each: the share of readings that are one of the demonstrator's shortest-path keys
(``good``), that hold no key (``blank``), and the vote's pick being good (``vote_good``).

    python -m training.probe --model worldmodel/checkpoints/arrows --game reach --states 60
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def good_keys(env) -> set[str]:
    from games.grid import ARROWS, distances_to, move
    others = frozenset(getattr(env, "coins", {}).values()) - {env.target}
    dist = distances_to(env.target, others)
    here = dist[env.marker[1], env.marker[0]]
    out = set()
    for k in ARROWS:
        x, y = move(env.marker, frozenset({k}))
        if (x, y) != env.marker and dist[y, x] >= 0 and dist[y, x] == here - 1:
            out.add(k)
    return out


def probe(model_path: str, game: str, states: int = 60, n: int = 8, denoise_steps: int = 3) -> dict:
    import games
    from games.demonstrators import Demonstrator
    from games.heldout import EVAL_SEEDS
    from overlays import NOOP, Layout, read_overlay, render_overlay
    from planner.backends.bundled import BundledWorldModel
    from planner.vote import choose
    from planner.world_model import ContextClip, GoalFrame
    from training.evaluate import episode_inputs

    model = BundledWorldModel(model_path, denoise_steps=denoise_steps)
    env = games.make(game)
    layout = Layout.preset(env.layout_name)
    good = blank = total = vote_good = decisions = 0
    seed_i = 0
    while decisions < states:
        obs, info = env.reset(seed=EVAL_SEEDS[seed_i])
        seed_i += 1
        prompt, goals = episode_inputs(env, info, layout, 0.1)
        demo = Demonstrator(env, np.random.default_rng(seed_i), noise=0.0)
        last, done = NOOP, False
        while not done and decisions < states:
            frame = render_overlay(obs, last, layout)
            ok = good_keys(env.unwrapped)
            r = model(ContextClip(frame[None], fps=10.0), n=n, rollout_length=0.1, prompt=prompt,
                      goals=goals, seed=decisions)
            readings = [read_overlay(f[0], layout) for f in r.frames]
            for rd in readings:
                total += 1
                good += bool(rd.action.keys) and rd.action.keys <= ok
                blank += not rd.action.keys
            d = choose(readings)
            vote_good += bool(d.action.keys) and d.action.keys <= ok
            decisions += 1
            last = demo.act()
            obs, _, term, trunc, _ = env.step(last)
            done = term or trunc
    return {"game": game, "states": decisions, "good": round(good / total, 3), "blank": round(blank / total, 3),
            "vote_good": round(vote_good / decisions, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="arrows")
    p.add_argument("--game", default="reach")
    p.add_argument("--states", type=int, default=60)
    p.add_argument("--rollouts", type=int, default=8)
    p.add_argument("--denoise-steps", type=int, default=3)
    a = p.parse_args(argv)
    for g in a.game.split(","):
        print(json.dumps(probe(a.model, g, a.states, a.rollouts, a.denoise_steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
