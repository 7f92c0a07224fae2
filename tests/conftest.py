"""Shared fixtures: a real Xvfb display, and a real pygame window that reports its input events."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

XVFB_SIZE = (1280, 800)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module (small diffusers pipelines: repeatable and no slower), then back."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def xvfb_display():
    """Start ``Xvfb :N -screen 0 1280x800x24 -noreset`` on a free display number, point ``$DISPLAY`` at it,
    yield ``":N"``. (``-noreset``: without it the server resets whenever its last client leaves, and
    connections opened meanwhile are refused.)

    The free number is chosen by Xvfb itself (``-displayfd``), so parallel test runs never collide.
    Fails (never skips) when Xvfb is missing.
    """
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb is not installed, and the display tests need it: install it "
                    "(apt-get install xvfb) and run the tests again", pytrace=False)
    r, w = os.pipe()
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"xvfb-{os.getpid()}.log"), "w+")
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", f"{XVFB_SIZE[0]}x{XVFB_SIZE[1]}x24",
                             "-nolisten", "tcp", "-noreset"], pass_fds=(w,), stdout=log, stderr=log)
    os.close(w)
    number = b""
    deadline = time.monotonic() + 15
    while not number.endswith(b"\n") and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([r], [], [], 0.2)
        if ready:
            chunk = os.read(r, 16)
            if not chunk:
                break
            number += chunk
    os.close(r)
    if not number.strip().isdigit():
        proc.kill()
        log.seek(0)
        pytest.fail(f"Xvfb did not start: {log.read()[-500:]}", pytrace=False)
    display = f":{int(number)}"
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    os.environ["DISPLAY"] = display
    os.environ.pop("WAYLAND_DISPLAY", None)
    os.environ.pop("XDG_SESSION_TYPE", None)
    try:
        yield display
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        os.unlink(log.name)


class Probe:
    """A running ``tests/pygame_probe.py`` window; ``events`` collects its JSON lines."""

    def __init__(self, title: str, size=(320, 240), pos=(100, 100), seconds: float = 120.0):
        self.title, self.size, self.pos = title, size, pos
        env = dict(os.environ, SDL_AUDIODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS / "pygame_probe.py"), "--title", title, "--size", f"{size[0]}x{size[1]}",
             "--pos", f"{pos[0]},{pos[1]}", "--seconds", str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        self.events: list[dict] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.wait_for(lambda e: e["type"] == "READY", timeout=20):
            self.close()
            raise RuntimeError("the pygame probe window did not open")

    @property
    def center(self) -> tuple[int, int]:
        return self.pos[0] + self.size[0] // 2, self.pos[1] + self.size[1] // 2

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.events.append(json.loads(line))
                self._cond.notify_all()

    def wait_for(self, pred, timeout: float = 3.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: any(pred(e) for e in self.events), timeout)

    def clear(self):
        with self._cond:
            self.events.clear()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def make_probe(xvfb_display):
    """Factory for pygame probe windows, all closed at the end of the test."""
    probes = []

    def make(title: str, **kw) -> Probe:
        p = Probe(title, **kw)
        probes.append(p)
        return p

    yield make
    for p in probes:
        p.close()


class Human:
    """What a person at the keyboard does, through the test's own X connection (XTEST), plus what
    the X server believes is held. Nothing here goes through the code under test."""

    def __init__(self):
        import Xlib.display
        self.d = Xlib.display.Display()
        self._windows = []

    def focus(self, window=None) -> None:
        """Give the keyboard focus to ``window`` (like clicking it), or back to "whatever is under the
        pointer" (X PointerRoot, the server's default; SDL takes the focus when its window maps)."""
        import Xlib.X
        if window is None:
            self.d.set_input_focus(Xlib.X.PointerRoot, Xlib.X.RevertToPointerRoot, Xlib.X.CurrentTime)
        else:
            self.d.set_input_focus(window, Xlib.X.RevertToPointerRoot, Xlib.X.CurrentTime)
        self.d.sync()

    def open_window(self, x: int, y: int, w: int, h: int):
        """Map a plain grey X window (another program's window) on top; closed with the fixture."""
        s = self.d.screen()
        win = s.root.create_window(x, y, w, h, 0, s.root_depth, background_pixel=0x808080)
        win.map()
        self.d.sync()
        self._windows.append(win)
        return win

    def warp(self, x: int, y: int) -> None:
        import Xlib.ext.xtest
        import Xlib.X
        Xlib.ext.xtest.fake_input(self.d, Xlib.X.MotionNotify, x=x, y=y)
        self.d.sync()

    def pointer(self) -> tuple[int, int]:
        p = self.d.screen().root.query_pointer()
        return p.root_x, p.root_y

    def keycode(self, name: str) -> int:
        """Key code of an X keysym name ("Left", "w", "F12")."""
        import Xlib.XK
        return self.d.keysym_to_keycode(Xlib.XK.string_to_keysym(name))

    def tap(self, name: str, hold: float = 0.03) -> None:
        import Xlib.ext.xtest
        import Xlib.X
        kc = self.keycode(name)
        Xlib.ext.xtest.fake_input(self.d, Xlib.X.KeyPress, kc)
        self.d.sync()
        time.sleep(hold)
        Xlib.ext.xtest.fake_input(self.d, Xlib.X.KeyRelease, kc)
        self.d.sync()

    def keys_down(self) -> set[int]:
        from controllers.display import keys_down
        return keys_down(self.d)

    def buttons_down(self) -> set[int]:
        from controllers.display import buttons_down
        return buttons_down(self.d)

    def release_everything(self) -> None:
        from controllers.display import xtest_release
        xtest_release(self.d, self.keys_down(), (1, 2, 3))

    def close(self) -> None:
        for w in self._windows:
            w.destroy()
        self.focus(None)
        self.d.close()


@pytest.fixture
def human(xvfb_display):
    """A ``Human`` on the test display; whatever is still held at the end is released (after the test
    has made its assertions) and the pointer goes back to the screen centre."""
    h = Human()
    h.focus(None)
    h.release_everything()
    h.warp(XVFB_SIZE[0] // 2, XVFB_SIZE[1] // 2)
    yield h
    h.release_everything()
    h.warp(XVFB_SIZE[0] // 2, XVFB_SIZE[1] // 2)
    h.close()



@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A few recorded demonstrator episodes of reach and coins (arrows layout), and buttons (mouse)."""
    from training.corpus import record_scripted
    root = tmp_path_factory.mktemp("corpus")
    record_scripted("reach", 6, root / "reach", progress=False)
    record_scripted("coins", 4, root / "coins", progress=False)
    record_scripted("reach-goal", 4, root / "reach-goal", progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus, tmp_path_factory):
    """A world-model checkpoint folder trained for 2 steps by ``training.train`` (small widths)."""
    from training.train import TrainConfig, train
    out = tmp_path_factory.mktemp("wm") / "tiny"
    train(TrainConfig(corpus=str(tiny_corpus), out=str(out), games=("reach", "coins", "reach-goal"), steps=2,
                      batch=4, block_out_channels=(16, 32, 32), save_every=1, threads=1), progress=False)
    return out
