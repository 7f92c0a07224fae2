"""TEST DOUBLE, never the default: a "world model" that knows the ``reach`` game's rules.

``OracleStandIn`` exists to test the planner loop honestly without a video model. It reads the game
state from the last CONTEXT FRAME (the marker and target colours in the game area above the overlay
strip; no handle on the game), then renders true futures with ``games.grid``'s own movement and
drawing rules, a scripted player's keys drawn in the overlay. A fixed fraction ``corrupt`` of the
rollouts is corrupted: the player holds a random wrong key (one that is not on a shortest path) and
the future is rendered accordingly. The number of corrupted rollouts is ``corrupt * n`` rounded
stochastically (``floor``, plus one with the fractional part's probability), so a single rollout is
corrupted with probability ``corrupt``.

The scripted player: each step, one arrow key chosen at random among those on a shortest path to the
target (like ``games.demonstrators.Demonstrator`` with no noise); nothing once on the target.
Works at any frame size whose game area is the 128x128 game scaled uniformly (e.g. a window at
``--scale 4`` captured from the screen). For ``reach-goal`` (no target drawn) the target is the
marker's cell in the goal frame.
"""

from __future__ import annotations

import time

import numpy as np

from games.grid import (
    GRID,
    MARKER,
    TARGET,
    background,
    distances_to,
    draw_marker,
    draw_target,
    move,
)
from overlays import NOOP, Action, Layout
from overlays.render import draw_strip
from planner.world_model import (
    Capabilities,
    ContextClip,
    GoalFrame,
    Rollouts,
    WorldModel,
    frames_needed,
)

FRAME = 128


def _find(game: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float] | None:
    """Centroid (x, y) in pixels of the pixels within a small distance of ``colour``, or None."""
    d = np.abs(game.astype(np.int16) - np.array(colour, np.int16)).sum(axis=-1)
    ys, xs = np.nonzero(d <= 45)
    if len(xs) < 4:
        return None
    return float(xs.mean()) + 0.5, float(ys.mean()) + 0.5


def _cell(p: tuple[float, float], w: int, h: int) -> tuple[int, int]:
    return (min(GRID - 1, int(p[0] / (w / GRID))), min(GRID - 1, int(p[1] / (h / GRID))))


class OracleStandIn(WorldModel):
    """TEST DOUBLE: true futures of ``reach`` from the context frames, with corrupted rollouts.

    Args:
        layout: the overlay layout drawn on the context frames (``arrows``).
        corrupt: fraction of rollouts whose player holds a random wrong key (0..1).
        seed: seed of the generator used when a call passes no seed.
    """

    name = "oracle-stand-in (test double)"
    capabilities = Capabilities(text=False, goal_frames=True, max_goals=1, prefix_video=True, native_fps=10.0)

    def __init__(self, layout: Layout, corrupt: float = 0.0, seed: int = 0):
        if not 0.0 <= corrupt <= 1.0:
            raise ValueError(f"corrupt must be between 0 and 1, got {corrupt}")
        self.layout, self.corrupt = layout, corrupt
        self._rng = np.random.default_rng(seed)
        self._strips: dict = {}
        self._board = background()

    # ---- reading the state from a frame --------------------------------------------------------
    def game_area(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        return frame[:h - self.layout.strip_height(w)]

    def parse(self, frame: np.ndarray) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """(marker cell, target cell) seen in an overlaid frame; None where not visible."""
        game = self.game_area(frame)
        h, w = game.shape[:2]
        m, t = _find(game, MARKER), _find(game, TARGET)
        return (None if m is None else _cell(m, w, h)), (None if t is None else _cell(t, w, h))

    # ---- rendering ---------------------------------------------------------------------------
    def _render(self, marker, target, action: Action, shape) -> np.ndarray:
        img = self._board.copy()
        if target is not None:
            draw_target(img, target)
        draw_marker(img, marker)
        H, W = shape[:2]
        gh = H - self.layout.strip_height(W)
        if (gh, W) != (FRAME, FRAME):  # nearest-neighbour, like a game window scaled up
            img = img[(np.arange(gh) * FRAME // gh)[:, None], (np.arange(W) * FRAME // W)[None, :]]
        key = (action.keys, action.buttons, W)
        if key not in self._strips:
            self._strips[key] = draw_strip(action, self.layout, W)
        return np.concatenate([img, self._strips[key]], axis=0)

    def _good_keys(self, marker, target) -> list[str]:
        dist = distances_to(target)
        here = dist[marker[1], marker[0]]
        good = []
        for k in ("left", "right", "up", "down"):
            x, y = move(marker, frozenset({k}))
            if (x, y) != marker and dist[y, x] == here - 1:
                good.append(k)
        return good

    def _rollout(self, context: ContextClip, n: int, rollout_length: float, prompt: str | None,
                 goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        t0 = time.perf_counter()
        rng = self._rng if seed is None else np.random.default_rng(seed)
        last = context.frames[-1]
        marker, target = self.parse(last)
        drawn_target = target is not None
        if target is None and goals:
            target, _ = self.parse(goals[0].image)
        if marker is None or target is None:
            missing = " and ".join(n for n, v in (("the marker", marker), ("the target", target)) if v is None)
            raise ValueError(f"the stand-in cannot find {missing} in the last context frame "
                             f"({last.shape[1]}x{last.shape[0]}, {len(np.unique(last.reshape(-1, 3), axis=0))} "
                             "colours); it only plays the reach game (or reach-goal with a goal frame)")
        F = frames_needed(rollout_length, self.capabilities.native_fps)
        n_bad = int(np.floor(self.corrupt * n))
        n_bad += int(rng.random() < self.corrupt * n - n_bad)
        bad = set(rng.permutation(n)[:n_bad].tolist())
        out = np.empty((n, F, *last.shape), np.uint8)
        for i in range(n):
            m = marker
            wrong = None
            if i in bad:
                choices = [k for k in self.layout.keys if k not in self._good_keys(m, target)]
                wrong = Action(keys={choices[int(rng.integers(len(choices)))]})
            for f in range(F):
                if wrong is not None:
                    a = wrong
                elif m == target:
                    a = NOOP
                else:
                    good = self._good_keys(m, target)
                    a = Action(keys={good[int(rng.integers(len(good)))]})
                m = move(m, a.keys)
                out[i, f] = self._render(m, target if drawn_target else None, a, last.shape)
        return Rollouts(frames=out, fps=self.capabilities.native_fps, timings={"render": time.perf_counter() - t0})


class PerfectModel:
    """A perfect world model for the search planner (``planner.search``): it plays each candidate's
    actions in a copy of the live game (privileged: a test double and a measuring device, never an
    agent's model) and returns the real frames, overlays drawn. After the episode ends a frame stays.

    Flaws a learnt model has, on demand: ``blur`` (a Gaussian blur of that radius, in pixels, over the
    game area of every imagined frame, as a learnt model's futures are blurrier than real frames) and
    ``walls=False`` (a maze imagined without its walls: the marker walks through them, and the frames
    show none)."""

    def __new__(cls, env, blur: float = 0.0, walls: bool = True):
        from planner import Capabilities, Rollouts, WorldModel

        class _PerfectModel(WorldModel):
            name = "perfect simulator"
            capabilities = Capabilities(native_fps=10.0, goal_frames=True, max_goals=1, overlay_inpainting=True)

            def __init__(self, env):
                self.env = env

            def _imagine(self, obs, layout):
                import numpy as np
                from PIL import Image, ImageFilter
                if not blur:
                    return obs
                rows = obs.shape[0] - layout.strip_height(obs.shape[1])
                out = obs.copy()
                out[:rows] = np.asarray(Image.fromarray(obs[:rows]).filter(ImageFilter.GaussianBlur(blur)))
                return out

            def _rollout(self, context, n, rollout_length, prompt, goals, seed):
                raise AssertionError("the search planner only asks for given actions")

            def _inpaint(self, context, actions, layout, rollout_length, prompt, goals, seed):
                import copy

                import numpy as np

                from overlays import render_overlay
                out = []
                for seq in actions:
                    sim, frames, done, obs = copy.deepcopy(self.env), [], False, None
                    if not walls:
                        getattr(sim, "unwrapped", sim).walls = frozenset()
                    for a in seq:
                        if not done:
                            obs, _, term, trunc, _ = sim.step(a)
                            done = term or trunc
                        frames.append(render_overlay(self._imagine(obs, layout), a, layout))
                    out.append(frames)
                return Rollouts(np.asarray(out, np.uint8), 10.0)

        return _PerfectModel(env)
