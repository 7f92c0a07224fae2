"""``reach`` and ``reach-goal``: move the marker with the arrow keys onto a target cell.

- ``reach``: the target is drawn as a red square outline. Success: the marker is on the target
  (terminated, reward 1). Step cap: 24 steps (2.4 s), then truncated.
- ``reach-goal``: the same, but the target is not drawn; the goal is given only as
  ``info["goal_frame"]``, the frame with the marker on the goal cell. Training seeds never put the
  goal on a cell of ``games.heldout.HELDOUT_GOAL_CELLS``; evaluation seeds put it there half of the time.

Start and target are random, target != start, Manhattan distance >= 2. Movement: ``games.grid``.
"""

from __future__ import annotations

import numpy as np

from games.grid import GRID, Cell, GridGame, draw_marker, draw_target, manhattan
from games.heldout import ALL_CELLS, HELDOUT_GOAL_CELLS, TRAIN_GOAL_CELLS
from overlays.action import Action


class ReachEnv(GridGame):
    """Move the marker onto the red target square with the arrow keys."""

    game = "reach"
    step_cap = 24
    target_visible = True

    def __init__(self, **kw):
        super().__init__(**kw)
        self.target: Cell = (0, 0)
        self.goal_heldout = False

    def _goal_candidates(self, rng: np.random.Generator) -> tuple[Cell, ...]:
        return ALL_CELLS

    def _new_episode(self, rng: np.random.Generator) -> None:
        cands = self._goal_candidates(rng)
        while True:
            self.marker = (int(rng.integers(GRID)), int(rng.integers(GRID)))
            ok = [c for c in cands if manhattan(c, self.marker) >= 2]
            if ok:
                break
        self.target = ok[int(rng.integers(len(ok)))]
        self.goal_heldout = self.target in HELDOUT_GOAL_CELLS

    def _apply(self, action: Action) -> tuple[bool, bool]:
        self._move(action)
        return self.marker == self.target, False

    def _draw(self, marker: Cell | None = None) -> np.ndarray:
        img = self._background.copy()
        if self.target_visible:
            draw_target(img, self.target)
        draw_marker(img, self.marker if marker is None else marker)
        return img

    def _state(self) -> dict:
        return {"marker": list(self.marker), "target": list(self.target), "goal_heldout": self.goal_heldout}


class ReachGoalEnv(ReachEnv):
    """``reach`` with the target hidden; the goal comes as ``info["goal_frame"]``."""

    game = "reach-goal"
    target_visible = False
    gives_goal_frame = True

    def _goal_candidates(self, rng: np.random.Generator) -> tuple[Cell, ...]:
        if not self.eval_split:
            return TRAIN_GOAL_CELLS
        return HELDOUT_GOAL_CELLS if rng.random() < 0.5 else ALL_CELLS

    def _new_episode(self, rng: np.random.Generator) -> None:
        super()._new_episode(rng)
        self._goal_frame = self._draw(marker=self.target)

    @property
    def goal_frame(self) -> np.ndarray:
        """(128, 128, 3) uint8: the marker on the goal cell, no target drawn, no overlay."""
        return self._goal_frame.copy()

    def _info(self) -> dict:
        info = super()._info()
        info["goal_frame"] = self._goal_frame
        return info
