"""Hearing a person's keyboard and mouse (for recording them), next to the executor that sends the agent's.

Only the layout's keys and buttons are heard, and nothing else is stored. The rule for an interval
(one recorded frame): a key or button counts as held in it when it was down for at least half of it;
a press that no interval counted that way (shorter than half a frame) counts in the interval in which
it ends, so no press is ever lost. A key that changes inside an interval therefore counts only in the
intervals it mostly covers: a player who lets go of Up and presses Down a third of the way into a
frame is recorded as holding Down alone, never Up and Down together (with the older rule, "down at any
moment of it", 22% of the frames of a 15 fps Atari game recorded at 10 fps showed both). The stop key
(Esc by default) is never recorded; it ends the recording.
"""

from __future__ import annotations

import threading
import time

from controllers.display import ControllerError


def _name(key) -> str | None:
    name = getattr(key, "name", None)
    if name:
        return name
    char = getattr(key, "char", None)
    return char.lower() if char else None


def stop_listener(listener) -> None:
    """Stop a pynput listener and wait for its thread.

    pynput 1.8's X11 listener sends its stop request on the connection that is blocked reading
    events, so on an idle display (Xvfb) it only stops at the next input event; sending the same
    request on its control connection stops it at once.
    """
    listener.stop()
    try:
        listener._display_stop.record_disable_context(listener._context)
        listener._display_stop.flush()
    except Exception:  # another backend (macOS, Windows) or pynput version: stop() alone is enough there
        pass
    listener.join(timeout=2.0)


class InputListener:
    """The keys and buttons a person holds, interval by interval, and the pointer's position.

    Args:
        layout: ``overlays.Layout``; only its keys and buttons are heard.
        stop_key: pynput key name that sets ``stopped`` (not recorded).
    """

    def __init__(self, layout, stop_key: str = "esc"):
        self.layout, self.stop_key = layout, stop_key
        self.stopped = threading.Event()
        self._keys_heard, self._buttons_heard = set(layout.keys), set(layout.buttons)
        self._lock = threading.Lock()
        self._clock = time.monotonic
        self._start = self._clock()  # the current interval's start
        self._since: dict[str, float] = {}  # held controls ("key:up", "button:left") -> when pressed
        self._down: dict[str, float] = {}  # seconds each control was down in this interval, until released
        self._tapped: set[str] = set()  # presses that ended in this interval and no interval counted
        self._shown: set[str] = set()  # held controls that an interval already counted
        self._kl = self._ml = self._pointer = None

    def start(self) -> "InputListener":
        try:
            from pynput import keyboard, mouse
        except ImportError as e:
            raise ControllerError(f"recording needs pynput with a display ({e}); run it on a desktop or under "
                                  "Xvfb with DISPLAY set") from None
        self._kl = keyboard.Listener(on_press=self._on_press, on_release=self._on_release)
        self._ml = mouse.Listener(on_click=self._on_click)
        self._pointer = mouse.Controller()
        self._kl.start()
        self._ml.start()
        self._kl.wait()
        self._ml.wait()
        return self

    def close(self) -> None:
        for listener in (self._kl, self._ml):
            if listener is not None:
                stop_listener(listener)
        self._kl = self._ml = None

    def __enter__(self) -> "InputListener":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pointer(self) -> tuple[int, int]:
        return tuple(self._pointer.position)

    def interval(self) -> tuple[frozenset[str], frozenset[str]]:
        """(keys, buttons) held in the interval since the previous call (the module's rule); starts the
        next interval."""
        with self._lock:
            now = self._clock()
            half = (now - self._start) / 2
            down = dict(self._down)
            for c, t in self._since.items():
                down[c] = down.get(c, 0.0) + now - max(t, self._start)
            held = {c for c, d in down.items() if d >= half} | self._tapped
            self._shown |= held & self._since.keys()
            self._start, self._down, self._tapped = now, {}, set()
        keys = frozenset(c[4:] for c in held if c.startswith("key:"))
        buttons = frozenset(c[7:] for c in held if c.startswith("button:"))
        return keys, buttons

    def _pressed(self, control: str) -> None:
        with self._lock:
            self._since.setdefault(control, self._clock())  # (auto-repeat presses keep the first time)

    def _released(self, control: str) -> None:
        with self._lock:
            t = self._since.pop(control, None)
            if t is None:
                return
            self._down[control] = self._down.get(control, 0.0) + self._clock() - max(t, self._start)
            if control not in self._shown:
                self._tapped.add(control)
            self._shown.discard(control)

    # ---- pynput callbacks (its threads) ------------------------------------------------------------
    def _on_press(self, key) -> None:
        name = _name(key)
        if name == self.stop_key:
            self.stopped.set()
        elif name in self._keys_heard:
            self._pressed("key:" + name)

    def _on_release(self, key) -> None:
        self._released(f"key:{_name(key)}")

    def _on_click(self, x, y, button, pressed) -> None:
        name = getattr(button, "name", "")
        if name in self._buttons_heard:
            (self._pressed if pressed else self._released)("button:" + name)
