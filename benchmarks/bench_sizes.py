"""The trade of a world model's frame size and width against speed: for each size (H, W, strip included)
and UNet width, the time of one denoising pass over 8 imagined frames (what one rollout step of an
8-rollout decision costs) and of one training step at batch 16, on this machine's CPU.

    python benchmarks/bench_sizes.py --json runs/bench_sizes.json
    python benchmarks/bench_sizes.py --sizes 40x32,72x48,96x64 --channels 16,32,32/32,64,64 --threads 2

A decision of the realtime loop at 15 fps reads the overlay 0.1 s ahead: 2 imagined frames, the first
shared by every rollout (one pass of batch 1), the second one pass over all rollouts, plus the overlay
strip's own small denoiser. Prints JSON: median and IQR of repeated timings, with the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _time(fn, repeat: int) -> dict:
    fn()  # warm-up
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    q1, med, q3 = np.percentile(np.array(t) * 1000, [25, 50, 75])
    return {"median_ms": round(float(med), 2), "iqr_ms": round(float(q3 - q1), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="40x32,72x48,96x64")
    p.add_argument("--channels", default="16,32,32/32,64,64", help="UNet widths, separated by /")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    import torch

    from worldmodel.model import FramepilotUNet
    torch.set_num_threads(a.threads)
    rows = []
    for size in a.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        for channels in a.channels.split("/"):
            blocks = tuple(int(c) for c in channels.split(","))
            net = FramepilotUNet(sample_size=(h, w), strip_rows=int(h * 0.8), context_frames=1, block_out_channels=blocks)
            x8, c8, s8 = torch.randn(8, 3, h, w), torch.randn(8, 1, 3, h, w), torch.ones(8)
            net.eval()
            with torch.inference_mode():
                infer = _time(lambda: net(x8, s8, c8, None, None), a.repeat)
            net.train()
            opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
            x16, c16, s16 = torch.randn(16, 3, h, w), torch.randn(16, 1, 3, h, w), torch.ones(16)

            def step():
                loss = ((net(x16, s16, c16, None, None) - x16) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

            train = _time(step, max(3, a.repeat // 2))
            rows.append({"size": [h, w], "channels": list(blocks),
                         "params_m": round(sum(q.numel() for q in net.parameters()) / 1e6, 2),
                         "pass_8_frames": infer, "train_step_batch_16": train})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    from benchmarks.bench_io import machine, print_json
    print_json({"rows": rows, "threads": a.threads, "machine": f"{machine()}, torch {torch.__version__}"}, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
