"""``drgrpo ablate``: run every point of a grid (see :mod:`drgrpo_cli.sweep.grid`) in parallel, resumably.

Layout of a sweep directory (default ``results/<grid name>``)::

    grid.json             the resolved grid: {"name", "source", "seeds", "base", "arms": {dir: label}, "runs": [...]}
    summary.csv           one row per arm (columns in CSV_COLUMNS), rewritten at the end of every invocation
    paired.csv            the paired comparisons of arms over seeds (columns in PAIRED_COLUMNS), likewise
    logs/<run>.log        the traceback of a run that failed (only when one did)
    <arm slug>__seed<N>/  one run directory each (the contract of :mod:`drgrpo_cli.runlog`)

Choices and why:

* **One process per run** (multiprocessing ``spawn``), at most ``workers`` at a time, rather than a
  ``ProcessPoolExecutor``: a worker killed by the OOM killer or ``os._exit`` breaks a whole pool (every
  pending future gets ``BrokenProcessPool``), whereas a dead process here fails only its own run; a fresh
  process per run also returns all of a run's memory (and GPU memory) before the next one starts. Spawn
  costs well under a second per run, nothing next to training.
* ``workers`` defaults to ``min(#runs to do, #CPUs)`` (1 when a run is on CUDA: several local runs would
  share one GPU); each worker gets ``max(1, #CPUs // workers)`` torch threads through
  ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` set before torch is imported (and ``torch.set_num_threads`` if it
  already is). ``config.threads`` is left alone so the saved config, and so resume, do not depend on the
  number of workers.
* Workers send each step's metrics row (a few keys) and their final report to the parent through a pipe
  of their own: a worker killed mid-send garbles only its own pipe (a shared ``mp.Queue`` could be left
  locked), and there is no helper process whose death could stop the sweep (a ``Manager`` queue lives in
  one: killing it used to abort every run). Nothing depends on the messages: a run's outcome is read from
  its folder (``runlog.run_state``) and its worker's exit. The parent draws a ``rich.live.Live`` table
  when stdout is a terminal, and prints one line per start/finish otherwise.
* **Stops**: SIGTERM or Ctrl-C to the sweep is passed on to the running workers as SIGTERM; each run
  finishes its step, checkpoints and records ``interrupted`` (``drgrpo_cli.interrupt``); the sweep waits
  for them, records runs that died first, and raises ``Interrupted`` (the CLI exits 128 + signum). A
  second Ctrl-C kills the workers at once (their runs resume from their last checkpoint). Ray tasks are
  cancelled (``ray.cancel``). An unexpected error in the sweep's own process also stops the workers this
  way before it is reported (one line, exit 1): runs are never left behind unrecorded.
* **One writer per folder**: the sweep holds ``<sweep>/.lock`` while it runs and each run its own
  ``.lock`` (:func:`drgrpo_cli.runlog.locked`); a second ``drgrpo ablate`` on the same folder stops at
  once with one line (``AblateError``, exit 2) instead of waiting, and a ``drgrpo train`` into a run the
  sweep is writing fails alike; the worker that loses such a race records nothing in the run.
* **Failures are isolated**: an exception (NaN loss, CUDA OOM, bad data) is recorded by the trainer in
  ``summary.json`` (status ``failed``) and reported to the parent with its traceback (``logs/<run>.log``);
  a worker that dies without reporting (SIGKILL, ``os._exit``) is recorded by the parent, which writes
  ``summary.json`` ``{"status": "failed", ...}`` if the run had started (``config.json`` exists). The other
  runs go on; the result's ``exit_code`` is 1 and the failures are listed at the end.
* **Resume**: the state of each run comes from its files (``runlog.run_state``) before anything starts.
  ``finished`` -> skipped, untouched; ``partial`` -> ``train(resume=True)``; ``failed`` -> also
  ``train(resume=True)`` (retried from its last checkpoint by default: most failures in a sweep are a
  killed worker or a transient OOM, and a deterministic failure just fails again; ``--force`` gives a clean
  rerun); ``missing`` -> a fresh run. ``force`` reruns everything from scratch (``train(force=True)``)
  and replaces grid.json. A finished sweep is a fast no-op: no worker, no torch import.
* Spawn re-imports the caller's ``__main__`` in each worker: a script that calls :func:`ablate` needs the
  usual ``if __name__ == "__main__":`` guard (the ``drgrpo`` console script has it). ``train_fn`` must be
  importable by the workers (a module-level function), as must the default ``drgrpo_cli.trainer.train``.
* ``dry_run`` lists the runs, their directories, states and what would happen, and writes nothing.
* **Ray** (``backend="ray"``): the same plan, each run a ``ray.remote`` task with ``num_cpus`` = threads
  per run and ``num_gpus`` = 1 for CUDA configs, ``max_retries=0`` (a crash is recorded, not silently
  retried), at most ``workers`` in flight when given. Results go to the output path, which must be shared
  between nodes. ``ray`` is imported only for this backend.
* Summary per arm (``summary.csv`` and a rich table; ``ablate_status`` reads the same for ``--status``):
  runs done/total/failed; over *finished* runs only, each run's mean over its last 10% of training steps
  (``step >= 1``) of ``train/reward`` and ``train/accuracy``, its last ``eval/accuracy``, and its incorrect-
  and correct-length growth (``metrics_math.length_growth``: last 20% minus first 10%) and the headline
  growth (failure-state wrong-answer length, ``metrics_math.HEADLINE``, or its pooled fallback), then the
  mean over seeds: one computation, ``metrics_math.run_numbers``, as the trainer's own ``summary.json``.
  Partial runs are left out so every number is about the same training length.
* Paired comparisons (``paired.csv`` and a second rich table): runs of different arms with the same seed
  are pairs, so arms are compared per seed and then over seeds (:mod:`drgrpo_cli.report.stats`: mean difference,
  Student-t 95% CI, sign count); which comparisons is decided from the arms' ``adv_scale``/``loss_agg``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import queue as queue_mod
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from drgrpo_cli.config import TrainConfig, arm_label
from drgrpo_cli.sweep.grid import Grid, RunSpec, load_grid
from drgrpo_cli.sweep.grid_json import GRID_JSON, check_grid_json, read_grid_json, write_grid_json
from drgrpo_cli.interrupt import Interrupted, StopRequest, signal_name
from drgrpo_cli.metrics import HEADLINE_FALLBACK, headline, headline_key, mean
from drgrpo_cli.metrics import run_numbers as _run_numbers
from drgrpo_cli.runlog import (CONFIG, METRICS, SUMMARY, InUseError, locked, read_jsonl, read_summary, run_state,
                     write_json_atomic)
from drgrpo_cli.report.stats import Paired, arm_knobs, by_seed, evaluate, plan_contrasts
from drgrpo_cli.errors import one_line

BACKENDS = ("local", "ray")
SUMMARY_CSV = "summary.csv"
LOG_DIR = "logs"
LIVE_KEYS = ("step", "train/reward", "train/accuracy", "train/len_correct", "train/len_incorrect", "eval/accuracy")
CSV_COLUMNS = ("arm", "runs_done", "runs_total", "runs_failed", "final_reward", "final_accuracy", "eval_accuracy",
               "len_incorrect_growth", "len_correct_growth", "headline_growth", "headline_metric", "adv_scale",
               "loss_agg")
_NUMBER_COLUMNS = ("final_reward", "final_accuracy", "eval_accuracy", "len_incorrect_growth", "len_correct_growth",
                   "headline_growth")
PAIRED_CSV = "paired.csv"
PAIRED_COLUMNS = ("metric", "key", "comparison", "kind", "n_seeds", "mean_diff", "ci_lo", "ci_hi", "same_sign",
                  "seeds", "per_seed", "detail")
#: The metrics compared between arms (names as in summary.csv): the headline growth, the final reward, and
#: the pooled wrong-answer length growth (secondary).
PAIRED_METRICS = ("headline_growth", "final_reward", "len_incorrect_growth")
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


@dataclass
class ArmSummary:
    arm: str
    runs_total: int
    runs_done: int
    runs_failed: int
    final_reward: float | None
    final_accuracy: float | None
    eval_accuracy: float | None
    len_incorrect_growth: float | None
    len_correct_growth: float | None
    headline_growth: float | None = None  # growth of headline_metric (the same key for every arm of a sweep)
    headline_metric: str = HEADLINE_FALLBACK
    adv_scale: str = ""  # the arm's knobs ("" when its runs differ or none started)
    loss_agg: str = ""
    dirs: list[str] = field(default_factory=list)
    per_seed: dict[str, dict[int, float | None]] = field(default_factory=dict)  # PAIRED_METRICS -> {seed: value}

    def csv_row(self) -> list[str]:
        return [self.arm, str(self.runs_done), str(self.runs_total), str(self.runs_failed),
                *(_num(getattr(self, c)) if c in _NUMBER_COLUMNS else str(getattr(self, c)) for c in CSV_COLUMNS[4:])]


@dataclass
class PairedRow:
    """One paired comparison of one metric: ``result`` holds the per-seed values and their summary."""

    metric: str  # a PAIRED_METRICS name
    key: str  # the logged key it is computed from
    comparison: str
    kind: str  # grpo_vs_drgrpo | length_norm | std_norm | vs_reference
    detail: str
    result: Paired

    def csv_row(self) -> list[str]:
        r = self.result
        return [self.metric, self.key, _ascii(self.comparison), self.kind, str(r.n), _num(_fin(r.mean)),
                _num(_fin(r.lo)), _num(_fin(r.hi)), str(r.same_sign) if r.n else "", ";".join(str(x) for x in r.seeds),
                ";".join(_num(x) for x in r.diffs), _ascii(self.detail)]


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
    def failed(self) -> list[RunResult]:
        return [r for r in self.runs if r.status == "failed" and r.action != "status"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


# ------------------------------------------------------------------------------------------------------
# small helpers


def _num(x: float | None) -> str:
    return "" if x is None else format(x, ".6g")


def _fin(x: float) -> float | None:
    return None if x != x else x


def _ascii(text: str) -> str:
    """Plain hyphens for the CSV (easy to filter on in pandas); the tables keep the minus sign."""
    return text.replace("−", "-")


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)




def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _slim(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in LIVE_KEYS if k in row}


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(n)
        except Exception:  # pragma: no cover - torch refuses after parallel work started
            pass


def _is_cuda(cfg: TrainConfig) -> bool:
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


# ------------------------------------------------------------------------------------------------------
# planning


def plan_runs(grid: Grid, sweep_dir: Path, *, force: bool = False) -> list[RunResult]:
    out = []
    for spec in grid.runs:
        d = Path(sweep_dir) / spec.name
        state = run_state(d)
        action = "restart" if force and state != "missing" else ACTIONS[state]
        r = RunResult(name=spec.name, arm=spec.arm, seed=spec.seed, dir=d, before=state, action=action,
                      status=state, steps=spec.config.steps)
        if state in ("finished", "partial", "failed") and not force:
            rows = read_rows(d)
            if rows:
                r.step = rows[-1].get("step")
                r.last = _slim(rows[-1])
        out.append(r)
    return out


def _refuse_library_change(todo: Sequence[RunResult]) -> None:
    """Before any work: a run to be resumed under another library set would splice two random streams."""
    from drgrpo_cli.provenance import resume_refusal

    for r in todo:
        why = resume_refusal(r.dir) if r.before != "missing" else None
        if why:
            raise AblateError(why)


def plan_workers(todo: Sequence[RunResult], specs: dict[str, RunSpec], workers: int | None) -> tuple[int, int]:
    """(number of worker processes, torch threads per worker) for the local backend."""
    cpus = _cpu_count()
    if not todo:
        return 0, 0
    if workers is None:
        n = 1 if any(_is_cuda(specs[r.name].config) for r in todo) else min(len(todo), cpus)
    else:
        n = workers
    n = max(1, min(n, len(todo)))
    return n, max(1, cpus // n)


# ------------------------------------------------------------------------------------------------------
# the code that runs inside a worker (a spawned process or a Ray task)


def _payload(job: RunResult, spec: RunSpec) -> dict[str, Any]:
    return {"name": job.name, "dir": str(job.dir), "config": spec.config, **job.train_kwargs}


def _load_train_fn(fn_blob: bytes | None) -> TrainFn:
    if fn_blob is not None:
        return pickle.loads(fn_blob)
    from drgrpo_cli.trainer import train  # noqa: PLC0415 - heavy (torch), imported in the worker only

    return train


def _execute(fn_blob: bytes | None, payload: dict[str, Any], put: Callable[[str, Any], None]) -> dict[str, Any]:
    """Run one training run; never raises: returns {"ok", "status" | "error", "traceback", "seconds"}."""
    t0 = time.monotonic()

    def on_step(row: dict[str, Any]) -> None:
        put("step", _slim(row))

    try:
        train_fn = _load_train_fn(fn_blob)
        summary = train_fn(payload["config"], Path(payload["dir"]), resume=payload["resume"],
                           force=payload["force"], on_step=on_step, progress=False)
        status = summary.get("status") if isinstance(summary, dict) else None
        return {"ok": True, "status": status, "seconds": time.monotonic() - t0}
    except BaseException as e:  # noqa: BLE001 - everything a run raises is that run's failure
        return {"ok": False, "error": one_line(e), "type": type(e).__name__, "traceback": traceback.format_exc(),
                "seconds": time.monotonic() - t0}


def _worker_body(payload: dict[str, Any], fn_blob: bytes | None, threads: int,
                 send: Callable[[Any], Any] | None) -> dict[str, Any]:
    _limit_threads(threads)
    name = payload["name"]

    def put(kind: str, data: Any) -> None:
        try:
            if send is not None:
                send((kind, name, data))
        except Exception:  # the live view is best effort; never fail a run for it
            pass

    put("start", {"pid": os.getpid()})
    report = _execute(fn_blob, payload, put)
    put("done", report)
    return report


def _child_main(payload: dict[str, Any], fn_blob: bytes | None, threads: int, conn: Any) -> None:
    """Entry point of a local worker process (one run); ``conn`` is the sending end of its pipe."""
    try:  # Ctrl-C is the parent's business: it passes SIGTERM on, and the runs checkpoint and stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):  # pragma: no cover
        pass
    _exit_with_parent()
    _worker_body(payload, fn_blob, threads, conn.send)


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """End this worker when the sweep's process dies (``kill`` of the parent, not only Ctrl-C).

    An orphaned worker would go on writing its run folder while a rerun of the sweep starts a second
    writer on it; stopping leaves the run partial, and the rerun resumes it from its checkpoint.
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _ray_task(payload: dict[str, Any], fn_blob: bytes | None, threads: int, q: Any) -> dict[str, Any]:
    """Body of the Ray task (one run); ``q`` is a ray.util.queue.Queue (an actor: if it dies, only the live
    rows stop) or None."""
    return _worker_body(payload, fn_blob, threads, q.put if q is not None else None)


# ------------------------------------------------------------------------------------------------------
# live view


class _Board:
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

    def __enter__(self) -> _Board:
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


def _fmt(x: Any, spec: str = ".3g") -> str:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")
    return format(x, spec) if ok else "-"


_STATE_STYLE = {"finished": "green", "failed": "bold red", "running": "cyan", "starting": "cyan",
                "partial": "yellow", "interrupted": "yellow", "stopping": "yellow", "queued": "dim",
                "missing": "dim"}


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
                  f"{step}/{steps}" if steps else str(step), _fmt(r.last.get("train/reward")),
                  _fmt(r.last.get("train/accuracy")), _fmt(r.last.get("train/len_correct"), ".1f"),
                  _fmt(r.last.get("train/len_incorrect"), ".1f"))
    return t


def _has_headline(arms: Sequence[ArmSummary]) -> bool:
    return any(a.headline_metric != HEADLINE_FALLBACK for a in arms)


def arms_table(arms: Sequence[ArmSummary], title: str | None = "per arm (finished runs, mean over seeds)") -> Any:
    from rich.table import Table

    fail = _has_headline(arms)
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
                  _fmt(a.final_reward), _fmt(a.final_accuracy), _fmt(a.eval_accuracy),
                  *((_fmt(a.headline_growth, "+.1f"),) if fail else ()),
                  _fmt(a.len_incorrect_growth, "+.1f"), _fmt(a.len_correct_growth, "+.1f"))
    return t


_METRIC_NAMES = {"final_reward": "final reward", "len_incorrect_growth": "Δlen wrong (pooled)"}


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
        ci = f"[{_fmt(r.lo, spec)}, {_fmt(r.hi, spec)}]" if r.n >= 2 else "-"
        verdict = ("[bold]excludes 0[/]" if r.excludes_zero else "includes 0") if r.excludes_zero is not None else "-"
        t.add_row(_metric_name(row), row.comparison, str(r.n), _fmt(r.mean, spec) if r.n else "-", ci, r.signs or "-",
                  verdict)
    return t


# ------------------------------------------------------------------------------------------------------
# finishing one run (parent side)


def _write_run_summary(run_dir: Path, status: str, error: str, **extra: Any) -> None:
    rows = read_rows(run_dir)
    write_json_atomic(Path(run_dir) / SUMMARY, {
        "status": status,
        "error": error,
        "last_step": rows[-1].get("step") if rows else None,
        "recorded_by": "drgrpo ablate",
        **extra,
    })


def _finish(job: RunResult, report: dict[str, Any] | None, death: str | None, sweep_dir: Path,
            board: _Board, t0: float, stopping: int | None = None) -> None:
    """Record how a run ended: from its worker's report when one came, else from its folder and the worker's
    exit (``death``); ``stopping`` is the signal the sweep passed on, if it is stopping."""
    state = run_state(job.dir)
    summary = read_summary(job.dir) or {}
    kind = (report or {}).get("type")
    error: str | None = None
    stopped = (kind == "Interrupted" or (stopping is not None and kind == "KeyboardInterrupt")  # Ray's cancel
               or (report is None and summary.get("status") == "interrupted"))
    if report is not None and report.get("ok"):
        if state != "finished":
            error = f"train returned but the run directory is {state}"
    elif stopped:
        pass
    elif report is not None:
        error = report.get("error") or "failed"
        tb = report.get("traceback")
        if tb:
            log = Path(sweep_dir) / LOG_DIR / f"{job.name}.log"
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(tb)
                job.log = log
            except OSError:
                pass
    elif state in ("finished", "failed"):  # its report was lost: the folder says how it ended
        error = None if state == "finished" else str(summary.get("error") or "failed")
    elif stopping is not None:  # it died before it could checkpoint (killed, or signalled before training)
        stopped = True
        if state == "partial":
            _write_run_summary(job.dir, "interrupted", f"worker ended ({death}) while the sweep was stopping",
                               signal=signal_name(stopping))
    else:
        error = f"worker died ({death or 'unknown cause'}) before reporting"
    if error and state == "partial" and kind != "InUseError":  # never write into a run another process holds
        _write_run_summary(job.dir, "failed", error)
    if stopped:
        summary = read_summary(job.dir) or {}
        at = summary.get("checkpoint_step")
        job.status = "interrupted" if run_state(job.dir) == "partial" else run_state(job.dir)
        job.error = (f"interrupted by {summary.get('signal', 'a signal')}, "
                     + (f"checkpoint at step {at}" if at else "resumes from its last checkpoint"))
    else:
        job.status = "failed" if error else run_state(job.dir)
        job.error = error
    job.seconds = (report or {}).get("seconds") or (time.monotonic() - t0)
    rows = read_rows(job.dir)
    if rows:
        job.step = rows[-1].get("step")
        job.last = _slim(rows[-1])
    board.finished(job)


def _pump(get: Callable[[], Any], board: _Board, reports: dict[str, dict[str, Any]]) -> None:
    """Handle every message available from a worker queue (``get`` raises queue.Empty when there is none)."""
    while True:
        try:
            kind, name, data = get()
        except queue_mod.Empty:
            return
        except (EOFError, OSError, ConnectionError, BrokenPipeError):
            return
        if kind == "done":
            reports[name] = data
        board.event(kind, name, data)


def _drain(conn: Any, board: _Board, reports: dict[str, dict[str, Any]]) -> None:
    """Handle every message waiting in a worker's pipe; close it at its end (the worker exited) or if garbled."""
    try:
        while not conn.closed and conn.poll():
            kind, name, data = conn.recv()
            if kind == "done":
                reports[name] = data
            board.event(kind, name, data)
    except Exception:  # noqa: BLE001 - EOFError, or a message cut by a killed worker: only its own pipe
        conn.close()


# ------------------------------------------------------------------------------------------------------
# backends


def _run_local(jobs: list[RunResult], specs: dict[str, RunSpec], workers: int, threads: int,
               fn_blob: bytes | None, board: _Board, sweep_dir: Path, stop: StopRequest) -> None:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    pending = deque(jobs)
    running: dict[str, tuple[Any, Any, RunResult, float]] = {}  # name -> (process, reading end, job, t0)
    reports: dict[str, dict[str, Any]] = {}

    def reap(stopping: int | None = None) -> None:
        wait([x for p, c, _, _ in running.values() for x in ((p.sentinel,) if c.closed else (p.sentinel, c))], 0.2)
        for name, (p, conn, job, t0) in list(running.items()):
            _drain(conn, board, reports)
            if p.exitcode is None:
                continue
            p.join()
            _drain(conn, board, reports)  # what it sent before exiting
            conn.close()
            del running[name]
            _finish(job, reports.pop(name, None), _exit_text(p.exitcode), sweep_dir, board, t0, stopping)
        board.refresh()

    def stop_all(signum: int) -> None:
        """SIGTERM to every worker (each run finishes its step and checkpoints), then wait for them all."""
        board.note(f"{signal_name(signum)}: stopping {len(running)} running run(s) after their current step "
                   f"(Ctrl-C again to stop at once)")
        for p, _, job, _ in running.values():
            board.state[job.name] = "stopping"
            p.terminate()
        while running:
            reap(signum)

    try:
        while (pending or running) and not stop:
            while pending and len(running) < workers:
                job = pending.popleft()
                recv, send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_child_main, args=(_payload(job, specs[job.name]), fn_blob, threads, send),
                                name=f"drgrpo-{job.name}")
                p.start()
                send.close()  # the worker holds the only sending end: its exit is the pipe's end
                running[job.name] = (p, recv, job, time.monotonic())
                board.launched(job.name)
            reap()
        if stop and (pending or running):
            stop_all(stop.signum)
            raise Interrupted(stop.signum)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once (the runs resume from their last checkpoint)
        for p, _, _, _ in running.values():
            p.kill()
        for name, (p, conn, job, t0) in list(running.items()):
            p.join()
            conn.close()
            del running[name]
            _finish(job, None, "killed at a second Ctrl-C", sweep_dir, board, t0, stopping=signal.SIGINT)
        raise
    except BaseException:  # an error in the sweep's own process: the runs checkpoint and stop before it is told
        if running:
            stop_all(signal.SIGTERM)
        raise


def _import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        raise AblateError("the ray backend needs ray: pip install 'drgrpo[ray]'") from None
    return ray


def _run_ray(jobs: list[RunResult], specs: dict[str, RunSpec], workers: int | None, fn_blob: bytes | None,
             board: _Board, sweep_dir: Path, address: str | None, stop: StopRequest) -> tuple[int, int]:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError, ...
            raise AblateError(f"cannot start or reach Ray (address={address!r}): {one_line(e)}") from None
        started = True
    q = None
    inflight: dict[Any, tuple[RunResult, float]] = {}
    try:
        res = ray.cluster_resources()
        cpus = max(1, int(res.get("CPU", 1)))
        node_cpus = max((int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")),
                        default=cpus) or cpus
        limit = workers or len(jobs)
        per_run = max(1, min(node_cpus, cpus // max(1, min(limit, len(jobs)))))
        need_gpu = [j.name for j in jobs if _is_cuda(specs[j.name].config)]
        if need_gpu and res.get("GPU", 0) < 1:
            raise AblateError(f"{need_gpu[0]} runs on CUDA but the Ray cluster has no GPU")
        try:
            from ray.util.queue import Queue  # noqa: PLC0415

            q = Queue(actor_options={"num_cpus": 0})
        except Exception:  # noqa: BLE001 - live rows are optional
            q = None
        remote = ray.remote(_ray_task)
        pending = deque(jobs)
        reports: dict[str, dict[str, Any]] = {}

        def get_one() -> Any:
            if q is None:
                raise queue_mod.Empty
            try:
                return q.get_nowait()
            except Exception as e:  # ray.util.queue.Empty subclasses queue.Empty
                raise queue_mod.Empty from e

        while (pending or inflight) and not stop:
            while pending and len(inflight) < limit:
                job = pending.popleft()
                cfg = specs[job.name].config
                ncpu = min(node_cpus, cfg.threads) if cfg.threads > 0 else per_run
                ref = remote.options(num_cpus=ncpu, num_gpus=1 if _is_cuda(cfg) else 0, max_retries=0,
                                     name=f"drgrpo:{job.name}").remote(_payload(job, specs[job.name]), fn_blob,
                                                                        ncpu, q)
                inflight[ref] = (job, time.monotonic())
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
            _pump(get_one, board, reports)
            for ref in ready:
                job, t0 = inflight.pop(ref)
                death = None
                try:
                    report = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - WorkerCrashedError, TaskCancelledError, ...
                    report, death = None, one_line(e)
                _pump(get_one, board, reports)
                reports.pop(job.name, None)
                _finish(job, report, death, sweep_dir, board, t0)
            board.refresh()
        if stop and (pending or inflight):
            board.note(f"{signal_name(stop.signum)}: cancelling {len(inflight)} running run(s) "
                       f"(Ctrl-C again to stop at once)")
            for ref in inflight:
                ray.cancel(ref)  # a KeyboardInterrupt in the task: the run resumes from its last checkpoint
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
                _pump(get_one, board, reports)
                for ref in ready:
                    job, t0 = inflight.pop(ref)
                    try:
                        report, death = ray.get(ref), None
                    except Exception as e:  # noqa: BLE001 - TaskCancelledError
                        report, death = None, one_line(e)
                    _finish(job, report, death, sweep_dir, board, t0, stopping=stop.signum)
            raise Interrupted(stop.signum)
        return limit, per_run
    except BaseException:
        for ref, (job, _) in inflight.items():
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
            job.status = run_state(job.dir)
            job.error = "interrupted"
        raise
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------------------------
# summary


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
            out.append((d.name, arm_label(c.get("adv_scale", "?"), c.get("loss_agg", "?")), int(c.get("seed", 0))))
        except (OSError, ValueError):
            out.append((d.name, d.name, 0))
    return out


def run_numbers(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The per-run numbers of the summary from its metrics rows: :func:`drgrpo_cli.metrics.run_numbers`
    (the one computation, shared with the trainer's ``summary.json`` and ``drgrpo plot``)."""
    return _run_numbers(rows)


def _run_configs(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Run dir -> its config: config.json where the run started, else the config grid.json planned."""
    out: dict[str, dict[str, Any]] = {}
    g = read_grid_json(sweep_dir) or {}
    for r in g.get("runs", []):
        if isinstance(r, dict) and isinstance(r.get("config"), dict) and isinstance(r.get("dir"), str):
            out[r["dir"]] = r["config"]
    for p in sweep_dir.iterdir() if sweep_dir.is_dir() else ():
        if (p / CONFIG).is_file():
            try:
                c = json.loads((p / CONFIG).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(c, dict):
                out[p.name] = c
    return out


def summarize(sweep_dir: Path, runs: Iterable[tuple[str, str, int]] | None = None) -> list[ArmSummary]:
    """Per-arm summary of a sweep directory (see the module docstring), arms in grid order."""
    sweep_dir = Path(sweep_dir)
    runs = list(sweep_runs(sweep_dir) if runs is None else runs)
    configs = _run_configs(sweep_dir)
    by_arm: dict[str, list[tuple[str, str, int]]] = {}
    for d, arm, seed in runs:
        by_arm.setdefault(arm, []).append((d, run_state(sweep_dir / d), seed))
    nums = {d: _run_numbers(read_rows(sweep_dir / d)) for ms in by_arm.values() for d, s, _ in ms if s == "finished"}
    key = headline_key(nums.values())  # one headline metric for the whole sweep
    out = []
    for arm, members in by_arm.items():
        done = [(seed, nums[d]) for d, s, seed in members if s == "finished"]
        values = {
            "headline_growth": [(seed, headline(n, key)["growth"]) for seed, n in done],
            "final_reward": [(seed, n["final_reward"]) for seed, n in done],
            "len_incorrect_growth": [(seed, n["len_incorrect_growth"]) for seed, n in done],
        }
        knobs = arm_knobs([configs[d] for d, _, _ in members if d in configs])
        out.append(ArmSummary(
            arm=arm,
            runs_total=len(members),
            runs_done=len(done),
            runs_failed=sum(s == "failed" for _, s, _ in members),
            **{k: mean(n[k] for _, n in done) for k in
               ("final_reward", "final_accuracy", "eval_accuracy", "len_incorrect_growth", "len_correct_growth")},
            headline_growth=mean(v for _, v in values["headline_growth"]),
            headline_metric=key,
            adv_scale=knobs[0] if knobs else "",
            loss_agg=knobs[1] if knobs else "",
            dirs=[d for d, _, _ in members],
            per_seed={m: by_seed(v) for m, v in values.items()},
        ))
    return out


def paired_comparisons(arms: Sequence[ArmSummary]) -> list[PairedRow]:
    """The paired comparisons of a sweep's arms (:func:`drgrpo_cli.report.stats.plan_contrasts`, from their knobs),
    for each of PAIRED_METRICS (metric by metric), over the seeds every arm involved has finished."""
    knobs = {a.arm: (a.adv_scale, a.loss_agg) if a.adv_scale and a.loss_agg else None for a in arms}
    contrasts = plan_contrasts(knobs)
    key = arms[0].headline_metric if arms else HEADLINE_FALLBACK
    keys = {"headline_growth": key, "final_reward": "train/reward", "len_incorrect_growth": HEADLINE_FALLBACK}
    rows = []
    for metric in PAIRED_METRICS:
        if metric == "len_incorrect_growth" and key == HEADLINE_FALLBACK:
            continue  # the headline is already the pooled length
        by_arm = {a.arm: a.per_seed.get(metric, {}) for a in arms}
        for c in contrasts:
            rows.append(PairedRow(metric=metric, key=keys[metric], comparison=c.name, kind=c.kind, detail=c.detail,
                                  result=evaluate(c, by_arm)))
    return rows


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def summary_csv_text(arms: Sequence[ArmSummary]) -> str:
    return _csv_text(CSV_COLUMNS, (a.csv_row() for a in arms))


def paired_csv_text(rows: Sequence[PairedRow]) -> str:
    return _csv_text(PAIRED_COLUMNS, (r.csv_row() for r in rows))


def _write_if_changed(path: Path, text: str) -> Path:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def write_summary_csv(sweep_dir: Path, arms: Sequence[ArmSummary]) -> Path:
    """Write ``<sweep>/summary.csv`` (left untouched when its content would not change)."""
    return _write_if_changed(Path(sweep_dir) / SUMMARY_CSV, summary_csv_text(arms))


def write_paired_csv(sweep_dir: Path, rows: Sequence[PairedRow]) -> Path:
    """Write ``<sweep>/paired.csv`` (left untouched when its content would not change)."""
    return _write_if_changed(Path(sweep_dir) / PAIRED_CSV, paired_csv_text(rows))


# ------------------------------------------------------------------------------------------------------
# entry points


def _console(console: Any) -> Any:
    if console is not None:
        return console
    from rich.console import Console

    c = Console()
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c = Console(width=120)  # logs and pipes: room for the tables instead of 80 columns
    return c


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
    """Run (or resume) every run of a grid; see the module docstring.

    ``train_fn`` replaces ``drgrpo_cli.trainer.train`` (same signature; must be picklable: a module-level
    function). ``console`` is a rich Console (default: stdout); ``live`` forces the live table on/off
    (default: on when the console is a terminal). Raises GridError/AblateError for bad input, before any
    run starts; failed runs do not raise: see ``SweepResult.failed`` / ``exit_code``.
    """
    if backend not in BACKENDS:
        raise AblateError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and workers < 1:
        raise AblateError(f"workers must be >= 1, got {workers}")
    grid = load_grid(grid_path, seeds=seeds, sets=sets)
    sweep_dir = Path(out) if out is not None else Path("results") / grid.name
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise AblateError(f"{sweep_dir}: exists and is not a directory")
    check_grid_json(sweep_dir, grid, force=force)
    specs = {s.name: s for s in grid.runs}
    runs = plan_runs(grid, sweep_dir, force=force)
    todo = [r for r in runs if r.action != "skip"]
    if not force:
        _refuse_library_change(todo)
    n_workers, threads = plan_workers(todo, specs, workers)
    con = _console(console)
    result = SweepResult(sweep_dir=sweep_dir, name=grid.name, runs=runs, arms=[], dry_run=dry_run,
                         backend=backend, workers=n_workers, threads=threads)

    if dry_run:
        con.print(f"[bold]{grid.name}[/]: {len(runs)} runs from {grid.source} -> {sweep_dir}/ "
                  f"({len(todo)} to run, {backend}"
                  + (f", {n_workers} workers x {threads} threads" if backend == "local" and todo else "") + ")")
        con.print(plan_table(runs))
        con.print("dry run: nothing was run or written", style="dim")
        return result

    if todo and train_fn is None:
        import importlib.util

        if importlib.util.find_spec("drgrpo_cli.trainer") is None:
            raise AblateError("drgrpo_cli.trainer is not available in this installation")
    if backend == "ray" and todo:
        _import_ray()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    try:
        with locked(sweep_dir, "sweep"):
            # planned again under the lock: another sweep may have changed the runs in between
            runs = plan_runs(grid, sweep_dir, force=force)
            todo = [r for r in runs if r.action != "skip"]
            n_workers, threads = plan_workers(todo, specs, workers)
            result = SweepResult(sweep_dir=sweep_dir, name=grid.name, runs=runs, arms=[], backend=backend,
                                 workers=n_workers, threads=threads)
            _sweep(result, grid, specs, todo, force=force, workers=workers, address=address, train_fn=train_fn,
                   con=con, live=live)
    except InUseError as e:
        raise AblateError(str(e)) from None
    return result


def _sweep(result: SweepResult, grid: Grid, specs: dict[str, RunSpec], todo: list[RunResult], *, force: bool,
           workers: int | None, address: str | None, train_fn: TrainFn | None, con: Any, live: bool | None) -> None:
    """The part of :func:`ablate` that runs with the sweep folder locked."""
    sweep_dir, runs = result.sweep_dir, result.runs
    write_grid_json(sweep_dir, grid, force=force)
    if todo and train_fn is None:
        from drgrpo_cli.tasks.builtin_model import prebuild

        prebuild({specs[r.name].config.model for r in todo}, con)

    if todo:
        fn_blob = pickle.dumps(train_fn) if train_fn is not None else None
        use_live = con.is_terminal if live is None else live
        done_before = len(runs) - len(todo)
        con.print(f"[bold]{grid.name}[/]: {len(todo)} of {len(runs)} runs to do"
                  + (f" ({done_before} finished, skipped)" if done_before else "") + f" -> {sweep_dir}/")
        with _Board(runs, con, use_live) as board, StopRequest() as stop:
            if result.backend == "local":
                _run_local(todo, specs, result.workers, result.threads, fn_blob, board, sweep_dir, stop)
            else:
                result.workers, result.threads = _run_ray(todo, specs, workers, fn_blob, board, sweep_dir, address,
                                                          stop)
        if not use_live:
            con.print(runs_table(runs))
    else:
        con.print(f"[bold]{grid.name}[/]: all {len(runs)} runs are finished; nothing to do ({sweep_dir}/)")

    result.arms = summarize(sweep_dir)
    result.paired = paired_comparisons(result.arms)
    write_summary_csv(sweep_dir, result.arms)
    write_paired_csv(sweep_dir, result.paired)
    con.print(arms_table(result.arms))
    if result.paired:
        con.print(paired_table(result.paired))
    _print_failures(con, result)


def plan_table(runs: Sequence[RunResult]) -> Any:
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False)
    for col in ("run dir", "arm", "seed", "state", "step", "action"):
        t.add_column(col)
    for r in runs:
        t.add_row(str(r.dir), r.arm, str(r.seed), r.before,
                  f"{r.step or 0}/{r.steps}" if r.before != "missing" else "-", r.action)
    return t


def _print_failures(con: Any, result: SweepResult) -> None:
    failed = result.failed
    if not failed:
        return
    con.print(f"[bold red]{len(failed)} of {len(result.runs)} runs failed[/] "
              f"(rerun the same command to retry them from their last checkpoint, or --force to restart):")
    for r in failed:
        where = f" (traceback: {r.log})" if r.log else ""
        con.print(f"  {r.name}: {r.error}{where}", markup=False, highlight=False)


def ablate_status(sweep_dir: Path | str, *, console: Any = None, show: bool = True) -> SweepResult:
    """State of every run of an existing sweep directory and its per-arm summary; reads only."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise AblateError(f"{sweep_dir}: no such sweep directory")
    g = read_grid_json(sweep_dir)
    members = sweep_runs(sweep_dir)
    if not members:
        raise AblateError(f"{sweep_dir}: no grid.json and no run directories")
    runs = []
    for d, arm, seed in members:
        rd = sweep_dir / d
        state = run_state(rd)
        rows = read_rows(rd)
        err = None
        summary = read_summary(rd) or {}
        if state == "failed":
            err = summary.get("error")
        elif summary.get("status") == "interrupted":
            err = f"interrupted by {summary.get('signal', 'a signal')} (resumable)"
        runs.append(RunResult(name=d, arm=arm, seed=seed, dir=rd, before=state, action="status", status=state,
                              error=err, steps=_steps_of(rd), step=rows[-1].get("step") if rows else None,
                              last=_slim(rows[-1]) if rows else {}))
    arms = summarize(sweep_dir, members)
    result = SweepResult(sweep_dir=sweep_dir, name=(g or {}).get("name", sweep_dir.name), runs=runs, arms=arms,
                         paired=paired_comparisons(arms))
    if show:
        con = _console(console)
        counts: dict[str, int] = {}
        for r in runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        con.print(f"[bold]{result.name}[/] ({sweep_dir}/): "
                  + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        con.print(runs_table(runs))
        con.print(arms_table(arms))
        if result.paired:
            con.print(paired_table(result.paired))
        for r in runs:
            if r.error:
                con.print(f"  {r.name}: {r.error}", markup=False, highlight=False,
                          style="red" if r.status == "failed" else "yellow")
    return result


__all__ = [
    "ACTIONS", "AblateError", "ArmSummary", "BACKENDS", "CSV_COLUMNS", "GRID_JSON", "PAIRED_COLUMNS", "PAIRED_CSV",
    "PAIRED_METRICS", "PairedRow", "RunResult", "SweepResult", "ablate", "ablate_status", "arms_table",
    "paired_comparisons", "paired_csv_text", "paired_table", "plan_runs", "plan_workers", "read_rows", "run_numbers",
    "runs_table", "summarize", "summary_csv_text", "sweep_runs", "write_paired_csv", "write_summary_csv",
]
