"""Safety under a real Xvfb: hotkeys, corner failsafe, focus guard, and no key left held however the
agent ends (normal exit, exception, Ctrl-C, SIGTERM, atexit, SIGKILL via the guardian, a hung agent)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controllers import (
    AgentStopped,
    ControllerError,
    PynputExecutor,
    SafetyConfig,
    ScreenCapture,
    screen_action,
)
from overlays import NOOP, Action, Layout

AGENT = Path(__file__).resolve().parent / "agent_probe.py"


def _wait(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while not (v := pred()) and time.monotonic() < end:
        time.sleep(0.01)
    return v


def _safety(**kw):
    kw = dict(countdown=0.0, guardian=False, status=lambda m: None) | kw
    return SafetyConfig(**kw)


# ---- pure rules ------------------------------------------------------------------------------
def test_safety_config_is_validated():
    with pytest.raises(ControllerError, match="both 'f12'"):
        SafetyConfig(pause_key="f12")
    with pytest.raises(ControllerError, match="not a key name"):
        SafetyConfig(stop_key="F12!")
    with pytest.raises(ControllerError, match="deadline must be positive"):
        SafetyConfig(deadline=0)
    with pytest.raises(ControllerError, match="max_steps"):
        SafetyConfig(max_steps=0)
    with pytest.raises(ControllerError, match="guardian_timeout"):
        SafetyConfig(guardian_timeout=0.01)
    assert SafetyConfig().stop_key == "f12" and SafetyConfig().pause_key == "f11"


def test_screen_action_rules():
    layout = Layout.from_dict({"name": "t", "cells": [
        {"kind": "key", "name": n, "box": [i / 8, 0, 1 / 8, 1]}
        for i, n in enumerate(["ctrl_l", "alt_r", "shift", "delete", "backspace", "f4", "q", "cmd_l"])]})
    cfg = SafetyConfig(status=lambda m: None)
    allowed, why = screen_action(Action(keys={"ctrl_l", "alt_r", "backspace"}), layout, cfg)
    assert allowed.keys == {"ctrl_l", "alt_r"} and "ctrl+alt+backspace can hurt" in why[0]
    assert screen_action(Action(keys={"alt_r", "f4"}), layout, cfg)[0].keys == {"alt_r"}
    assert screen_action(Action(keys={"cmd_l"}), layout, cfg)[0].keys == set()
    assert screen_action(Action(keys={"ctrl_l", "q"}), layout, cfg, held=frozenset({"q"}))[0].keys == {"q"}
    assert screen_action(Action(keys={"shift", "q"}), layout, cfg)[0].keys == {"shift", "q"}
    ok = SafetyConfig(allow_dangerous=True, status=lambda m: None)
    assert screen_action(Action(keys={"alt_r", "f4"}), layout, ok)[0].keys == {"alt_r", "f4"}


# ---- stop and pause hotkeys ------------------------------------------------------------------
def test_stop_hotkey_releases_everything_and_stops(xvfb_display, human):
    msgs = []
    with PynputExecutor(Layout.preset("wasd"), safety=_safety(status=msgs.append)) as ex:
        ex.apply(Action(keys={"w", "space"}), 0.1)
        assert len(human.keys_down()) == 2
        t0 = time.monotonic()
        human.tap("F12")
        assert _wait(lambda: not human.keys_down() - {human.keycode("F12")}, 1.0), "F12 did not release the keys"
        assert time.monotonic() - t0 < 0.2
        assert ex.stop_reason == "f12 pressed" and any(m.startswith("STOPPED") for m in msgs)
        with pytest.raises(AgentStopped, match="f12 pressed"):
            ex.apply(Action(keys={"w"}), 0.1)
    assert human.keys_down() == set()


def test_pause_hotkey_pauses_and_resumes(xvfb_display, human):
    with PynputExecutor(Layout.preset("wasd"), safety=_safety(stop_key="f10", pause_key="f9")) as ex:
        ex.apply(Action(keys={"w"}), 0.1)
        human.tap("F9")
        assert _wait(lambda: ex.paused and not human.keys_down(), 1.0)
        assert ex.apply(Action(keys={"w"}), 0.1) == NOOP and human.keys_down() == set()
        human.tap("F9")
        assert _wait(lambda: not ex.paused, 1.0)
        assert ex.apply(Action(keys={"w"}), 0.1).keys == {"w"} and human.keycode("w") in human.keys_down()
        human.tap("F12")  # not the stop key in this configuration
        time.sleep(0.1)
        assert ex.stop_reason is None
        human.tap("F10")
        assert _wait(lambda: ex.stop_reason == "f10 pressed", 1.0)


def test_stop_during_countdown_prevents_any_input(xvfb_display, human):
    import threading
    announced = threading.Event()

    def status(msg):
        if msg.startswith("agent takes control in"):
            announced.set()

    ex = PynputExecutor(Layout.preset("arrows"), safety=_safety(countdown=3.0, status=status))
    tapped = []

    def press_stop_during_the_countdown():
        # the person presses F12 once the countdown is announced (the hotkey listener is up by then;
        # on a loaded machine that can take longer than a fixed delay would allow)
        if announced.wait(10):
            time.sleep(0.3)
            tapped.append(time.monotonic())
            human.tap("F12")

    presser = threading.Thread(target=press_stop_during_the_countdown)
    presser.start()
    try:
        with pytest.raises(AgentStopped, match="before starting"):
            ex.start()
    finally:
        announced.set()
        presser.join()
    assert tapped and time.monotonic() - tapped[0] < 1.0, "the stop came long after F12"
    assert human.keys_down() == set()


# ---- corner failsafe -------------------------------------------------------------------------
def test_pointer_in_a_screen_corner_stops_the_agent(xvfb_display, human):
    human.warp(640, 400)
    with PynputExecutor(Layout.preset("arrows"), safety=_safety()) as ex:
        ex.apply(Action(keys={"left"}), 0.1)
        human.warp(1279, 0)  # top-right corner
        assert _wait(lambda: ex.stop_reason is not None, 1.0)
        assert "corner" in ex.stop_reason and human.keys_down() == set()
        with pytest.raises(AgentStopped, match="corner"):
            ex.apply(Action(keys={"left"}), 0.1)


# ---- focus guard -----------------------------------------------------------------------------
def _guarded(make_probe, human, title, **kw):
    probe = make_probe(title, pos=(100, 100), size=(320, 240))
    human.warp(*probe.center)
    cap = ScreenCapture(window=title)
    ex = PynputExecutor.for_capture(cap, Layout.preset("arrows"), _safety(**kw))
    ex.start()
    ex.apply(Action(keys={"left"}), 0.1)
    time.sleep(0.1)  # the watchdog takes its reference
    assert human.keys_down() == {human.keycode("Left")} and not ex.paused
    return probe, cap, ex


def test_focus_loss_releases_and_pauses(make_probe, human):
    probe, cap, ex = _guarded(make_probe, human, "framepilot-focus")
    try:
        other = human.open_window(700, 500, 200, 150)
        human.focus(other)  # a person clicks another program: keys would land there
        assert _wait(lambda: ex.paused, 1.0) and "lost the keyboard focus" in ex.pause_reason
        assert human.keys_down() == set() and ex.apply(Action(keys={"left"}), 0.1) == NOOP
        human.focus(None)  # focus follows the pointer, which is still on the target
        ex.resume()
        time.sleep(0.1)
        assert ex.apply(Action(keys={"left"}), 0.1).keys == {"left"} and not ex.paused
        human.warp(800, 560)  # now the pointer leaves for the other window
        assert _wait(lambda: ex.paused, 1.0) and "lost the keyboard focus" in ex.pause_reason
        assert human.keys_down() == set()
    finally:
        ex.close()
        cap.close()


def test_moved_covered_or_closed_target_window(make_probe, human):
    probe, cap, ex = _guarded(make_probe, human, "framepilot-moved")
    try:
        cap.window.configure(x=130)
        cap._xd.sync()
        assert _wait(lambda: ex.paused, 1.0) and "moved" in ex.pause_reason and human.keys_down() == set()
        ex.resume()  # resuming takes the new position as the reference
        time.sleep(0.1)
        assert ex.apply(Action(keys={"left"}), 0.1).keys == {"left"} and not ex.paused
        assert ex.region.as_tuple() == (130, 100, 320, 240)
        cover = human.open_window(380, 280, 100, 100)  # over the target's corner
        assert _wait(lambda: ex.paused, 1.0) and "covers" in ex.pause_reason and human.keys_down() == set()
        cover.unmap()
        human.d.sync()
        ex.resume()
        time.sleep(0.1)
        assert ex.apply(Action(keys={"left"}), 0.1).keys == {"left"} and not ex.paused
        probe.close()
        assert _wait(lambda: ex.stop_reason is not None, 2.0) and "closed" in ex.stop_reason
    finally:
        ex.close()
        cap.close()


# ---- no key left held, however the agent ends ------------------------------------------------
def _signals_as_in_a_terminal():
    # a test runner started in the background (nohup, `&`) passes SIGINT/SIGHUP on ignored; the agent
    # keeps an ignored signal ignored, so give it the dispositions of a program started in a terminal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _agent(*args):
    p = subprocess.Popen([sys.executable, str(AGENT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=_signals_as_in_a_terminal)
    line = p.stdout.readline()
    assert line.startswith("HOLDING"), f"the agent did not start: {line!r} {p.stderr.read() if p.poll() else ''}"
    return p


def _held_by_agent(human):
    return human.keys_down() & {human.keycode("w"), human.keycode("space")}


@pytest.mark.parametrize("mode", ["return", "raise", "exit"])
def test_released_on_normal_exit_exception_and_atexit(xvfb_display, human, mode):
    p = _agent("--mode", mode, "--no-guardian")  # no guardian: the agent itself must release
    p.wait(10)
    assert p.returncode == (1 if mode == "raise" else 0)
    assert _held_by_agent(human) == set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_released_on_sigterm_ctrl_c_and_hangup(xvfb_display, human, sig):
    p = _agent("--mode", "hold", "--no-guardian")
    assert len(_held_by_agent(human)) == 2
    p.send_signal(sig)
    p.wait(10)
    assert p.returncode != 0
    assert _held_by_agent(human) == set()
    assert "released everything on " + sig.name in p.stderr.read()


def test_sigkill_without_guardian_leaves_keys_held(xvfb_display, human):
    """The control for the next test: SIGKILL cannot be caught, so only a guardian can help."""
    p = _agent("--mode", "hold", "--no-guardian")
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    time.sleep(0.5)
    assert len(_held_by_agent(human)) == 2  # the human fixture cleans up


def test_guardian_releases_after_sigkill(xvfb_display, human):
    p = _agent("--mode", "hold")
    assert len(_held_by_agent(human)) == 2
    t0 = time.monotonic()
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    assert _wait(lambda: not _held_by_agent(human), 2.0), "the guardian did not release the keys"
    assert time.monotonic() - t0 < 0.5


def test_guardian_releases_when_the_agent_hangs(xvfb_display, human):
    p = _agent("--mode", "hold", "--no-exit-handlers")
    try:
        p.send_signal(signal.SIGSTOP)  # frozen: no heartbeat, no deadline watchdog
        assert _wait(lambda: not _held_by_agent(human), 3.0), "the guardian did not release a hung agent's keys"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)


def test_guardian_ignores_ctrl_c_in_the_terminal_and_exits_with_the_agent(xvfb_display, human):
    p = _agent("--mode", "hold")
    guardians = subprocess.run(["pgrep", "-f", "-P", str(p.pid), "controllers.guardian"], capture_output=True,
                               text=True).stdout.split()
    assert len(guardians) == 1
    g = int(guardians[0])
    assert os.getpgid(g) != os.getpgid(p.pid)  # its own session: a terminal's Ctrl-C reaches only the agent
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    assert _wait(lambda: not os.path.exists(f"/proc/{g}") or open(f"/proc/{g}/stat").read().split()[2] == "Z", 3.0)
