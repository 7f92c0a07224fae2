"""Success and decision latency against the rollout (candidate) count, one line per planner and search
horizon, from the JSON files ``framepilot eval`` writes; a PNG, drawn with PIL only.

    python -m training.evaluate --game maze --plan search --search-horizon 1 --rollouts 1,4,16 --json a.json
    python -m training.evaluate --game maze --plan vote --rollouts 1,8 --json b.json
    python benchmarks/plot_planners.py a.json b.json --game maze --out docs/results/planners_maze.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def series(paths: list[str], game: str) -> list[dict]:
    """One series per file: its label and, per rollout count, success, its 95% interval and p50 latency."""
    out = []
    for p in paths:
        g = json.loads(Path(p).read_text())["games"][game]
        label = g.get("planner", "vote") + (f", H={g['search_horizon']}" if g.get("planner") == "search" else "")
        pts = sorted((int(n), a["success_rate"], a["ci95"], a.get("latency_ms", {}).get("p50"))
                     for n, a in g["agent"].items())
        out.append({"label": label, "points": pts, "baselines": g.get("baselines", {})})
    return out


def draw(lines: list[dict], game: str, path: str) -> None:
    from PIL import Image, ImageDraw
    W, H, m = 900, 380, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    ns = sorted({p[0] for s in lines for p in s["points"]})
    lo, hi = math.log2(min(ns)), math.log2(max(ns))
    half = (W - 3 * m) // 2

    def x_of(n, left):
        x0 = m if left else 2 * m + half
        return x0 + (0.5 if hi == lo else (math.log2(n) - lo) / (hi - lo)) * half

    lat_max = max((p[3] or 0) for s in lines for p in s["points"]) * 1.15 or 1.0
    y_s = lambda v: H - m - v * (H - 2 * m)  # noqa: E731
    y_l = lambda v: H - m - v / lat_max * (H - 2 * m)  # noqa: E731
    for left, title in ((True, f"{game}: success (95% interval)"), (False, "decision latency p50, ms")):
        x0 = m if left else 2 * m + half
        d.rectangle([x0, m, x0 + half, H - m], outline="black")
        d.text((x0, m - 16), title, fill="black")
        for n in ns:
            d.text((x_of(n, left) - 4, H - m + 6), str(n), fill="black")
        d.text((x0 + half / 2 - 30, H - m + 22), "rollouts / candidates", fill="black")
        for i in range(5):
            v = i / 4
            d.text((x0 - 34, y_s(v) - 6), f"{i * 25}%" if left else f"{lat_max * v:.0f}", fill="black")
    for k, s in enumerate(lines):
        c = COLOURS[k % len(COLOURS)]
        pts = s["points"]
        d.line([(x_of(n, True), y_s(r)) for n, r, _, _ in pts], fill=c, width=2)
        for n, r, (a, b), _ in pts:
            d.line([(x_of(n, True), y_s(a)), (x_of(n, True), y_s(b))], fill=c)
            d.ellipse([x_of(n, True) - 3, y_s(r) - 3, x_of(n, True) + 3, y_s(r) + 3], fill=c)
        lat = [(x_of(n, False), y_l(t)) for n, _, _, t in pts if t is not None]
        if len(lat) > 1:
            d.line(lat, fill=c, width=2)
        for x, y in lat:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c)
        d.text((W - m - 150, m + 4 + 14 * k), s["label"], fill=c)
    base = next((s["baselines"] for s in lines if s["baselines"]), {})
    for j, (name, b) in enumerate(sorted(base.items())):
        y = y_s(b["success_rate"])
        d.line([(m, y), (m + half, y)], fill="#bbbbbb")
        d.text((m + 4 + 70 * (j % 4), y - 12), name, fill="#888888")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="eval JSON files (python -m training.evaluate --json)")
    ap.add_argument("--game", required=True)
    ap.add_argument("--out", required=True, help="PNG path")
    a = ap.parse_args(argv)
    try:
        lines = series(a.json, a.game)
    except (OSError, ValueError, KeyError) as e:
        print(f"plot_planners: cannot read the eval results ({type(e).__name__}: {e}); pass files written by "
              f"python -m training.evaluate --game {a.game} --json", file=sys.stderr)
        return 2
    draw(lines, a.game, a.out)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
