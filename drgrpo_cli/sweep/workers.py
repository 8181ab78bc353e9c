"""Running the runs: one spawned process per run (local) or one Ray task per run, and recording how each ended.

A worker sends its run's step rows and its final report to the sweep over a pipe of its own; nothing depends
on them arriving: a run's outcome is read from its folder and its worker's exit. A failed run does not stop
the others; a worker that dies without reporting is recorded by the sweep. A stop (SIGTERM, Ctrl-C) is passed
on to the running workers, which checkpoint and record ``interrupted``; then :class:`Interrupted` is raised.
Why processes, pipes and these stops: docs/design/sweep.md.
"""

from __future__ import annotations

import os
import pickle
import queue as queue_mod
import signal
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any, Callable

from drgrpo_cli.errors import one_line
from drgrpo_cli.interrupt import Interrupted, StopRequest, signal_name
from drgrpo_cli.runlog import SUMMARY, read_summary, run_state, write_json_atomic
from drgrpo_cli.sweep.grid import RunSpec
from drgrpo_cli.sweep.plan import AblateError, RunResult, TrainFn, is_cuda, live_keys, read_rows
from drgrpo_cli.sweep.view import Board

LOG_DIR = "logs"


# ------------------------------------------------------------------------------------------------------
# inside a worker (a spawned process or a Ray task)


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(n)
        except Exception:  # pragma: no cover - torch refuses after parallel work started
            pass


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
        put("step", live_keys(row))

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
# recording how a run ended (in the sweep's process)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        return f"killed by {signal_name(-code)}"
    return f"exit code {code}"


def _write_run_summary(run_dir: Path, status: str, error: str, **extra: Any) -> None:
    """summary.json for a run whose worker could not write one (it died, or failed before the trainer could)."""
    rows = read_rows(run_dir)
    write_json_atomic(Path(run_dir) / SUMMARY, {
        "status": status,
        "error": error,
        "last_step": rows[-1].get("step") if rows else None,
        "recorded_by": "drgrpo ablate",
        **extra,
    })


def _save_traceback(job: RunResult, report: dict[str, Any], sweep_dir: Path) -> None:
    tb = report.get("traceback")
    if tb:
        log = Path(sweep_dir) / LOG_DIR / f"{job.name}.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(tb)
            job.log = log
        except OSError:
            pass


def _finish(job: RunResult, report: dict[str, Any] | None, death: str | None, sweep_dir: Path,
            board: Board, t0: float, stopping: int | None = None) -> None:
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
        _save_traceback(job, report, sweep_dir)
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
    state = run_state(job.dir)  # after any summary written above
    if stopped:
        summary = read_summary(job.dir) or {}
        at = summary.get("checkpoint_step")
        job.status = "interrupted" if state == "partial" else state
        job.error = (f"interrupted by {summary.get('signal', 'a signal')}, "
                     + (f"checkpoint at step {at}" if at else "resumes from its last checkpoint"))
    else:
        job.status = "failed" if error else state
        job.error = error
    job.seconds = (report or {}).get("seconds") or (time.monotonic() - t0)
    job.read_last_row()
    board.finished(job)


def _pump(get: Callable[[], Any], board: Board, reports: dict[str, dict[str, Any]]) -> None:
    """Handle every message available from a worker queue (``get`` raises queue.Empty when there is none)."""
    while True:
        try:
            kind, name, data = get()
        except queue_mod.Empty:
            return
        except (EOFError, OSError, ConnectionError, BrokenPipeError):
            return
        _handle(kind, name, data, board, reports)


def _handle(kind: str, name: str, data: Any, board: Board, reports: dict[str, dict[str, Any]]) -> None:
    """One worker message: a ``done`` report is kept; every message goes to the board."""
    if kind == "done":
        reports[name] = data
    board.event(kind, name, data)


def _drain(conn: Any, board: Board, reports: dict[str, dict[str, Any]]) -> None:
    """Handle every message waiting in a worker's pipe; close it at its end (the worker exited) or if garbled."""
    try:
        while not conn.closed and conn.poll():
            _handle(*conn.recv(), board, reports)
    except Exception:  # noqa: BLE001 - EOFError, or a message cut by a killed worker: only its own pipe
        conn.close()


# ------------------------------------------------------------------------------------------------------
# the local backend: one spawned process per run


def run_local(jobs: list[RunResult], specs: dict[str, RunSpec], workers: int, threads: int,
              fn_blob: bytes | None, board: Board, sweep_dir: Path, stop: StopRequest) -> None:
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


# ------------------------------------------------------------------------------------------------------
# the Ray backend: one task per run


def import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        raise AblateError("the ray backend needs ray: pip install 'drgrpo[ray]'") from None
    return ray


def _ray_sizes(ray: Any, jobs: list[RunResult], specs: dict[str, RunSpec],
               workers: int | None) -> tuple[int, int, int]:
    """(runs in flight at most, CPUs per run, CPUs of the largest node); AblateError if a CUDA run has no GPU."""
    res = ray.cluster_resources()
    cpus = max(1, int(res.get("CPU", 1)))
    node_cpus = max((int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")),
                    default=cpus) or cpus
    limit = workers or len(jobs)
    per_run = max(1, min(node_cpus, cpus // max(1, min(limit, len(jobs)))))
    need_gpu = [j.name for j in jobs if is_cuda(specs[j.name].config)]
    if need_gpu and res.get("GPU", 0) < 1:
        raise AblateError(f"{need_gpu[0]} runs on CUDA but the Ray cluster has no GPU")
    return limit, per_run, node_cpus


def _ray_queue() -> Any:
    """A ray.util.queue.Queue for the live rows, or None (they are optional)."""
    try:
        from ray.util.queue import Queue  # noqa: PLC0415

        return Queue(actor_options={"num_cpus": 0})
    except Exception:  # noqa: BLE001 - live rows are optional
        return None


def _queue_getter(q: Any) -> Callable[[], Any]:
    def get_one() -> Any:
        if q is None:
            raise queue_mod.Empty
        try:
            return q.get_nowait()
        except Exception as e:  # ray.util.queue.Empty subclasses queue.Empty
            raise queue_mod.Empty from e

    return get_one


def _ray_collect(ray: Any, inflight: dict[Any, tuple[RunResult, float]], get_one: Callable[[], Any], board: Board,
                 reports: dict[str, dict[str, Any]], sweep_dir: Path, stopping: int | None = None) -> None:
    """Wait a moment for a task to end, and record each that did."""
    ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
    _pump(get_one, board, reports)
    for ref in ready:
        job, t0 = inflight.pop(ref)
        try:
            report, death = ray.get(ref), None
        except Exception as e:  # noqa: BLE001 - WorkerCrashedError, TaskCancelledError, ...
            report, death = None, one_line(e)
        if stopping is None:
            _pump(get_one, board, reports)
            reports.pop(job.name, None)
        _finish(job, report, death, sweep_dir, board, t0, stopping)


def run_ray(jobs: list[RunResult], specs: dict[str, RunSpec], workers: int | None, fn_blob: bytes | None,
            board: Board, sweep_dir: Path, address: str | None, stop: StopRequest) -> tuple[int, int]:
    """Run the jobs as Ray tasks; returns (runs in flight at most, CPUs per run)."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError, ...
            raise AblateError(f"cannot start or reach Ray (address={address!r}): {one_line(e)}") from None
        started = True
    inflight: dict[Any, tuple[RunResult, float]] = {}
    try:
        limit, per_run, node_cpus = _ray_sizes(ray, jobs, specs, workers)
        q = _ray_queue()
        get_one = _queue_getter(q)
        remote = ray.remote(_ray_task)
        pending = deque(jobs)
        reports: dict[str, dict[str, Any]] = {}
        while (pending or inflight) and not stop:
            while pending and len(inflight) < limit:
                job = pending.popleft()
                cfg = specs[job.name].config
                ncpu = min(node_cpus, cfg.threads) if cfg.threads > 0 else per_run
                ref = remote.options(num_cpus=ncpu, num_gpus=1 if is_cuda(cfg) else 0, max_retries=0,
                                     name=f"drgrpo:{job.name}").remote(_payload(job, specs[job.name]), fn_blob,
                                                                        ncpu, q)
                inflight[ref] = (job, time.monotonic())
            _ray_collect(ray, inflight, get_one, board, reports, sweep_dir)
            board.refresh()
        if stop and (pending or inflight):
            board.note(f"{signal_name(stop.signum)}: cancelling {len(inflight)} running run(s) "
                       f"(Ctrl-C again to stop at once)")
            for ref in inflight:
                ray.cancel(ref)  # a KeyboardInterrupt in the task: the run resumes from its last checkpoint
            while inflight:
                _ray_collect(ray, inflight, get_one, board, reports, sweep_dir, stopping=stop.signum)
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
