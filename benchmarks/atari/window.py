"""An Atari 2600 game (``ale-py``, which ships its ROMs) in a real pygame window, played from the real
keyboard: an external game for developing and measuring framepilot, never a bundled one.

    python benchmarks/atari/window.py breakout --title "atari breakout" --scale 2 --seconds 600 \
        --log runs/atari/breakout.jsonl

The emulator runs at 60 Hz with every ``--frameskip`` (4) frames shown: 15 frames per second, in real
time whatever the input does (as the arcade does). The action of a shown frame is the keys held at
that moment: the arrows and space (fire). Up and Down held together cancel (so do Left and Right);
a game over starts a new game at once.

The log (``--log``) has one JSON line per shown frame: ``{"t", "clock", "frame", "reward", "score",
"lives", "games", "keys"}`` (``clock``: the system's monotonic clock, which framepilot's own run logs also
write; ``score``: the running game's; ``games``: games finished so far), flushed as it is
written, so a measuring script reads the score of any stretch of time while the game runs. No
privileged state leaves the program except this log, which the benchmarks use to score runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

GAMES = {"breakout": "breakout", "freeway": "freeway", "boxing": "boxing"}
#: the keys each game uses (a layout made of them: ``--keys`` of ``framepilot record``)
GAME_KEYS = {"breakout": ("left", "right", "space"), "freeway": ("up", "down"),
             "boxing": ("left", "up", "down", "right", "space")}
SCREEN = (210, 160)  # ALE's (H, W)


def ale_action(keys: set[str]):
    """The ALE action for the held keys (opposite arrows cancel)."""
    from ale_py import Action
    dx = ("right" in keys) - ("left" in keys)
    dy = ("down" in keys) - ("up" in keys)
    fire = "space" in keys
    name = {(0, -1): "UP", (0, 1): "DOWN", (-1, 0): "LEFT", (1, 0): "RIGHT", (1, -1): "UPRIGHT",
            (-1, -1): "UPLEFT", (1, 1): "DOWNRIGHT", (-1, 1): "DOWNLEFT", (0, 0): ""}[(dx, dy)]
    if fire:
        name = (name + "FIRE") if name else "FIRE"
    return getattr(Action, name or "NOOP")


def make_ale(game: str, seed: int):
    from ale_py import ALEInterface, LoggerMode, roms
    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setInt("random_seed", int(seed))
    ale.setFloat("repeat_action_probability", 0.0)  # the player's own keys, no sticky actions
    ale.loadROM(roms.get_rom_path(GAMES[game]))
    return ale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("game", choices=sorted(GAMES))
    p.add_argument("--title", default=None)
    p.add_argument("--scale", type=int, default=2, help="window pixels per game pixel")
    p.add_argument("--frameskip", type=int, default=4, help="emulator frames per shown frame (60 Hz / 4 = 15 fps)")
    p.add_argument("--seconds", type=float, default=600.0, help="close after this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pos", default="100,100")
    p.add_argument("--log", default=None, help="JSON lines, one per shown frame")
    a = p.parse_args(argv)
    os.environ["SDL_VIDEO_WINDOW_POS"] = a.pos
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
    import numpy as np
    import pygame

    ale = make_ale(a.game, a.seed)
    pygame.display.init()
    h, w = SCREEN
    screen = pygame.display.set_mode((w * a.scale, h * a.scale))
    pygame.display.set_caption(a.title or f"atari {a.game}")
    names = {pygame.K_LEFT: "left", pygame.K_RIGHT: "right", pygame.K_UP: "up", pygame.K_DOWN: "down",
             pygame.K_SPACE: "space"}
    log = open(a.log, "a") if a.log else None
    fps = 60.0 / a.frameskip
    t0 = time.monotonic()
    k = score = finished = 0
    print(json.dumps({"ready": True, "game": a.game, "fps": fps}), flush=True)
    try:
        while time.monotonic() - t0 < a.seconds:
            for e in pygame.event.get():
                if e.type == pygame.QUIT:
                    return 0
            pressed = pygame.key.get_pressed()
            keys = {n for code, n in names.items() if pressed[code]}
            act = ale_action(keys)
            reward = 0
            for _ in range(a.frameskip):
                reward += ale.act(act)
            score += reward
            if ale.game_over():
                finished += 1
                score = 0
                ale.reset_game()
            rgb = ale.getScreenRGB()
            surf = pygame.surfarray.make_surface(np.ascontiguousarray(rgb.transpose(1, 0, 2)))
            if a.scale != 1:
                surf = pygame.transform.scale(surf, (w * a.scale, h * a.scale))
            screen.blit(surf, (0, 0))
            pygame.display.flip()
            k += 1
            if log is not None:
                now = time.monotonic()
                log.write(json.dumps({"t": round(now - t0, 3), "clock": round(now, 4), "frame": k, "reward": reward,
                                      "score": score, "lives": ale.lives(), "games": finished,
                                      "keys": sorted(keys)}) + "\n")
                log.flush()
            delay = t0 + k / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        if log is not None:
            log.close()
        pygame.display.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
