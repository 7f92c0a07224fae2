"""How much of the mouse overlay survives a world model's frame size, with no model in the loop.

For each model size (H, W, strip included): (1) velocity error of the codec's round trip: render the
mouse layout's overlay for a random velocity onto a 128x128 game frame, resize to the model's size
and back (as the bundled backend does), read it; (2) the ceiling that sets on ``buttons``: the
scripted demonstrator plays held-out seeds with every action sent through that round trip.

    python benchmarks/bench_mouse_codec.py [--episodes 100]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

import games
from framepilot.frames import resize_frames
from games.demonstrators import Demonstrator
from games.heldout import EVAL_SEEDS
from overlays import Action, Layout, read_overlay, render_overlay
from planner.world_model import fit_frames

SIZES = ((40, 32), (60, 48), (80, 64))


def round_trip(action: Action, layout: Layout, size, base: np.ndarray) -> Action:
    frame = render_overlay(base, action, layout)[None]
    _, undo = fit_frames(frame, size, mode="resize")  # back up as the bundled backend does
    return read_overlay(undo(resize_frames(frame, size))[0], layout).action  # down as in training


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--velocities", type=int, default=200)
    a = p.parse_args(argv)
    layout = Layout.preset("mouse")
    base = np.full((128, 128, 3), 215, np.uint8)
    print("size    velocity error px/step (median, p90)   demonstrator through the round trip")
    for size in SIZES:
        rng = np.random.default_rng(0)
        errs = []
        for _ in range(a.velocities):
            speed, angle = layout.max_speed * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            v = (speed * math.cos(angle), speed * math.sin(angle))
            m = round_trip(Action(mouse=v), layout, size, base).mouse
            errs.append(math.hypot(m[0] - v[0], m[1] - v[1]) / 10)  # px/s -> px per 0.1 s step
        wins = 0
        for i in range(a.episodes):
            env = games.make("buttons")
            env.reset(seed=EVAL_SEEDS[i])
            demo = Demonstrator(env, np.random.default_rng(i))
            reward, done = 0.0, False
            while not done:
                _, reward, term, trunc, _ = env.step(round_trip(demo.act(), layout, size, base))
                done = term or trunc
            wins += reward > 0
        print(f"{size[0]}x{size[1]}   {np.median(errs):5.1f}, {np.percentile(errs, 90):5.1f}"
              f"                          {wins}/{a.episodes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
