"""Scripted demonstrators that play the bundled games from privileged state, with noise as people play,
and the random agent used as a baseline.

Grid games (``reach``, ``reach-goal``, ``coins``): each step the demonstrator presses one arrow key,
chosen uniformly at random among the keys that move along a shortest path to the target (for
``coins`` the path avoids the other coins, so it never collects a wrong coin when a detour of the
same length or a longer one exists). It re-draws among equally good keys every step, so the
previous key is no shortcut for predicting the next one. With probability ``noise`` it presses a
random arrow key instead (for ``coins``, one that does not step onto another coin when possible).

``buttons``: the pointer moves toward the named button's centre at speed
``min(max_speed, distance * fps)`` times a random factor in [0.8, 1.0], its direction turned by
Gaussian angle noise (standard deviation ``1.5 * noise`` radians); once the pointer is inside the
button, at least ``click_margin`` pixels from each of its edges (default 3), it stops and presses
``left`` for one step, releasing the step after. Inside but nearer an edge it keeps moving toward
the centre: as people aim at the middle of a button, so a model that sees the frame at half size
(where a pixel off the edge and a pixel inside look alike) learns not to click at edges.
"""

from __future__ import annotations

import math

import numpy as np

from framepilot.errors import ConfigError
from games.grid import ARROWS, distances_to, move
from overlays.action import NOOP, Action
from overlays.layout import Layout


class _Demonstrator:
    """A noisy scripted player for one bundled game (``GridDemonstrator``, ``PointerDemonstrator``).

    Args:
        env: a bundled game (``games.make(...)``); it reads the env's state after each ``reset``/``step``.
        rng: the demonstrator's own random generator (seed it for reproducible recordings).
        noise: probability of a random arrow key per step (grid games); angle noise scale (buttons).
        click_margin: ``buttons``: pixels the pointer must be inside the button's edges to click
            (0: anywhere on it, as the corpus of the first mouse model was recorded).
    """

    def __init__(self, env, rng: np.random.Generator, noise: float = 0.1, click_margin: int = 3):
        if not 0.0 <= noise <= 1.0:
            raise ConfigError(f"noise must be between 0 and 1, got {noise}")
        if not 0 <= click_margin <= 9:
            raise ConfigError(f"click_margin must be between 0 and 9 pixels (buttons are 20 px tall), got {click_margin}")
        self.env = getattr(env, "unwrapped", env)
        self.rng = rng
        self.noise = noise
        self.click_margin = int(click_margin)

    def act(self) -> Action:
        """The action to hold during the next step."""
        raise NotImplementedError


class GridDemonstrator(_Demonstrator):
    """Grid games (``reach``, ``reach-goal``, ``coins``): a shortest-path arrow key, re-drawn among
    equally good ones every step; with probability ``noise`` a random (safe) arrow key."""

    def act(self) -> Action:
        env = self.env
        marker = env.marker
        others = frozenset(getattr(env, "coins", {}).values()) - {env.target}
        if self.rng.random() < self.noise:
            safe = [k for k in ARROWS if move(marker, frozenset({k})) not in others] or list(ARROWS)
            return Action(keys={safe[int(self.rng.integers(len(safe)))]})
        dist = distances_to(env.target, others)
        here = dist[marker[1], marker[0]]
        good = []
        for k in ARROWS:
            x, y = move(marker, frozenset({k}))
            if (x, y) != marker and dist[y, x] >= 0 and (here < 0 or dist[y, x] == here - 1):
                good.append(k)
        if not good:  # on the target already, or boxed in (cannot happen by construction)
            return NOOP
        return Action(keys={good[int(self.rng.integers(len(good)))]})


class PointerDemonstrator(_Demonstrator):
    """``buttons``: move toward the named button's centre with angle noise, click once inside it."""

    def __init__(self, env, rng: np.random.Generator, noise: float = 0.1, click_margin: int = 3):
        super().__init__(env, rng, noise, click_margin)
        self._pressed = False

    def act(self) -> Action:
        env = self.env
        if env.steps == 0:
            self._pressed = False
        if env.pointer_in(env.target_label, margin=self.click_margin) and not self._pressed:
            self._pressed = True
            return Action(buttons={"left"})
        self._pressed = False
        px, py = env.pointer
        cx, cy = env.button_centre(env.target_label)
        dx, dy = cx - px, cy - py
        d = math.hypot(dx, dy)
        if d < 1e-6:
            return NOOP
        speed = min(env.max_speed, d * env.fps) * self.rng.uniform(0.8, 1.0)
        angle = math.atan2(dy, dx) + self.rng.normal(0.0, 1.5 * self.noise)
        return Action(mouse=(speed * math.cos(angle), speed * math.sin(angle)))


def Demonstrator(env, rng: np.random.Generator, noise: float = 0.1, click_margin: int = 3) -> _Demonstrator:  # noqa: N802
    """The game's own demonstrator (its class's ``demonstrator``), e.g. ``Demonstrator(env, rng).act()``."""
    env = getattr(env, "unwrapped", env)
    return env.demonstrator(rng, noise=noise, click_margin=click_margin)


def random_action(layout: str | Layout, rng: np.random.Generator) -> Action:
    """A uniformly random action for the random-agent baseline.

    Arrow layouts: one of the four arrow keys or none (each 1/5). Other key layouts: one of the
    layout's keys or none. Mouse layouts: a velocity uniform in the disc of radius ``max_speed``
    (px/s) and ``left`` held with probability 0.1.
    """
    layout = Layout.preset(layout) if isinstance(layout, str) else layout
    if layout.has_mouse:
        r = layout.max_speed * math.sqrt(rng.random())
        a = rng.uniform(0, 2 * math.pi)
        held = {"left"} if rng.random() < 0.1 else set()
        return Action(mouse=(r * math.cos(a), r * math.sin(a)), buttons=held)
    keys = list(ARROWS) if layout.name == "arrows" else list(layout.keys)
    i = int(rng.integers(len(keys) + 1))
    return NOOP if i == len(keys) else Action(keys={keys[i]})


class ExplorerDemonstrator(_Demonstrator):
    """``maze``: an undirected explorer that never reads the goal (only the marker and the walls).

    It holds an arrow key for a random run of 1 to 6 steps, then picks another; a key that would
    walk into a wall or off the board is dropped at once for one of the free ones (a wall ends the
    run with probability 0.8, so it sometimes presses against a wall, as people do). With
    probability ``noise`` a step is a no-op. Its recordings teach a world model how the marker moves
    and how walls block, and nothing about where goals are."""

    def __init__(self, env, rng: np.random.Generator, noise: float = 0.1, click_margin: int = 3):
        super().__init__(env, rng, noise, click_margin)
        self._key: str | None = None
        self._left = 0

    def act(self) -> Action:
        from games.maze import free_moves
        env = self.env
        if env.steps == 0:
            self._key, self._left = None, 0
        if self.rng.random() < self.noise:
            return NOOP
        free = list(free_moves(env.walls, env.marker))
        blocked = self._key is not None and self._key not in free
        if self._key is None or self._left <= 0 or (blocked and self.rng.random() < 0.8):
            pool = [k for k in free if k != self._key] or free or list(ARROWS)
            self._key = pool[int(self.rng.integers(len(pool)))]
            self._left = int(self.rng.integers(1, 7))
        self._left -= 1
        return Action(keys={self._key})
