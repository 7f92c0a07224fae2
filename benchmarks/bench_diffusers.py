"""Decision latency of the LTX-Video backend at full size (random bf16 weights), on a GPU.

One decision = what the planner waits for: 1 s of context at 25 fps (25 frames, a video condition),
n rollouts in one batch, the future up to the 0.1 s decision horizon, distilled few-step
schedule (guidance 1), only the needed latent frames decoded. The architectures are the published
ones (benchmarks/configs/ltx-2b.json, ltx-13b.json); weights are random, so the figures are
latency and FLOPs, not quality. The prompt embedding is cached (as in a run), so no T5 here.

Examples:
    python benchmarks/bench_diffusers.py                                  # 2B and 13B, full grid, CUDA
    python benchmarks/bench_diffusers.py --models ltx-2b --rollouts 1,8 --sizes 512x320 --steps 8
    python benchmarks/bench_diffusers.py --first-block-cache 0.05 --compile --json runs/bench_fbc.json
    python benchmarks/bench_diffusers.py --tiny --json /tmp/bench_tiny.json   # CPU smoke run (seconds)

Sizes are WIDTHxHEIGHT. Writes a JSON report with --json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIGS = ROOT / "benchmarks" / "configs"

# dense bf16 tensor-core peak, FLOP/s, by substring of torch.cuda.get_device_name()
PEAK_BF16 = [("H200", 989e12), ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H800", 989e12),
             ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L40", 181e12),
             ("L4", 121e12), ("RTX 4090", 165e12), ("RTX 6000 Ada", 364e12), ("A10G", 70e12), ("A10", 125e12)]


@dataclass
class BenchConfig:
    """What to measure.

    Args:
        models: config names in benchmarks/configs (``ltx-2b``, ``ltx-13b``, ``ltx-tiny``).
        rollouts: batch sizes n.
        sizes: (width, height) pairs, multiples of 32.
        steps: denoising step counts (a subset of the published distilled timesteps).
        context_seconds: seconds of context (at ``fps``).
        fps: the model's frame rate.
        horizon: decision horizon, seconds (the rollout length).
        repeats: timed decisions per setting.
        warmup: untimed decisions per setting first.
        device, dtype, attention, first_block_cache, compile: as in ``DiffusersConfig``.
        flops: count FLOPs of one decision per setting (torch's FlopCounterMode).
        peak_tflops: the device's peak (TFLOP/s) for the fraction; None: from a table of GPUs.
        json: where to write the report.
    """

    models: tuple[str, ...] = ("ltx-2b", "ltx-13b")
    rollouts: tuple[int, ...] = (1, 2, 4, 8, 16)
    sizes: tuple[tuple[int, int], ...] = ((256, 256), (512, 320))
    steps: tuple[int, ...] = (4, 8)
    context_seconds: float = 1.0
    fps: float = 25.0
    horizon: float = 0.1
    repeats: int = 10
    warmup: int = 1
    device: str | None = None
    dtype: str | None = None
    attention: str = "sdpa"
    first_block_cache: float = 0.0
    compile: bool = False
    flops: bool = True
    peak_tflops: float | None = None
    json: str | None = None
    tiny: bool = False

    def __post_init__(self):
        for name in self.models:
            if not (CONFIGS / f"{name}.json").is_file():
                raise ValueError(f"no config {name!r} in {CONFIGS}; pick one of "
                                 f"{', '.join(sorted(p.stem for p in CONFIGS.glob('*.json')))}")
        if any(n < 1 for n in self.rollouts) or any(s < 1 for s in self.steps):
            raise ValueError("rollouts and steps must be positive integers")
        if any(w % 32 or h % 32 or w < 32 or h < 32 for w, h in self.sizes):
            raise ValueError(f"sizes must be WIDTHxHEIGHT in multiples of 32, got {self.sizes}")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError("repeats must be >= 1 and warmup >= 0")


def parse_args(argv=None) -> BenchConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: tuple(int(v) for v in s.split(","))  # noqa: E731
    p.add_argument("--models", type=lambda s: tuple(s.split(",")))
    p.add_argument("--rollouts", type=ints)
    p.add_argument("--sizes", type=lambda s: tuple(tuple(int(v) for v in wh.lower().split("x")) for wh in s.split(",")))
    p.add_argument("--steps", type=ints)
    p.add_argument("--repeats", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--device")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--attention", choices=["auto", "sdpa", "xformers"])
    p.add_argument("--first-block-cache", type=float, dest="first_block_cache")
    p.add_argument("--compile", action="store_true", default=None)
    p.add_argument("--no-flops", action="store_false", dest="flops", default=None)
    p.add_argument("--peak-tflops", type=float, dest="peak_tflops")
    p.add_argument("--json")
    p.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny config, 64x64, 2 steps, n=1,2")
    args = {k: v for k, v in vars(p.parse_args(argv)).items() if v is not None}
    if args.get("tiny"):
        args = {"models": ("ltx-tiny",), "rollouts": (1, 2), "sizes": ((64, 64),), "steps": (2,), "repeats": 2,
                "warmup": 1, "device": "cpu", **args}
    try:
        return BenchConfig(**args)
    except ValueError as e:
        p.error(str(e))


def random_init_(module, seed: int = 0) -> None:
    """Fill a module's (possibly uninitialised) parameters with small random values, in place."""
    import torch

    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.normal_(0.0, fan_in ** -0.5, generator=g)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02, generator=g)
                if "norm" in name or "scale" in name:
                    p.add_(1.0)


def build_backend(name: str, size: tuple[int, int], steps: int, cfg: BenchConfig):
    """An LTXBackend on random weights of the named architecture (built on meta, then materialised)."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    from planner.backends.loading import (
        DiffusersConfig,
        configure_denoiser,
        resolve_device,
        resolve_dtype,
    )
    from planner.backends.ltx import LTXBackend, LTXSettings

    spec = json.loads((CONFIGS / f"{name}.json").read_text())
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    with torch.device("meta"):
        transformer = LTXVideoTransformer3DModel.from_config(spec["transformer"])
        vae = AutoencoderKLLTXVideo.from_config(spec["vae"])
    # nn.Module.to: cast on meta (no memory), then allocate on the device in the target dtype
    transformer = torch.nn.Module.to(transformer, dtype).to_empty(device=device).eval()
    vae = torch.nn.Module.to(vae, dtype).to_empty(device=device).eval()
    random_init_(transformer, 0)
    random_init_(vae, 1)
    with torch.no_grad():
        vae.latents_mean.zero_()
        vae.latents_std.fill_(1.0)
    pipe = LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**spec["scheduler"]), vae=vae,
                                text_encoder=None, tokenizer=None, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    configure_denoiser(pipe, DiffusersConfig(name, device=str(device), dtype=cfg.dtype, attention=cfg.attention,
                                             first_block_cache=cfg.first_block_cache, compile=cfg.compile))
    width, height = size
    backend = LTXBackend(pipe, LTXSettings(fps=cfg.fps, size=(height, width), context_seconds=cfg.context_seconds,
                                           num_inference_steps=steps, distilled=True, guidance_scale=1.0,
                                           max_sequence_length=spec["max_sequence_length"]))
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn((1, spec["max_sequence_length"], spec["text_embed_dim"]), generator=g)
    backend.cache_prompt("", embeds, torch.ones(1, spec["max_sequence_length"]))
    return backend


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def peak_flops(cfg: BenchConfig, device) -> tuple[float | None, str]:
    if cfg.peak_tflops:
        return cfg.peak_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "unknown (not a GPU)"
    import torch

    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16:
        if key in name:
            return value, f"dense bf16 peak of {key} (datasheet)"
    return None, f"unknown for {name}; pass --peak-tflops"


def measure(backend, context, n: int, cfg: BenchConfig) -> dict:
    """Latency of ``repeats`` decisions (after ``warmup``), their stage p50s, FLOPs of one decision."""
    import torch

    for i in range(cfg.warmup):
        backend(context, n=n, rollout_length=cfg.horizon, seed=i)
    device = backend.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, stages = [], []
    for i in range(cfg.repeats):
        t0 = time.perf_counter()
        out = backend(context, n=n, rollout_length=cfg.horizon, seed=100 + i)
        times.append(time.perf_counter() - t0)
        stages.append(out.timings)
    result = {
        "p50_s": float(np.percentile(times, 50)), "p95_s": float(np.percentile(times, 95)),
        "mean_s": float(np.mean(times)), "min_s": float(np.min(times)),
        "stage_p50_s": {k: float(np.median([s.get(k, 0.0) for s in stages])) for k in stages[0] if k != "total"},
        "frames_returned": int(out.frames.shape[1]), "plan": asdict(backend.last_plan),
    }
    if device.type == "cuda":
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    if cfg.flops:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            backend(context, n=n, rollout_length=cfg.horizon, seed=0)
        result["flops"] = int(counter.get_total_flops())
        result["tflop_per_s"] = result["flops"] / result["p50_s"] / 1e12
    return result


def run_benchmark(cfg: BenchConfig, log=print) -> dict:
    """Measure every (model, size, steps, rollouts); returns the report."""
    import diffusers
    import torch

    from planner.backends.loading import resolve_device
    from planner.world_model import ContextClip

    device = resolve_device(cfg.device)
    peak, peak_source = peak_flops(cfg, device)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__, "diffusers": diffusers.__version__, "peak_flops": peak, "peak_source": peak_source,
        "config": asdict(cfg), "results": [],
    }
    log(f"# {report['device']}  torch {torch.__version__}  diffusers {diffusers.__version__}  {report['date']}")
    log(f"{'model':8} {'size':>8} {'steps':>5} {'n':>3} {'p50 ms':>9} {'p95 ms':>9} {'denoise':>8} {'decode':>7} "
        f"{'FLOP':>9} {'TFLOP/s':>8} {'of peak':>7}")
    rng = np.random.default_rng(0)
    for name in cfg.models:
        for width, height in cfg.sizes:
            frames = rng.integers(0, 256, (int(round(cfg.context_seconds * cfg.fps)), height, width, 3), dtype=np.uint8)
            context = ContextClip(frames, fps=cfg.fps)
            for steps in cfg.steps:
                backend = build_backend(name, (width, height), steps, cfg)
                params = count_params(backend.pipe.transformer)
                for n in cfg.rollouts:
                    row = {"model": name, "transformer_params": params, "width": width, "height": height,
                           "steps": steps, "rollouts": n}
                    try:
                        row.update(measure(backend, context, n, cfg))
                    except torch.cuda.OutOfMemoryError:
                        row["error"] = "out of GPU memory"
                        torch.cuda.empty_cache()
                    if peak and "tflop_per_s" in row:
                        row["peak_fraction"] = row["tflop_per_s"] * 1e12 / peak
                    report["results"].append(row)
                    if "error" in row:
                        log(f"{name:8} {width:>4}x{height:<3} {steps:>5} {n:>3}  {row['error']}")
                        continue
                    st = row["stage_p50_s"]
                    log(f"{name:8} {width:>4}x{height:<3} {steps:>5} {n:>3} {row['p50_s'] * 1e3:9.1f} "
                        f"{row['p95_s'] * 1e3:9.1f} {st.get('denoise', 0) * 1e3:8.1f} {st.get('decode', 0) * 1e3:7.1f} "
                        f"{row.get('flops', 0):9.3g} {row.get('tflop_per_s', 0):8.2f} "
                        f"{row['peak_fraction'] if 'peak_fraction' in row else float('nan'):7.1%}")
                del backend
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps(report, indent=2) + "\n")
        log(f"# wrote {cfg.json}")
    return report


def main(argv=None) -> int:
    cfg = parse_args(argv)
    import torch

    if cfg.tiny:
        torch.set_num_threads(1)
    try:
        run_benchmark(cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
