"""Which runs a sweep has, the state of each, and what to do with it.

A run's state is read from its folder (``runlog.run_state``) before anything starts, and decides its action
(:data:`ACTIONS`): a finished run is never touched, a partial or failed one resumes from its last checkpoint,
``force`` restarts them all. The local backend runs ``min(#runs to do, #CPUs)`` workers (1 when a run is on
CUDA: they would share one GPU) with ``#CPUs // workers`` torch threads each. Why: docs/design/sweep.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from drgrpo_cli.config import TrainConfig
from drgrpo_cli.report.stats import knob_label, knobs_of
from drgrpo_cli.runlog import CONFIG, METRICS, read_jsonl, read_summary, run_state
from drgrpo_cli.sweep.grid import Grid, RunSpec
from drgrpo_cli.sweep.grid_json import read_grid_json

BACKENDS = ("local", "ray")
#: The metrics a run reports to the live view (and keeps as its last row).
LIVE_KEYS = ("step", "train/reward", "train/accuracy", "train/len_correct", "train/len_incorrect", "eval/accuracy")
#: what happens to a run in each state (without --force)
ACTIONS = {"finished": "skip", "partial": "resume", "failed": "retry", "missing": "start"}

TrainFn = Callable[..., dict]


class AblateError(ValueError):
    """A user-facing error of the sweep runner (one line)."""


@dataclass
class RunResult:
    name: str
    arm: str
    seed: int
    dir: Path
    before: str  # state before this invocation
    action: str  # skip | start | resume | retry | restart | status
    status: str  # state after: finished | failed | partial | missing | interrupted (stopped by a signal: partial)
    error: str | None = None
    seconds: float | None = None
    steps: int | None = None
    step: int | None = None
    last: dict[str, Any] = field(default_factory=dict)  # last metrics row seen (LIVE_KEYS only)
    log: Path | None = None

    @property
    def train_kwargs(self) -> dict[str, bool]:
        return {"resume": self.action in ("resume", "retry"), "force": self.action == "restart"}

    def read_last_row(self) -> None:
        """Take ``step`` and ``last`` from the run's last metrics row, if it has one."""
        rows = read_rows(self.dir)
        if rows:
            self.step = rows[-1].get("step")
            self.last = live_keys(rows[-1])


def live_keys(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in LIVE_KEYS if k in row}


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def is_cuda(cfg: TrainConfig) -> bool:
    return str(cfg.device).startswith("cuda")


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The run's metrics rows, one per step (the last row of a step wins), sorted by step; [] if unreadable."""
    try:
        rows, _torn = read_jsonl(Path(run_dir) / METRICS)
    except (ValueError, OSError):
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for i, r in enumerate(rows):
        if isinstance(r, dict):
            by_step[int(r.get("step", i + 1))] = r
    return [by_step[s] for s in sorted(by_step)]


def _steps_of(run_dir: Path, default: int | None = None) -> int | None:
    try:
        return int(json.loads((Path(run_dir) / CONFIG).read_text()).get("steps", default))
    except (OSError, ValueError, TypeError, AttributeError):
        return default


def plan_runs(grid: Grid, sweep_dir: Path, *, force: bool = False, read_last: bool = True) -> list[RunResult]:
    """Each run of the grid with its state and action; ``read_last``: also its last logged step and values
    (the plan table and the live board show them)."""
    out = []
    for spec in grid.runs:
        d = Path(sweep_dir) / spec.name
        state = run_state(d)
        action = "restart" if force and state != "missing" else ACTIONS[state]
        r = RunResult(name=spec.name, arm=spec.arm, seed=spec.seed, dir=d, before=state, action=action,
                      status=state, steps=spec.config.steps)
        if read_last and state in ("finished", "partial", "failed") and not force:
            r.read_last_row()
        out.append(r)
    return out


def refuse_library_change(todo: Sequence[RunResult]) -> None:
    """Before any work: a run to be resumed under another library set would splice two random streams."""
    from drgrpo_cli.provenance import resume_refusal

    for r in todo:
        why = resume_refusal(r.dir) if r.before != "missing" else None
        if why:
            raise AblateError(why)


def plan_workers(todo: Sequence[RunResult], specs: dict[str, RunSpec], workers: int | None) -> tuple[int, int]:
    """(number of worker processes, torch threads per worker) for the local backend."""
    cpus = cpu_count()
    if not todo:
        return 0, 0
    if workers is None:
        n = 1 if any(is_cuda(specs[r.name].config) for r in todo) else min(len(todo), cpus)
    else:
        n = workers
    n = max(1, min(n, len(todo)))
    return n, max(1, cpus // n)


def sweep_runs(sweep_dir: Path) -> list[tuple[str, str, int]]:
    """(run dir name, arm label, seed) of a sweep: from grid.json, else from the run directories found."""
    sweep_dir = Path(sweep_dir)
    g = read_grid_json(sweep_dir)
    if g is not None:
        return [(r["dir"], r.get("arm") or g.get("arms", {}).get(r["dir"], r["dir"]), int(r.get("seed", 0)))
                for r in g["runs"] if isinstance(r, dict) and "dir" in r]
    out = []
    for d in sorted(p for p in sweep_dir.iterdir() if (p / CONFIG).is_file()):
        try:
            c = json.loads((d / CONFIG).read_text())
            out.append((d.name, knob_label(knobs_of(c)), int(c.get("seed", 0))))
        except (OSError, ValueError):
            out.append((d.name, d.name, 0))
    return out


def run_statuses(sweep_dir: Path, members: Sequence[tuple[str, str, int]]) -> list[RunResult]:
    """The state of each run of an existing sweep, read from its folder (``--status``: nothing runs)."""
    runs = []
    for d, arm, seed in members:
        rd = Path(sweep_dir) / d
        state = run_state(rd)
        err = None
        summary = read_summary(rd) or {}
        if state == "failed":
            err = summary.get("error")
        elif summary.get("status") == "interrupted":
            err = f"interrupted by {summary.get('signal', 'a signal')} (resumable)"
        r = RunResult(name=d, arm=arm, seed=seed, dir=rd, before=state, action="status", status=state,
                      error=err, steps=_steps_of(rd))
        r.read_last_row()
        runs.append(r)
    return runs
