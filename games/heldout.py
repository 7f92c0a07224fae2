"""Held-out evaluation sets, committed so evaluation never sees what training saw.

- Seeds: training and recording use seeds from ``TRAIN_SEEDS`` (0 .. 999,999); evaluation uses
  ``EVAL_SEEDS`` (10,000,000 .. 10,000,199), which lie outside that range.
- Goal cells (``reach-goal``): training episodes never end on a cell in ``HELDOUT_GOAL_CELLS``
  (8 cells spread over the 8x8 grid, ``(column, row)``, 0-based from the top-left); evaluation
  episodes put the goal on one of them half of the time and on any cell otherwise.
- Prompts: ``games.prompts`` keeps the training templates and the evaluation paraphrases apart.
"""

from __future__ import annotations

from framepilot.errors import ConfigError

TRAIN_SEEDS = range(0, 1_000_000)
EVAL_SEEDS = range(10_000_000, 10_000_200)

GRID = 8
HELDOUT_GOAL_CELLS: tuple[tuple[int, int], ...] = (
    (1, 1), (6, 1), (3, 2), (5, 4), (2, 5), (0, 6), (7, 6), (4, 7),
)
ALL_CELLS: tuple[tuple[int, int], ...] = tuple((x, y) for y in range(GRID) for x in range(GRID))
TRAIN_GOAL_CELLS: tuple[tuple[int, int], ...] = tuple(c for c in ALL_CELLS if c not in HELDOUT_GOAL_CELLS)


def is_eval_seed(seed: int) -> bool:
    """True for the committed evaluation seeds."""
    return seed in EVAL_SEEDS


def check_train_seed(seed: int) -> None:
    """Refuse a seed outside the training range (used by the recorder)."""
    if seed not in TRAIN_SEEDS:
        raise ConfigError(f"seed {seed} is outside the training range 0..999999; the held-out evaluation "
                         "seeds start at 10000000 and must never be recorded for training")
