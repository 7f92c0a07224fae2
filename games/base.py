"""What every bundled game shares: the Gymnasium plumbing, the frame size, the step rate, rendering."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from framepilot.errors import ConfigError
from overlays.action import Action

FRAME_SIZE = 128  # every game renders natively at 128x128 RGB
FPS = 10  # one step = 0.1 s


class ActionSpace(gymnasium.spaces.Space):
    """The space of ``overlays.Action`` values a game accepts; ``sample()`` gives a random action."""

    def __init__(self, layout_name: str, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        self.layout_name = layout_name

    def sample(self, mask: Any = None, probability: Any = None) -> Action:
        from games.demonstrators import random_action
        return random_action(self.layout_name, self.np_random)

    def contains(self, x: Any) -> bool:
        return isinstance(x, Action)

    def __repr__(self) -> str:
        return f"ActionSpace({self.layout_name!r})"


class GameEnv(gymnasium.Env):
    """Base class of the bundled games.

    Subclasses set ``game``, ``layout_name`` and ``step_cap`` and implement ``_new_episode(rng)``,
    ``_apply(action) -> (success, failure)``, ``_draw() -> (128, 128, 3) uint8``, ``_state()``
    and ``prompt``.

    Args:
        render_mode: ``"rgb_array"`` (``render()`` returns the frame) or ``"human"`` (a pygame
            window, nearest-neighbour scaled by ``scale``).
        scale: window pixels per game pixel for ``"human"``.
        split: ``"auto"``, ``"train"`` or ``"eval"``: whether prompts and goals come from the training
            or the held-out evaluation sets; ``"auto"`` picks ``"eval"`` for the seeds in
            ``games.heldout.EVAL_SEEDS`` and ``"train"`` otherwise.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": FPS}
    game = ""
    layout_name = "arrows"
    step_cap = 0
    fps = FPS
    gives_goal_frame = False  # True: reset's info holds "goal_frame", the episode's goal (reach-goal, maze)

    def __init__(self, render_mode: str | None = "rgb_array", scale: int = 4, split: str = "auto"):
        if render_mode not in (None, "rgb_array", "human"):
            raise ConfigError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or 'human'")
        if not (isinstance(scale, int) and 1 <= scale <= 16):
            raise ConfigError(f"scale must be a whole number from 1 to 16, got {scale!r}")
        if split not in ("auto", "train", "eval"):
            raise ConfigError(f"split must be 'auto', 'train' or 'eval', got {split!r}")
        self.render_mode = render_mode
        self.scale = scale
        self.split = split
        self.observation_space = gymnasium.spaces.Box(0, 255, (FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
        self.action_space = ActionSpace(self.layout_name)
        self.steps = 0
        self.done = True
        self.success = False
        self.seed_used: int | None = None
        self._frame: np.ndarray | None = None
        self._window = None

    # ---- Gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode; the same ``seed`` gives the same episode."""
        super().reset(seed=seed)
        self.seed_used = seed
        self.steps = 0
        self.done = False
        self.success = False
        self._new_episode(self.np_random)
        self._frame = self._draw()
        if self.render_mode == "human":
            self._show()
        return self._frame.copy(), self._info()

    def step(self, action: Action) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Advance 0.1 s with ``action`` held during the interval.

        Returns:
            obs (128, 128, 3) uint8, reward (1.0 on the success step, else 0.0), terminated
            (success or failure), truncated (step cap reached), info.
        """
        if not isinstance(action, Action):
            raise TypeError(f"step() takes an overlays.Action, got {type(action).__name__}; "
                            "build one with Action(keys={'left'})")
        if self.done:
            raise RuntimeError("the episode has ended; call reset() before step()")
        self.steps += 1
        success, failure = self._apply(action)
        self.success = success
        terminated = success or failure
        truncated = not terminated and self.steps >= self.step_cap
        self.done = terminated or truncated
        self._frame = self._draw()
        if self.render_mode == "human":
            self._show()
        return self._frame.copy(), float(success), terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """The current frame, (128, 128, 3) uint8, for ``"rgb_array"``; draws the window for ``"human"``."""
        if self._frame is None:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "human":
            self._show()
            return None
        return self._frame.copy()

    def close(self) -> None:
        if self._window is not None:
            import pygame
            pygame.display.quit()
            self._window = None

    # ---- shared helpers ------------------------------------------------------------------------------
    @property
    def eval_split(self) -> bool:
        """True when this episode draws prompts/goals from the held-out evaluation sets."""
        if self.split != "auto":
            return self.split == "eval"
        from games.heldout import is_eval_seed
        return self.seed_used is not None and is_eval_seed(self.seed_used)

    @property
    def prompt(self) -> str | None:
        return None

    def _info(self) -> dict:
        return {"success": bool(self.success), "prompt": self.prompt, "steps": self.steps,
                "state": self._state()}

    def _show(self) -> None:
        import pygame
        if self._window is None:
            pygame.display.init()
            self._window = pygame.display.set_mode((FRAME_SIZE * self.scale, FRAME_SIZE * self.scale))
            pygame.display.set_caption(f"framepilot {self.game}")
        surf = pygame.surfarray.make_surface(self._frame.swapaxes(0, 1))
        self._window.blit(pygame.transform.scale(surf, self._window.get_size()), (0, 0))
        pygame.event.pump()
        pygame.display.flip()

    # ---- subclass hooks -----------------------------------------------------------------------------
    def demonstrator(self, rng: np.random.Generator, noise: float = 0.1, click_margin: int = 3):
        """This game's scripted player, with ``act() -> Action`` (``games.demonstrators``): it records
        the training corpus and is the ``demonstrator`` baseline of ``framepilot eval``."""
        raise NotImplementedError(f"{type(self).__name__} has no demonstrator")

    def _new_episode(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _apply(self, action: Action) -> tuple[bool, bool]:
        raise NotImplementedError

    def _draw(self) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict:
        raise NotImplementedError
