"""Throughput check of the training loop per rollout backend: steps/s, rollout tokens/s, peak GPU memory.

    python benchmarks/gpu_check.py                       # CUDA if available: HF, and vLLM when installed
    python benchmarks/gpu_check.py --device cpu          # CPU: HF vs vLLM (run it in .venv-vllm for vLLM)
    python benchmarks/gpu_check.py --model Qwen/Qwen2.5-Math-1.5B --dataset math.jsonl --template qwen_math

Choices and why:

* It times the real loop (:func:`drgrpo_cli.trainer.train`), not a bare ``generate``: the rollout figure
  then includes what a run pays for it (vLLM's lazy weight push and sleep/wake happen inside
  ``generate``), and steps/s includes the policy update.
* Each backend runs in its own child process (this script re-invoked with ``--worker``): peak GPU memory
  is then per backend, and vLLM's sleep mode, which allows one engine per process, is never shared.
* The first step is left out of the rates (CUDA/kernel warm-up, first allocation); engine start-up is
  reported on its own. Defaults: the built-in model and task, 16 prompts x 8 responses, 64 tokens.
* Peak GPU memory is reported twice: torch's peak allocated bytes (the trainer, and vLLM when its
  allocations go through torch) and the device's peak used memory sampled after every step
  (``mem_get_info``; includes vLLM's own pools and other processes on the GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARK = "GPU_CHECK_RESULT "


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    p.add_argument("--backends", default=None, help="comma list of hf,vllm (default: hf, plus vllm if usable)")
    p.add_argument("--model", default="builtin", help="builtin, builtin-small, a local folder or a hub id")
    p.add_argument("--dataset", default=None, help="math task: a JSONL/CSV/Parquet file (default: built-in task)")
    p.add_argument("--template", default="none", help="math task template (qwen_math, r1, none, file)")
    p.add_argument("--steps", type=int, default=8, help="training steps per backend (the first is warm-up)")
    p.add_argument("--prompts-per-step", type=int, default=16)
    p.add_argument("-G", "--group-size", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--micro-batches", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------------------
def worker(args: argparse.Namespace) -> dict:
    """Run ``args.steps`` training steps with one backend; return the measured figures."""
    import torch

    from drgrpo_cli import rollout, runlog
    from drgrpo_cli.config import TrainConfig
    from drgrpo_cli.trainer import train

    cuda = args.device.startswith("cuda")
    made: dict = {}
    real_make = rollout.make_backend

    def timed_make(*a, **kw):
        t0 = time.time()
        made["backend"] = real_make(*a, **kw)
        made["start_s"] = time.time() - t0
        return made["backend"]

    rollout.make_backend = timed_make
    dev_used: list[float] = []

    def on_step(row):
        if cuda:
            free, total = torch.cuda.mem_get_info()
            dev_used.append((total - free) / 2**30)

    cfg = TrainConfig(
        model=args.model, backend=args.worker, device=args.device, steps=args.steps, seed=args.seed,
        prompts_per_step=args.prompts_per_step, group_size=args.group_size, max_tokens=args.max_tokens,
        micro_batches=args.micro_batches, threads=args.threads, eval_every=0, checkpoint_every=0,
        task="math" if args.dataset else "builtin", dataset=args.dataset, template=args.template,
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        train(cfg, Path(d) / "run", progress=False, on_step=on_step)
        rows, _ = runlog.read_jsonl(Path(d) / "run" / runlog.METRICS)
    wall = time.time() - t0
    rows = [r for r in rows if r.get("step", 0) >= 1]
    timed = rows[1:] or rows  # step 1 is warm-up
    step_s = sum(r["time/step_s"] for r in timed)
    gen_s = sum(r["time/gen_s"] for r in timed)
    tokens = sum(r["train/gen_tokens"] for r in timed)
    b = made.get("backend")
    out = {
        "backend": args.worker, "device": args.device, "steps_timed": len(timed), "wall_s": wall,
        "engine_start_s": made.get("start_s"), "steps_per_s": len(timed) / step_s,
        "rollout_tok_per_s": tokens / gen_s, "gen_share": gen_s / step_s,
        "train_s_per_step": sum(r["time/train_s"] for r in timed) / len(timed),
        "tokens_per_step": tokens / len(timed), "reward_last": rows[-1]["train/reward"],
        "len_mean": statistics.fmean(r["train/len_mean"] for r in timed),
        "push_s_per_step": b.push_s / max(1, b.pushes) if hasattr(b, "pushes") else None,
        "push_method": getattr(b, "push_method", None),
        "torch_peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "device_peak_used_gib": max(dev_used) if dev_used else None,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "torch_threads": torch.get_num_threads(),
    }
    return out


def run_child(args: argparse.Namespace, backend: str) -> dict | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", backend, "--device", args.device,
           "--model", args.model, "--template", args.template, "--steps", str(args.steps),
           "--prompts-per-step", str(args.prompts_per_step), "-G", str(args.group_size),
           "--max-tokens", str(args.max_tokens), "--micro-batches", str(args.micro_batches),
           "--threads", str(args.threads), "--seed", str(args.seed)]
    if args.dataset:
        cmd += ["--dataset", args.dataset]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    print(f"[{backend}] failed (exit {proc.returncode}):\n  " + "\n  ".join(tail), file=sys.stderr)
    return None


def _fmt(v, spec: str) -> str:
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
    return "-".rjust(width) if v is None else format(v, spec)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device is None:
        try:
            import torch

            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            args.device = "cpu"
    if args.worker:
        print(MARK + json.dumps(worker(args)), flush=True)
        return 0
    if args.backends:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    else:
        from drgrpo_cli.vllm_backend import vllm_usable

        backends = ["hf"] + (["vllm"] if vllm_usable(args.device) else [])
    task = f"math:{args.dataset}" if args.dataset else "builtin task"
    print(f"gpu_check: model {args.model}, {task}, device {args.device}, {args.steps} steps "
          f"(first = warm-up), {args.prompts_per_step} prompts x G={args.group_size}, max {args.max_tokens} tokens")
    results = []
    for b in backends:
        print(f"  running {b} ...", flush=True)
        r = run_child(args, b)
        if r:
            results.append(r)
    if not results:
        return 1
    if results[0].get("gpu"):
        print(f"GPU: {results[0]['gpu']}")
    head = (f"{'backend':8} {'start s':>8} {'steps/s':>8} {'rollout tok/s':>14} {'gen share':>9} "
            f"{'train s/step':>12} {'tok/step':>9} {'push s':>7} {'torch peak GiB':>14} {'device peak GiB':>15}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['backend']:8} {_fmt(r['engine_start_s'], '8.2f')} {r['steps_per_s']:8.3f} "
              f"{r['rollout_tok_per_s']:14.0f} {r['gen_share']:9.0%} {r['train_s_per_step']:12.3f} "
              f"{r['tokens_per_step']:9.0f} {_fmt(r['push_s_per_step'], '7.3f')} "
              f"{_fmt(r['torch_peak_gib'], '14.2f')} {_fmt(r['device_peak_used_gib'], '15.2f')}")
    by = {r["backend"]: r for r in results}
    if "hf" in by and "vllm" in by:
        print(f"vLLM / HF rollout tokens/s: {by['vllm']['rollout_tok_per_s'] / by['hf']['rollout_tok_per_s']:.2f}x, "
              f"steps/s: {by['vllm']['steps_per_s'] / by['hf']['steps_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
