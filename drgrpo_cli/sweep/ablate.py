"""``drgrpo ablate``: run every point of a grid (:mod:`drgrpo_cli.sweep.grid`) in parallel, resumably.

A sweep directory (default ``results/<grid name>``) holds ``grid.json`` (the resolved grid), ``summary.csv``
and ``paired.csv`` (:mod:`~drgrpo_cli.sweep.summary`, rewritten at the end of every invocation), ``logs/<run>.log``
(the traceback of a failed run) and one run directory per arm and seed (``<arm slug>__seed<N>``, the contract
of :mod:`drgrpo_cli.runlog`). The sweep holds ``<sweep>/.lock`` while it runs: a second sweep on the same
folder stops at once. Which runs and what to do with each: :mod:`~drgrpo_cli.sweep.plan`; running them:
:mod:`~drgrpo_cli.sweep.workers`; what is shown: :mod:`~drgrpo_cli.sweep.view`. Why: docs/design/sweep.md.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from drgrpo_cli.interrupt import StopRequest
from drgrpo_cli.runlog import InUseError, locked
from drgrpo_cli.sweep.grid import Grid, RunSpec, load_grid
from drgrpo_cli.sweep.grid_json import check_grid_json, read_grid_json, write_grid_json
from drgrpo_cli.sweep.plan import (BACKENDS, AblateError, RunResult, TrainFn, plan_runs, plan_workers,
                                   refuse_library_change, run_statuses, sweep_runs)
from drgrpo_cli.sweep.summary import (ArmSummary, PairedRow, arm_summaries, paired_comparisons, write_paired_csv,
                                      write_summary_csv)
from drgrpo_cli.sweep.view import (Board, make_console, print_failures, print_plan, print_start, print_status,
                                   print_summary, runs_table)
from drgrpo_cli.sweep.workers import import_ray, run_local, run_ray


@dataclass
class SweepResult:
    sweep_dir: Path
    name: str
    runs: list[RunResult]
    arms: list[ArmSummary]
    paired: list[PairedRow] = field(default_factory=list)
    dry_run: bool = False
    backend: str = "local"
    workers: int = 0
    threads: int = 0

    @property
    def todo(self) -> list[RunResult]:
        return [r for r in self.runs if r.action != "skip"]

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.runs if r.status == "failed" and r.action != "status"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def ablate(
    grid_path: Path | str | None = None,
    *,
    seeds: Sequence[int] | None = None,
    sets: Sequence[str] = (),
    out: Path | str | None = None,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    train_fn: TrainFn | None = None,
    console: Any = None,
    live: bool | None = None,
) -> SweepResult:
    """Run (or resume) every run of a grid: finished runs are skipped, partial and failed ones resumed.

    ``train_fn`` replaces ``drgrpo_cli.trainer.train`` (same signature; must be picklable: a module-level
    function). ``console`` is a rich Console (default: stdout); ``live`` forces the live table on/off
    (default: on when the console is a terminal). Raises GridError/AblateError for bad input, before any
    run starts; failed runs do not raise: see ``SweepResult.failed`` / ``exit_code``.
    """
    _check_options(backend, workers)
    grid = load_grid(grid_path, seeds=seeds, sets=sets)
    sweep_dir = _sweep_dir(grid, out)
    check_grid_json(sweep_dir, grid, force=force)
    result = _plan(grid, sweep_dir, backend, workers, force, read_last=dry_run)  # the dry run shows them
    if not force:
        refuse_library_change(result.todo)
    con = make_console(console)
    if dry_run:
        result.dry_run = True
        print_plan(con, grid, result.runs, sweep_dir, backend, result.workers, result.threads)
        return result
    _check_can_run(result, backend, train_fn)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    try:
        with locked(sweep_dir, "sweep"):
            result = _plan(grid, sweep_dir, backend, workers, force)  # again: another sweep may have run meanwhile
            _run_locked(result, grid, force=force, workers=workers, address=address, train_fn=train_fn, con=con,
                        live=live)
    except InUseError as e:
        raise AblateError(str(e)) from None
    return result


def _check_options(backend: str, workers: int | None) -> None:
    if backend not in BACKENDS:
        raise AblateError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and workers < 1:
        raise AblateError(f"workers must be >= 1, got {workers}")


def _sweep_dir(grid: Grid, out: Path | str | None) -> Path:
    sweep_dir = Path(out) if out is not None else Path("results") / grid.name
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise AblateError(f"{sweep_dir}: exists and is not a directory")
    return sweep_dir


def _plan(grid: Grid, sweep_dir: Path, backend: str, workers: int | None, force: bool,
          read_last: bool = True) -> SweepResult:
    """The runs, their states and actions, and the local workers they would get."""
    runs = plan_runs(grid, sweep_dir, force=force, read_last=read_last)
    n_workers, threads = plan_workers([r for r in runs if r.action != "skip"], _specs(grid), workers)
    return SweepResult(sweep_dir=sweep_dir, name=grid.name, runs=runs, arms=[], backend=backend, workers=n_workers,
                       threads=threads)


def _specs(grid: Grid) -> dict[str, RunSpec]:
    return {s.name: s for s in grid.runs}


def _check_can_run(result: SweepResult, backend: str, train_fn: TrainFn | None) -> None:
    """Before the folder is touched: what the runs to do need is installed."""
    if result.todo and train_fn is None:
        import importlib.util

        if importlib.util.find_spec("drgrpo_cli.trainer") is None:
            raise AblateError("drgrpo_cli.trainer is not available in this installation")
    if backend == "ray" and result.todo:
        import_ray()


def _run_locked(result: SweepResult, grid: Grid, *, force: bool, workers: int | None, address: str | None,
                train_fn: TrainFn | None, con: Any, live: bool | None) -> None:
    """The part of :func:`ablate` that runs with the sweep folder locked: grid.json, the runs, the summary."""
    sweep_dir, runs, todo, specs = result.sweep_dir, result.runs, result.todo, _specs(grid)
    write_grid_json(sweep_dir, grid, force=force)
    if todo and train_fn is None:
        from drgrpo_cli.tasks.builtin_model import prebuild

        prebuild({specs[r.name].config.model for r in todo}, con)
    fn_blob = pickle.dumps(train_fn) if todo and train_fn is not None else None
    print_start(con, grid, runs, todo, sweep_dir)
    if todo:
        use_live = con.is_terminal if live is None else live
        with Board(runs, con, use_live) as board, StopRequest() as stop:
            if result.backend == "local":
                run_local(todo, specs, result.workers, result.threads, fn_blob, board, sweep_dir, stop)
            else:
                result.workers, result.threads = run_ray(todo, specs, workers, fn_blob, board, sweep_dir, address,
                                                         stop)
        if not use_live:
            con.print(runs_table(runs))
    result.arms = arm_summaries(sweep_dir)
    result.paired = paired_comparisons(result.arms)
    write_summary_csv(sweep_dir, result.arms)
    write_paired_csv(sweep_dir, result.paired)
    print_summary(con, result.arms, result.paired)
    print_failures(con, result.failed, len(result.runs))


def ablate_status(sweep_dir: Path | str, *, console: Any = None, show: bool = True) -> SweepResult:
    """State of every run of an existing sweep directory, its per-arm summary and paired comparisons; reads only."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise AblateError(f"{sweep_dir}: no such sweep directory")
    g = read_grid_json(sweep_dir)
    members = sweep_runs(sweep_dir)
    if not members:
        raise AblateError(f"{sweep_dir}: no grid.json and no run directories")
    runs = run_statuses(sweep_dir, members)
    arms = arm_summaries(sweep_dir, members)
    result = SweepResult(sweep_dir=sweep_dir, name=(g or {}).get("name", sweep_dir.name), runs=runs, arms=arms,
                         paired=paired_comparisons(arms))
    if show:
        print_status(make_console(console), result.name, sweep_dir, runs, arms, result.paired)
    return result
