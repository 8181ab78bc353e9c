"""Re-run the first steps of a published run and compare its first metric rows exactly.

Used by ``tests/test_reproduce.py`` and ``benchmarks/reproduce.py``. A published run folder holds
``config.json``, ``metrics.jsonl`` and ``provenance.json``. A verdict needs the run's library versions
(:func:`library_mismatch`) and base weights (:func:`weights_mismatch`); the re-run is the published config
with fewer steps (:func:`rerun_config`), and rows are compared with ``==``, only ``time/*`` keys left out
(and the end-of-run eval keys the shortened run adds on its last row). Why: docs/design/sweep.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drgrpo_cli import runlog
from drgrpo_cli.config import TrainConfig

#: Metric keys never compared (wall-clock timings).
IGNORED_PREFIXES = ("time/",)
#: Keys the shortened re-run adds on its last row (its end-of-run eval).
END_EVAL_PREFIXES = ("eval/", "eval_sampled/")


class ReproduceError(ValueError):
    """The run folder cannot be re-run here; the message is one line."""


@dataclass
class RowCheck:
    """One step's comparison: ``differ`` is ``[(key, published, reproduced)]``; ``ignored`` lists end-of-run
    eval keys only the re-run has."""

    step: int
    differ: list[tuple[str, Any, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: bool = False  # a side has no row for this step

    @property
    def equal(self) -> bool:
        return not self.missing and not self.differ


def read_provenance(run_dir: Path) -> dict[str, Any]:
    p = Path(run_dir) / runlog.PROVENANCE
    if not p.is_file():
        raise ReproduceError(f"{run_dir}: no {runlog.PROVENANCE} (a run from before drgrpo recorded provenance)")
    return json.loads(p.read_text())


def library_mismatch(run_dir: Path) -> str | None:
    """``"torch 2.13.0 -> 2.14.0, ..."`` when this process's libraries differ from the run's record, else None."""
    from drgrpo_cli.provenance import library_change

    return library_change(read_provenance(run_dir))


def rerun_config(run_dir: Path, steps: int = 3) -> TrainConfig:
    """The run's own config with ``steps`` steps and no checkpoints (see the module docstring)."""
    cfg = TrainConfig.load(Path(run_dir) / runlog.CONFIG)
    if steps < 1 or steps > cfg.steps:
        raise ReproduceError(f"steps must be in 1..{cfg.steps} (the run's length), got {steps}")
    changes: dict[str, Any] = {"steps": steps, "checkpoint_every": 0}
    if cfg.threads == 0:
        prov = read_provenance(run_dir)
        threads = (prov.get("machine") or {}).get("threads")
        if threads:
            changes["threads"] = int(threads)
    return dataclasses.replace(cfg, **changes).validate()


def weights_mismatch(run_dir: Path, cfg: TrainConfig) -> str | None:
    """Why this machine's base weights are not the run's (sha256 differs), else None; builds a built-in model."""
    from drgrpo_cli.tasks.builtin_model import resolve_model_path
    from drgrpo_cli.provenance import weights_sha256

    want = read_provenance(run_dir).get("weights_sha256")
    path = resolve_model_path(cfg.model)
    have = weights_sha256(str(path))
    if want and have != want:
        return f"base weights of {cfg.model!r} ({path}) have sha256 {str(have)[:12]}, the run's had {want[:12]}"
    return None


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith(IGNORED_PREFIXES)}


def compare_rows(published: list[dict[str, Any]], reproduced: list[dict[str, Any]], steps: int) -> list[RowCheck]:
    """Rows ``0..steps`` of both runs (by their ``step``), exactly, ``time/*`` left out (see the module docstring).
    A run without a step-0 row on either side (``eval_every=0``) starts at step 1."""
    pub = {r.get("step"): _clean(r) for r in published}
    rep = {r.get("step"): _clean(r) for r in reproduced}
    first = 0 if (0 in pub or 0 in rep) else 1
    checks = []
    for step in range(first, steps + 1):
        c = RowCheck(step)
        a, b = pub.get(step), rep.get(step)
        if a is None or b is None:
            c.missing = True
            checks.append(c)
            continue
        for key in sorted(set(a) | set(b)):
            if key not in a and step == steps and key.startswith(END_EVAL_PREFIXES):
                c.ignored.append(key)
            elif a.get(key, "<absent>") != b.get(key, "<absent>"):
                c.differ.append((key, a.get(key, "<absent>"), b.get(key, "<absent>")))
        checks.append(c)
    return checks


def reproduce(run_dir: Path, out_dir: Path, steps: int = 3, progress: Any = None) -> list[RowCheck]:
    """Train the first ``steps`` steps of the run in ``run_dir`` into ``out_dir`` (fresh) and compare rows
    ``0..steps`` with the published ones (``progress``: a trainer progress object, or None for silence). Raises
    :class:`ReproduceError` when the base weights differ."""
    from drgrpo_cli.trainer import train

    run_dir = Path(run_dir)
    cfg = rerun_config(run_dir, steps)
    why = weights_mismatch(run_dir, cfg)
    if why:
        raise ReproduceError(why)
    train(cfg, Path(out_dir), progress=progress)
    published, _ = runlog.read_jsonl(run_dir / runlog.METRICS)
    reproduced, _ = runlog.read_jsonl(Path(out_dir) / runlog.METRICS)
    return compare_rows(published, reproduced, steps)


def describe(check: RowCheck, limit: int = 3) -> str:
    """One line: ``step 2: equal`` or ``step 2: 5 keys differ: train/loss 0.12 != 0.13, ...``."""
    if check.missing:
        return f"step {check.step}: missing on one side"
    if check.equal:
        extra = f" (end-of-run eval keys of the re-run ignored: {len(check.ignored)})" if check.ignored else ""
        return f"step {check.step}: equal{extra}"
    shown = ", ".join(f"{k} {a!r} != {b!r}" for k, a, b in check.differ[:limit])
    more = f", ... ({len(check.differ) - limit} more)" if len(check.differ) > limit else ""
    return f"step {check.step}: {len(check.differ)} key(s) differ: {shown}{more}"
