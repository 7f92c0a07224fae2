"""Safety for real input: what may be pressed, the stop/pause hotkeys, the focus guard, exit handlers
and the guardian process. The executor (``controllers/executor.py``) wires these together.

Defaults: F12 stops the agent and releases everything, F11 pauses/resumes, the pointer in a screen
corner stops it, keys go only to the window that had focus when the agent started, a 3 s countdown
precedes the first input, held keys are released when no decision arrives for 0.5 s, and a guardian
process releases everything if the agent dies, even by SIGKILL.
"""

from __future__ import annotations

import atexit
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from controllers.display import (
    ControllerError,
    Rect,
    is_viewable,
    top_level,
    window_rect,
)
from overlays import Action
from overlays.layout import is_valid_key_name

# Modifier spellings folded together before matching combinations.
_MODIFIERS = {"ctrl_l": "ctrl", "ctrl_r": "ctrl", "alt_l": "alt", "alt_r": "alt", "alt_gr": "alt",
              "shift_l": "shift", "shift_r": "shift", "cmd_l": "cmd", "cmd_r": "cmd"}

#: pynput's media keys (``pynput.keyboard.Key.media_*``): they act on the whole session.
MEDIA_KEYS = ("media_next", "media_play_pause", "media_previous", "media_volume_down", "media_volume_mute",
              "media_volume_up")

# Combinations that can hurt the user's session (close, switch or lock it, or send keys elsewhere).
DANGEROUS_COMBOS: tuple[frozenset[str], ...] = tuple(frozenset(c) for c in (
    {"cmd"},  # super/windows key: launcher, window manager shortcuts
    {"alt", "tab"}, {"alt", "esc"}, {"alt", "space"},  # switch window, window menu
    *({"alt", f"f{i}"} for i in range(1, 13)),  # alt+f4 closes, alt+f2 runs; ctrl+alt+fN switches VT
    {"ctrl", "alt", "delete"}, {"ctrl", "alt", "backspace"},  # log out / kill the X server
    {"ctrl", "alt", "t"}, {"ctrl", "alt", "l"},  # open a terminal, lock the screen
    *({"ctrl", "alt", a} for a in ("left", "right", "up", "down")),  # switch workspace
    {"ctrl", "w"}, {"ctrl", "q"},  # close tab / quit program
    {"ctrl", "shift", "w"}, {"ctrl", "shift", "q"},  # close window / log out (GNOME), quit (browsers)
    {"ctrl", "esc"}, {"ctrl", "shift", "esc"},  # start menu / task manager
    {"ctrl", "c"}, {"ctrl", "d"}, {"ctrl", "z"}, {"ctrl", "\\"},  # in a terminal: interrupt, EOF, suspend, quit
    {"menu"},  # the context-menu key: a menu outside the game
    {"caps_lock"}, {"num_lock"}, {"scroll_lock"},  # lock states that outlive the agent
    {"print_screen"}, {"pause"},  # screenshot tools, break
    *({k} for k in MEDIA_KEYS),  # the session's volume and media players, not the game
))


def _norm(key: str) -> str:
    key = _MODIFIERS.get(key, key)
    return key.lower() if len(key) == 1 else key


def combo_name(combo) -> str:
    order = {"ctrl": 0, "alt": 1, "shift": 2, "cmd": 3}
    return "+".join(sorted(combo, key=lambda k: (order.get(k, 9), k)))


def _print_status(msg: str) -> None:
    print(f"[framepilot] {msg}", file=sys.stderr, flush=True)


@dataclass
class SafetyConfig:
    """Safety settings for real input; everything is on by default.

    Args:
        stop_key: hotkey that stops the agent and releases everything (pynput key name).
        pause_key: hotkey that pauses (releasing everything) and resumes.
        hotkeys: listen for the stop and pause keys (pynput keyboard listener; it stores nothing).
        corner_failsafe: the pointer within ``corner_px`` pixels of a screen corner stops the agent.
        corner_px: size of the corner zones, pixels.
        focus_guard: pause and release when the target window loses focus, moves, is covered or
            hidden; stop when it closes. Without a target window, the window focused at start is guarded.
        countdown: seconds of countdown before the first input.
        deadline: release held keys and buttons when ``apply()`` is not called again within this
            many seconds (``None``: never).
        max_steps: stop after this many ``apply()`` calls (``None``: no limit).
        max_seconds: stop after this many seconds since the countdown ended (``None``: no limit).
        allow_dangerous: allow the combinations in ``DANGEROUS_COMBOS`` (super, alt+f4, ctrl+alt+delete, ...).
        guardian: run a guardian process that releases everything if this process dies, even by SIGKILL.
        guardian_timeout: the guardian also releases when it hears nothing for this many seconds.
        exit_handlers: release on SIGTERM, SIGINT, SIGHUP and at interpreter exit.
        poll_interval: seconds between safety checks (corner, focus, deadline) in the watchdog thread.
        status: called with one-line status messages ("agent active", "paused", ...); default: stderr.
    """

    stop_key: str = "f12"
    pause_key: str = "f11"
    hotkeys: bool = True
    corner_failsafe: bool = True
    corner_px: int = 3
    focus_guard: bool = True
    countdown: float = 3.0
    deadline: float | None = 0.5
    max_steps: int | None = None
    max_seconds: float | None = None
    allow_dangerous: bool = False
    guardian: bool = True
    guardian_timeout: float = 1.0
    exit_handlers: bool = True
    poll_interval: float = 0.02
    status: Callable[[str], None] | None = None

    def __post_init__(self):
        for name in ("stop_key", "pause_key"):
            if not is_valid_key_name(getattr(self, name)):
                raise ControllerError(f"{name} {getattr(self, name)!r} is not a key name: use a pynput Key name "
                                      "such as f12, or a single character")
        if self.stop_key == self.pause_key:
            raise ControllerError(f"stop_key and pause_key are both {self.stop_key!r}: choose two different keys")
        if self.corner_px < 1:
            raise ControllerError(f"corner_px must be at least 1, got {self.corner_px}")
        for name in ("countdown",):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ControllerError(f"{name} must be zero or positive, got {getattr(self, name)}")
        for name in ("deadline", "max_seconds"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ControllerError(f"{name} must be positive or None, got {v}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ControllerError(f"max_steps must be at least 1 or None, got {self.max_steps}")
        if not 0 < self.poll_interval <= 0.2:
            raise ControllerError(f"poll_interval must be in (0, 0.2] seconds, got {self.poll_interval}")
        if self.guardian_timeout < 5 * self.poll_interval:
            raise ControllerError(f"guardian_timeout must be at least 5 poll intervals "
                                  f"({5 * self.poll_interval:.2f} s), got {self.guardian_timeout}")
        if self.status is None:
            self.status = _print_status


def check_layout(layout, cfg: SafetyConfig) -> None:
    """Refuse a layout that contains the stop or pause hotkey (the agent must never press them)."""
    for name in ("stop_key", "pause_key"):
        if getattr(cfg, name) in layout.keys:
            raise ControllerError(f"layout {layout.name!r} contains the {name.replace('_', ' ')} "
                                  f"{getattr(cfg, name)!r}: pick another {name} in SafetyConfig")


def screen_action(action: Action, layout, cfg: SafetyConfig, held: frozenset[str] = frozenset()
                  ) -> tuple[Action, list[str]]:
    """What of ``action`` may be executed: only layout controls, never a hotkey, no dangerous combination.

    Args:
        action: the requested action.
        layout: the active ``overlays.Layout``.
        cfg: safety settings.
        held: keys held right now; when a dangerous combination would form, the keys that would
            complete it are dropped (non-modifiers first), not the ones already held.

    Returns:
        ``(allowed action, refusals)``, each refusal one sentence.
    """
    refusals = []
    keys = set()
    for k in sorted(action.keys):
        if k in (cfg.stop_key, cfg.pause_key):
            refusals.append(f"refused {k}: it is the {'stop' if k == cfg.stop_key else 'pause'} hotkey")
        elif k not in layout.keys:
            refusals.append(f"refused {k}: it is not a key of layout {layout.name!r}")
        else:
            keys.add(k)
    buttons = set()
    for b in sorted(action.buttons):
        if b in layout.buttons:
            buttons.add(b)
        else:
            refusals.append(f"refused mouse button {b}: it is not in layout {layout.name!r}")
    mouse = action.mouse
    if not layout.has_mouse and mouse != (0.0, 0.0):
        refusals.append(f"refused mouse motion: layout {layout.name!r} has no mouse")
        mouse = (0.0, 0.0)
    if not cfg.allow_dangerous:
        while True:
            normed = {_norm(k) for k in keys}
            combo = next((c for c in DANGEROUS_COMBOS if c <= normed), None)
            if combo is None:
                break
            members = sorted(k for k in keys if _norm(k) in combo)
            fresh = [k for k in members if k not in held] or members
            drop = next((k for k in fresh if _norm(k) not in ("ctrl", "alt", "shift")), fresh[0])
            keys.discard(drop)
            refusals.append(f"refused {drop}: {combo_name(combo)} can hurt the session "
                            "(pass allow_dangerous=True to allow it)")
    return Action(keys=frozenset(keys), mouse=mouse, buttons=frozenset(buttons)), refusals


def corner_hit(x: int, y: int, screen: Rect, px: int) -> bool:
    """Whether root pixel ``(x, y)`` lies in a ``px``-sized corner zone of ``screen``."""
    near_x = x < screen.left + px or x >= screen.right - px
    near_y = y < screen.top + px or y >= screen.bottom - px
    return near_x and near_y


def countdown(seconds: float, status: Callable[[str], None], stopped: Callable[[], str | None]) -> None:
    """Announce the hand-over: a countdown of ``seconds``, interrupted when ``stopped()`` returns a reason."""
    end = time.monotonic() + seconds
    shown = None
    while (left := end - time.monotonic()) > 0:
        if stopped():
            return
        n = int(left) + 1
        if n != shown:
            status(f"agent takes control in {n} ...")
            shown = n
        time.sleep(min(0.05, left))


class FocusGuard:
    """Watches the target window: focus, position, covering windows, closing.

    All calls happen on one thread with its own Xlib connection ``d``.

    Args:
        d: Xlib display owned by the calling thread.
        window_id: the target window's id, or ``None`` to guard the window focused at ``arm()``.
    """

    def __init__(self, d, window_id: int | None):
        self.d, self.window_id = d, window_id
        self.window = self.top = self.rect = None

    def _focused_top(self):
        """The top-level window that receives keys now (focus, or the pointer's window when focus follows it)."""
        root = self.d.screen().root
        f = self.d.get_input_focus().focus
        fid = f if isinstance(f, int) else f.id
        if fid == 0:  # X.NONE: keys go nowhere
            return None
        if fid == 1 or fid == root.id:  # X.PointerRoot or the root: keys go to the window under the pointer
            child = root.query_pointer().child
            return None if isinstance(child, int) or child.id == 0 else child
        return top_level(self.d, f)

    def arm(self) -> None:
        """Take the current position as the reference (at start and on resume)."""
        import Xlib.error
        try:
            if self.window_id is None:
                focused = self._focused_top()
                self.window = focused
            else:
                self.window = self.d.create_resource_object("window", self.window_id)
            if self.window is None:
                self.top = self.rect = None
                return
            self.top = top_level(self.d, self.window)
            self.rect = window_rect(self.d, self.window)
        except Xlib.error.XError:
            self.top = self.rect = None

    def check(self) -> tuple[str, str] | None:
        """``("stop"|"pause", reason)`` when the target is no longer safe to type into, else ``None``."""
        import Xlib.error
        if self.top is None:
            return None
        try:
            rect = window_rect(self.d, self.window)
        except Xlib.error.XError:
            return "stop", "the target window closed"
        try:
            if not is_viewable(self.window):
                return "pause", "the target window was hidden"
            if rect != self.rect:
                return "pause", f"the target window moved or was resized (from {self.rect} to {rect})"
            focused = self._focused_top()
            if focused is None or focused.id != self.top.id:
                return "pause", "the target window lost the keyboard focus"
            children = self.d.screen().root.query_tree().children  # bottom to top
            ids = [c.id for c in children]
            if self.top.id in ids:
                for c in children[ids.index(self.top.id) + 1:]:
                    if is_viewable(c) and window_rect(self.d, c).intersects(rect):
                        return "pause", "another window covers the target window"
        except Xlib.error.XError:
            return None  # a window vanished mid-check; look again next tick
        return None


class HotkeyListener:
    """Hears the stop and pause hotkeys with a pynput keyboard listener; acts on nothing else, stores nothing.

    Args:
        stop_key, pause_key: pynput key names.
        on_stop, on_pause: called on the listener's thread when the key goes down.
    """

    def __init__(self, stop_key: str, pause_key: str, on_stop: Callable[[], None], on_pause: Callable[[], None]):
        from pynput import keyboard
        self.stop_key, self.pause_key, self.on_stop, self.on_pause = stop_key, pause_key, on_stop, on_pause
        self._listener = keyboard.Listener(on_press=self._on_press)

    @staticmethod
    def _name(key) -> str | None:
        name = getattr(key, "name", None)  # pynput Key members
        return name if name is not None else getattr(key, "char", None)

    def _on_press(self, key) -> None:
        name = self._name(key)
        if name == self.stop_key:
            self.on_stop()
        elif name == self.pause_key:
            self.on_pause()

    def start(self, timeout: float = 3.0) -> None:
        self._listener.start()
        end = time.monotonic() + timeout
        while not getattr(self._listener, "_ready", True):
            if time.monotonic() > end or not self._listener.is_alive():
                raise ControllerError("the stop-hotkey listener did not start (the X server needs the RECORD "
                                      "extension): enable it, or set hotkeys=False at your own risk")
            time.sleep(0.01)

    def stop(self) -> None:
        self._listener.stop()
        # pynput 1.8 queues the RECORD disable on the connection its thread is blocked on, so the
        # thread only ends at the next key event; send it on the idle connection to end it now.
        try:
            lst = self._listener
            lst._display_stop.record_disable_context(lst._context)
            lst._display_stop.flush()
        except Exception:
            pass

    def join(self, timeout: float | None = None) -> None:
        self._listener.join(timeout)


class GuardianClient:
    """Starts ``python -m controllers.guardian`` and keeps it told what is held.

    The guardian releases those keys and buttons when this process's pipe closes (it died, even by
    SIGKILL) or when no heartbeat arrives for ``timeout`` seconds (it hangs).
    """

    def __init__(self, timeout: float):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._lock = threading.Lock()
        self._last = None
        self.proc = subprocess.Popen([sys.executable, "-m", "controllers.guardian", "--timeout", str(timeout)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     start_new_session=True)  # so Ctrl-C in the terminal does not kill it too
        line = self.proc.stdout.readline()
        self.proc.stdout.close()
        if line.strip() != b"READY":
            self.proc.kill()
            raise ControllerError("the guardian process did not start (see its error above): set guardian=False "
                                  "at your own risk")

    def _send(self, line: str) -> None:
        with self._lock:
            try:
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the guardian is gone; the in-process releases still work

    def update(self, keycodes, buttons) -> None:
        state = (tuple(sorted(keycodes)), tuple(sorted(buttons)))
        if state != self._last:
            self._last = state
            self._send("H " + " ".join(map(str, state[0])) + " | " + " ".join(map(str, state[1])))

    def beat(self) -> None:
        self._send(".")

    def close(self) -> None:
        with self._lock:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class ExitHandlers:
    """Release everything on SIGTERM, SIGINT (Ctrl-C), SIGHUP and at interpreter exit, then carry on
    with what the signal would have done (SIGINT still raises KeyboardInterrupt).

    Args:
        emergency_release: releases without touching connections the interrupted code may be using.
        release: the ordinary release, for atexit.
    """

    SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")

    def __init__(self, emergency_release: Callable[[str], None], release: Callable[[], None]):
        self.emergency_release, self.release = emergency_release, release
        self._prev: dict[int, object] = {}

    def install(self) -> None:
        atexit.register(self.release)
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; atexit and the guardian still cover it
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._prev[sig] = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.emergency_release(signal.Signals(signum).name)
        prev = self._prev.get(signum)
        if callable(prev):
            return prev(signum, frame)
        if prev == signal.SIG_IGN:
            return None
        raise SystemExit(128 + signum)

    def uninstall(self) -> None:
        atexit.unregister(self.release)
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, prev in self._prev.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        self._prev.clear()


class RunControl:
    """Stop and pause for a whole run: every episode of ``play --episodes N``, each with its own window
    and executor, and the gaps between them.

    The stop and pause hotkeys are heard from ``start()`` to ``close()`` (the executors attached to it
    start no listener of their own); the stop key and the corner failsafe end the run, not the episode;
    a pause holds across episodes until the pause key is pressed again. SIGTERM and SIGHUP end the run
    through ``SystemExit`` from ``start()`` on, so cleanup (closing windows) runs even before the first
    executor exists.

    Args:
        safety: the stop/pause keys, whether hotkeys are heard, and the corner failsafe.
    """

    def __init__(self, safety: SafetyConfig):
        self.safety = safety
        self.stop_reason: str | None = None
        self.pause_reason: str | None = None
        self.current = None  # the executor of the episode now running
        self._lock = threading.RLock()
        self._listener: HotkeyListener | None = None
        self._prev: dict[int, object] = {}

    def start(self) -> "RunControl":
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGHUP"):
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._prev[sig] = signal.getsignal(sig)
                    signal.signal(sig, self._on_signal)
        if self.safety.hotkeys:
            k = self.safety.stop_key
            self._listener = HotkeyListener(k, self.safety.pause_key, lambda: self.stop(f"{k} pressed"),
                                            self.toggle_pause)
            self._listener.start()
        return self

    @staticmethod
    def _on_signal(signum, frame):
        raise SystemExit(128 + signum)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=1.0)
            self._listener = None
        for sig, prev in self._prev.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        self._prev.clear()

    def __enter__(self) -> "RunControl":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    @property
    def paused(self) -> bool:
        return self.pause_reason is not None

    def attach(self, executor) -> None:
        """``executor`` runs the current episode: it gets the run's stop or pause now, and its stop key or
        corner failsafe stops the run."""
        with self._lock:
            executor.run = self
            self.current = executor
            if self.stop_reason is not None:
                executor.stop(self.stop_reason)
            elif self.pause_reason is not None:
                executor.pause(self.pause_reason)

    def detach(self, executor) -> None:
        with self._lock:
            if self.current is executor:
                self.current = None

    def stop(self, reason: str) -> None:
        """End the run: the current episode's executor releases everything and stops; no episode follows."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            cur = self.current
        if cur is not None:
            cur.stop(reason)

    def toggle_pause(self) -> None:
        with self._lock:
            cur = self.current
            if cur is not None:
                cur.toggle_pause()
                self.pause_reason = cur.pause_reason
            else:
                self.pause_reason = None if self.paused else f"{self.safety.pause_key} pressed"
                self.safety.status(f"PAUSED: {self.pause_reason}" if self.paused else "resumed")

    def wait_while_paused(self, poll: float = 0.05) -> None:
        """Between episodes: block while the run is paused (until resumed or stopped)."""
        while self.paused and not self.stopped:
            time.sleep(poll)

    def check_corner(self) -> bool:
        """The corner failsafe between episodes: the pointer in a screen corner stops the run (so the
        agent never moves it out of there itself). True when the run is stopped."""
        if self.safety.corner_failsafe and not self.stopped:
            from controllers.display import open_display, screen_rect
            d = open_display()
            try:
                p = d.screen().root.query_pointer()
                if corner_hit(p.root_x, p.root_y, screen_rect(d), self.safety.corner_px):
                    self.stop(f"pointer in a screen corner at ({p.root_x}, {p.root_y}) (failsafe)")
            finally:
                d.close()
        return self.stopped
