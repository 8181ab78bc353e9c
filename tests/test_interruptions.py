"""Interruptions: kill -9 and resume, SIGTERM/SIGINT stops, locks, torn writes, a full disk, NaN/Inf, OOM, and
sweeps that are stopped or lose a helper process. Real signals to real subprocesses where it matters.

The module-level fake trainer is imported by spawned sweep workers (like those of test_sweep_run.py).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drgrpo_cli import runlog
from drgrpo_cli.cli.app import app
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "200"}
runner = CliRunner()

#: the run the subprocess tests interrupt: 8 steps, first checkpoint at step 5
KILL_CFG = dict(steps=8, checkpoint_every=5, seed=3)


def _args(out: Path, steps: int, checkpoint_every: int, seed: int, *extra: str) -> list[str]:
    """``drgrpo train`` options equal to ``tiny_config(steps=, checkpoint_every=, seed=)``."""
    return ["train", "--model", "builtin-small", "--steps", str(steps), "--prompts-per-step", "4", "--group-size", "4",
            "--max-tokens", "24", "--eval-every", "2", "--eval-max-prompts", "16", "--checkpoint-every",
            str(checkpoint_every), "--threads", "1", "--seed", str(seed), "--quiet", "--out", str(out), *extra]


def _rows(run: Path) -> list[dict]:
    rows, torn = runlog.read_jsonl(run / runlog.METRICS)
    assert not torn
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _ckpt_step(run: Path) -> int | None:
    import torch

    p = run / runlog.CHECKPOINT / "state.pt"
    return torch.load(p, weights_only=False)["step"] if p.exists() else None


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Rows of an unbroken run of ``tiny_config(**kw)`` (computed once per config)."""
    from drgrpo_cli.trainer import train

    cache: dict[str, list[dict]] = {}

    def get(**kw) -> list[dict]:
        key = json.dumps(kw, sort_keys=True)
        if key not in cache:
            out = tmp_path_factory.mktemp("ref")
            train(tiny_config(**kw), out / "run", progress=False)
            cache[key] = _rows(out / "run")
        return cache[key]

    return get


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "drgrpo_cli.cli.app", *_args(out, **KILL_CFG), *extra], cwd=REPO,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(proc: subprocess.Popen, run: Path, n: int, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run / runlog.METRICS).exists() and len(runlog.read_jsonl(run / runlog.METRICS)[0]) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"{run}: fewer than {n} rows after {timeout} s")


# ---- kill -9, SIGTERM, SIGINT -----------------------------------------------------------------------------
def test_kill9_before_and_after_the_first_checkpoint_resumes_row_for_row(tmp_path, small_model, reference):
    from drgrpo_cli.trainer import train

    ref = reference(**KILL_CFG)
    for name, rows_at_kill, ckpt in (("before", 2, None), ("after", 7, 5)):
        run = tmp_path / name
        proc = _start(run)
        _wait_rows(proc, run, rows_at_kill)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        assert _ckpt_step(run) == ckpt, name  # the case this loop means to test
        assert runlog.run_state(run) == "partial"
        s = train(tiny_config(**KILL_CFG), run, resume=True, progress=False)
        assert s["status"] == "finished"
        rows = _rows(run)
        assert [r["step"] for r in rows] == list(range(9)), name  # step 0 once, no step lost
        assert rows == ref, name


def test_sigterm_finishes_the_step_checkpoints_and_resumes_identically(tmp_path, small_model, reference):
    run = tmp_path / "run"
    proc = _start(run)
    _wait_rows(proc, run, 3)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    summary = json.loads((run / "summary.json").read_text())
    step = summary["step"]
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM" and 2 <= step < 8
    assert _ckpt_step(run) == step == summary["checkpoint_step"]  # checkpointed where it stopped
    assert [r["step"] for r in _rows(run)] == list(range(step + 1))  # nothing lost
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"checkpoint at step {step}" in lines[0] and "--resume" in lines[0], err
    assert runlog.run_state(run) == "partial"
    res = runner.invoke(app, _args(run, **KILL_CFG) + ["--resume"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert _rows(run) == reference(**KILL_CFG)


def test_ctrl_c_through_the_cli_exits_130_with_a_checkpoint(tmp_path, small_model, reference, monkeypatch):
    from drgrpo_cli import trainer
    from drgrpo_cli.cli.progress import TrainProgress

    def ctrl_c_at_2(self, step, row):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the handler only sets a flag: step 2 is complete

    monkeypatch.setattr(TrainProgress, "update", ctrl_c_at_2)
    # Ctrl-C in a terminal: Python's own SIGINT handler, even when the tests run as a background job (whose
    # shell set SIGINT to ignored; the trainer then leaves it ignored, as nohup'd jobs expect)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    run = tmp_path / "run"
    try:
        res = runner.invoke(app, _args(run, **KILL_CFG))
    finally:
        signal.signal(signal.SIGINT, old)
    assert res.exit_code == 130, res.output
    assert "checkpoint at step 2" in res.stderr and "--resume" in res.stderr
    assert json.loads((run / "summary.json").read_text())["signal"] == "SIGINT" and _ckpt_step(run) == 2
    monkeypatch.undo()
    trainer.train(tiny_config(**KILL_CFG), run, resume=True, progress=False)
    assert _rows(run) == reference(**KILL_CFG)


# ---- locks ------------------------------------------------------------------------------------------------
def _hold_lock(folder: Path) -> subprocess.Popen:
    code = (f"import time; from drgrpo_cli.runlog import locked\n"
            f"with locked({str(folder)!r}):\n    print('held', flush=True); time.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_run_in_use_is_refused_in_one_line(tmp_path, small_model):
    run = tmp_path / "run"
    run.mkdir()
    holder = _hold_lock(run)
    try:
        res = runner.invoke(app, _args(run, 2, 1, 0))
        assert res.exit_code == 2 and "in use by another drgrpo process" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
        assert [p.name for p in run.iterdir()] == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    res = runner.invoke(app, _args(run, 1, 1, 0))  # the holder is gone (killed): its lock went with it
    assert res.exit_code == 0, res.output


# ---- torn writes and a full disk --------------------------------------------------------------------------
def test_a_torn_last_line_is_read_and_repaired_on_resume(tmp_path, small_model, reference):
    from drgrpo_cli.sweep.ablate import ablate_status
    from drgrpo_cli.report.runs import load_run
    from drgrpo_cli.trainer import train

    cfg = dict(steps=4, checkpoint_every=2, seed=3)

    class Stop(KeyboardInterrupt):
        pass

    def stop_at_3(row):
        if row["step"] == 3:
            raise Stop

    run = tmp_path / "sweep" / "run"
    with pytest.raises(Stop):
        train(tiny_config(**cfg), run, progress=False, on_step=stop_at_3)
    for name in (runlog.METRICS, runlog.SAMPLES):
        with open(run / name, "a") as f:
            f.write('{"step": 4, "train/rew')  # the process died in the middle of a row
    assert runlog.read_jsonl(run / runlog.METRICS)[1] is True
    loaded = load_run(run, "run", None, [])
    assert [r["step"] for r in loaded.rows] == [0, 1, 2, 3] and loaded.torn  # plot reads it and warns
    st = ablate_status(tmp_path / "sweep", show=False)
    assert st.runs[0].status == "partial" and st.runs[0].step == 3
    train(tiny_config(**cfg), run, resume=True, progress=False)
    assert _rows(run) == reference(**cfg)
    assert runlog.read_jsonl(run / runlog.SAMPLES)[1] is False


def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, small_model, reference, monkeypatch):
    import torch

    from drgrpo_cli.trainer import RunFailed, train

    cfg = dict(steps=4, checkpoint_every=1, seed=3)
    real_save = torch.save
    calls = []

    def save_until_full(obj, f, *a, **kw):
        calls.append(obj["step"])
        if obj["step"] == 3:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save_until_full)
    run = tmp_path / "run"
    with pytest.raises(RunFailed, match="disk full at step 3") as e:
        train(tiny_config(**cfg), run, progress=False)
    assert e.value.kind == "disk_full" and e.value.checkpoint == 2
    assert _ckpt_step(run) == 2 and not (run / "checkpoint" / "state.pt.tmp").exists()
    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "failed" and "disk full at step 3" in s["error"] and s["checkpoint_step"] == 2
    monkeypatch.undo()

    # through the CLI, the metrics log is the writer that hits the full disk
    real_write = runlog.JsonlWriter.write

    def write_until_full(self, row):
        if row.get("step") == 3 and self.path.name == runlog.METRICS:
            self._f.write('{"step": 3, "tr')  # half a row reaches the file
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real_write(self, row)

    monkeypatch.setattr(runlog.JsonlWriter, "write", write_until_full)
    run = tmp_path / "cli"
    res = runner.invoke(app, _args(run, **cfg))
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk full at step 3" in lines[0] and "metrics.jsonl" in lines[0]
    assert "from its checkpoint at step 2" in lines[0] and "--resume" in lines[0]
    assert _ckpt_step(run) == 2
    monkeypatch.undo()
    res = runner.invoke(app, _args(run, **cfg) + ["--resume"])
    assert res.exit_code == 0, res.output
    assert _rows(run) == reference(**cfg)


# ---- NaN/Inf and out of memory ----------------------------------------------------------------------------
def _fail_at_call(monkeypatch, n: int, make):
    """Replace objectives.ppo_token_loss (one call per step here): its n-th call is ``make(result)``."""
    from drgrpo_cli import objectives

    real = objectives.ppo_token_loss
    count = [0]

    def patched(*a, **kw):
        count[0] += 1
        out = real(*a, **kw)
        return make(out) if count[0] == n else out

    monkeypatch.setattr(objectives, "ppo_token_loss", patched)


def test_nonfinite_loss_stops_in_one_line_or_is_skipped(tmp_path, small_model, monkeypatch):
    def nan_loss(out):
        tl, st = out
        return tl * float("nan"), st

    _fail_at_call(monkeypatch, 2, nan_loss)
    run = tmp_path / "run"
    res = runner.invoke(app, _args(run, 3, 1, 0))
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "non-finite train/loss (nan) at step 2" in lines[0], lines
    assert "--resume --skip-nonfinite" in lines[0]
    assert _ckpt_step(run) == 1  # the update never reached the weights: the last checkpoint is good
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"

    monkeypatch.undo()
    _fail_at_call(monkeypatch, 1, nan_loss)  # resumed at step 2, which NaNs again (resume is deterministic)
    res = runner.invoke(app, _args(run, 3, 1, 0, "--resume", "--skip-nonfinite"))
    assert res.exit_code == 0, res.output
    rows = _rows(run)
    assert [r.get("train/skipped_updates") for r in rows] == [None, None, 1, 0]
    assert rows[2]["train/loss"] is None and rows[3]["train/loss"] is not None
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["resumed_with"] == [{"from_step": 2, "changed": {"skip_nonfinite": [False, True]}}]


def test_out_of_memory_mid_run_is_exit_1_naming_the_knob(tmp_path, small_model, monkeypatch):
    import torch

    def oom(out):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    _fail_at_call(monkeypatch, 2, oom)
    run = tmp_path / "run"
    res = runner.invoke(app, _args(run, 3, 1, 0))
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "out of memory at step 2" in lines[0] and "--micro-batches" in lines[0]
    assert "--resume" in lines[0] and _ckpt_step(run) == 1
    monkeypatch.undo()
    # the memory knobs may change on resume; the change is recorded
    res = runner.invoke(app, _args(run, 3, 1, 0, "--resume", "--micro-batches", "2"))
    assert res.exit_code == 0, res.output
    prov = json.loads((run / "provenance.json").read_text())
    # a count split replaces the token budget (65536 on CPU; None = unused with micro_batches > 1)
    assert prov["resumed_with"] == [{"from_step": 2, "changed": {"micro_batches": [1, 2],
                                                                 "max_tokens_per_micro_batch": [65536, None]}}]
    assert json.loads((run / "config.json").read_text())["micro_batches"] == 2
    res = runner.invoke(app, _args(run, 3, 1, 1, "--resume"))  # a method knob may not change
    assert res.exit_code == 2 and "seed" in res.stderr


def test_a_runtime_error_before_work_starts_is_still_bad_input(tmp_path, monkeypatch):
    from drgrpo_cli.tasks import builtin_model

    def broken(*a, **kw):
        raise RuntimeError("Error(s) in loading state_dict: size mismatch")

    monkeypatch.setattr(builtin_model, "resolve_model_path", broken)
    res = runner.invoke(app, _args(tmp_path / "run", 2, 1, 0))
    assert res.exit_code == 2 and res.stderr.startswith("error: Error(s) in loading state_dict")
    # nothing ran, so no run is left behind: the corrected command (here: other options) starts clean
    assert runlog.run_state(tmp_path / "run") == "missing"
    monkeypatch.undo()
    res = runner.invoke(app, _args(tmp_path / "run", 3, 1, 0))
    assert res.exit_code == 0 and runlog.run_state(tmp_path / "run") == "finished"


# ---- sweeps: SIGTERM passed on to the workers; a helper process killed -------------------------------------
def fake_graceful(config, out_dir, *, resume=False, force=False, on_step=None, progress=True):
    """The trainer's contract in miniature (0.2 s a step): resumes after its last row; SIGTERM finishes the step,
    records ``interrupted`` and raises Interrupted; one lock per run."""
    from drgrpo_cli.interrupt import Interrupted, StopRequest, signal_name

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with runlog.locked(out):
        (out / "config.json").write_text(json.dumps(config.validate().to_dict()))
        (out / "pid").write_text(str(os.getpid()))
        rows = runlog.read_jsonl(out / runlog.METRICS)[0] if resume else []
        runlog.truncate_jsonl(out / runlog.METRICS, rows)
        (out / "summary.json").unlink(missing_ok=True)
        with StopRequest() as stop, runlog.JsonlWriter(out / runlog.METRICS) as w:
            for step in range(len(rows) + 1, config.steps + 1):
                time.sleep(0.2)
                row = {"step": step, "train/reward": step / 8, "train/len_incorrect": 10.0 * step}
                w.write(row)
                if on_step:
                    on_step(row)
                if stop and step < config.steps:
                    runlog.write_json_atomic(out / "summary.json", {
                        "status": "interrupted", "signal": signal_name(stop.signum), "step": step,
                        "checkpoint_step": step})
                    raise Interrupted(stop.signum, step)
        summary = {"status": "finished", "steps": config.steps}
        runlog.write_json_atomic(out / "summary.json", summary)
        return summary


GRID = """
name = "stops"
[base]
steps = {steps}
[arms]
a = {{adv_scale="group", loss_agg="seq_mean"}}
b = {{adv_scale="none", loss_agg="max_tokens"}}
c = {{adv_scale="none", loss_agg="seq_mean"}}
"""


def _start_sweep(tmp_path: Path, steps: int, workers: int) -> tuple[subprocess.Popen, Path, Path]:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(steps=steps))
    out = tmp_path / "sweep"
    code = textwrap.dedent(f"""
        import functools
        import drgrpo_cli.sweep.ablate as A
        from tests.test_interruptions import fake_graceful
        A.ablate = functools.partial(A.ablate, train_fn=fake_graceful)
        from drgrpo_cli.cli.app import app
        app(["ablate", {str(grid)!r}, "--out", {str(out)!r}, "--workers", "{workers}"], prog_name="drgrpo")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, grid, out


def _wait_for(proc: subprocess.Popen, cond, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(p.name))
    return out


def test_sweep_passes_sigterm_to_its_workers_and_records_each_run(tmp_path):
    from drgrpo_cli.sweep.ablate import ablate

    proc, grid, out = _start_sweep(tmp_path, steps=30, workers=2)
    runs = [out / f"{a}__seed0" for a in ("a", "b")]
    _wait_for(proc, lambda: all(len(runlog.read_jsonl(r / runlog.METRICS)[0]) >= 2 for r in runs))
    os.kill(proc.pid, signal.SIGTERM)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "run the same command again" in lines[0], err
    for r in runs:
        s = json.loads((r / "summary.json").read_text())
        assert s["status"] == "interrupted" and s["signal"] == "SIGTERM", s
        assert runlog.run_state(r) == "partial"
        assert runlog.read_jsonl(r / runlog.METRICS)[0][-1]["step"] == s["step"] < 30
        pid = int((r / "pid").read_text())
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert not (out / "c__seed0").exists()  # never started
    res = ablate(grid, out=out, workers=2, train_fn=fake_graceful, console=_quiet())
    assert res.exit_code == 0 and {x.name: x.action for x in res.runs} == {
        "a__seed0": "resume", "b__seed0": "resume", "c__seed0": "start"}
    for r in runs:
        assert [x["step"] for x in runlog.read_jsonl(r / runlog.METRICS)[0]] == list(range(1, 31))


def test_sweep_outlives_its_helper_processes(tmp_path):
    """kill -9 of every child of the sweep's process that is not a worker (multiprocessing's helpers)."""
    from drgrpo_cli.sweep.ablate import ablate

    proc, grid, out = _start_sweep(tmp_path, steps=8, workers=1)
    first = out / "a__seed0"
    _wait_for(proc, lambda: len(runlog.read_jsonl(first / runlog.METRICS)[0]) >= 1)
    worker = int((first / "pid").read_text())
    helpers = [c for c in _children(proc.pid) if c != worker]
    assert helpers, "expected a helper process (multiprocessing's resource tracker)"
    for c in helpers:
        os.kill(c, signal.SIGKILL)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (stdout, err)
    assert "Aborted" not in stdout + err and "Traceback" not in stdout + err
    for a in ("a", "b", "c"):  # the run it was running and the two it started afterwards
        assert runlog.run_state(out / f"{a}__seed0") == "finished"
    res = ablate(grid, out=out, train_fn=fake_graceful, console=_quiet())
    assert res.exit_code == 0 and all(x.action == "skip" for x in res.runs)


def test_a_sweep_in_use_is_refused_in_one_line(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    holder = _hold_lock(sweep)
    try:
        res = runner.invoke(app, ["ablate", "--set", "steps=1", "--out", str(sweep)])
        assert res.exit_code == 2 and "in use by another drgrpo process" in res.stderr, res.output
        assert len(res.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in sweep.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()


def test_a_worker_that_loses_the_run_lock_writes_nothing_there(tmp_path):
    from drgrpo_cli.sweep.ablate import ablate

    grid = tmp_path / "g.toml"
    grid.write_text(GRID.format(steps=2).replace('b = {adv_scale="none", loss_agg="max_tokens"}\n', "")
                    .replace('c = {adv_scale="none", loss_agg="seq_mean"}\n', ""))
    run = tmp_path / "sweep" / "a__seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")  # partial: somebody else's drgrpo train is writing it
    holder = _hold_lock(run)
    try:
        res = ablate(grid, out=tmp_path / "sweep", train_fn=fake_graceful, console=_quiet())
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 1 and "in use by another drgrpo process" in res.runs[0].error
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.json"]


def _quiet():
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=160)
