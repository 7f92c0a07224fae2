"""The own-game chain on a real external game: an Atari game (``ale-py``) in a real window, played by a
scripted player through XTEST, recorded with ``framepilot record --screen``, learnt with ``framepilot
train``, and played by ``framepilot screen`` in real time; scored against the player, no input and a
random player. Every stage runs framepilot's own command line, as a user would.

    pip install ale-py
    python benchmarks/bench_atari.py freeway --record-minutes 10 --train-minutes 30 --play-seconds 120 \
        --out runs/atari/freeway --json runs/atari/freeway.json
    python benchmarks/bench_atari.py breakout --record-minutes 0.3 --train-minutes 0.2 --play-seconds 8 \
        --baseline-seconds 8 --out /tmp/chain    # the plumbing only (what the test runs)

Stages, in order; each keeps its output in ``--out`` and is skipped when run again (a long run can be
stopped and continued; ``train`` itself resumes):

1. baselines: the window played by ``benchmarks/atari/player.py`` (scripted, random, idle) for
   ``--baseline-seconds`` each;
2. record: the scripted player plays while ``framepilot record --screen --keys <the game's keys> --size
   <--size> --fps 15`` records it, in episodes of at most 60 s, until ``--record-minutes``;
3. train: ``framepilot train --corpus <out>/corpus --out <out>/model --minutes <--train-minutes>`` (a new
   model at the corpus's size, its convolutions started from the shipped ``bundled:arrows``);
4. agent: ``framepilot screen --window <title> --layout keys:<keys> --model <out>/model`` for
   ``--play-seconds``.

Scores come from the window's own log (one JSON line per shown frame; ``window.py``): the game's reward
summed over the frames of a stretch, per 1,000 frames (15 frames a second). For the agent the stretch is
from its first decision to its last (``decisions.jsonl``'s ``clock``, the same monotonic clock). The
JSON holds each score, the margins, the minutes recorded and trained, and the agent's latency (p50, p95)
and dropped decisions, with the machine.

Needs an X display: ``$DISPLAY``, else an ``Xvfb`` it starts itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.atari.window import GAME_KEYS  # noqa: E402
from benchmarks.bench_io import machine, print_json, start_xvfb  # noqa: E402
from framepilot.atomic import atomic_write  # noqa: E402

FPS = 15.0  # the window's frame rate (60 Hz emulator, every 4th frame shown)
EPISODE_SECONDS = 60.0


# ---- the display, the window, the player --------------------------------------------------------------
def ensure_display() -> subprocess.Popen | None:
    """Use ``$DISPLAY``, else start ``Xvfb`` on a free display and point ``$DISPLAY`` at it."""
    return None if os.environ.get("DISPLAY") else start_xvfb((1280, 800))


class Window:
    """``benchmarks/atari/window.py`` as a process: the game at 15 fps in a real window, its log a file."""

    def __init__(self, game: str, log: Path, seconds: float, seed: int, scale: int = 2, pos=(100, 100)):
        self.title = f"atari {game} {os.getpid()}"
        self.log, self.scale, self.pos = log, scale, pos
        log.parent.mkdir(parents=True, exist_ok=True)
        if log.exists():
            log.unlink()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "atari" / "window.py"), game, "--title", self.title,
             "--scale", str(scale), "--seconds", str(seconds), "--seed", str(seed), "--log", str(log),
             "--pos", f"{pos[0]},{pos[1]}"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if '"ready"' not in line:
            raise RuntimeError(f"the game window did not start: {line!r}")
        time.sleep(0.5)  # mapped and drawn
        self.pointer_inside()

    def pointer_inside(self) -> None:
        """Without a window manager keyboard focus follows the pointer: put it in the window."""
        import Xlib.display
        from Xlib.ext import xtest
        from Xlib import X
        d = Xlib.display.Display()
        xtest.fake_input(d, X.MotionNotify, x=self.pos[0] + 80 * self.scale, y=self.pos[1] + 100 * self.scale)
        d.sync()
        d.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def player(game: str, title: str, seconds: float, policy: str = "scripted", seed: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "atari" / "player.py"), game, "--window",
                             title, "--seconds", str(seconds), "--policy", policy, "--seed", str(seed)])


def framepilot(*args, timeout: float) -> dict:
    """Run ``framepilot ARGS`` (this checkout's ``run_agent.py``); its JSON summary, or exit with its error."""
    p = subprocess.run([sys.executable, str(ROOT / "run_agent.py"), *args], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"framepilot {args[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    out = p.stdout
    return json.loads(out[out.index("{"):]) if "{" in out else {}


def score(log: Path, start: float | None = None, end: float | None = None) -> dict:
    """Reward per 1,000 shown frames over the log's lines with ``start <= clock <= end``."""
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if (start is None or r["clock"] >= start) and (end is None or r["clock"] <= end)]
    total = float(sum(r["reward"] for r in rows))
    return {"frames": len(rows), "reward": total, "per_1000": round(1000 * total / max(1, len(rows)), 3)}


# ---- the stages -----------------------------------------------------------------------------------------
def baselines(a, out: Path) -> dict:
    path = out / "baselines.json"
    if path.exists():
        return json.loads(path.read_text())
    res = {}
    for policy in ("scripted", "random", "idle"):
        log = out / "logs" / f"baseline_{policy}.jsonl"
        with Window(a.game, log, a.baseline_seconds + 2, seed=a.seed + 1) as win:
            pl = player(a.game, win.title, a.baseline_seconds, policy, seed=a.seed + 1)
            pl.wait(timeout=a.baseline_seconds + 60)
        res[policy] = score(log)
        print(f"baseline {policy}: {res[policy]['per_1000']} per 1000 frames", file=sys.stderr, flush=True)
    atomic_write(path, json.dumps(res, indent=1))
    return res


def recorded(corpus: Path) -> tuple[int, float]:
    """(finished episodes, seconds of play) in ``corpus``."""
    done = [p for p in corpus.glob("ep_*") if (p / "meta.json").exists()]
    return len(done), sum(json.loads((p / "meta.json").read_text())["n_frames"] / FPS for p in done)


def record(a, out: Path) -> dict:
    corpus = out / "corpus"
    keys = ",".join(GAME_KEYS[a.game])
    i, seconds = recorded(corpus)
    while seconds < 60 * a.record_minutes - 1e-6:
        length = min(EPISODE_SECONDS, 60 * a.record_minutes - seconds)
        ep = corpus / f"ep_{i:03d}"
        if ep.exists():
            shutil.rmtree(ep)  # an episode cut off by an earlier stop: recorded again
        with Window(a.game, out / "logs" / f"record_{i:03d}.jsonl", length + 30, seed=a.seed + 100 + i) as win:
            pl = player(a.game, win.title, length + 20, "scripted", seed=a.seed + 100 + i)
            try:
                framepilot("record", "--screen", "--window", win.title, "--keys", keys, "--size", a.size,
                           "--fps", str(FPS), "--seconds", str(length), "--game", a.game, "--out", str(ep),
                           timeout=length + 120)
            finally:
                pl.terminate()
                pl.wait(timeout=10)
        seconds += json.loads((ep / "meta.json").read_text())["n_frames"] / FPS
        i += 1
        print(f"recorded {seconds / 60:.2f} of {a.record_minutes} minutes", file=sys.stderr, flush=True)
    return {"episodes": i, "minutes": round(seconds / 60, 2), "keys": keys}


def train(a, out: Path) -> dict:
    model = out / "model"
    stamp = out / "train.json"
    if stamp.exists():
        return json.loads(stamp.read_text())
    args = ["train", "--corpus", str(out / "corpus"), "--out", str(model), "--minutes", str(a.train_minutes),
            "--steps", str(a.train_steps), "--batch", str(a.batch), "--save-every", "200"]
    if a.transfer_from:
        args += ["--transfer-from", a.transfer_from]
    if a.train_size:
        args += ["--size", a.train_size]
    if a.channels:
        args += ["--channels", a.channels]
    if a.threads:
        args += ["--threads", str(a.threads)]
    args += a.train_args.split()
    t = time.monotonic()
    summary = framepilot(*args, timeout=60 * a.train_minutes + 600)
    summary["minutes"] = round((time.monotonic() - t) / 60, 2)
    atomic_write(stamp, json.dumps(summary, indent=1))
    return summary


def agent(a, out: Path) -> dict:
    log = out / "logs" / "agent.jsonl"
    keys = ",".join(GAME_KEYS[a.game])
    with Window(a.game, log, a.play_seconds + 120, seed=a.seed + 1) as win:
        summary = framepilot("screen", "--window", win.title, "--layout", f"keys:{keys}", "--model",
                             str(out / "model"), "--rollouts", str(a.rollouts), "--max-seconds", str(a.play_seconds),
                             "--countdown", "0", "--quiet", "--no-focus-guard", "--out", str(out / "runs"),
                             *(["--denoise-steps", str(a.denoise_steps)] if a.denoise_steps else []),
                             timeout=a.play_seconds + 300)
    rows = [json.loads(x) for x in (Path(summary["recording"]) / "decisions.jsonl").read_text().splitlines()]
    clocks = [r["clock"] for r in rows]
    plan = sorted(r["timings_ms"].get("plan", 0.0) for r in rows)
    pressed = {}
    for r in rows:
        for k in (r.get("action") or {}).get("keys", []):
            pressed[k] = pressed.get(k, 0) + 1
    return {"score": score(log, min(clocks), max(clocks)), "steps": summary["steps"],
            "dropped": summary["dropped"], "dropped_share": round(summary["dropped"] / max(1, summary["steps"]), 4),
            "plan_ms_p50": plan[len(plan) // 2] if plan else None,
            "plan_ms_p95": plan[int(0.95 * (len(plan) - 1))] if plan else None,
            "keys_chosen": pressed, "too_slow": summary.get("too_slow"), "recording": summary["recording"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("game", choices=sorted(GAME_KEYS))
    p.add_argument("--out", required=True, help="folder for every stage's output (a rerun continues)")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--record-minutes", type=float, default=10.0)
    p.add_argument("--train-minutes", type=float, default=30.0)
    p.add_argument("--train-steps", type=int, default=1_000_000, help="a cap besides --train-minutes")
    p.add_argument("--play-seconds", type=float, default=120.0)
    p.add_argument("--baseline-seconds", type=float, default=120.0)
    p.add_argument("--size", default="80,64", help="the game area recorded (H,W; letterboxed) (default: %(default)s)")
    p.add_argument("--train-size", default=None, help="the model's H,W (default: train's own default)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--transfer-from", default="bundled:arrows", help="'' for a model trained from scratch")
    p.add_argument("--channels", default=None, help="a new model's UNet widths (train --channels)")
    p.add_argument("--threads", type=int, default=0, help="train --threads (default: torch's)")
    p.add_argument("--train-args", default="", help="more options for framepilot train, e.g. '--strip-batch 32'")
    p.add_argument("--stages", default="baselines,record,train,agent", help="the stages to run now; the JSON is "
                   "written once all four have results in --out (default: %(default)s)")
    p.add_argument("--rollouts", type=int, default=8)
    p.add_argument("--denoise-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        import ale_py  # noqa: F401
    except ImportError:
        sys.exit("the Atari games need ale-py: pip install ale-py")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    xvfb = ensure_display()
    try:
        t0 = time.monotonic()
        stages = set(a.stages.split(","))
        base = baselines(a, out) if "baselines" in stages else None
        rec = record(a, out) if "record" in stages else None
        tr = train(a, out) if "train" in stages else None
        ag = agent(a, out) if "agent" in stages else None
    finally:
        if xvfb is not None:
            xvfb.terminate()
    if ag is not None:
        atomic_write(out / "agent.json", json.dumps(ag, indent=1))
    base = base or _load(out / "baselines.json")
    tr = tr or _load(out / "train.json")
    ag = ag or _load(out / "agent.json")
    if rec is None:  # read, never recorded here: the display is gone
        episodes, seconds = recorded(out / "corpus")
        if seconds >= 60 * a.record_minutes - 1e-6:
            rec = {"episodes": episodes, "minutes": round(seconds / 60, 2), "keys": ",".join(GAME_KEYS[a.game])}
    if not (base and rec and tr and ag):
        print(f"stages {a.stages} done; the result is written once every stage has run", file=sys.stderr)
        return 0
    s = {k: v["per_1000"] for k, v in base.items()}
    s["agent"] = ag["score"]["per_1000"]
    margin = s["scripted"] - s["idle"]
    result = {
        "game": a.game, "scores_per_1000_frames": s,
        "agent_share_of_player_margin": round((s["agent"] - s["idle"]) / margin, 3) if margin else None,
        "target_met": bool(margin > 0 and s["agent"] - s["idle"] >= 0.5 * margin),
        "recorded_minutes": rec["minutes"], "trained_minutes": tr.get("minutes"), "train_steps": tr.get("step"),
        "train_loss": tr.get("loss"), "agent": ag, "baselines": base,
        "settings": {k: v for k, v in vars(a).items() if k not in ("json",)},
        "wall_minutes": round((time.monotonic() - t0) / 60, 2),
        "machine": machine(),
    }
    print_json(result, a.json)
    return 0


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
