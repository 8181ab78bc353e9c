"""Running a sweep (drgrpo_cli.sweep.workers): local worker processes in parallel, failures isolated and recorded,
the Ray backend, the real trainer end to end, and workers that outlive nothing.

The fake trainers are module-level (here and in sweep_helpers) so that spawned worker processes can import them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from drgrpo_cli.runlog import run_state
from drgrpo_cli.sweep.ablate import ablate
from drgrpo_cli.sweep.summary import CSV_COLUMNS
from sweep_helpers import FAILING, REAL_SETS, REPO, TESTS, calls, fake_train, quiet, tree, write

def test_parallel_two_workers(tmp_path):
    p = write(tmp_path, """
        name = "small"
        [base]
        steps = 3
        lr = 0.5
        [axes]
        adv_scale = ["none"]
        loss_agg = ["seq_mean", "max_tokens"]
    """)
    out = tmp_path / "sweep"
    r = ablate(p, out=out, workers=2, train_fn=fake_train, console=quiet())
    assert r.exit_code == 0 and r.workers == 2 and r.threads == max(1, (len(os.sched_getaffinity(0))) // 2)
    runs = [out / x.name for x in r.runs]
    assert len(runs) == 2 and all(run_state(d) == "finished" for d in runs)
    c = [calls(d) for d in runs]
    starts = [x[0]["start"] for x in c]
    ends = [x[-1]["end"] for x in c]
    assert max(starts) < min(ends), "the two runs did not overlap"
    assert c[0][0]["pid"] != c[1][0]["pid"] != os.getpid()
    g = json.loads((out / "grid.json").read_text())
    assert g["name"] == "small" and g["source"] == str(p)
    assert g["arms"] == {"none-seq_mean__seed0": "std-only fix", "none-max_tokens__seed0": "Dr. GRPO"}
    assert [x["dir"] for x in g["runs"]] == [x.name for x in r.runs]
    assert {"dir", "arm", "seed", "overrides"} <= set(g["runs"][0])


def test_failures_are_isolated_and_recorded(tmp_path):
    p = write(tmp_path, FAILING)
    out = tmp_path / "sweep"
    r = ablate(p, out=out, workers=2, train_fn=fake_train, console=quiet())
    assert r.exit_code == 1
    st = {x.name: x for x in r.runs}
    assert st["ok1__seed0"].status == st["ok2__seed0"].status == "finished"
    assert run_state(out / "ok2__seed0") == "finished"
    assert {x.name for x in r.failed} == {"nan__seed0", "sigkill__seed0", "osexit__seed0"}
    assert st["nan__seed0"].error == "FloatingPointError: NaN loss at step 2"
    assert "killed by SIGKILL" in st["sigkill__seed0"].error
    assert "exit code 3" in st["osexit__seed0"].error
    for name in ("nan__seed0", "sigkill__seed0", "osexit__seed0"):
        s = json.loads((out / name / "summary.json").read_text())
        assert s["status"] == "failed" and s["error"] == st[name].error and s["last_step"] == 2
        assert run_state(out / name) == "failed"
    log = (out / "logs" / "nan__seed0.log").read_text()
    assert "FloatingPointError" in log and "Traceback" in log
    rows = list((out / "summary.csv").read_text().splitlines())
    assert rows[0] == ",".join(CSV_COLUMNS)
    assert rows[2].startswith("nan,0,1,1,")

    # failed runs are retried with resume=True by default; the injected failure fires at step 2 only, so
    # the resumed runs (which start at step 3) finish
    r2 = ablate(p, out=out, workers=2, train_fn=fake_train, console=quiet())
    assert r2.exit_code == 0
    acts = {x.name: x.action for x in r2.runs}
    assert acts == {"ok1__seed0": "skip", "nan__seed0": "retry", "sigkill__seed0": "retry",
                    "osexit__seed0": "retry", "ok2__seed0": "skip"}
    assert calls(out / "nan__seed0")[-2]["resume"] is True
    assert all(run_state(out / x.name) == "finished" for x in r2.runs)
    lines = (out / "nan__seed0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]

# ----------------------------------------------------------------------------------------------------------
# Ray backend

@pytest.mark.ray
def test_ray_backend_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    p = write(tmp_path, FAILING.replace('sigkill = {adv_scale="none", loss_agg="seq_mean", lr=0.25}\n', "")
              .replace('osexit = {adv_scale="group", loss_agg="max_tokens", lr=0.375}\n', ""))
    out = tmp_path / "sweep"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}})
    try:
        r = ablate(p, out=out, backend="ray", train_fn=fake_train, console=quiet())
        assert r.exit_code == 1
        st = {x.name: x for x in r.runs}
        assert st["ok1__seed0"].status == st["ok2__seed0"].status == "finished"
        assert st["nan__seed0"].status == "failed" and "NaN loss" in st["nan__seed0"].error
        assert json.loads((out / "nan__seed0" / "summary.json").read_text())["status"] == "failed"
        assert r.threads == 1  # 2 CPUs / 3 runs -> 1 CPU per task
        # resume semantics are the same: finished skipped, failed retried (and now finishes)
        before = tree(out / "ok1__seed0")
        r = ablate(p, out=out, backend="ray", train_fn=fake_train, console=quiet())
        assert r.exit_code == 0 and {x.name: x.action for x in r.runs}["ok1__seed0"] == "skip"
        assert tree(out / "ok1__seed0") == before
        assert calls(out / "nan__seed0")[-2]["resume"] is True
        assert ray.is_initialized()  # a Ray instance the caller started is left running
    finally:
        ray.shutdown()

# ----------------------------------------------------------------------------------------------------------
# the real trainer, end to end (a tiny config: seconds per run once the cached base model exists)

def train_killed_once(config, out_dir, **kw):
    """The real trainer, SIGKILLed right after step 3 the first time it runs into ``out_dir``."""
    from drgrpo_cli.trainer import train

    marker = Path(out_dir).parent / f"{Path(out_dir).name}.killed"
    on_step = kw.pop("on_step", None)

    def hook(row):
        if on_step is not None:
            on_step(row)
        if row.get("step") == 3 and not marker.exists():
            marker.write_text("killed\n")
            os.kill(os.getpid(), signal.SIGKILL)

    return train(config, out_dir, on_step=hook, **kw)


def _rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


@pytest.mark.slow
def test_real_trainer_2x2_two_workers(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "sweep"
    r = ablate(None, sets=[*REAL_SETS, "steps=2"], seeds=[0], out=out, workers=2, console=quiet())
    assert r.exit_code == 0, [(x.name, x.error) for x in r.failed]
    assert r.workers == 2
    for x in r.runs:
        d = out / x.name
        assert run_state(d) == "finished"
        steps = [row["step"] for row in _rows(d)]
        assert steps == sorted(set(steps)) and steps[-1] == 2
        cfg = json.loads((d / "config.json").read_text())
        assert (cfg["adv_scale"], cfg["loss_agg"]) == dict(
            [("grpo__seed0", ("group", "seq_mean")), ("std-only-fix__seed0", ("none", "seq_mean")),
             ("length-only-fix__seed0", ("group", "max_tokens")), ("dr-grpo__seed0", ("none", "max_tokens"))])[x.name]
    csv_rows = (out / "summary.csv").read_text().splitlines()
    assert len(csv_rows) == 5 and all(",1,1,0," in row for row in csv_rows[1:])
    assert json.loads((out / "grid.json").read_text())["arms"]["dr-grpo__seed0"] == "Dr. GRPO"
    before = tree(out)
    r = ablate(None, sets=[*REAL_SETS, "steps=2"], seeds=[0], out=out, console=quiet())
    assert r.exit_code == 0 and all(x.action == "skip" for x in r.runs) and tree(out) == before


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint_every", [2, 10], ids=["after-checkpoint", "before-any-checkpoint"])
def test_real_trainer_resume_after_killed_run(tmp_path, checkpoint_every):
    pytest.importorskip("torch")
    p = write(tmp_path, """
        name = "one"
        [arms]
        GRPO = {adv_scale="group", loss_agg="seq_mean"}
    """)
    sets = [*REAL_SETS, "steps=4", f"checkpoint_every={checkpoint_every}"]
    ref = ablate(p, sets=sets, out=tmp_path / "ref", workers=1, console=quiet())
    assert ref.exit_code == 0, [(x.name, x.error) for x in ref.failed]
    out = tmp_path / "sweep"
    r = ablate(p, sets=sets, out=out, workers=1, train_fn=train_killed_once, console=quiet())
    assert r.exit_code == 1 and "killed by SIGKILL" in r.runs[0].error
    run = out / "grpo__seed0"
    assert run_state(run) == "failed" and [x["step"] for x in _rows(run)][-1] == 3
    r = ablate(p, sets=sets, out=out, workers=1, console=quiet())  # the real trainer, resume=True
    assert r.exit_code == 0 and r.runs[0].action == "retry", r.runs[0].error
    rows = _rows(run)
    assert [x["step"] for x in rows] == [0, 1, 2, 3, 4]  # no duplicate rows (step 0 included): redone, not kept
    assert rows == _rows(tmp_path / "ref" / "grpo__seed0")  # the same numbers as an uninterrupted run


def test_worker_exits_when_the_sweep_process_is_killed(tmp_path):
    """kill (not Ctrl-C) of the sweep's process must not leave a worker writing its run folder."""
    import signal
    import subprocess
    import sys
    import textwrap

    pidfile = tmp_path / "grandchild.pid"
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(f"""
        import os, time
        from drgrpo_cli.sweep.workers import _exit_with_parent
        _exit_with_parent(0.2)
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """))
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, {str(worker)!r}]); time.sleep(60)"
    middle = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while not pidfile.exists() or not pidfile.read_text():
        assert time.time() < deadline, "grandchild did not start"
        time.sleep(0.1)
    grandchild = int(pidfile.read_text())
    os.kill(middle.pid, signal.SIGKILL)
    middle.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return
        # a zombie counts as ended: it is waiting to be reaped by init
        try:
            if open(f"/proc/{grandchild}/stat").read().split()[2] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.2)
    os.kill(grandchild, signal.SIGKILL)
    raise AssertionError("the worker outlived the killed sweep process")
