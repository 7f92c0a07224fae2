"""Benchmark of real machine I/O: capture rate, apply latency and stop-hotkey latency, with the machine named.

    python benchmarks/bench_io.py                 # starts its own 1920x1080 Xvfb when $DISPLAY is unset
    DISPLAY=:0 python benchmarks/bench_io.py      # or measures the display you point it at
    python benchmarks/bench_io.py --seconds 1 --trials 5

Capture: grabs per second of a 640x480 region and of the full screen (one long-lived mss instance,
BGRX -> RGB conversion included). Apply: one ``PynputExecutor.apply()`` that changes a key and
moves the pointer (``desktop`` layout), confined to each region. Stop hotkey: from an F12 press sent
by another X client (as a person would) until the X server shows none of the agent's keys held.
"""

import argparse
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def print_json(result: dict, path: str | None = None) -> None:
    """Print ``result`` as JSON, and write it to ``path`` (atomically) when one is given."""
    import json

    from framepilot.atomic import atomic_write
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)


def start_xvfb(size=(1920, 1080)):
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        sys.exit("no X display and no Xvfb: set DISPLAY or install Xvfb (apt-get install xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten",
                             "tcp", "-noreset"], pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    num = b""
    while not num.endswith(b"\n") and select.select([r], [], [], 10)[0]:
        chunk = os.read(r, 16)
        if not chunk:
            break
        num += chunk
    os.close(r)
    os.environ["DISPLAY"] = f":{int(num)}"
    return proc


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench_capture(seconds: float, **where):
    from controllers import ScreenCapture
    with ScreenCapture(**where) as cap:
        cap.grab()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            cap.grab()
            n += 1
        dt = time.perf_counter() - t0
        return cap.size, n / dt, 1000 * dt / n


def bench_apply(region, seconds: float):
    from controllers import PynputExecutor, SafetyConfig
    from overlays import Action, Layout
    x0, y0 = region[0] + region[2] // 2, region[1] + region[3] // 2
    safety = SafetyConfig(countdown=0.0, status=lambda m: None, focus_guard=False)
    with PynputExecutor(Layout.preset("desktop"), region=region, safety=safety) as ex:
        ex._mouse.position = (x0, y0)
        lat, i, t_end = [], 0, time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            action = Action(keys={"left"} if i % 2 == 0 else set(), mouse=(200.0 if i % 4 < 2 else -200.0, 0.0))
            t = time.perf_counter()
            ex.apply(action, 0.05)
            lat.append(1000 * (time.perf_counter() - t))
            i += 1
        ex.apply(Action(), 0.05)
    return statistics.median(lat), pct(lat, 0.95), len(lat)


def bench_stop(trials: int):
    import Xlib.display
    import Xlib.ext.xtest
    import Xlib.X
    import Xlib.XK

    from controllers import PynputExecutor, SafetyConfig
    from controllers.display import keys_down
    from overlays import Action, Layout
    person = Xlib.display.Display()
    f12 = person.keysym_to_keycode(Xlib.XK.string_to_keysym("F12"))
    lat = []
    for _ in range(trials):
        safety = SafetyConfig(countdown=0.0, status=lambda m: None, focus_guard=False, deadline=None)
        with PynputExecutor(Layout.preset("wasd"), safety=safety) as ex:
            ex.apply(Action(keys={"w", "a", "space"}), 0.1)
            agent_keys = {ex._keycodes[k] for k in ("w", "a", "space")}
            time.sleep(0.2)
            assert agent_keys <= keys_down(person)
            t0 = time.perf_counter()
            Xlib.ext.xtest.fake_input(person, Xlib.X.KeyPress, f12)
            person.sync()
            while agent_keys & keys_down(person):
                if time.perf_counter() - t0 > 2:
                    raise SystemExit("the stop hotkey did not release the keys within 2 s")
            lat.append(1000 * (time.perf_counter() - t0))
            Xlib.ext.xtest.fake_input(person, Xlib.X.KeyRelease, f12)
            person.sync()
    return statistics.median(lat), max(lat)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per capture/apply measurement")
    p.add_argument("--trials", type=int, default=10, help="stop-hotkey trials")
    args = p.parse_args()
    xvfb = start_xvfb() if not os.environ.get("DISPLAY") else None
    try:
        from controllers import ScreenCapture
        with ScreenCapture() as cap:
            screen = cap.rect
        print(f"machine: {machine()}")
        print(f"display: {os.environ['DISPLAY']} ({'own Xvfb' if xvfb else 'existing'}), screen {screen.width}x"
              f"{screen.height}; python {platform.python_version()}")
        print("\n| measurement | size | result |\n|---|---|---|")
        for name, where in (("capture 640x480 region", {"region": (0, 0, 640, 480)}),
                            ("capture full screen", {"monitor": 1})):
            (w, h), rate, ms = bench_capture(args.seconds, **where)
            print(f"| {name} | {w}x{h} | {rate:.0f} grabs/s ({ms:.1f} ms/grab) |")
        for name, region in (("apply (key + pointer)", (0, 0, 640, 480)),
                             ("apply (key + pointer)", screen.as_tuple())):
            med, p95, n = bench_apply(region, args.seconds)
            print(f"| {name} | {region[2]}x{region[3]} | median {med:.2f} ms, p95 {p95:.2f} ms ({n} calls) |")
        med, worst = bench_stop(args.trials)
        print(f"| stop hotkey (F12) to all released | - | median {med:.1f} ms, max {worst:.1f} ms "
              f"({args.trials} trials; target < 200 ms) |")
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()


if __name__ == "__main__":
    main()
