"""``coins``: collect the coin the prompt names.

Three coins (filled circles) of distinct colours, drawn from red, green, blue and yellow, lie on
random cells at Manhattan distance >= 2 from the marker's start; a shortest path from the start to
the named coin that avoids the other coins always exists. The prompt names one of them ("collect
the red coin"; templates in ``games.prompts``). Stepping onto a coin collects it (it disappears).
Success: the named coin is collected first (terminated, reward 1). Collecting another coin first
ends the episode as a failure (terminated, reward 0). Step cap: 30 steps (3 s), then truncated.
Movement: ``games.grid``.
"""

from __future__ import annotations

import numpy as np

from games.grid import CELL, GRID, Cell, GridGame, distances_to, draw_marker, manhattan
from games.pixels import fill_circle
from games.prompts import COIN_COLOURS, COINS_EVAL, COINS_TRAIN, pick_template
from overlays.action import Action

COIN_RGB = {"red": (235, 50, 50), "green": (50, 200, 70), "blue": (40, 80, 235), "yellow": (245, 215, 40)}
N_COINS = 3
COIN_RADIUS = 5.0


class CoinsEnv(GridGame):
    """Collect the named coin first with the arrow keys."""

    game = "coins"
    step_cap = 30

    def __init__(self, **kw):
        super().__init__(**kw)
        self.coins: dict[str, Cell] = {}  # colour -> cell, only coins not yet collected
        self.target_colour = "red"
        self.collected: list[str] = []
        self._prompt = ""

    @property
    def prompt(self) -> str:
        return self._prompt

    @property
    def target(self) -> Cell:
        """Cell of the named coin (its start cell once collected)."""
        return self._target_cell

    def _new_episode(self, rng: np.random.Generator) -> None:
        cells = [(x, y) for y in range(GRID) for x in range(GRID)]
        while True:
            self.marker = cells[int(rng.integers(len(cells)))]
            free = [c for c in cells if manhattan(c, self.marker) >= 2]
            picks = rng.choice(len(free), N_COINS, replace=False)
            colours = rng.choice(len(COIN_COLOURS), N_COINS, replace=False)
            coins = {COIN_COLOURS[int(k)]: free[int(i)] for k, i in zip(sorted(colours), picks)}
            target = list(coins)[int(rng.integers(N_COINS))]
            others = frozenset(c for col, c in coins.items() if col != target)
            if distances_to(coins[target], others)[self.marker[1], self.marker[0]] >= 0:
                break
        self.coins, self.target_colour, self.collected = coins, target, []
        self._target_cell = coins[target]
        template = pick_template(COINS_TRAIN, COINS_EVAL, self.eval_split, rng)
        self._prompt = template.format(colour=target)

    def _apply(self, action: Action) -> tuple[bool, bool]:
        self._move(action)
        for colour, cell in list(self.coins.items()):
            if cell == self.marker:
                del self.coins[colour]
                self.collected.append(colour)
                return colour == self.target_colour, colour != self.target_colour
        return False, False

    def _draw(self) -> np.ndarray:
        img = self._background.copy()
        for colour, (x, y) in self.coins.items():
            fill_circle(img, x * CELL + 7.5, y * CELL + 7.5, COIN_RADIUS, COIN_RGB[colour])
        draw_marker(img, self.marker)
        return img

    def _state(self) -> dict:
        return {"marker": list(self.marker), "coins": {k: list(v) for k, v in self.coins.items()},
                "target_colour": self.target_colour, "target": list(self._target_cell),
                "collected": list(self.collected)}
