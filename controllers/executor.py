"""Input execution: turn an ``overlays.Action`` into real key, button and pointer events, safely.

``PynputExecutor`` drives the X server through pynput (XTEST), ``DryRunExecutor`` only logs. Both
diff the requested action against what is held and touch only the difference, and both return what
is really held after refusals and releases, which is what the next frame's overlay must show.
"""

from __future__ import annotations

import logging
import threading
import time

from controllers.display import (
    AgentStopped,
    ControllerError,
    Rect,
    RegionError,
    check_display,
    open_display,
    screen_rect,
    xtest_release,
)
from controllers.safety import (
    ExitHandlers,
    FocusGuard,
    GuardianClient,
    HotkeyListener,
    SafetyConfig,
    check_layout,
    corner_hit,
    countdown,
    screen_action,
)
from overlays import NOOP, Action

log = logging.getLogger("framepilot.controllers")

BUTTON_NUMBERS = {"left": 1, "middle": 2, "right": 3}
_MODIFIER_PREFIXES = ("ctrl", "alt", "shift", "cmd")


def _modifiers_first(k: str) -> tuple[bool, str]:
    return (not k.startswith(_MODIFIER_PREFIXES), k)


def _modifiers_last(k: str) -> tuple[bool, str]:
    return (k.startswith(_MODIFIER_PREFIXES), k)


class Executor:
    """Applies actions: diffing, safety filtering, limits, deadline, pause and stop.

    Subclasses send the events (``_key``, ``_button``, ``_pointer``, ``_warp``) and may add checks
    to ``_check`` (run every ``safety.poll_interval`` seconds on the watchdog thread).

    Args:
        layout: the active ``overlays.Layout``; only its keys and buttons are ever pressed.
        region: ``(left, top, width, height)`` screen pixels the pointer is confined to (the capture region).
        safety: safety settings; ``SafetyConfig()`` when ``None``.

    Attributes:
        mouse_scale: screen pixels per pixel of the overlay's mouse velocity (default 1: the overlay
            measures the region's own pixels). A world model that learnt its arrows on frames smaller
            than the region needs it: a bundled game shown at ``--scale s`` has ``s`` screen pixels per
            game pixel, and its model's arrows are in game pixels. ``apply`` takes and returns the
            overlay's unit; only the pointer's motion is scaled.
    """

    mouse_scale: float = 1.0

    def __init__(self, layout, region: tuple[int, int, int, int] | None = None, safety: SafetyConfig | None = None):
        self.layout = layout
        self.safety = safety if safety is not None else SafetyConfig()
        check_layout(layout, self.safety)
        self.region = None if region is None else Rect(*(int(v) for v in region))
        self.screen: Rect | None = None
        self.stop_reason: str | None = None
        self.pause_reason: str | None = None
        self.steps = 0
        self._lock = threading.RLock()
        self._keys: set[str] = set()
        self._buttons: set[str] = set()
        self._frac = [0.0, 0.0]  # sub-pixel remainder of the mouse motion
        self._started = self._closed = False
        self._t_start: float | None = None
        self._last_apply: float | None = None
        self._refusals_shown: set[str] = set()
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.run = None  # a ``RunControl`` when this executor runs one episode of several

    # ---- state ------------------------------------------------------------------------------
    @property
    def held(self) -> Action:
        """Keys and buttons held now (mouse velocity is not a held state, so it is zero)."""
        with self._lock:
            return Action(keys=frozenset(self._keys), buttons=frozenset(self._buttons))

    @property
    def paused(self) -> bool:
        return self.pause_reason is not None

    def status(self, msg: str) -> None:
        log.info(msg)
        self.safety.status(msg)

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> "Executor":
        """Start the safety machinery, count down, and announce that the agent is active."""
        if self._started:
            return self
        self._started = True
        try:
            self._on_start()
            self._watcher = threading.Thread(target=self._watch, name="framepilot-watchdog", daemon=True)
            self._watcher.start()
            countdown(self.safety.countdown, self.status, lambda: self.stop_reason)
            if self.stop_reason:
                raise AgentStopped(f"stopped before starting: {self.stop_reason}")
        except BaseException:
            self.close()
            raise
        with self._lock:
            self._t_start = self._last_apply = time.monotonic()
        self._on_active()
        c = self.safety
        self.status("AGENT ACTIVE: " + "; ".join(filter(None, [
            f"{c.stop_key} stops" if c.hotkeys else "", f"{c.pause_key} pauses/resumes" if c.hotkeys else "",
            "pointer to a screen corner stops" if c.corner_failsafe else ""])))
        return self

    def close(self) -> None:
        """Release everything and stop the safety machinery; safe to call twice."""
        if self._closed:
            return
        self.release_all()
        self._closed = True
        self._watch_stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=2.0)
        self._on_close()

    def __enter__(self) -> "Executor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- acting -----------------------------------------------------------------------------
    def apply(self, action: Action, dt: float) -> Action:
        """Hold what ``action`` asks for (as far as safety allows) for the next ``dt`` seconds.

        Args:
            action: the requested keys, mouse velocity (overlay pixels per second, see ``mouse_scale``)
                and buttons.
            dt: seconds until the next call; the pointer moves ``velocity * mouse_scale * dt`` pixels now.

        Returns:
            What is really held after refusals and releases, and the mouse velocity really executed
            (lower than asked when the pointer hits the region's edge). ``NOOP`` while paused.

        Raises:
            AgentStopped: the agent was stopped (hotkey, corner, closed window, limits); nothing is held.
        """
        if not self._started:
            self.start()
        with self._lock:
            if self._closed:
                raise ControllerError("this executor is closed: create a new one")
            if self.stop_reason is None:
                self.steps += 1
                self._check_limits()
            if self.stop_reason is not None:
                raise AgentStopped(self.stop_reason)
            self._last_apply = time.monotonic()
            if self.paused:
                return NOOP
            allowed, refusals = screen_action(action, self.layout, self.safety, frozenset(self._keys))
            for r in refusals:
                log.debug(r)
                if r not in self._refusals_shown:
                    self._refusals_shown.add(r)
                    self.status(r)
            self._set_held(allowed.keys, allowed.buttons)
            mouse = (0.0, 0.0)
            if self.layout.has_mouse:
                k = float(self.mouse_scale)
                moved = self._move((allowed.mouse[0] * k, allowed.mouse[1] * k), dt)
                mouse = (moved[0] / k, moved[1] / k)
            return Action(keys=frozenset(self._keys), mouse=mouse, buttons=frozenset(self._buttons))

    def _check_limits(self) -> None:
        c = self.safety
        if c.max_steps is not None and self.steps > c.max_steps:
            self.stop(f"reached max_steps ({c.max_steps})")
        elif c.max_seconds is not None and self._t_start is not None \
                and time.monotonic() - self._t_start > c.max_seconds:
            self.stop(f"reached max_seconds ({c.max_seconds:g} s)")

    def _set_held(self, keys, buttons) -> None:
        for k in sorted(self._keys - keys, key=_modifiers_last):
            self._key(k, False)
            self._keys.discard(k)
        for b in sorted(self._buttons - buttons):
            self._button(b, False)
            self._buttons.discard(b)
        new_keys, new_buttons = keys - self._keys, buttons - self._buttons
        self._keys |= new_keys  # recorded (and told to the guardian) before sending, so no release misses them
        self._buttons |= new_buttons
        self._held_changed()
        for k in sorted(new_keys, key=_modifiers_first):
            self._key(k, True)
        for b in sorted(new_buttons):
            self._button(b, True)

    def _move(self, v: tuple[float, float], dt: float) -> tuple[float, float]:
        if v == (0.0, 0.0) or dt <= 0:
            self._frac = [0.0, 0.0]
            return (0.0, 0.0)
        x, y = self._pointer()
        step = []
        for i in range(2):
            d = v[i] * dt + self._frac[i]
            step.append(int(d))
            self._frac[i] = d - int(d)
        tx, ty = x + step[0], y + step[1]
        box = self.region or self.screen
        if box is not None:
            tx, ty = min(max(tx, box.left), box.right - 1), min(max(ty, box.top), box.bottom - 1)
        s, px = self.screen, self.safety.corner_px
        if s is not None and self.safety.corner_failsafe and corner_hit(tx, ty, s, px):
            tx = s.left + px if tx < s.left + px else s.right - px - 1  # never trip the failsafe ourselves
        if (tx, ty) != (x, y):
            self._warp(tx, ty)
        moved = (tx - x, ty - y)
        out = []
        for i in range(2):
            if moved[i] == step[i]:
                out.append(v[i])
            else:  # clamped: report what really happened
                self._frac[i] = 0.0
                out.append(moved[i] / dt)
        return (out[0], out[1])

    # ---- releasing, stopping, pausing --------------------------------------------------------
    def release_all(self, reason: str | None = None) -> None:
        """Release every held key and button (modifiers last)."""
        with self._lock:
            had = bool(self._keys or self._buttons)
            for k in sorted(self._keys, key=_modifiers_last):
                try:
                    self._key(k, False)
                except Exception as e:  # keep releasing the rest
                    log.warning("could not release %s: %s", k, e)
            for b in sorted(self._buttons):
                try:
                    self._button(b, False)
                except Exception as e:
                    log.warning("could not release mouse %s: %s", b, e)
            self._keys.clear()
            self._buttons.clear()
            self._frac = [0.0, 0.0]
            self._held_changed()
        if had and reason:
            self.status(f"released everything: {reason}")

    def stop(self, reason: str, whole_run: bool = False) -> None:
        """Stop for good: release everything; the next ``apply()`` raises ``AgentStopped``.
        ``whole_run``: the user's own stop (the stop key, the corner failsafe), which also ends the
        ``RunControl`` this executor is attached to, if any (a limit or a closed window ends one episode)."""
        with self._lock:
            if self.stop_reason is not None:
                return
            self.stop_reason = reason
            self.release_all()
        self.status(f"STOPPED: {reason}")
        if whole_run and self.run is not None:
            self.run.stop(reason)

    def pause(self, reason: str) -> None:
        """Release everything; ``apply()`` holds nothing until ``resume()``."""
        with self._lock:
            if self.stop_reason is not None or self.paused:
                return
            self.pause_reason = reason
            self.release_all()
        hint = f"; press {self.safety.pause_key} to resume" if self.safety.hotkeys else ""
        self.status(f"PAUSED: {reason}{hint}")

    def resume(self) -> None:
        with self._lock:
            if self.stop_reason is not None or not self.paused:
                return
            self.pause_reason = None
            self._last_apply = time.monotonic()
            self._on_active()
        self.status("resumed: AGENT ACTIVE")

    def toggle_pause(self) -> None:
        if self.paused:
            self.resume()
        else:
            self.pause(f"{self.safety.pause_key} pressed")

    # ---- watchdog ---------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._watch_stop.wait(self.safety.poll_interval):
            try:
                self._check()
            except Exception as e:  # a safety check must never kill the watchdog
                log.warning("safety check failed: %s", e)

    def _check(self) -> None:
        c = self.safety
        if self._t_start is None or self.stop_reason is not None:
            return
        now = time.monotonic()
        if c.max_seconds is not None and now - self._t_start > c.max_seconds:
            self.stop(f"reached max_seconds ({c.max_seconds:g} s)")
        elif c.deadline is not None and (self._keys or self._buttons) and now - self._last_apply > c.deadline:
            with self._lock:
                if time.monotonic() - self._last_apply > c.deadline:
                    self.release_all(f"no new decision within the {c.deadline:g} s deadline")

    # ---- backend hooks ----------------------------------------------------------------------
    def _on_start(self) -> None:
        pass

    def _on_active(self) -> None:
        pass

    def _on_close(self) -> None:
        pass

    def _held_changed(self) -> None:
        pass

    def _key(self, name: str, down: bool) -> None:
        raise NotImplementedError

    def _button(self, name: str, down: bool) -> None:
        raise NotImplementedError

    def _pointer(self) -> tuple[int, int]:
        raise NotImplementedError

    def _warp(self, x: int, y: int) -> None:
        raise NotImplementedError


class DryRunExecutor(Executor):
    """Sends nothing: logs what it would do (``self.log`` and the ``framepilot.controllers`` logger)
    and reports the action as held. The pointer is simulated, starting at the region's centre."""

    def __init__(self, layout, region=None, safety: SafetyConfig | None = None):
        if safety is None:
            safety = SafetyConfig(countdown=0.0, hotkeys=False, guardian=False, exit_handlers=False,
                                  status=lambda msg: None)
        super().__init__(layout, region, safety)
        self.log: list[str] = []
        r = self.region
        self._pos = (r.left + r.width // 2, r.top + r.height // 2) if r else (0, 0)

    def _say(self, what: str) -> None:
        self.log.append(what)
        log.info("dry run: %s", what)

    def _key(self, name, down):
        self._say(f"{'press' if down else 'release'} {name}")

    def _button(self, name, down):
        self._say(f"{'press' if down else 'release'} mouse {name}")

    def _pointer(self):
        return self._pos

    def _warp(self, x, y):
        self._pos = (x, y)
        self._say(f"move pointer to ({x}, {y})")


class PynputExecutor(Executor):
    """Real input through pynput on X11: keys via XTEST with X keysyms as virtual key codes (so
    programs see real, non-synthetic events), the pointer via XTEST motion, confined to the region.

    Args:
        layout: the active ``overlays.Layout``.
        region: ``(left, top, width, height)`` the pointer is confined to; the whole screen when ``None``.
        safety: ``SafetyConfig()`` when ``None``.
        window: X window id of the target (``ScreenCapture.window.id``) for the focus guard; without
            one the guard watches the window focused when the agent starts.

    Raises:
        ControllerError: no display, a Wayland session, a region outside the screen, a layout key
            with no key on this keyboard map, or a layout containing the stop/pause key.
    """

    def __init__(self, layout, region=None, safety: SafetyConfig | None = None, window: int | None = None):
        super().__init__(layout, region, safety)
        check_display()
        try:
            from pynput import keyboard, mouse
        except ImportError as e:
            raise ControllerError(f"pynput cannot be used ({str(e).splitlines()[0]}): pip install pynput and "
                                  "make sure an X server is running") from None
        self._xd = open_display()
        self.screen = screen_rect(self._xd)
        if self.region is not None and not (self.region.width > 0 and self.region.height > 0
                                            and self.region.inside(self.screen)):
            self._xd.close()
            raise RegionError(f"region {self.region} lies outside the screen, which is {self.screen}: "
                              "pick a region inside it")
        self.window_id = window
        self._pkeys, self._keycodes = {}, {}
        for name in layout.keys:
            key, keysym = self._pynput_key(name)
            code = self._xd.keysym_to_keycode(keysym)
            if not code:
                self._xd.close()
                raise ControllerError(f"key {name!r} of layout {layout.name!r} has no key on this X keyboard "
                                      "map: remove it from the layout or change the keyboard map")
            self._pkeys[name], self._keycodes[name] = key, code
        self._pbuttons = {b: getattr(mouse.Button, b) for b in BUTTON_NUMBERS}
        self._kb, self._mouse = keyboard.Controller(), mouse.Controller()
        self._guardian: GuardianClient | None = None
        self._listener: HotkeyListener | None = None
        self._exit: ExitHandlers | None = None
        self._gd = None  # the watchdog's own X connection
        self._focus: FocusGuard | None = None
        self._rearm = False

    @classmethod
    def for_capture(cls, capture, layout, safety: SafetyConfig | None = None,
                    mouse_scale: float | None = None) -> "PynputExecutor":
        """An executor confined to ``capture``'s region and guarding its window, if it captures one
        (``mouse_scale``: screen pixels per overlay pixel of mouse velocity, see ``Executor``; by
        default the capture's ``downscale``, so the pointer moves in pixels of the frames it gives)."""
        if mouse_scale is None:
            mouse_scale = getattr(capture, "downscale", 1)
        if not mouse_scale > 0:
            raise ControllerError(f"mouse_scale must be a positive number of screen pixels per overlay pixel, "
                                  f"got {mouse_scale}")
        window = capture.window.id if capture.window is not None else None
        ex = cls(layout, capture.rect.as_tuple(), safety, window=window)
        ex.mouse_scale = float(mouse_scale)
        return ex

    @staticmethod
    def _pynput_key(name: str):
        from pynput.keyboard import Key, KeyCode
        if len(name) == 1:
            keysym = ord(name) if ord(name) < 0x100 else ord(name) | 0x01000000  # X keysym of a character
            return KeyCode.from_vk(keysym), keysym
        key = Key[name]
        return key, key.value.vk

    # ---- lifecycle --------------------------------------------------------------------------
    def _on_start(self) -> None:
        c = self.safety
        if c.exit_handlers:
            self._exit = ExitHandlers(self._emergency_release, self.release_all)
            self._exit.install()
        if c.guardian:
            self._guardian = GuardianClient(c.guardian_timeout)
        if c.hotkeys and self.run is None:  # a RunControl hears the hotkeys for the whole run
            self._listener = HotkeyListener(c.stop_key, c.pause_key,
                                            lambda: self.stop(f"{c.stop_key} pressed", whole_run=True),
                                            self.toggle_pause)
            self._listener.start()
        self._gd = open_display()
        if c.focus_guard:
            self._focus = FocusGuard(self._gd, self.window_id)

    def _on_active(self) -> None:
        self._rearm = True  # the watchdog takes the focus guard's reference now

    def _on_close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=1.0)
        self._kb = self._mouse = None  # pynput controllers close their X connections when collected
        if self._guardian is not None:
            self._guardian.close()
        if self._exit is not None:
            self._exit.uninstall()
        for d in (self._gd, self._xd):
            if d is not None:
                try:
                    d.close()
                except Exception:
                    pass

    def _emergency_release(self, why: str) -> None:
        """Release from a signal handler on a fresh X connection (the interrupted code may own the others)."""
        got = self._lock.acquire(timeout=1.0)
        try:
            keycodes = [self._keycodes[k] for k in self._keys]
            buttons = [BUTTON_NUMBERS[b] for b in self._buttons]
            if keycodes or buttons:
                d = open_display()
                xtest_release(d, keycodes, buttons)
                d.close()
            self._keys.clear()
            self._buttons.clear()
            self._held_changed()
        finally:
            if got:
                self._lock.release()
        self.status(f"released everything on {why}")

    # ---- watchdog ---------------------------------------------------------------------------
    def _check(self) -> None:
        super()._check()
        if self._guardian is not None:
            self._guardian.beat()
        if self._t_start is None or self.stop_reason is not None:
            return
        c = self.safety
        if c.corner_failsafe:
            p = self._gd.screen().root.query_pointer()
            if corner_hit(p.root_x, p.root_y, self.screen, c.corner_px):
                self.stop(f"pointer in a screen corner at ({p.root_x}, {p.root_y}) (failsafe)", whole_run=True)
                return
        if self._focus is not None:
            if self._rearm:
                self._rearm = False
                self._focus.arm()
                if self.window_id is not None and self._focus.rect is not None:
                    r, s = self._focus.rect, self.screen
                    left, top = max(r.left, s.left), max(r.top, s.top)
                    right, bottom = min(r.right, s.right), min(r.bottom, s.bottom)
                    if right > left and bottom > top:
                        self.region = Rect(left, top, right - left, bottom - top)
            verdict = self._focus.check()  # also while paused: a closed window stops the agent
            if verdict is not None:
                kind, reason = verdict
                (self.stop if kind == "stop" else self.pause)(reason)

    # ---- events -----------------------------------------------------------------------------
    def _held_changed(self) -> None:
        if self._guardian is not None:
            self._guardian.update([self._keycodes[k] for k in self._keys], [BUTTON_NUMBERS[b] for b in self._buttons])

    def _key(self, name, down):
        (self._kb.press if down else self._kb.release)(self._pkeys[name])

    def _button(self, name, down):
        (self._mouse.press if down else self._mouse.release)(self._pbuttons[name])

    def _pointer(self):
        p = self._xd.screen().root.query_pointer()
        return p.root_x, p.root_y

    def _warp(self, x, y):
        self._mouse.position = (x, y)
