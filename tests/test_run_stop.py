"""A stop that stops the whole run, on a real display: ``framepilot play --real-window --episodes 3`` run
as a user would (a subprocess), with the stop key, the corner failsafe and the pause key sent through
XTEST like a person's, and SIGKILL; the X keymap and the process table are the judges."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real windows and the shipped model in subprocesses: about a minute
ROOT = Path(__file__).resolve().parents[1]


class Agent:
    """``run_agent.py play --real-window`` in a subprocess, its stderr lines collected as they come."""

    def __init__(self, *args: str):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run_agent.py"), "play", "--real-window",
                                      "--mode", "sync", "--rollouts", "2", "--no-record", "--scale", "2", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.err: list[str] = []
        self._t = threading.Thread(target=lambda: self.err.extend(iter(self.proc.stderr.readline, "")), daemon=True)
        self._t.start()

    def wait_for(self, text: str, timeout: float = 90.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in line for line in self.err):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)
                return any(text in line for line in self.err)
            time.sleep(0.02)
        return False

    def windows(self) -> list[int]:
        return game_windows(self.proc.pid)

    def finish(self, timeout: float = 30.0) -> tuple[int, dict]:
        out, _ = self.proc.communicate(timeout=timeout)
        self._t.join(2)
        return self.proc.returncode, json.loads(out) if out.strip() else {}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def game_windows(agent_pid: int) -> list[int]:
    """pids of game-window processes this agent opened (their title carries its pid), whoever their parent is now."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"games.window" in cmd and any(part.endswith(f" {agent_pid}".encode()) for part in cmd):
                pids.append(int(d.name))
    return pids


def watch_keys(human, seconds: float) -> set[int]:
    """Every key code seen held on the X server in the next ``seconds`` (polled every 5 ms)."""
    seen: set[int] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen |= human.keys_down()
        time.sleep(0.005)
    return seen


def test_the_stop_key_ends_every_episode_not_just_the_current_one(xvfb_display, human):
    agent = Agent("--episodes", "3", "--max-steps", "80")
    try:
        assert agent.wait_for("AGENT ACTIVE"), "".join(agent.err[-20:])
        time.sleep(0.2)
        human.tap("F12")
        t_stop = time.monotonic()
        pressed_after = watch_keys(human, 4.0) - {human.keycode("F12")}
        code, summary = agent.finish()
        took = time.monotonic() - t_stop
    finally:
        agent.kill()
    assert not pressed_after, f"keys were pressed after F12: {pressed_after}"
    done = len(summary["episodes"])
    assert code == 0 and summary["stopped"] == "f12 pressed" and done < 3, (summary, agent.err)
    stopped = [line for line in agent.err if line.startswith("STOPPED:")]
    assert len(stopped) == 1 and f"after {done} of 3 episodes" in stopped[0], agent.err
    assert took < 10, f"the run went on for {took:.1f} s after F12"
    assert not agent.windows() and not human.keys_down()


def test_the_corner_failsafe_ends_the_run_and_the_agent_never_moves_the_pointer_again(xvfb_display, human):
    agent = Agent("--episodes", "3", "--max-steps", "80")
    try:
        assert agent.wait_for("AGENT ACTIVE"), "".join(agent.err[-20:])
        time.sleep(0.5)
        human.warp(0, 0)
        seen_at = []
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            seen_at.append(human.pointer())
            time.sleep(0.02)
        code, summary = agent.finish()
    finally:
        agent.kill()
    assert set(seen_at) == {(0, 0)}, f"the pointer was moved out of the corner: {sorted(set(seen_at))[:5]}"
    assert human.pointer() == (0, 0)
    assert code == 0 and "corner" in summary["stopped"] and len(summary["episodes"]) < 3, (summary, agent.err)
    assert not agent.windows() and not human.keys_down()


def test_the_pause_key_pauses_the_run_and_presses_nothing_until_resumed(xvfb_display, human):
    # enough episodes that the run cannot finish by itself in the seven seconds before F12 (three short
    # episodes once did, and the summary then had no "stopped")
    agent = Agent("--episodes", "100", "--max-steps", "80")
    try:
        assert agent.wait_for("AGENT ACTIVE"), "".join(agent.err[-20:])
        time.sleep(0.5)
        human.tap("F11")
        assert agent.wait_for("PAUSED", 5), agent.err[-5:]
        during = watch_keys(human, 3.0) - {human.keycode("F11")}
        assert agent.proc.poll() is None, "a pause ended the run"
        human.tap("F11")
        assert agent.wait_for("resumed", 5), agent.err[-5:]
        resumed = watch_keys(human, 3.0)
        human.tap("F12")
        code, summary = agent.finish()
    finally:
        agent.kill()
    assert not during, f"keys were pressed while paused: {during}"
    assert resumed, "the agent pressed nothing after it was resumed"
    assert code == 0 and summary.get("stopped") == "f12 pressed", (summary.get("episodes"), [line for line in agent.err if not line.startswith("step")])


@pytest.mark.parametrize("sig,after", [(signal.SIGKILL, "active"), (signal.SIGTERM, 0.3), (signal.SIGKILL, 1.0),
                                       (signal.SIGHUP, "active"), (signal.SIGTERM, "active")])
def test_no_game_window_outlives_its_agent(xvfb_display, human, sig, after):
    """Killed at a moment (seconds after start, or once the agent is active), by any signal, SIGKILL
    included: the game window goes with it, and nothing is left held."""
    agent = Agent("--episodes", "3", "--max-steps", "80")
    try:
        if after == "active":
            assert agent.wait_for("AGENT ACTIVE"), "".join(agent.err[-20:])
            time.sleep(0.3)
        else:
            time.sleep(after)
        agent.proc.send_signal(sig)
        agent.proc.wait(10)
        end = time.monotonic() + 5
        while agent.windows() and time.monotonic() < end:
            time.sleep(0.05)
        left = agent.windows()
    finally:
        agent.kill()
        for pid in game_windows(agent.proc.pid):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"game window processes {left} outlived the agent ({signal.Signals(sig).name})"
    time.sleep(0.3)  # the guardian's release after a SIGKILL
    assert not human.keys_down()
