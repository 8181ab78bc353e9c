"""Re-run the first steps of a published run and print which metric rows match it exactly.

    python benchmarks/reproduce.py results/bias-2x2/grpo__seed0 [--steps 3] [--out DIR] [--force]

Loads the run's config.json, trains its first ``--steps`` steps (same eval cadence, so the step-0 eval row
is recomputed too) into ``--out`` (default: a temporary folder), and compares rows 0..steps with the run's
metrics.jsonl exactly, ``time/*`` keys left out (:mod:`drgrpo_cli.sweep.reproduce` explains what is compared).
Refuses to judge when the installed library versions differ from the run's provenance.json (install
them with results/constraints.txt) unless ``--force``. Exit code 0 when every row matches, 1 when one
does not, 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a published run folder (config.json, metrics.jsonl, provenance.json)")
    ap.add_argument("--steps", type=int, default=3, help="steps to re-run (rows 0..steps are compared)")
    ap.add_argument("--out", type=Path, default=None, help="where the re-run goes (default: a temporary folder)")
    ap.add_argument("--force", action="store_true", help="compare even under other library versions")
    args = ap.parse_args()

    from drgrpo_cli.sweep.reproduce import ReproduceError, describe, library_mismatch, reproduce

    try:
        change = library_mismatch(args.run)
    except (ReproduceError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if change:
        print(f"installed libraries differ from the run's ({change}): the same seed gives another random stream; "
              f"install results/constraints.txt" + (" (comparing anyway: --force)" if args.force else ""),
              file=sys.stderr)
        if not args.force:
            return 2
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="drgrpo-reproduce-") as tmp:
        out = args.out or Path(tmp) / "run"
        try:
            checks = reproduce(args.run, out, steps=args.steps)
        except (ReproduceError, OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    ok = sum(c.equal for c in checks)
    print(f"{args.run}: re-ran {args.steps} steps in {time.time() - t0:.1f} s"
          + (f" into {args.out}" if args.out else ""))
    for c in checks:
        print(("  match  " if c.equal else "  DIFFER ") + describe(c))
    print(f"{ok} of {len(checks)} rows match exactly" + ("" if ok == len(checks) else " - NOT reproduced"))
    return 0 if ok == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
