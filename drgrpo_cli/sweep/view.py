"""What a sweep shows: the live board of its runs, the plan of a dry run, and the summary tables.

On a terminal the board is a ``rich.live.Live`` table redrawn as the workers report; elsewhere (logs, pipes)
it prints one line per start and finish. Nothing here decides anything: the tables show what the plan, the
workers and the summary found. rich is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

from drgrpo_cli.metrics import HEADLINE_FALLBACK
from drgrpo_cli.sweep.grid import Grid
from drgrpo_cli.sweep.plan import RunResult
from drgrpo_cli.sweep.summary import ArmSummary, PairedRow

_STATE_STYLE = {"finished": "green", "failed": "bold red", "running": "cyan", "starting": "cyan",
                "partial": "yellow", "interrupted": "yellow", "stopping": "yellow", "queued": "dim",
                "missing": "dim"}
_METRIC_NAMES = {"final_reward": "final reward", "len_incorrect_growth": "Δlen wrong (pooled)"}


def make_console(console: Any) -> Any:
    """``console``, or a rich Console on stdout (120 columns when stdout is not a terminal)."""
    if console is not None:
        return console
    from rich.console import Console

    c = Console()
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c = Console(width=120)  # logs and pipes: room for the tables instead of 80 columns
    return c


def _cell(x: Any, spec: str = ".3g") -> str:
    """A number for a table cell; ``-`` for anything that is not a finite number."""
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")
    return format(x, spec) if ok else "-"


class Board:
    """Per-run rows of the live view, drawn with rich.live.Live on a terminal, else printed as lines."""

    def __init__(self, runs: list[RunResult], console: Any, live: bool):
        self.runs = {r.name: r for r in runs}
        self.order = [r.name for r in runs]
        self.console = console
        self.live = live
        self._live: Any = None
        self.done = 0
        self.total = sum(1 for r in runs if r.action != "skip")
        self.state = {r.name: ("finished" if r.action == "skip" else "queued") for r in runs}
        self.t0: dict[str, float] = {}

    def __enter__(self) -> Board:
        if self.live:
            from rich.live import Live

            self._live = Live(self.table(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.table())
            self._live.__exit__(*exc)
            self._live = None

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.table())

    def launched(self, name: str) -> None:
        self.state[name] = "starting"
        self.t0[name] = time.monotonic()

    def event(self, kind: str, name: str, data: Any) -> None:
        r = self.runs.get(name)
        if r is None:
            return
        if kind == "start":
            self.state[name] = "running"
            self.t0.setdefault(name, time.monotonic())
            if not self.live:
                self.console.print(f"start  {name}  ({r.arm}, seed {r.seed}, {r.action})", highlight=False)
        elif kind == "step" and isinstance(data, dict):
            self.state[name] = "running"
            r.last.update(data)
            if "step" in data:
                r.step = data["step"]

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def finished(self, r: RunResult) -> None:
        self.done += 1
        self.state[r.name] = r.status
        if not self.live:
            secs = f" in {r.seconds:.1f} s" if r.seconds is not None else ""
            if r.status == "failed":
                self.console.print(f"FAILED {r.name}{secs}: {r.error}", highlight=False, markup=False)
            elif r.status == "interrupted":
                self.console.print(f"stopped {r.name}{secs}: {r.error}", highlight=False, markup=False)
            else:
                rew = r.last.get("train/reward")
                extra = f", reward {rew:.3g}" if isinstance(rew, (int, float)) else ""
                self.console.print(f"done   {r.name}{secs}{extra} [{self.done}/{self.total}]",
                                   highlight=False, markup=False)
        self.refresh()

    def table(self) -> Any:
        return runs_table(list(self.runs[n] for n in self.order), states=self.state)


def runs_table(runs: Sequence[RunResult], *, states: dict[str, str] | None = None, title: str | None = None) -> Any:
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    t = Table(title=title, show_edge=False, pad_edge=False)
    t.add_column("run", no_wrap=True, min_width=12)
    t.add_column("state", no_wrap=True, min_width=8)
    t.add_column("progress", no_wrap=True)
    for col in ("step", "reward", "acc", "len ok", "len wrong"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in runs:
        state = (states or {}).get(r.name, r.status)
        steps = r.steps or 0
        step = r.step or 0
        bar = ProgressBar(total=max(steps, 1), completed=min(step, steps) if steps else 0, width=12)
        t.add_row(r.name, f"[{_STATE_STYLE.get(state, '')}]{state}[/]", bar,
                  f"{step}/{steps}" if steps else str(step), _cell(r.last.get("train/reward")),
                  _cell(r.last.get("train/accuracy")), _cell(r.last.get("train/len_correct"), ".1f"),
                  _cell(r.last.get("train/len_incorrect"), ".1f"))
    return t


def plan_table(runs: Sequence[RunResult]) -> Any:
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False)
    for col in ("run dir", "arm", "seed", "state", "step", "action"):
        t.add_column(col)
    for r in runs:
        t.add_row(str(r.dir), r.arm, str(r.seed), r.before,
                  f"{r.step or 0}/{r.steps}" if r.before != "missing" else "-", r.action)
    return t


def arms_table(arms: Sequence[ArmSummary], title: str | None = "per arm (finished runs, mean over seeds)") -> Any:
    from rich.table import Table

    fail = any(a.headline_metric != HEADLINE_FALLBACK for a in arms)
    t = Table(title=title, show_edge=False, pad_edge=False,
              caption="reward, acc: mean over the last 10% of steps; eval acc: last eval; "
                      "Δlen: mean over the last 20% minus the first 10%"
                      + ("; fail = failure state (train/derailed/len_incorrect)" if fail else ""))
    t.add_column("arm", min_width=10)
    cols = ("done", "failed", "reward", "acc", "eval acc") + (("Δlen wrong fail",) if fail else ()) + (
        "Δlen wrong", "Δlen ok")
    for col in cols:
        t.add_column(col, justify="right", no_wrap=True)
    for a in arms:
        t.add_row(a.arm, f"{a.runs_done}/{a.runs_total}", str(a.runs_failed) if a.runs_failed else "",
                  _cell(a.final_reward), _cell(a.final_accuracy), _cell(a.eval_accuracy),
                  *((_cell(a.headline_growth, "+.1f"),) if fail else ()),
                  _cell(a.len_incorrect_growth, "+.1f"), _cell(a.len_correct_growth, "+.1f"))
    return t


def _metric_name(row: PairedRow) -> str:
    if row.metric == "headline_growth":
        return "Δlen wrong (fail)" if row.key != HEADLINE_FALLBACK else "Δlen wrong (pooled, headline)"
    return _METRIC_NAMES.get(row.metric, row.metric)


def paired_table(rows: Sequence[PairedRow], title: str | None = "paired over seeds (finished runs)") -> Any:
    """The paired comparisons as a rich table: per seed arm − arm (or a 2x2 main effect), then over seeds."""
    from rich.table import Table

    t = Table(title=title, show_edge=False, pad_edge=False,
              caption="Δ: per-seed difference, then the mean over the seeds both arms finished; "
                      "95% CI: Student t over seeds; sign: seeds with the sign of the mean")
    t.add_column("metric", no_wrap=True)
    t.add_column("comparison", min_width=14)
    for col in ("seeds", "mean Δ", "95% CI", "sign"):
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("CI", no_wrap=True)
    for row in rows:
        r = row.result
        small = row.metric == "final_reward"
        spec = "+.3f" if small else "+.1f"
        ci = f"[{_cell(r.lo, spec)}, {_cell(r.hi, spec)}]" if r.n >= 2 else "-"
        verdict = ("[bold]excludes 0[/]" if r.excludes_zero else "includes 0") if r.excludes_zero is not None else "-"
        t.add_row(_metric_name(row), row.comparison, str(r.n), _cell(r.mean, spec) if r.n else "-", ci, r.signs or "-",
                  verdict)
    return t


# ------------------------------------------------------------------------------------------------------
# what each entry point prints


def print_plan(con: Any, grid: Grid, runs: Sequence[RunResult], sweep_dir: Path, backend: str, workers: int,
               threads: int) -> None:
    """The dry run: the runs, their directories, states and actions."""
    todo = [r for r in runs if r.action != "skip"]
    con.print(f"[bold]{grid.name}[/]: {len(runs)} runs from {grid.source} -> {sweep_dir}/ "
              f"({len(todo)} to run, {backend}"
              + (f", {workers} workers x {threads} threads" if backend == "local" and todo else "") + ")")
    con.print(plan_table(runs))
    con.print("dry run: nothing was run or written", style="dim")


def print_start(con: Any, grid: Grid, runs: Sequence[RunResult], todo: Sequence[RunResult], sweep_dir: Path) -> None:
    done_before = len(runs) - len(todo)
    if todo:
        con.print(f"[bold]{grid.name}[/]: {len(todo)} of {len(runs)} runs to do"
                  + (f" ({done_before} finished, skipped)" if done_before else "") + f" -> {sweep_dir}/")
    else:
        con.print(f"[bold]{grid.name}[/]: all {len(runs)} runs are finished; nothing to do ({sweep_dir}/)")


def print_summary(con: Any, arms: Sequence[ArmSummary], paired: Sequence[PairedRow]) -> None:
    con.print(arms_table(arms))
    if paired:
        con.print(paired_table(paired))


def print_failures(con: Any, failed: Sequence[RunResult], total: int) -> None:
    if not failed:
        return
    con.print(f"[bold red]{len(failed)} of {total} runs failed[/] "
              f"(rerun the same command to retry them from their last checkpoint, or --force to restart):")
    for r in failed:
        where = f" (traceback: {r.log})" if r.log else ""
        con.print(f"  {r.name}: {r.error}{where}", markup=False, highlight=False)


def print_status(con: Any, name: str, sweep_dir: Path, runs: Sequence[RunResult], arms: Sequence[ArmSummary],
                 paired: Sequence[PairedRow]) -> None:
    """``--status``: the runs, the per-arm summary, the paired comparisons, and each run's error."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    con.print(f"[bold]{name}[/] ({sweep_dir}/): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    con.print(runs_table(runs))
    print_summary(con, arms, paired)
    for r in runs:
        if r.error:
            con.print(f"  {r.name}: {r.error}", markup=False, highlight=False,
                      style="red" if r.status == "failed" else "yellow")
