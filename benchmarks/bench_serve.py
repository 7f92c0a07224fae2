"""The cost of serving the model: decision latency in-process vs through ``framepilot serve`` on
localhost, and decisions per second with several agents against 1 and 2 replicas.

    python benchmarks/bench_serve.py                       # bundled model, prints a table and JSON
    python benchmarks/bench_serve.py --decisions 20 --seconds 10 --json runs/bench_serve.json

Latency: the median of ``--decisions`` ``Agent.decide`` calls on a frame of ``reach`` (after one
warm-up), with 1, 8 and 32 rollouts, in this process and through the server (one replica, one
request per decision; frames as PNG and as ``codec=xor``); the serving overhead is their difference in ms and their ratio. Throughput:
1, 2 and 4 agents (threads, each its own ``RemoteWorldModel`` session) deciding with 8 rollouts for
``--seconds`` against 1 and then 2 replicas (with 2, each decision is split over both).
On a small machine the agents, the replicas and Ray share the same cores: the figures are the
overhead of the path (PNG, HTTP, Ray's proxy and router), not what a GPU server gives.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def context():
    import numpy as np

    import games
    from overlays import NOOP, Layout, render_overlay
    from planner import ContextClip
    env = games.make("reach")
    obs, _ = env.reset(seed=10_000_000)
    return ContextClip(np.stack([render_overlay(obs, NOOP, Layout.preset("arrows"))] * 10), 10.0)


def latency(model, n: int, decisions: int) -> float:
    """Median seconds of one decision with ``n`` rollouts."""
    from overlays import Layout
    from planner import Agent, PlannerConfig
    agent = Agent(model, Layout.preset("arrows"), PlannerConfig(rollouts=n, seed=0))
    clip = context()
    agent.decide(clip)  # warm-up
    times = []
    for _ in range(decisions):
        t = time.perf_counter()
        agent.decide(clip)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def throughput(url: str, token: str, agents: int, seconds: float, n: int = 8) -> float:
    """Decisions per second of ``agents`` agents deciding together for ``seconds``."""
    from overlays import Layout
    from planner import Agent, PlannerConfig
    from planner.backends.remote import RemoteWorldModel
    clip = context()
    models = [RemoteWorldModel(url, token=token) for _ in range(agents)]
    counts = [0] * agents
    start = threading.Barrier(agents + 1)
    end = [0.0]

    def run(i):
        agent = Agent(models[i], Layout.preset("arrows"), PlannerConfig(rollouts=n, seed=i))
        agent.decide(clip)  # warm-up: the session's first request
        start.wait()
        while time.perf_counter() < end[0]:
            agent.decide(clip)
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(agents)]
    for t in threads:
        t.start()
    end[0] = time.perf_counter() + 1e9
    start.wait()
    t0 = time.perf_counter()
    end[0] = t0 + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for m in models:
        m.close()
    return sum(counts) / elapsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rollouts", default="1,8,32")
    p.add_argument("--agents", default="1,2,4")
    p.add_argument("--replicas", default="1,2")
    p.add_argument("--decisions", type=int, default=10, help="timed decisions per latency row (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per throughput cell (default: %(default)s)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from ray import serve

    from framepilot.serve import APP_NAME, ServeConfig, build_app, start, token_digest
    from planner.backends import load_world_model
    rollouts = [int(v) for v in a.rollouts.split(",")]
    agents = [int(v) for v in a.agents.split(",")]
    replicas = [int(v) for v in a.replicas.split(",")]
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    machine = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"machine: {machine}", file=sys.stderr)

    local = load_world_model("bundled", "arrows")
    cfg = ServeConfig(model="bundled", replicas=replicas[0], port=free_port(), num_cpus=a.num_cpus,
                      max_rollouts=max(rollouts + [8]))
    server = start(cfg)
    result = {"machine": machine, "latency": [], "throughput": []}
    try:
        from planner.backends.remote import RemoteWorldModel
        remote = RemoteWorldModel(server.url + "?split=0", token=server.token)
        remote_xor = RemoteWorldModel(server.url + "?split=0&codec=xor", token=server.token)
        for n in rollouts:
            li, ls, lx = (latency(m, n, a.decisions) for m in (local, remote, remote_xor))
            row = {"rollouts": n, "in_process_ms": round(li * 1e3, 1), "served_ms": round(ls * 1e3, 1),
                   "overhead_ms": round((ls - li) * 1e3, 1), "ratio": round(ls / li, 2),
                   "served_xor_ms": round(lx * 1e3, 1), "overhead_xor_ms": round((lx - li) * 1e3, 1),
                   "ratio_xor": round(lx / li, 2)}
            result["latency"].append(row)
            print(row, file=sys.stderr)
        remote.close()
        remote_xor.close()
        for r in replicas:
            if r != cfg.replicas:
                cfg.replicas = r
                serve.run(build_app(cfg, token_digest(server.token)), name=APP_NAME, route_prefix="/")
            for k in agents:
                row = {"replicas": r, "agents": k,
                       "decisions_per_s": round(throughput(server.url, server.token, k, a.seconds), 2)}
                result["throughput"].append(row)
                print(row, file=sys.stderr)
    finally:
        server.stop()
    print("| rollouts | in-process ms | served (png) ms | overhead ms | ratio | served (xor) ms | overhead ms | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["latency"]:
        print(f"| {r['rollouts']} | {r['in_process_ms']} | {r['served_ms']} | {r['overhead_ms']} | {r['ratio']} "
              f"| {r['served_xor_ms']} | {r['overhead_xor_ms']} | {r['ratio_xor']} |")
    print("\n| agents | " + " | ".join(f"{r} replica(s), decisions/s" for r in replicas) + " |")
    print("|---:|" + "---:|" * len(replicas))
    for k in agents:
        cells = [next(x["decisions_per_s"] for x in result["throughput"] if x["replicas"] == r and x["agents"] == k)
                 for r in replicas]
        print(f"| {k} | " + " | ".join(str(c) for c in cells) + " |")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
