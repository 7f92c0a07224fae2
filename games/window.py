"""Play a bundled game in a real window (pygame), by hand or by an agent driving the real keyboard/mouse.

Examples::

    python -m games.window reach --seed 3                        # realtime, 10 steps per second
    python -m games.window coins --seed 7 --mode sync            # waits for your input
    python -m games.window buttons --scale 6 --title "framepilot buttons" --stay

Modes:

- ``realtime``: the game advances at 10 Hz whatever happens; each step's action is every layout
  key (arrows, space) or mouse button held at any moment of the 0.1 s interval (a tap shorter
  than a step still counts).
- ``sync``: the game waits for input. Arrow games step once per KEYDOWN of a layout key, with the
  layout keys held at that moment. ``buttons`` steps once per batch of mouse events (motion,
  press, release) read in one poll of the event queue.

In ``buttons`` the game's pointer is the real OS pointer mapped into game pixels (window pixel
divided by ``--scale``, the OS cursor hidden over the window so only the game's arrow shows), and
clicks are real left clicks; the recorded velocity is the pointer's displacement per step times 10.

Output: one JSON line per step on stdout, ``{"step": k, "success": bool, "done": bool, "reward": r,
"action": Action.to_dict()}``, after a first line for the reset (``"step": 0`` with ``"prompt"``).
The program exits when the episode ends (success, failure or step cap) unless ``--stay`` keeps the
window open until it is closed (or Esc is pressed). The window always shows the game without any
overlay; the prompt and, for ``reach-goal``, the goal cell are printed to stderr for a person.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import games
from framepilot.errors import ConfigError
from games.base import FRAME_SIZE
from overlays.action import Action

MODES = ("realtime", "sync")


@dataclass
class WindowConfig:
    """Settings of a game window.

    Args:
        game: a bundled game name.
        seed: episode seed.
        mode: ``"realtime"`` or ``"sync"``.
        scale: window pixels per game pixel (nearest neighbour).
        title: window title (agents may find the window by it).
        stay: keep the window open after the episode ends.
        max_seconds: give up after this many seconds of wall time (None: never), for scripts.
    """

    game: str
    seed: int = 0
    mode: str = "realtime"
    scale: int = 4
    title: str = ""
    stay: bool = False
    max_seconds: float | None = None

    def __post_init__(self):
        if self.game not in games.GAME_NAMES:
            raise ConfigError(f"no bundled game named {self.game!r}; choose one of {', '.join(games.GAME_NAMES)}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be 'realtime' or 'sync', got {self.mode!r}")
        if not 1 <= self.scale <= 16:
            raise ConfigError(f"--scale must be a whole number from 1 to 16, got {self.scale}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be zero or positive, got {self.seed}")
        if not self.title:
            self.title = f"framepilot {self.game}"


def _key_names(layout_name: str) -> dict[int, str]:
    """pygame key code -> overlay key name, for the keys of the game's own layout."""
    import pygame

    from overlays import Layout
    return {pygame.key.key_code(name): name for name in Layout.preset(layout_name).keys}


def _emit(line: dict) -> None:
    print(json.dumps(line), flush=True)


def run_window(cfg: WindowConfig) -> dict:
    """Open the window and play one episode; returns the last step's line."""
    import os
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from overlays import Layout

    env = games.make(cfg.game, render_mode="rgb_array")
    layout_keys = set(Layout.preset(env.layout_name).keys)
    key_names = _key_names(env.layout_name)
    mouse_game = env.layout_name == "mouse"
    buttons_map = {1: "left", 3: "right"}

    try:
        pygame.display.init()
        screen = pygame.display.set_mode((FRAME_SIZE * cfg.scale, FRAME_SIZE * cfg.scale))
    except pygame.error as e:
        raise RuntimeError(f"cannot open a window ({e}); run it on a desktop or under Xvfb "
                           "(Xvfb :99 & export DISPLAY=:99)") from None
    if pygame.display.get_driver() in ("dummy", "offscreen") and os.environ.get("SDL_VIDEODRIVER") is None:
        pygame.display.quit()  # SDL fell back to an invisible window: nobody could play or capture it
        raise RuntimeError("no display to open a window on (DISPLAY is unset or unreachable); run it on a "
                           "desktop or under Xvfb (Xvfb :99 & export DISPLAY=:99)")
    pygame.display.set_caption(cfg.title)
    if mouse_game:
        pygame.mouse.set_visible(False)

    def show(frame):
        surf = pygame.surfarray.make_surface(frame.swapaxes(0, 1))
        screen.blit(pygame.transform.scale(surf, screen.get_size()), (0, 0))
        pygame.display.flip()

    def pointer_now() -> tuple[float, float]:
        mx, my = pygame.mouse.get_pos()
        return float(min(FRAME_SIZE - 1, max(0, mx // cfg.scale))), float(min(FRAME_SIZE - 1, max(0, my // cfg.scale)))

    obs, info = env.reset(seed=cfg.seed)
    show(obs)
    first = {"step": 0, "success": False, "done": False, "prompt": info["prompt"], "game": cfg.game,
             "seed": cfg.seed, "mode": cfg.mode}
    _emit(first)
    hint = info["prompt"] or ("reach the red square" if cfg.game == "reach" else
                              f"reach the goal cell {tuple(info['state']['target'])} (column, row)")
    print(f"[{cfg.title}] {hint}; arrows/mouse to play, Esc to quit", file=sys.stderr, flush=True)

    held_keys: set[str] = set()
    held_buttons: set[str] = set()
    tapped_keys: set[str] = set()      # pressed at some moment of the current interval
    tapped_buttons: set[str] = set()
    prev_buttons: set[str] = set()
    carried_keys: set[str] = set()     # held when the current interval began
    carried_buttons: set[str] = set()
    last_pointer = (0.0, 0.0)
    if mouse_game:
        # the episode starts where its seed says: snap the game pointer to its drawn pixel and warp the
        # OS pointer there (drawing unchanged, since the pointer is drawn at the rounded position)
        hx, hy = env.hotspot
        env.pointer = last_pointer = (float(hx), float(hy))
        pygame.mouse.set_pos(hx * cfg.scale + cfg.scale // 2, hy * cfg.scale + cfg.scale // 2)
    t_start = time.perf_counter()
    next_tick = t_start + 1.0 / env.fps
    done = False
    last = first

    def do_step(keys: set[str], buttons: set[str], pointer=None) -> dict:
        nonlocal last_pointer
        if mouse_game:
            v = ((pointer[0] - last_pointer[0]) * env.fps, (pointer[1] - last_pointer[1]) * env.fps)
            action = Action(mouse=v, buttons=buttons)
            obs, reward, terminated, truncated, info = env.step(action, pointer=pointer)
            last_pointer = pointer
        else:
            action = Action(keys=keys & layout_keys)
            obs, reward, terminated, truncated, info = env.step(action)
        show(obs)
        line = {"step": env.steps, "success": bool(info["success"]), "done": bool(terminated or truncated),
                "reward": reward, "action": action.to_dict()}
        _emit(line)
        return line

    try:
        while True:
            step_now = False
            for ev in pygame.event.get():
                if ev.type == pygame.QUIT or (ev.type == pygame.KEYDOWN and ev.key == pygame.K_ESCAPE):
                    return last
                if done:
                    continue
                if ev.type == pygame.KEYDOWN and ev.key in key_names:
                    name = key_names[ev.key]
                    held_keys.add(name)
                    tapped_keys.add(name)
                    if cfg.mode == "sync" and not mouse_game and name in layout_keys:
                        last = do_step(set(held_keys), set())
                        done = last["done"]
                elif ev.type == pygame.KEYUP and ev.key in key_names:
                    held_keys.discard(key_names[ev.key])
                elif ev.type == pygame.MOUSEBUTTONDOWN and ev.button in buttons_map:
                    held_buttons.add(buttons_map[ev.button])
                    tapped_buttons.add(buttons_map[ev.button])
                    step_now = True
                elif ev.type == pygame.MOUSEBUTTONUP and ev.button in buttons_map:
                    held_buttons.discard(buttons_map[ev.button])
                    step_now = True
                elif ev.type == pygame.MOUSEMOTION:
                    step_now = True
            if not done and cfg.mode == "sync" and mouse_game and step_now:
                pointer = pointer_now()
                # a motion event that did not move the pointer a game pixel (the start warp) is no input
                if tapped_buttons or held_buttons != prev_buttons or pointer != last_pointer:
                    last = do_step(set(), set(tapped_buttons) | held_buttons, pointer)
                    prev_buttons = set(held_buttons)
                    tapped_buttons.clear()
                    done = last["done"]
            now = time.perf_counter()
            if not done and cfg.mode == "realtime" and now >= next_tick:
                # held at any moment of the interval: held at its start, pressed during it, or held now
                last = do_step(carried_keys | tapped_keys | held_keys, carried_buttons | tapped_buttons | held_buttons,
                               pointer_now() if mouse_game else None)
                tapped_keys.clear()
                tapped_buttons.clear()
                carried_keys, carried_buttons = set(held_keys), set(held_buttons)
                done = last["done"]
                next_tick += 1.0 / env.fps
                if next_tick < now:  # fell behind (a stalled machine): do not replay missed steps
                    next_tick = now + 1.0 / env.fps
            if done and not cfg.stay:
                return last
            if cfg.max_seconds is not None and now - t_start > cfg.max_seconds:
                return last
            time.sleep(0.002)
    finally:
        env.close()
        pygame.display.quit()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m games.window", description="Play a bundled game in a real window.")
    p.add_argument("game", help=f"one of {', '.join(games.GAME_NAMES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", default="realtime", help="realtime (10 steps per second) or sync (waits for input)")
    p.add_argument("--scale", type=int, default=4, help="window pixels per game pixel")
    p.add_argument("--title", default="", help="window title (default: 'framepilot <game>')")
    p.add_argument("--stay", action="store_true", help="keep the window open after the episode ends")
    p.add_argument("--max-seconds", type=float, default=None, help="give up after this many seconds")
    a = p.parse_args(argv)
    try:
        cfg = WindowConfig(game=a.game, seed=a.seed, mode=a.mode, scale=a.scale, title=a.title, stay=a.stay,
                           max_seconds=a.max_seconds)
        run_window(cfg)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def start_pointer(game: str, seed, rect: tuple[int, int, int, int], scale: int) -> tuple[int, int]:
    """Screen position for the OS pointer when an agent starts an episode in a real game window at
    ``rect`` (left, top, width, height): a mouse game's own start pointer (the window warps the
    pointer there), the window's centre otherwise."""
    left, top, width, height = rect
    env = games.make(game)
    if env.layout_name != "mouse":
        return left + width // 2, top + height // 2
    env.reset(seed=seed)
    hx, hy = env.hotspot
    return left + hx * scale + scale // 2, top + hy * scale + scale // 2


def _die_with(parent: int):
    """A ``preexec_fn``: the child gets SIGTERM when its parent dies, however it dies (SIGKILL included),
    so no game window outlives the agent that opened it (Linux ``PR_SET_PDEATHSIG``)."""
    def arm() -> None:
        import ctypes
        import os
        import signal
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    return arm


class WindowProcess:
    """A bundled game in a real window, as a subprocess an agent can capture and drive.

    ``lines`` collects the window's JSON step lines; ``wait_step`` blocks until a new step line
    arrives (for ``sync`` driving); ``done`` tells when the episode has ended.

    Args:
        game, seed, mode, scale, title, max_seconds, stay: as ``WindowConfig``.
        position: (x, y) of the window on the screen (SDL_VIDEO_WINDOW_POS).
    """

    def __init__(self, game: str, seed: int = 0, mode: str = "sync", scale: int = 4, title: str = "",
                 max_seconds: float | None = 120.0, position: tuple[int, int] = (100, 100), stay: bool = False):
        import os
        import subprocess
        import threading
        WindowConfig(game=game, seed=seed, mode=mode, scale=scale, title=title, max_seconds=max_seconds)
        self.title = title or f"framepilot {game}"
        env = dict(os.environ, SDL_AUDIODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1",
                   SDL_VIDEO_WINDOW_POS=f"{position[0]},{position[1]}")
        cmd = [sys.executable, "-m", "games.window", game, "--seed", str(seed), "--mode", mode,
               "--scale", str(scale), "--title", self.title]
        if max_seconds is not None:
            cmd += ["--max-seconds", str(max_seconds)]
        if stay:
            cmd += ["--stay"]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                                     cwd=root, preexec_fn=_die_with(os.getpid()))
        self.lines: list[dict] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.lines.append(rec)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_shown(self, timeout: float) -> bool:
        """Block until the window has shown its first frame (its step-0 line, printed after the first
        flip) or has exited. Before that, the screen where it lies can still show whatever was there
        before it opened (another program's window, an earlier game): nothing to capture."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self.lines) or self.proc.poll() is not None, timeout) \
                and bool(self.lines)

    def mark_step(self) -> None:
        """Remember how many steps the game has reported (call before sending the input)."""
        with self._cond:
            self._mark = len(self.lines)

    def wait_step(self, timeout: float) -> bool:
        """Block until the game reports a step after the last ``mark_step`` (or ``timeout`` s pass)."""
        with self._cond:
            n = getattr(self, "_mark", len(self.lines))
            return self._cond.wait_for(lambda: len(self.lines) > n or self.proc.poll() is not None, timeout)

    def capture(self, include_pointer: bool = False, downscale: int = 1, shape: tuple[int, int] | None = None,
                timeout: float = 20.0):
        """A ``controllers.ScreenCapture`` of this window once it shows the game: found by its title,
        first frame drawn (not black), and ``shape`` (H, W of the captured frame) when given.

        The game window hides the OS cursor and draws its own pointer, so by default no second pointer is
        drawn in; ``downscale``: each game pixel is ``scale`` x ``scale`` screen pixels, so
        ``downscale=scale`` gives the game's own frames.

        Raises:
            ConfigError: the window exited first (its error said), or did not show within ``timeout``.
        """
        from controllers import ScreenCapture
        end = time.monotonic() + timeout
        self.wait_shown(timeout)  # before its first frame the screen there can still show an earlier window
        while True:
            cap = None
            try:
                cap = ScreenCapture(window=self.title, include_pointer=include_pointer, downscale=downscale)
                frame, _ = cap.grab()
                if frame.max() > 0 and (shape is None or frame.shape[:2] == tuple(shape)):
                    return cap
            except Exception:
                pass
            if cap is not None:
                cap.close()
            if self.proc.poll() is not None:
                raise ConfigError(f"the game window exited before it could be captured: {self.error()[-300:]}")
            if time.monotonic() > end:
                raise ConfigError(f"the game window did not appear within {timeout:g} s; check that the X display works")
            time.sleep(0.1)

    @property
    def done(self) -> bool:
        return self.proc.poll() is not None or bool(self.lines and self.lines[-1].get("done"))

    @property
    def success(self) -> bool:
        return bool(self.lines and self.lines[-1].get("success"))

    @property
    def steps(self) -> int:
        return max(0, len(self.lines) - 1)

    def error(self) -> str:
        """The window's stderr once it has exited (for error messages)."""
        if self.proc.poll() is None:
            return ""
        return (self.proc.stderr.read() or "").strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
        self._thread.join(timeout=2)

    def __enter__(self) -> "WindowProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
