"""Kill the agent at random moments with every signal; count stuck keys, orphans and release latency.

Each trial starts a real agent run as a user would (``run_agent.py play --real-window`` in sync or
realtime mode, 3 episodes, or ``run_agent.py screen`` on a game window with its 3 s countdown), waits
a random time (0 to ``--max-delay`` seconds: during start-up, the countdown, an episode, the gap
between episodes), sends one of SIGINT, SIGTERM, SIGHUP, SIGKILL or SIGKILL to the whole process
group, then watches the X server and the process table:

- stuck keys: keys or buttons still down on the X server 2 s after the kill;
- orphans: game windows or guardian processes of that agent still alive 5 s after the kill;
- release latency: from the kill to the X keymap empty, for the kills that found something held.

Run it on an X display that nothing else uses (it presses keys there):

    Xvfb :7 -screen 0 1280x1024x24 & DISPLAY=:7 python benchmarks/bench_kill.py --kills 100 --json runs/kill.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGKILL", "SIGKILL-group")
KINDS = ("play-sync", "play-realtime", "screen")


def _procs() -> list[tuple[int, list[bytes]]]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out.append((int(d.name), (d / "cmdline").read_bytes().split(b"\0")))
            except OSError:
                pass
    return out


def leftovers(agent_pid: int, guardians_before: set[int]) -> list[str]:
    """Game windows titled with the agent's pid, and guardian processes started since the trial began."""
    left = []
    for pid, cmd in _procs():
        if b"games.window" in cmd and any(part.endswith(f" {agent_pid}".encode()) for part in cmd):
            left.append(f"window {pid}")
        elif b"controllers.guardian" in cmd and pid not in guardians_before:
            left.append(f"guardian {pid}")
    return left


def guardians() -> set[int]:
    return {pid for pid, cmd in _procs() if b"controllers.guardian" in cmd}


def held(d) -> set[int]:
    from controllers.display import buttons_down, keys_down
    return set(keys_down(d)) | {1000 + b for b in buttons_down(d)}


def trial(kind: str, sig: str, delay: float, d, rng: random.Random) -> dict:
    from games.window import WindowProcess
    env = dict(os.environ, OMP_NUM_THREADS="1")
    target = None
    base = [sys.executable, str(ROOT / "run_agent.py")]
    if kind == "screen":
        target = WindowProcess("reach", seed=rng.randrange(10_000_000, 10_001_000), mode="realtime", scale=2,
                               title=f"bench kill target {os.getpid()}", max_seconds=60, position=(300, 200),
                               stay=True)
        target.wait_shown(20)
        cmd = base + ["screen", "--window", target.title, "--rollouts", "2", "--no-record", "--max-seconds", "30",
                      "--quiet"]
    else:
        cmd = base + ["play", "--real-window", "--mode", kind.split("-")[1], "--episodes", "3", "--rollouts", "2",
                      "--no-record", "--scale", "2", "--quiet", "--seed", str(rng.randrange(10_000_000, 10_001_000))]
    g0 = guardians()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
                         start_new_session=True)
    try:
        if kind == "screen":  # focus follows the pointer: park it on the target window
            from pynput.mouse import Controller
            Controller().position = (300 + 128, 200 + 128)
        time.sleep(delay)
        alive = p.poll() is None
        before = held(d)
        t_kill = time.monotonic()
        if sig == "SIGKILL-group":
            os.killpg(p.pid, signal.SIGKILL)
        else:
            p.send_signal(getattr(signal, sig))
        latency = None
        while time.monotonic() - t_kill < 2.0:
            if not held(d):
                latency = time.monotonic() - t_kill
                break
            time.sleep(0.002)
        stuck = sorted(held(d))
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        end = time.monotonic() + 5.0
        left = leftovers(p.pid, g0)
        while left and time.monotonic() < end:
            time.sleep(0.05)
            left = leftovers(p.pid, g0)
    finally:
        if p.poll() is None:
            p.kill()
        if target is not None:
            target.close()
    if stuck:  # leave the display clean for the next trial
        from controllers.display import xtest_release
        xtest_release(d, [k for k in stuck if k < 1000], [k - 1000 for k in stuck if k >= 1000])
    for item in left:
        try:
            os.kill(int(item.split()[1]), signal.SIGKILL)
        except OSError:
            pass
    return {"kind": kind, "signal": sig, "delay": round(delay, 3), "alive_at_kill": alive,
            "held_at_kill": bool(before), "release_s": None if not before else latency, "stuck": stuck,
            "orphans": left, "rc": p.returncode}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--max-delay", type=float, default=9.0, help="latest moment of a kill, seconds after start")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="runs/kill.json")
    a = ap.parse_args(argv)
    from controllers.display import check_display, open_display
    check_display()
    d = open_display()
    rng = random.Random(a.seed)
    rows = []
    for i in range(a.kills):
        kind, sig = KINDS[i % len(KINDS)], SIGNALS[(i // len(KINDS)) % len(SIGNALS)]
        row = trial(kind, sig, rng.uniform(0.0, a.max_delay), d, rng)
        rows.append(row)
        print(json.dumps(row), flush=True)
    lat = sorted(r["release_s"] for r in rows if r["release_s"] is not None)
    summary = {
        "kills": len(rows),
        "with_keys_held": sum(r["held_at_kill"] for r in rows),
        "stuck_keys": sum(bool(r["stuck"]) for r in rows),
        "orphans": sum(bool(r["orphans"]) for r in rows),
        "release_p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "release_max_ms": round(1000 * lat[-1], 1) if lat else None,
        "not_released_within_2s": sum(r["held_at_kill"] and r["release_s"] is None for r in rows),
        "by_signal": {s: sum(r["signal"] == s for r in rows) for s in SIGNALS},
        "machine": f"{_cpu()}, {os.cpu_count()} cores",
    }
    print(json.dumps(summary, indent=1))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps({"summary": summary, "trials": rows}, indent=1))
    return 0 if not summary["stuck_keys"] and not summary["orphans"] else 1


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
