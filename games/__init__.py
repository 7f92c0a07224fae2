"""framepilot's bundled games: small 128x128 pixel-art games with the Gymnasium API.

``games.make("reach")`` builds one; ``gymnasium.make("framepilot/Reach-v0")`` works too once
``games`` is imported. Each game renders at 128x128 RGB without any overlay, steps at 10 fps, and
takes ``overlays.Action`` values. Play one in a real window: ``python -m games.window reach``.

| name         | id                        | layout | step cap | success                                  |
|--------------|---------------------------|--------|----------|------------------------------------------|
| ``reach``      | framepilot/Reach-v0       | arrows | 24       | marker on the drawn target cell          |
| ``reach-goal`` | framepilot/ReachGoal-v0   | arrows | 24       | marker on the cell shown by the goal frame |
| ``coins``      | framepilot/Coins-v0       | arrows | 30       | the named coin collected first           |
| ``buttons``    | framepilot/Buttons-v0     | mouse  | 30       | the named button clicked (a wrong one fails) |
| ``maze``       | framepilot/Maze-v0        | arrows | 30       | marker on the goal-frame cell, through walls |
"""

from __future__ import annotations

import gymnasium

from framepilot.errors import ConfigError
from games.base import FPS, FRAME_SIZE, GameEnv

GAMES = {
    "reach": ("framepilot/Reach-v0", "games.reach:ReachEnv"),
    "reach-goal": ("framepilot/ReachGoal-v0", "games.reach:ReachGoalEnv"),
    "coins": ("framepilot/Coins-v0", "games.coins:CoinsEnv"),
    "buttons": ("framepilot/Buttons-v0", "games.buttons:ButtonsEnv"),
    "maze": ("framepilot/Maze-v0", "games.maze:MazeEnv"),
}
GAME_NAMES = tuple(GAMES)

for _name, (_id, _entry) in GAMES.items():
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry, disable_env_checker=True)


def env_class(name: str) -> type[GameEnv]:
    """The class of the game called ``name``."""
    if name not in GAMES:
        raise ConfigError(f"no bundled game named {name!r}; choose one of {', '.join(GAME_NAMES)}")
    import importlib
    module, cls = GAMES[name][1].split(":")
    return getattr(importlib.import_module(module), cls)


def make(name: str, **kw) -> GameEnv:
    """Build the bundled game ``name`` (``"reach"``, ``"reach-goal"``, ``"coins"``, ``"buttons"``, ``"maze"``).

    Args:
        name: the game's short name.
        **kw: ``render_mode`` (``"rgb_array"`` or ``"human"``), ``scale`` (window pixels per game
            pixel), ``split`` (``"auto"``, ``"train"`` or ``"eval"``); ``maze`` also takes ``run_to_cap``.
    """
    return env_class(name)(**kw)


__all__ = ["FPS", "FRAME_SIZE", "GAMES", "GAME_NAMES", "GameEnv", "env_class", "make"]
