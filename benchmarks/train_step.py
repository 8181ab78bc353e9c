"""Seconds per step, generation vs training share, tokens/s and peak RSS of the default `drgrpo train`.

    python benchmarks/train_step.py [--steps 20] [--threads 1] [--preset grpo] [--model builtin]

Prints one table of figures; the first step is reported apart (it includes warm-up allocations).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", default="grpo", choices=["grpo", "drgrpo"])
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    from drgrpo_cli.tasks.builtin_model import build_base, is_builtin
    from drgrpo_cli.config import PRESETS, TrainConfig
    from drgrpo_cli.trainer import train

    if is_builtin(args.model):
        t = time.time()
        build_base(args.model)
        print(f"base model ready in {time.time() - t:.1f} s (0 if cached)")
    cfg = TrainConfig(model=args.model, steps=args.steps, threads=args.threads, eval_every=0, checkpoint_every=0,
                      max_tokens=args.max_tokens, **PRESETS[args.preset])
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        t = time.time()
        train(cfg, Path(d) / "run", on_step=rows.append, progress=False)
        wall = time.time() - t
    steady = rows[1:] or rows
    step = statistics.fmean(r["time/step_s"] for r in steady)
    gen = statistics.fmean(r["time/gen_s"] for r in steady)
    upd = statistics.fmean(r["time/train_s"] for r in steady)
    toks = statistics.fmean(r["train/gen_tokens"] for r in steady)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"config: {args.preset}, {cfg.prompts_per_step} prompts x G={cfg.group_size}, max_tokens {cfg.max_tokens}, "
          f"{args.threads} thread(s), {args.steps} steps (wall {wall:.1f} s incl. model load)")
    print(f"first step            {rows[0]['time/step_s']:.3f} s")
    print(f"seconds per step      {step:.3f} s")
    print(f"  generation          {gen:.3f} s ({100 * gen / step:.0f}%)")
    print(f"  update (fwd+bwd+opt){upd:.3f} s ({100 * upd / step:.0f}%)")
    print(f"  other (reward, log) {step - gen - upd:.3f} s ({100 * (step - gen - upd) / step:.0f}%)")
    print(f"completion tokens/step {toks:.0f}  -> {toks / step:.0f} tok/s overall, {toks / gen:.0f} tok/s generation")
    print(f"peak RSS              {rss:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
