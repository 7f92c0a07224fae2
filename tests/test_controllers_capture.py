"""Screen capture under a real Xvfb with a real pygame window: errors, regions, windows, pointer, frame source."""

import time

import numpy as np
import pytest

from controllers import (
    ControllerError,
    FrameSource,
    NoDisplayError,
    PynputExecutor,
    RegionError,
    SafetyConfig,
    ScreenCapture,
    WaylandError,
    WindowNotFoundError,
    draw_pointer,
)
from controllers.display import NO_DISPLAY
from overlays import Layout

BLUE, RED = (30, 30, 220), (220, 30, 30)


def _wait(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while not (v := pred()) and time.monotonic() < end:
        time.sleep(0.01)
    return v


# ---- one-sentence errors ---------------------------------------------------------------------
def test_no_display_is_one_clear_sentence(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    for make in (lambda: ScreenCapture(), lambda: PynputExecutor(Layout.preset("arrows"))):
        with pytest.raises(NoDisplayError) as e:
            make()
        assert str(e.value) == NO_DISPLAY == "no X display: start one, e.g. Xvfb, or use --dry-run"


def test_unreachable_display_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":987")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(NoDisplayError, match=r"cannot open X display ':987'.*start one, e.g. Xvfb, or use --dry-run"):
        ScreenCapture()


def test_wayland_session_is_refused(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    with pytest.raises(WaylandError, match="X11 session is needed.*native Wayland windows are neither captured "
                                           "nor driven"):
        ScreenCapture()


def test_region_outside_screen_names_the_bounds(xvfb_display):
    with pytest.raises(RegionError) as e:
        ScreenCapture(region=(1200, 700, 200, 200))
    assert "1280x800 at (0, 0)" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(RegionError, match="1280x800"):
        PynputExecutor(Layout.preset("arrows"), region=(-5, 0, 100, 100))
    with pytest.raises(RegionError, match="monitor 7 does not exist"):
        ScreenCapture(monitor=7)
    with pytest.raises(ControllerError, match="only one of"):
        ScreenCapture(monitor=1, region=(0, 0, 10, 10))


def test_window_not_found_lists_visible_windows(make_probe):
    make_probe("framepilot-visible-one", pos=(20, 20), size=(100, 80))
    with pytest.raises(WindowNotFoundError) as e:
        ScreenCapture(window="no such window")
    msg = str(e.value)
    assert "no visible window titled 'no such window'" in msg and "'framepilot-visible-one'" in msg


# ---- grabbing --------------------------------------------------------------------------------
def test_region_and_monitor_frames_are_rgb_uint8_with_monotonic_times(xvfb_display):
    with ScreenCapture(region=(10, 20, 64, 48)) as cap:
        (f1, t1), (f2, t2) = cap.grab(), cap.grab()
        assert f1.shape == (48, 64, 3) and f1.dtype == np.uint8 and f1.flags.c_contiguous
        assert t1 < t2 <= time.monotonic()
        sct = cap._sct
        cap.grab()
        assert cap._sct is sct  # one long-lived mss instance
    with ScreenCapture() as cap:
        assert cap.grab()[0].shape == (800, 1280, 3)


def test_window_capture_sees_the_program_react_to_a_held_key(make_probe, human):
    probe = make_probe("framepilot-capture", pos=(200, 150), size=(160, 120))
    human.warp(*probe.center)  # no window manager: focus follows the pointer
    with ScreenCapture(window="framepilot-capture") as cap:
        assert cap.rect.as_tuple() == (200, 150, 160, 120)
        assert _wait(lambda: tuple(cap.grab()[0][60, 80]) == BLUE)
        ex = PynputExecutor.for_capture(cap, Layout.preset("arrows"), _quiet())
        with ex:
            ex.apply(_act("left"), 0.1)
            assert _wait(lambda: tuple(cap.grab()[0][60, 80]) == RED), "the window did not turn red"
            ex.apply(_act(), 0.1)
            assert _wait(lambda: tuple(cap.grab()[0][60, 80]) == BLUE)


def test_window_capture_follows_the_window_and_substring_titles_match(make_probe):
    make_probe("framepilot-Substring-Title", pos=(300, 300), size=(120, 90))
    with ScreenCapture(window="substring-title") as cap:
        assert cap.title == "framepilot-Substring-Title" and cap.size == (120, 90)
        cap.window.configure(x=340, y=310)
        cap._xd.sync()
        assert _wait(lambda: (cap.grab(), cap.rect)[1].as_tuple() == (340, 310, 120, 90))


def test_a_window_that_is_unmapped_or_closed_is_never_grabbed(make_probe):
    """A closing program unmaps its window first; a grab then would show whatever lies below it."""
    probe = make_probe("framepilot-closing", pos=(120, 120), size=(100, 80))
    with ScreenCapture(window="framepilot-closing") as cap:
        cap.grab()
        cap.window.unmap()
        cap._xd.sync()
        with pytest.raises(ControllerError, match="'framepilot-closing' was closed"):
            cap.grab()
        cap.window.map()
        cap._xd.sync()
        assert cap.grab()[0].shape == (80, 100, 3)
        probe.close()
        assert _wait(lambda: _raises(cap.grab, ControllerError)), "a destroyed window was still grabbed"


def _raises(fn, exc) -> bool:
    try:
        fn()
    except exc:
        return True
    return False


def test_pointer_is_drawn_where_it_is(xvfb_display, human):
    human.warp(50, 40)
    with ScreenCapture(region=(0, 0, 200, 100), include_pointer=True) as with_p, \
            ScreenCapture(region=(0, 0, 200, 100)) as without:
        a, b = with_p.grab()[0], without.grab()[0]
    diff = np.argwhere((a != b).any(-1))
    assert len(diff) > 50, "no pointer was drawn"
    (y0, x0), (y1, x1) = diff.min(0), diff.max(0)
    assert 39 <= y0 <= 41 and 49 <= x0 <= 51 and y1 < 62 and x1 < 64  # the arrow hangs from its tip
    expected = b.copy()
    draw_pointer(expected, 50, 40)
    assert (a == expected).all()
    human.warp(500, 500)  # outside the region: nothing drawn
    with ScreenCapture(region=(0, 0, 200, 100), include_pointer=True) as with_p:
        assert (with_p.grab()[0] == b).all()


def test_frame_source_samples_at_a_fixed_rate_into_a_ring_buffer(xvfb_display):
    with ScreenCapture(region=(0, 0, 64, 48)) as cap, FrameSource(cap, fps=20, seconds=0.5) as src:
        frames, times = src.latest(6)
        assert frames.shape == (6, 48, 64, 3) and times.shape == (6,)
        assert np.all(np.diff(times) > 0)
        assert np.median(np.diff(times)) == pytest.approx(0.05, abs=0.015)
        time.sleep(0.7)
        frames, times = src.latest()
        assert frames.shape[0] == src.capacity == 10
        assert time.monotonic() - times[-1] < 0.2  # the newest frame is fresh
    with pytest.raises(ValueError, match="positive"):
        FrameSource(None, fps=0)


def _act(*keys):
    from overlays import Action
    return Action(keys=frozenset(keys))


def _quiet():
    from controllers import SafetyConfig
    return SafetyConfig(countdown=0.0, guardian=False, status=lambda m: None)


def test_draw_pointer_has_a_black_outline_and_a_white_fill_and_clips():
    frame = np.full((40, 40, 3), 128, np.uint8)
    draw_pointer(frame, 5, 5)
    assert (frame == 255).all(-1).sum() > 40 and (frame == 0).all(-1).sum() > 30
    assert (frame[5, 5] == 0).all()  # the tip
    edge = np.full((10, 10, 3), 128, np.uint8)
    draw_pointer(edge, 8, 8)  # mostly outside: clipped, no error
    draw_pointer(edge, -50, -50)
    assert (edge != 128).any()


def test_downscale_gives_a_scaled_game_window_back_at_the_games_own_pixels(xvfb_display):
    """``reach`` in a real window at 3 screen pixels per game pixel, captured with ``downscale=3``, is
    the frame the game renders in-process, pixel for pixel."""
    import games
    from games.window import WindowProcess
    want, _ = games.make("reach").reset(seed=10_000_005)
    with WindowProcess("reach", seed=10_000_005, mode="sync", scale=3, title="framepilot downscale test"):
        cap = _wait(lambda: _try_capture("framepilot downscale test", 3), timeout=15)
        assert cap is not None, "the game window did not appear"
        with cap:
            assert cap.size == (128, 128)
            assert _wait(lambda: np.array_equal(cap.grab()[0], want), timeout=5)
            safety = SafetyConfig(countdown=0.0, guardian=False, hotkeys=False, exit_handlers=False,
                                  status=lambda m: None)
            mouse = Layout.preset("mouse")  # its executor moves the pointer in the frames' pixels by default
            assert PynputExecutor.for_capture(cap, mouse, safety).mouse_scale == 3
            assert PynputExecutor.for_capture(cap, mouse, safety, mouse_scale=1.5).mouse_scale == 1.5
    with pytest.raises(ControllerError, match="whole number"):
        ScreenCapture(region=(0, 0, 64, 64), downscale=1.5)
    with pytest.raises(RegionError, match="multiples of 3"):
        ScreenCapture(region=(0, 0, 64, 63), downscale=3)


def _try_capture(title, downscale):
    try:
        cap = ScreenCapture(window=title, downscale=downscale)
    except ControllerError:
        return None
    if cap.grab()[0].max() == 0:  # mapped but not drawn yet
        cap.close()
        return None
    return cap
