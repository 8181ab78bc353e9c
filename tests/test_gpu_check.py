"""benchmarks/gpu_check.py --paper-shape: the one-call GPU check runs end to end on CPU (its --tiny shape), so the
path a GPU machine takes cannot rot unnoticed."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_shape_tiny_runs_on_cpu_and_prints_every_field():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--paper-shape", "--tiny", "--device", "cpu", "--threads", "1",
                           "--backends", "hf"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "tiny-shaped random Qwen2 model" in out and "math:arithmetic.jsonl" in out
    table = {}
    for line in out.splitlines():
        m = re.match(r"^(\S.{0,19}?)\s{2,}(\S+)$", line)
        if m:
            table[m.group(1).strip()] = m.group(2)
    for label in ("s/step", "rollout tok/s", "update tok/s", "MFU (update)", "micro-batch tokens",
                  "micro-batches/step", "torch peak GiB", "device peak GiB"):
        assert label in table, (label, out)
    for label in ("s/step", "rollout tok/s", "update tok/s", "update tokens/step"):
        assert float(table[label]) > 0, label
    assert table["micro-batch tokens"] == "65536" and float(table["micro-batches/step"]) == 1.0  # CPU default
    assert table["MFU (update)"] == "-" and table["torch peak GiB"] == "-"  # no GPU: no peak rate, no CUDA memory


def test_peak_table_and_shapes():
    gc = _module()
    assert gc.peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert gc.peak_bf16_flops("NVIDIA H100 PCIe") == 756e12
    assert gc.peak_bf16_flops("NVIDIA H200") == 989e12
    assert gc.peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert gc.peak_bf16_flops("Tesla T4") is None and gc.peak_bf16_flops(None) is None
    assert gc.PAPER_SHAPE == dict(hidden=1536, layers=28, heads=12, kv_heads=2, ffn=8960)  # Qwen2.5-1.5B
