"""Time-to-figure: `drgrpo ablate` (the default 2x2 x 3 paired seeds) + `drgrpo plot`, wall clock, as a newcomer runs it.

    python benchmarks/time_to_figure.py [--fresh-base] [--workers N] [--set steps=200 ...]

``--fresh-base`` points DRGRPO_CACHE at an empty folder so the base model's build is included (the
first-run experience). Prints the base-model build time, the sweep time, the plot time, the total, and
per-step figures from the runs' metrics (seconds per step, generation share, tokens/s).
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


def run(cmd: list[str], env: dict[str, str]) -> float:
    t = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh-base", action="store_true", help="build the base model from scratch (timed)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.fresh_base:
            env["DRGRPO_CACHE"] = str(tmp / "cache")
        sweep = tmp / "bias-2x2"
        t_base = run([sys.executable, "-m", "drgrpo_cli.cli.app", "base"], env)
        cmd = [sys.executable, "-m", "drgrpo_cli.cli.app", "ablate", "--out", str(sweep)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        for s in args.set:
            cmd += ["--set", s]
        t_sweep = run(cmd, env)
        t_plot = run([sys.executable, "-m", "drgrpo_cli.cli.app", "plot", str(sweep)], env)
        rows = []
        for m in sorted(sweep.glob("*/metrics.jsonl")):
            rows += [r for r in map(json.loads, m.read_text().splitlines()) if r.get("step", 0) >= 1]
    step = statistics.fmean(r["time/step_s"] for r in rows)
    gen = statistics.fmean(r["time/gen_s"] for r in rows)
    toks = statistics.fmean(r["train/gen_tokens"] for r in rows)
    print(f"base model     {t_base:7.1f} s {'(built from scratch)' if args.fresh_base else '(cached unless first use)'}")
    print(f"ablate 2x2     {t_sweep:7.1f} s")
    print(f"plot           {t_plot:7.1f} s")
    print(f"total          {t_base + t_sweep + t_plot:7.1f} s  ({(t_base + t_sweep + t_plot) / 60:.1f} min)")
    print(f"per step       {step:.3f} s (generation {100 * gen / step:.0f}%), {toks:.0f} completion tokens, "
          f"{toks / step:.0f} tok/s per run")


if __name__ == "__main__":
    main()
