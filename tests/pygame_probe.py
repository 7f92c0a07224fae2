"""A tiny real pygame program for the controller tests.

Opens a window, prints every keyboard and mouse-button event as one JSON line on stdout, and fills
the window blue while nothing is held and red while any key or mouse button is held, so a test
can check with mss that the program reacted.

    python tests/pygame_probe.py --title probe --size 320x240 --pos 100,100
"""

import argparse
import json
import os
import sys


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--title", default="framepilot-probe")
    p.add_argument("--size", default="320x240")
    p.add_argument("--pos", default="100,100")
    p.add_argument("--seconds", type=float, default=60.0, help="exit after this long")
    args = p.parse_args()
    os.environ["SDL_VIDEO_WINDOW_POS"] = args.pos
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
    import pygame

    w, h = (int(v) for v in args.size.split("x"))
    pygame.display.init()
    screen = pygame.display.set_mode((w, h))
    pygame.display.set_caption(args.title)
    clock = pygame.time.Clock()

    def say(**kw):
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()

    keys_down, buttons_down = set(), set()
    start = pygame.time.get_ticks()
    ready = False
    while pygame.time.get_ticks() - start < args.seconds * 1000:
        for e in pygame.event.get():
            if e.type == pygame.QUIT:
                return
            if e.type in (pygame.KEYDOWN, pygame.KEYUP):
                name = pygame.key.name(e.key)
                (keys_down.add if e.type == pygame.KEYDOWN else keys_down.discard)(name)
                say(type="KEYDOWN" if e.type == pygame.KEYDOWN else "KEYUP", key=name)
            elif e.type in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
                down = e.type == pygame.MOUSEBUTTONDOWN
                (buttons_down.add if down else buttons_down.discard)(e.button)
                say(type="MOUSEBUTTONDOWN" if down else "MOUSEBUTTONUP", button=e.button, pos=list(e.pos))
        screen.fill((220, 30, 30) if keys_down or buttons_down else (30, 30, 220))
        pygame.display.flip()
        if not ready:
            ready = True
            say(type="READY")
        clock.tick(60)


if __name__ == "__main__":
    main()
