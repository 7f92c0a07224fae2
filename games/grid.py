"""The 8x8 grid the arrow-key games share: movement rule, drawing, shortest paths.

Movement rule: each step the held arrow keys move the marker one cell. Opposite keys cancel
(left + right moves neither way horizontally, up + down neither way vertically); a horizontal and a
vertical key held together move one cell diagonally. Moving into a wall clamps at the edge. Other
keys (space, letters) do nothing. Cells are ``(column, row)``, 0-based from the top-left.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from games.base import FRAME_SIZE, GameEnv
from games.pixels import fill_rect, outline_rect
from overlays.action import Action

GRID = 8
CELL = FRAME_SIZE // GRID  # 16 px
ARROWS = ("left", "right", "up", "down")
MOVES = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

BACKGROUND = (18, 20, 28)
GRID_LINE = (38, 42, 56)
MARKER = (150, 210, 255)
TARGET = (235, 50, 50)

Cell = tuple[int, int]


def move(cell: Cell, keys: frozenset[str]) -> Cell:
    """Where the arrow keys ``keys`` take the marker from ``cell`` (see the module docstring)."""
    dx = ("right" in keys) - ("left" in keys)
    dy = ("down" in keys) - ("up" in keys)
    return min(GRID - 1, max(0, cell[0] + dx)), min(GRID - 1, max(0, cell[1] + dy))


def manhattan(a: Cell, b: Cell) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def distances_to(target: Cell, blocked: frozenset[Cell] = frozenset()) -> np.ndarray:
    """Single-key steps from every cell to ``target`` avoiding ``blocked`` cells; (GRID, GRID) indexed
    ``[row, column]``, -1 where unreachable."""
    dist = np.full((GRID, GRID), -1, dtype=np.int32)
    dist[target[1], target[0]] = 0
    queue = deque([target])
    while queue:
        x, y = queue.popleft()
        for dx, dy in MOVES.values():
            nx, ny = x + dx, y + dy
            if 0 <= nx < GRID and 0 <= ny < GRID and dist[ny, nx] < 0 and (nx, ny) not in blocked:
                dist[ny, nx] = dist[y, x] + 1
                queue.append((nx, ny))
    return dist


def background() -> np.ndarray:
    """The dark board with its faint grid, (128, 128, 3) uint8."""
    img = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    img[:] = BACKGROUND
    for i in range(GRID):
        img[i * CELL, :] = GRID_LINE
        img[:, i * CELL] = GRID_LINE
    img[-1, :] = GRID_LINE
    img[:, -1] = GRID_LINE
    return img


def draw_marker(img: np.ndarray, cell: Cell) -> None:
    """The marker: a filled light-blue 10x10 square in the middle of its cell."""
    fill_rect(img, cell[0] * CELL + 3, cell[1] * CELL + 3, 10, 10, MARKER)


def draw_target(img: np.ndarray, cell: Cell) -> None:
    """The target: a red square outline, 2 px thick, just inside its cell (the marker fits within)."""
    outline_rect(img, cell[0] * CELL + 1, cell[1] * CELL + 1, 14, 14, TARGET, thickness=2)


class GridGame(GameEnv):
    """An arrow-key game on the 8x8 grid; ``marker`` is the player's cell."""

    layout_name = "arrows"
    _background = background()

    def __init__(self, **kw):
        super().__init__(**kw)
        self.marker: Cell = (0, 0)

    def demonstrator(self, rng: np.random.Generator, noise: float = 0.1, click_margin: int = 3):
        from games.demonstrators import GridDemonstrator
        return GridDemonstrator(self, rng, noise, click_margin)

    def _move(self, action: Action) -> None:
        self.marker = move(self.marker, action.keys)
