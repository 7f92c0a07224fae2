"""A scripted player for the Atari window (``window.py``): it looks at the window's pixels on the real
screen (mss, through ``controllers.ScreenCapture``) and presses the arrows and space through XTEST,
as a person at the keyboard does, with some noise (a random key now and then, held for a few frames).
It reads nothing but the screen.

    python benchmarks/atari/player.py breakout --window "atari breakout" --scale 2 --seconds 600

- breakout: serves (space) when no ball is in play; moves the paddle under the ball (left/right).
- freeway: holds up, and waits (no key) when a car is about to cross the lane ahead of the chicken.
- boxing: walks toward the opponent's height, keeps a punch's distance, punches when level.
- random (``--policy random``): a random key set every frame (a baseline); ``--policy idle``: nothing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PADDLE = (200, 72, 72)  # breakout: paddle and ball
CHICKEN = (252, 252, 84)  # freeway: the chickens
BOXER_WHITE, BOXER_BLACK = (214, 214, 214), (0, 0, 0)


def _mask(frame: np.ndarray, colour, tol: int = 24) -> np.ndarray:
    return (np.abs(frame.astype(np.int16) - np.array(colour, np.int16)) <= tol).all(axis=-1)


def breakout(frame: np.ndarray, state: dict) -> set[str]:
    paddle = np.flatnonzero(_mask(frame[189:194], PADDLE).any(axis=0))
    ball_rows = _mask(frame[93:189], PADDLE)
    ys, xs = np.nonzero(ball_rows)
    if len(xs) == 0 or len(paddle) == 0:
        state["no_ball"] = state.get("no_ball", 0) + 1
        return {"space"} if state["no_ball"] % 6 < 3 else set()  # serve (taps: a key must change to count)
    state["no_ball"] = 0
    bx, px = xs.mean(), paddle.mean()
    if bx < px - 4:
        return {"left"}
    if bx > px + 4:
        return {"right"}
    return set()


def freeway(frame: np.ndarray, state: dict) -> set[str]:
    chick = _mask(frame[:, 40:52], CHICKEN)
    ys = np.flatnonzero(chick.any(axis=1))
    if len(ys) == 0:
        return {"up"}
    y = int(ys.min())
    ahead = frame[max(0, y - 14):y, 20:72].astype(np.int16)
    road = np.median(frame[max(0, y - 14):y, :].reshape(-1, 3), axis=0)
    car = (np.abs(ahead - road).sum(axis=-1) > 90).sum() > 12  # something not road just ahead
    return set() if car and state.setdefault("rng", np.random.default_rng(1)).random() < 0.7 else {"up"}


def boxing(frame: np.ndarray, state: dict) -> set[str]:
    ring = frame[36:178, 32:128]
    w = np.argwhere(_mask(ring, BOXER_WHITE, 10))
    b = np.argwhere(_mask(ring, BOXER_BLACK, 10))
    if len(w) < 10 or len(b) < 10:
        return set()
    (wy, wx), (by, bx) = w.mean(axis=0), b.mean(axis=0)
    keys = set()
    if by < wy - 3:
        keys.add("up")
    elif by > wy + 3:
        keys.add("down")
    if abs(bx - wx) > 30:
        keys.add("right" if bx > wx else "left")
    elif abs(bx - wx) < 22:
        keys.add("left" if bx > wx else "right")
    if abs(by - wy) < 10 and abs(bx - wx) < 34:
        keys.add("space")
    return keys


POLICIES = {"breakout": breakout, "freeway": freeway, "boxing": boxing}
XKEYS = {"left": "Left", "right": "Right", "up": "Up", "down": "Down", "space": "space"}


class XtestKeyboard:
    """Presses and releases keys through XTEST (what a real keyboard's events look like to a program)."""

    def __init__(self):
        import Xlib.display
        from Xlib import XK
        self.d = Xlib.display.Display()
        self.codes = {k: self.d.keysym_to_keycode(XK.string_to_keysym(x)) for k, x in XKEYS.items()}
        self.held: set[str] = set()

    def hold(self, keys: set[str]) -> None:
        from Xlib import X
        from Xlib.ext import xtest
        for k in self.held - keys:
            xtest.fake_input(self.d, X.KeyRelease, self.codes[k])
        for k in keys - self.held:
            xtest.fake_input(self.d, X.KeyPress, self.codes[k])
        self.d.sync()
        self.held = set(keys)

    def close(self) -> None:
        self.hold(set())
        self.d.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("game", choices=sorted(POLICIES))
    p.add_argument("--window", required=True)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--noise", type=float, default=0.05, help="chance per frame of a random key for 1-4 frames")
    p.add_argument("--policy", default="scripted", choices=("scripted", "random", "idle"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from benchmarks.atari.window import GAME_KEYS
    from controllers import ScreenCapture
    rng = np.random.default_rng(a.seed)
    keys_of_game = GAME_KEYS[a.game]
    # SIGTERM (how bench_atari.py ends a recording's player) unwinds like Ctrl-C, so ``finally`` releases the keys
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    kb = XtestKeyboard()
    state: dict = {}
    noisy, noisy_keys = 0, set()
    t0 = time.monotonic()
    k = 0
    try:
        with ScreenCapture(window=a.window, downscale=a.scale) as cap:
            while time.monotonic() - t0 < a.seconds:
                try:
                    frame, _ = cap.grab()
                except Exception:  # the window closed: the run is over
                    break
                if a.policy == "idle":
                    keys = set()
                elif a.policy == "random":
                    keys = {x for x in keys_of_game if rng.random() < 0.3}
                else:
                    keys = POLICIES[a.game](frame, state)
                    if noisy == 0 and rng.random() < a.noise:
                        noisy, noisy_keys = int(rng.integers(1, 5)), {str(rng.choice(keys_of_game))}
                    if noisy:
                        noisy -= 1
                        keys = noisy_keys
                kb.hold(keys)
                k += 1
                delay = t0 + k / a.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    finally:
        kb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
