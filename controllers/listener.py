"""Hearing a person's keyboard and mouse (for recording them), next to the executor that sends the agent's.

Only the layout's keys and buttons are heard, and nothing else is stored. The rule for an interval
(one recorded frame): a key or button counts as held in it if it was down at any moment of it (held
at its start, pressed during it, or tapped and released within it), so a tap shorter than a frame is
never lost. The stop key (Esc by default) is never recorded; it ends the recording.
"""

from __future__ import annotations

import threading

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
        self._held_keys: set[str] = set()
        self._tapped_keys: set[str] = set()
        self._held_buttons: set[str] = set()
        self._tapped_buttons: set[str] = set()
        self._carried_keys: set[str] = set()
        self._carried_buttons: set[str] = set()
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
        """(keys, buttons) down at any moment since the previous call; starts the next interval."""
        with self._lock:
            keys = self._carried_keys | self._tapped_keys | self._held_keys
            buttons = self._carried_buttons | self._tapped_buttons | self._held_buttons
            self._tapped_keys.clear()
            self._tapped_buttons.clear()
            self._carried_keys, self._carried_buttons = set(self._held_keys), set(self._held_buttons)
        return frozenset(keys), frozenset(buttons)

    # ---- pynput callbacks (its threads) ------------------------------------------------------------
    def _on_press(self, key) -> None:
        name = _name(key)
        if name == self.stop_key:
            self.stopped.set()
        elif name in self._keys_heard:
            with self._lock:
                self._held_keys.add(name)
                self._tapped_keys.add(name)

    def _on_release(self, key) -> None:
        with self._lock:
            self._held_keys.discard(_name(key))

    def _on_click(self, x, y, button, pressed) -> None:
        name = getattr(button, "name", "")
        if name not in self._buttons_heard:
            return
        with self._lock:
            if pressed:
                self._held_buttons.add(name)
                self._tapped_buttons.add(name)
            else:
                self._held_buttons.discard(name)
