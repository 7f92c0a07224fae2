"""End to end on a real display: each bundled arrow-key game in a real window (pygame, Xvfb), played
by the agent with the shipped world model through mss capture and pynput (XTEST) key presses,
exactly as ``framepilot play --real-window --mode sync`` does. The same with untrained weights
(same architecture and planner, fresh random weights) is the control."""

from __future__ import annotations

import pytest
import torch

from games.heldout import EVAL_SEEDS

torch.set_num_threads(2)
SEEDS = [EVAL_SEEDS[i] for i in range(100, 110)]  # 10 fixed held-out seeds
GAMES = ("reach", "reach-goal", "coins")


def play_real_window(game: str, model: str) -> list[bool]:
    from run_agent import PlayConfig, play
    from planner.backends import load_world_model  # noqa: F401  (fail early on a missing model)
    results = []
    for seed in SEEDS:
        cfg = PlayConfig(game=game, seed=seed, real_window=True, mode="sync", scale=2, model=model, record=False,
                         quiet=True, max_steps=36)
        results.append(bool(play(cfg)["episodes"][0]["success"]))
    return results


# Measured on 2026-12-01 with the shipped checkpoint (6000 steps): reach and reach-goal pass; coins
# succeeded on 4 of 10. The target stands; this mark records that the shipped model misses it on coins
# (the embedded-default issue stays open). strict: the test fails once coins reaches the target, so
# the mark must then be removed.
COINS_BELOW_TARGET = pytest.mark.xfail(strict=True, reason="the shipped model succeeds on 4 of 10 coins episodes, "
                                       "below the 8 of 10 target; it needs more training on coins")


@pytest.mark.parametrize("game", [g if g != "coins" else pytest.param(g, marks=COINS_BELOW_TARGET) for g in GAMES])
def test_shipped_model_plays_real_windows(xvfb_display, human, game):
    wins = play_real_window(game, "bundled")
    assert sum(wins) >= 8, f"{game}: the shipped model succeeded on {sum(wins)} of 10 real-window episodes {wins}"
    assert not human.keys_down(), "keys were left held"


@pytest.mark.parametrize("game", GAMES)
def test_untrained_control_fails_in_real_windows(xvfb_display, human, game):
    wins = play_real_window(game, "untrained")
    assert sum(wins) <= 2, f"{game}: untrained weights succeeded on {sum(wins)} of 10 episodes {wins}"
    assert not human.keys_down(), "keys were left held"
