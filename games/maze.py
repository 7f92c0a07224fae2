"""``maze``: walk the marker through a maze of wall cells to a goal shown only as a goal frame.

The 8x8 grid, 128x128 frames, the arrows layout and 10 fps of ``reach-goal``. Wall cells are filled
in slate grey (``WALL``), distinct from the dark background, the light-blue marker and the red
target colour (no target is drawn). A move into a wall cell (or off the board) does nothing; a
diagonal move (two arrow keys) is taken only when its destination is free. The goal is given only
as ``info["goal_frame"]``: the frame with the marker on the goal cell. Success: the marker on the
goal cell (terminated, reward 1). Step cap: 30 steps (3 s), then truncated.

Mazes (``generate``): per episode, from the seed, a few random wall segments (2-5 cells long,
horizontal or vertical), covering at most 40% of the board; free cells cut off from the largest
free region are filled in, so every free cell is reachable (a maze with more than half of the board
walled is drawn again). Start and goal are free cells
whose shortest path (``MIN_PATH`` .. ``MAX_PATH`` steps) exceeds their Manhattan distance by at
least ``MIN_DETOUR``: no straight-line route exists, the walk must first go away from the goal, so
a greedy "reduce the distance" player is trapped against a wall.

Held-out split (``games.heldout``): training seeds (0..999,999) and evaluation seeds (from
10,000,000) draw from disjoint sets of
- maze layouts: a layout belongs to the evaluation set when bit 0 of the BLAKE2b digest of its wall
  mask (``layout_split``) is 1; training episodes draw mazes until one of the training set comes,
  evaluation episodes until one of the evaluation set comes, so no training maze is ever evaluated;
- goal cells: training goals never lie on ``games.heldout.HELDOUT_GOAL_CELLS``; evaluation goals
  lie on them about half of the time (when the maze allows), as in ``reach-goal``.

For recording (``training.corpus``) the env is built with ``run_to_cap=True``: reaching the goal
does not end the episode, so the explorer's episodes all run to the step cap and their ends say
nothing about the goal.

Baselines, 100 held-out evaluation seeds (10,000,000 ..), the real env, 30-step cap
(``python -m games.maze --episodes 100``; 95% Wilson intervals):

    | player   | success | 95% CI        | mean steps of successes |
    |----------|---------|---------------|-------------------------|
    | oracle   | 1.00    | [0.963, 1.0]  | 10.5                    |
    | greedy   | 0.05    | [0.022, 0.112]| 22.6                    |
    | explorer | 0.11    | [0.063, 0.186]| 22.3                    |
    | random   | 0.01    | [0.002, 0.055]| 21.0                    |

(On all 200 evaluation seeds: oracle 1.00, greedy 0.04, explorer 0.11, random 0.01. The
explorer, recorded to the cap on training seeds 0..999, passes the goal at some step in 11% of
its episodes.)

``oracle_action`` follows a BFS shortest path (privileged state); ``greedy_action`` takes a free
move that reduces the Manhattan distance to the goal when one exists, else a random free move or
stays; the explorer is ``MazeEnv.demonstrator`` (``games.demonstrators.ExplorerDemonstrator``,
never reads the goal); random is ``games.demonstrators.random_action``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from games.grid import (
    CELL,
    GRID,
    MOVES,
    Cell,
    GridGame,
    distances_to,
    draw_marker,
    manhattan,
)
from games.heldout import HELDOUT_GOAL_CELLS
from games.pixels import fill_rect
from overlays.action import NOOP, Action

WALL = (92, 100, 128)  # slate grey: the wall cells
MIN_PATH, MAX_PATH = 5, 12  # shortest-path steps from start to goal
MIN_DETOUR = 4  # shortest path minus Manhattan distance, at least
MAX_WALL_SHARE = 0.40  # of the board, by the segments
MAX_FILLED_SHARE = 0.50  # of the board, with the cut-off pockets filled in


def layout_split(walls: frozenset[Cell]) -> str:
    """``"eval"`` or ``"train"``: which held-out set the maze with these wall cells belongs to."""
    mask = sum(1 << (y * GRID + x) for x, y in walls)
    return "eval" if hashlib.blake2b(mask.to_bytes(8, "little"), digest_size=8).digest()[0] & 1 else "train"


def _random_walls(rng: np.random.Generator) -> frozenset[Cell]:
    walls: set[Cell] = set()
    n_segments = int(rng.integers(6, 11))
    for _ in range(n_segments):
        length = int(rng.integers(2, 6))
        if rng.random() < 0.5:
            x, y = int(rng.integers(GRID - length + 1)), int(rng.integers(GRID))
            cells = [(x + i, y) for i in range(length)]
        else:
            x, y = int(rng.integers(GRID)), int(rng.integers(GRID - length + 1))
            cells = [(x, y + i) for i in range(length)]
        walls.update(cells)
        if len(walls) > MAX_WALL_SHARE * GRID * GRID:
            walls.difference_update(cells)
            break
    # keep the largest free region; fill the rest in
    free = {(x, y) for x in range(GRID) for y in range(GRID)} - walls
    best: set[Cell] = set()
    seen: set[Cell] = set()
    for c in free:
        if c in seen:
            continue
        d = distances_to(c, frozenset(walls))
        region = {(x, y) for y in range(GRID) for x in range(GRID) if d[y, x] >= 0}
        seen |= region
        if len(region) > len(best):
            best = region
    return frozenset((x, y) for x in range(GRID) for y in range(GRID) if (x, y) not in best)


def generate(rng: np.random.Generator, split: str) -> tuple[frozenset[Cell], Cell, Cell]:
    """(walls, start, goal) of one episode of the ``split`` (``"train"`` or ``"eval"``) set."""
    while True:
        walls = _random_walls(rng)
        if len(walls) > MAX_FILLED_SHARE * GRID * GRID or layout_split(walls) != split:
            continue
        free = [(x, y) for y in range(GRID) for x in range(GRID) if (x, y) not in walls]
        if split == "train":
            goal_cands = [c for c in free if c not in HELDOUT_GOAL_CELLS]
        else:
            held = [c for c in free if c in HELDOUT_GOAL_CELLS]
            goal_cands = held if held and rng.random() < 0.5 else free
        order = rng.permutation(len(goal_cands))
        for i in order[:6]:
            goal = goal_cands[int(i)]
            d = distances_to(goal, walls)
            starts = [c for c in free if MIN_PATH <= d[c[1], c[0]] <= MAX_PATH
                      and d[c[1], c[0]] - manhattan(c, goal) >= MIN_DETOUR]
            if starts:
                return walls, starts[int(rng.integers(len(starts)))], goal


def free_moves(walls: frozenset[Cell], cell: Cell) -> dict[str, Cell]:
    """The single arrow keys that move the marker from ``cell``, and where each takes it."""
    out = {}
    for k, (dx, dy) in MOVES.items():
        nx, ny = cell[0] + dx, cell[1] + dy
        if 0 <= nx < GRID and 0 <= ny < GRID and (nx, ny) not in walls:
            out[k] = (nx, ny)
    return out


class MazeEnv(GridGame):
    """Reach the goal cell (shown only by ``info["goal_frame"]``) through a maze of wall cells.

    Args:
        run_to_cap: reaching the goal does not end the episode (``success`` stays true once the
            goal was reached); the recorder uses it so that the corpus's episodes all run to the cap.
        **kw: as ``games.base.GameEnv``.
    """

    game = "maze"
    step_cap = 30
    gives_goal_frame = True
    record_run_to_cap = True  # training.corpus records this game with run_to_cap=True

    def __init__(self, run_to_cap: bool = False, **kw):
        super().__init__(**kw)
        self.run_to_cap = bool(run_to_cap)
        self.walls: frozenset[Cell] = frozenset()
        self.target: Cell = (0, 0)
        self.goal_heldout = False
        self.maze_split = "train"
        self._goal_frame: np.ndarray | None = None
        self._reached = self._first_reach = False

    def _new_episode(self, rng: np.random.Generator) -> None:
        self.maze_split = "eval" if self.eval_split else "train"
        self.walls, self.marker, self.target = generate(rng, self.maze_split)
        self.goal_heldout = self.target in HELDOUT_GOAL_CELLS
        self._reached = self._first_reach = False
        self._goal_frame = self._draw(marker=self.target)

    def _move(self, action: Action) -> None:
        keys = action.keys
        dx = ("right" in keys) - ("left" in keys)
        dy = ("down" in keys) - ("up" in keys)
        nx, ny = self.marker[0] + dx, self.marker[1] + dy
        if 0 <= nx < GRID and 0 <= ny < GRID and (nx, ny) not in self.walls:
            self.marker = (nx, ny)

    def _apply(self, action: Action) -> tuple[bool, bool]:
        self._move(action)
        reached = self.marker == self.target
        if self.run_to_cap:
            self._first_reach = reached and not self._reached
            self._reached |= reached
            return False, False
        return reached, False

    def step(self, action: Action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.run_to_cap:  # the goal reached (by chance, for the explorer) counts; the episode goes on
            self.success = self._reached
            reward = float(self._first_reach)
            info = self._info()
        return obs, reward, terminated, truncated, info

    def _draw(self, marker: Cell | None = None) -> np.ndarray:
        img = self._background.copy()
        for x, y in self.walls:
            fill_rect(img, x * CELL, y * CELL, CELL, CELL, WALL)
        draw_marker(img, self.marker if marker is None else marker)
        return img

    @property
    def goal_frame(self) -> np.ndarray:
        """(128, 128, 3) uint8: the marker on the goal cell, the walls, no target, no overlay."""
        return self._goal_frame.copy()

    def _info(self) -> dict:
        info = super()._info()
        info["goal_frame"] = self._goal_frame
        return info

    def _state(self) -> dict:
        return {"marker": list(self.marker), "target": list(self.target),
                "walls": sorted(list(c) for c in self.walls), "goal_heldout": self.goal_heldout,
                "maze_split": self.maze_split}

    def demonstrator(self, rng: np.random.Generator, noise: float = 0.1, click_margin: int = 3):
        from games.demonstrators import ExplorerDemonstrator
        return ExplorerDemonstrator(self, rng, noise, click_margin)


# ---- baselines -------------------------------------------------------------------------------------
def _unwrap(env):
    return getattr(env, "unwrapped", env)


def oracle_action(env, rng: np.random.Generator | None = None) -> Action:
    """A key along a BFS shortest path to the goal (privileged state); no-op on the goal."""
    env = _unwrap(env)
    d = distances_to(env.target, env.walls)
    here = d[env.marker[1], env.marker[0]]
    good = [k for k, (x, y) in free_moves(env.walls, env.marker).items() if d[y, x] == here - 1]
    if not good:
        return NOOP
    return Action(keys={good[0] if rng is None else good[int(rng.integers(len(good)))]})


def greedy_action(env, rng: np.random.Generator | None = None) -> Action:
    """The straight-line player: a free move that reduces the Manhattan distance to the goal when one
    exists (uniformly among them), else a uniformly random free move or no move."""
    env = _unwrap(env)
    rng = np.random.default_rng() if rng is None else rng
    moves = free_moves(env.walls, env.marker)
    here = manhattan(env.marker, env.target)
    good = [k for k, c in moves.items() if manhattan(c, env.target) < here]
    if good:
        return Action(keys={good[int(rng.integers(len(good)))]})
    options = list(moves) + [None]
    k = options[int(rng.integers(len(options)))]
    return NOOP if k is None else Action(keys={k})


def measure(episodes: int = 100, seed0: int | None = None) -> dict:
    """Success rates (with 95% Wilson intervals) of oracle, greedy, explorer and random on
    ``episodes`` held-out evaluation seeds."""
    from games.demonstrators import random_action
    from games.heldout import EVAL_SEEDS
    from training.evaluate import summarise
    seeds = [EVAL_SEEDS[i % len(EVAL_SEEDS)] for i in range(episodes)] if seed0 is None else \
        list(range(seed0, seed0 + episodes))
    env = MazeEnv()
    out = {}
    for kind in ("oracle", "greedy", "explorer", "random"):
        succ, steps = [], []
        for s in seeds:
            env.reset(seed=s)
            rng = np.random.default_rng([s, 7])
            demo = env.demonstrator(rng, noise=0.1) if kind == "explorer" else None
            done = False
            while not done:
                if kind == "oracle":
                    a = oracle_action(env, rng)
                elif kind == "greedy":
                    a = greedy_action(env, rng)
                elif kind == "explorer":
                    a = demo.act()
                else:
                    a = random_action("arrows", rng)
                _, _, te, tr, info = env.step(a)
                done = te or tr
            succ.append(bool(info["success"]))
            steps.append(env.steps)
        out[kind] = summarise(succ, steps)
    return out


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    p = argparse.ArgumentParser(prog="python -m games.maze", description="maze baselines on held-out seeds")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed0", type=int, default=None, help="consecutive seeds from here (default: games.heldout.EVAL_SEEDS)")
    a = p.parse_args(argv)
    print(json.dumps(measure(a.episodes, a.seed0), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
