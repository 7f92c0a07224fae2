"""Input execution under a real Xvfb: a real pygame program must see the keys and buttons (XTEST),
the pointer stays in its region, refusals hold, the deadline releases, limits stop, dry run sends nothing."""

import time

import pytest

from controllers import (
    AgentStopped,
    ControllerError,
    DryRunExecutor,
    PynputExecutor,
    SafetyConfig,
)
from overlays import NOOP, Action, Layout


def _wait(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while not (v := pred()) and time.monotonic() < end:
        time.sleep(0.01)
    return v


def _safety(**kw):
    kw = dict(countdown=0.0, guardian=False, status=lambda m: None) | kw
    return SafetyConfig(**kw)


def _layout(*keys, buttons=(), mouse=False):
    cells, n = [], len(keys) + len(buttons) + int(mouse)
    w = 1.0 / n
    for i, (kind, name) in enumerate([("key", k) for k in keys] + [("button", b) for b in buttons]
                                     + ([("mouse", "mouse")] if mouse else [])):
        cells.append({"kind": kind, "name": name, "label": name[:3], "box": [i * w, 0.1, w * 0.9, 0.8]})
    return Layout.from_dict({"name": "test", "cells": cells})


def _seen(probe, kind, **fields):
    return probe.wait_for(lambda e: e["type"] == kind and all(e.get(k) == v for k, v in fields.items()))


@pytest.mark.parametrize("preset,keys,pygame_names,x_names", [
    ("arrows", ["left", "up", "down", "right", "space"], ["left", "up", "down", "right", "space"],
     ["Left", "Up", "Down", "Right", "space"]),
    ("wasd", ["w", "shift"], ["w", "left shift"], ["w", "Shift_L"]),
])
def test_real_program_sees_keydown_and_keyup_through_xtest(make_probe, human, preset, keys, pygame_names, x_names):
    probe = make_probe(f"framepilot-keys-{preset}", pos=(100, 100))
    human.warp(*probe.center)  # no window manager: focus follows the pointer
    with PynputExecutor(Layout.preset(preset), safety=_safety()) as ex:
        for key, pg, xn in zip(keys, pygame_names, x_names):
            probe.clear()
            held = ex.apply(Action(keys={key}), 0.1)
            assert held.keys == {key}
            assert _seen(probe, "KEYDOWN", key=pg), f"the program never saw {key} go down: {probe.events}"
            # the X server's own key map shows it held: a real device event, not an XSendEvent
            assert human.keycode(xn) in human.keys_down()
            assert ex.apply(NOOP, 0.1) == NOOP
            assert _seen(probe, "KEYUP", key=pg)
            assert human.keycode(xn) not in human.keys_down()


def test_only_the_difference_is_sent(make_probe, human):
    probe = make_probe("framepilot-diff", pos=(100, 100))
    human.warp(*probe.center)
    with PynputExecutor(Layout.preset("arrows"), safety=_safety()) as ex:
        ex.apply(Action(keys={"left"}), 0.05)
        ex.apply(Action(keys={"left", "up"}), 0.05)
        ex.apply(Action(keys={"left", "up"}), 0.05)
        ex.apply(Action(keys={"up"}), 0.05)
        ex.apply(NOOP, 0.05)
        assert _seen(probe, "KEYUP", key="up")
        time.sleep(0.1)
        kinds = [(e["type"], e["key"]) for e in probe.events if e["type"].startswith("KEY")]
        assert kinds == [("KEYDOWN", "left"), ("KEYDOWN", "up"), ("KEYUP", "left"), ("KEYUP", "up")]


def test_mouse_buttons_are_pressed_like_keys(make_probe, human):
    probe = make_probe("framepilot-buttons", pos=(100, 100))
    human.warp(*probe.center)
    with PynputExecutor(Layout.preset("mouse"), region=(100, 100, 320, 240), safety=_safety()) as ex:
        assert ex.apply(Action(buttons={"right"}), 0.1).buttons == {"right"}
        assert _seen(probe, "MOUSEBUTTONDOWN", button=3) and human.buttons_down() == {3}
        ex.apply(NOOP, 0.1)
        assert _seen(probe, "MOUSEBUTTONUP", button=3) and human.buttons_down() == set()


def test_mouse_velocity_moves_relatively_and_stays_in_the_region(xvfb_display, human):
    region = (100, 100, 320, 240)
    human.warp(200, 200)
    with PynputExecutor(Layout.preset("mouse"), region=region, safety=_safety()) as ex:
        got = ex.apply(Action(mouse=(100.0, -50.0)), 0.2)  # 20 px right, 10 px up
        assert human.pointer() == (220, 190) and got.mouse == (100.0, -50.0)
        for _ in range(4):  # sub-pixel motion accumulates: 4 x 0.25 px = 1 px
            ex.apply(Action(mouse=(2.5, 0.0)), 0.1)
        assert human.pointer() == (221, 190)
        got = ex.apply(Action(mouse=(5000.0, 0.0)), 1.0)
        assert human.pointer() == (419, 190)  # right edge of the region
        assert got.mouse == (419 - 221, 0.0)  # the velocity really executed, not the one asked for
        ex.apply(Action(mouse=(-9000.0, -9000.0)), 1.0)
        assert human.pointer() == (100, 100)
        human.warp(900, 700)  # a person moved it outside: the next motion brings it back inside
        ex.apply(Action(mouse=(10.0, 0.0)), 0.1)
        x, y = human.pointer()
        assert 100 <= x < 420 and 100 <= y < 340


def test_mouse_scale_moves_screen_pixels_per_overlay_pixel(xvfb_display, human):
    """A bundled game at --scale 3: the model's arrow of 100 game px/s moves the pointer 300 screen px/s."""
    region = (100, 100, 384, 384)
    human.warp(200, 200)
    with PynputExecutor(Layout.preset("mouse"), region=region, safety=_safety()) as ex:
        ex.mouse_scale = 3.0
        got = ex.apply(Action(mouse=(100.0, -50.0)), 0.2)  # 20 x 3 px right, 10 x 3 px up
        assert human.pointer() == (260, 170) and got.mouse == (100.0, -50.0)  # reported in the overlay's unit
        got = ex.apply(Action(mouse=(1000.0, 0.0)), 1.0)
        assert human.pointer() == (483, 170) and got.mouse == pytest.approx(((483 - 260) / 3, 0.0))
    for bad in (0, -1.0):
        with pytest.raises(ControllerError, match="mouse_scale"):
            PynputExecutor.for_capture(None, Layout.preset("mouse"), _safety(), mouse_scale=bad)


def test_pointer_motion_never_trips_the_corner_failsafe_itself(xvfb_display, human):
    human.warp(50, 50)
    with PynputExecutor(Layout.preset("mouse"), region=(0, 0, 200, 200), safety=_safety()) as ex:
        ex.apply(Action(mouse=(-9000.0, -9000.0)), 1.0)
        time.sleep(0.1)
        assert human.pointer() == (3, 0) and ex.stop_reason is None


def test_keys_outside_the_layout_and_hotkeys_are_refused(xvfb_display, human):
    msgs = []
    with PynputExecutor(Layout.preset("arrows"), safety=_safety(status=msgs.append)) as ex:
        held = ex.apply(Action(keys={"left", "x", "f12", "f11"}, buttons={"left"}, mouse=(10.0, 0.0)), 0.1)
        assert held == Action(keys={"left"})
        assert human.keys_down() == {human.keycode("Left")}
        assert any("refused x: it is not a key of layout 'arrows'" in m for m in msgs)
        assert any("refused f12: it is the stop hotkey" in m for m in msgs)
        assert any("refused mouse motion" in m for m in msgs) and any("refused mouse button left" in m for m in msgs)
    with pytest.raises(ControllerError, match="contains the stop key 'f12'"):
        PynputExecutor(_layout("left", "f12"), safety=_safety())
    with pytest.raises(ControllerError, match="contains the pause key 'p'"):
        PynputExecutor(_layout("left", "p"), safety=_safety(pause_key="p"))


def test_dangerous_combinations_are_refused_even_if_the_layout_lists_them(xvfb_display, human):
    layout = _layout("ctrl", "alt", "f4", "delete", "cmd", "w", "left")
    with PynputExecutor(layout, safety=_safety()) as ex:
        assert ex.apply(Action(keys={"alt", "f4"}), 0.1).keys == {"alt"}
        assert human.keys_down() == {human.keycode("Alt_L")}
        assert ex.apply(Action(keys={"ctrl", "alt", "delete"}), 0.1).keys == {"ctrl", "alt"}
        assert ex.apply(Action(keys={"cmd", "left"}), 0.1).keys == {"left"}
        assert ex.apply(Action(keys={"ctrl", "w"}), 0.1).keys == {"ctrl"}
        ex.apply(Action(keys={"w"}), 0.1)
        assert ex.apply(Action(keys={"w", "ctrl"}), 0.1).keys == {"w"}  # the key that would complete it is dropped
        assert human.keys_down() == {human.keycode("w")}
    with PynputExecutor(layout, safety=_safety(allow_dangerous=True)) as ex:
        assert ex.apply(Action(keys={"alt", "f4"}), 0.1).keys == {"alt", "f4"}
        assert human.keys_down() == {human.keycode("Alt_L"), human.keycode("F4")}
    assert human.keys_down() == set()


def test_deadline_releases_held_keys_when_no_decision_arrives(xvfb_display, human):
    msgs = []
    with PynputExecutor(Layout.preset("arrows"), safety=_safety(deadline=0.2, status=msgs.append)) as ex:
        ex.apply(Action(keys={"left"}), 0.1)
        assert human.keycode("Left") in human.keys_down()
        t0 = time.monotonic()
        assert _wait(lambda: not human.keys_down(), 1.0), "the deadline did not release the key"
        assert 0.15 < time.monotonic() - t0 < 0.5
        assert ex.held == NOOP and any("deadline" in m for m in msgs)
        assert ex.apply(Action(keys={"left"}), 0.1).keys == {"left"}  # a new decision presses again
        for _ in range(5):  # decisions in time keep it held
            time.sleep(0.1)
            ex.apply(Action(keys={"left"}), 0.1)
        assert human.keycode("Left") in human.keys_down()


def test_max_steps_and_max_seconds_stop_the_agent(xvfb_display, human):
    with PynputExecutor(Layout.preset("arrows"), safety=_safety(max_steps=2)) as ex:
        ex.apply(Action(keys={"left"}), 0.1)
        ex.apply(Action(keys={"left"}), 0.1)
        with pytest.raises(AgentStopped, match=r"max_steps \(2\)"):
            ex.apply(Action(keys={"left"}), 0.1)
        assert human.keys_down() == set()
    with PynputExecutor(Layout.preset("arrows"), safety=_safety(max_seconds=0.3, deadline=None)) as ex:
        ex.apply(Action(keys={"left"}), 0.1)
        assert _wait(lambda: ex.stop_reason is not None, 1.0)
        assert "max_seconds" in ex.stop_reason and human.keys_down() == set()
        with pytest.raises(AgentStopped):
            ex.apply(Action(keys={"left"}), 0.1)


def test_countdown_and_agent_active_indication(xvfb_display, human):
    msgs = []
    t0 = time.monotonic()
    with PynputExecutor(Layout.preset("arrows"), safety=_safety(countdown=1.2, status=msgs.append)) as ex:
        assert time.monotonic() - t0 >= 1.15
        assert msgs[:2] == ["agent takes control in 2 ...", "agent takes control in 1 ..."]
        assert msgs[2].startswith("AGENT ACTIVE") and "f12 stops" in msgs[2] and "f11 pauses" in msgs[2]
        assert human.keys_down() == set()
        ex.apply(Action(keys={"left"}), 0.1)


def test_dry_run_sends_nothing_and_logs(xvfb_display, human):
    ex = DryRunExecutor(Layout.preset("desktop"), region=(0, 0, 200, 100))
    with ex:
        got = ex.apply(Action(keys={"left", "x"}, buttons={"left"}, mouse=(100.0, 0.0)), 0.1)
        assert got == Action(keys={"left"}, buttons={"left"}, mouse=(100.0, 0.0))
        assert human.keys_down() == set() and human.buttons_down() == set()
        ex.apply(NOOP, 0.1)
    assert ex.log == ["press left", "press mouse left", "move pointer to (110, 50)", "release left",
                      "release mouse left"]


def test_dry_run_needs_no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with DryRunExecutor(Layout.preset("arrows")) as ex:
        assert ex.apply(Action(keys={"up"}), 0.1).keys == {"up"}
