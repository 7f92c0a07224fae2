"""The GPU benchmark script, run for real with its tiny CPU config (smoke test)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_diffusers.py"


def test_tiny_benchmark_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)  # a hang guard, not a timing
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"].startswith("CPU") and report["peak_flops"] is None
    rows = report["results"]
    assert [(r["model"], r["rollouts"]) for r in rows] == [("ltx-tiny", 1), ("ltx-tiny", 2)]
    for r in rows:
        assert 0 < r["p50_s"] <= r["p95_s"] and r["flops"] > 0 and r["frames_returned"] == 3
        assert r["plan"]["context_frames"] == 25 and r["plan"]["num_frames"] % 8 == 1
        assert {"encode", "denoise", "decode"} <= set(r["stage_p50_s"])
    assert rows[1]["flops"] > rows[0]["flops"]  # two rollouts cost more than one
    assert "ltx-tiny" in proc.stdout


def test_bad_arguments_are_one_line_errors():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--sizes", "50x64"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "multiples of 32" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, str(SCRIPT), "--models", "ltx-99b"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no config 'ltx-99b'" in proc.stderr and "Traceback" not in proc.stderr
