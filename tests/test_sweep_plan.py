"""Planning a sweep (drgrpo_cli.sweep.plan): each run's state and action, dry runs, resume, a finished
sweep as a no-op, and refusals before any work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from drgrpo_cli.runlog import run_state
from drgrpo_cli.sweep.ablate import ablate, ablate_status
from drgrpo_cli.sweep.plan import AblateError
from sweep_helpers import REAL_SETS, REPO, SMALL, calls, fake_train, quiet, tree, write

def test_dry_run_writes_nothing(tmp_path):
    p = write(tmp_path, SMALL)
    out = tmp_path / "sweep"
    r = ablate(p, out=out, dry_run=True, train_fn=fake_train, console=quiet())
    assert not out.exists()
    assert [x.action for x in r.runs] == ["start"] * 4 and r.dry_run and r.exit_code == 0
    ablate(p, out=out, train_fn=fake_train, console=quiet(), workers=2)
    (out / "grpo__seed0" / "summary.json").unlink()  # partial now
    before = tree(out)
    r = ablate(p, out=out, dry_run=True, seeds=[0, 1], train_fn=fake_train, console=quiet())
    assert tree(out) == before
    acts = {x.name: x.action for x in r.runs}
    assert acts["grpo__seed0"] == "resume" and acts["dr-grpo__seed0"] == "skip" and acts["grpo__seed1"] == "start"


def test_resume_semantics_and_noop(tmp_path):
    p = write(tmp_path, SMALL)
    out = tmp_path / "sweep"
    r = ablate(p, out=out, train_fn=fake_train, console=quiet())
    assert r.exit_code == 0 and [x.action for x in r.runs] == ["start"] * 4
    # make one run partial (killed after 2 steps) and one failed
    part = out / "grpo__seed0"
    (part / "summary.json").unlink()
    rows = (part / "metrics.jsonl").read_text().splitlines()
    (part / "metrics.jsonl").write_text("\n".join(rows[:2]) + "\n")
    failed = out / "dr-grpo__seed0"
    (failed / "summary.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    untouched = ["none-seq_mean__seed0", "group-max_tokens__seed0"]
    before = {n: tree(out / n) for n in untouched}
    time.sleep(0.01)
    r = ablate(p, out=out, train_fn=fake_train, console=quiet())
    assert r.exit_code == 0
    assert {x.name: x.action for x in r.runs} == {"grpo__seed0": "resume", "none-seq_mean__seed0": "skip",
                                                  "group-max_tokens__seed0": "skip", "dr-grpo__seed0": "retry"}
    for n in untouched:
        assert tree(out / n) == before[n]
    assert calls(part)[-2]["resume"] is True and calls(failed)[-2]["resume"] is True
    assert [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    # a finished sweep: a no-op that changes no file
    before_all = tree(out)
    t = time.time()
    r = ablate(p, out=out, train_fn=fake_train, console=quiet())
    assert time.time() - t < 2 and r.exit_code == 0 and all(x.action == "skip" for x in r.runs)
    assert tree(out) == before_all
    # --force: everything from scratch
    r = ablate(p, out=out, train_fn=fake_train, force=True, console=quiet())
    assert all(x.action == "restart" for x in r.runs) and r.exit_code == 0
    assert all(calls(out / x.name)[0]["force"] is True for x in r.runs)


def test_noop_does_not_import_torch(tmp_path):
    p = write(tmp_path, SMALL)
    out = tmp_path / "sweep"
    ablate(p, out=out, train_fn=fake_train, console=quiet())
    code = (f"import sys; from drgrpo_cli.sweep.ablate import ablate; "
            f"r = ablate({str(p)!r}, out={str(out)!r}); "
            f"assert r.exit_code == 0 and all(x.action == 'skip' for x in r.runs); "
            f"assert 'torch' not in sys.modules, 'torch was imported'")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "nothing to do" in res.stdout


def test_status_without_grid_json_and_errors(tmp_path):
    p = write(tmp_path, SMALL)
    out = tmp_path / "sweep"
    ablate(p, out=out, train_fn=fake_train, console=quiet())
    (out / "grid.json").unlink()
    before = tree(out)
    s = ablate_status(out, console=quiet())
    assert tree(out) == before
    assert sorted(a.arm for a in s.arms) == sorted(["GRPO", "Dr. GRPO", "std-only fix", "length-only fix"])
    with pytest.raises(AblateError, match="no such sweep directory"):
        ablate_status(tmp_path / "nope")
    with pytest.raises(AblateError, match="backend"):
        ablate(p, out=out, backend="slurm")
    with pytest.raises(AblateError, match="workers"):
        ablate(p, out=out, workers=0)


def test_resuming_under_another_library_set_is_refused_before_any_work(tmp_path):
    pytest.importorskip("torch")
    p = write(tmp_path, """
        name = "one"
        [arms]
        GRPO = {adv_scale="group", loss_agg="seq_mean"}
    """)
    sets = [*REAL_SETS, "steps=2"]
    out = tmp_path / "sweep"
    assert ablate(p, sets=sets, out=out, workers=1, console=quiet()).exit_code == 0
    run = out / "grpo__seed0"
    (run / "summary.json").unlink()  # a partial run, as after a kill -9
    prov = json.loads((run / "provenance.json").read_text())
    prov["libraries"]["transformers"] = "0.0.1"
    (run / "provenance.json").write_text(json.dumps(prov))
    before = tree(out)
    with pytest.raises(AblateError, match=r"started under other libraries \(transformers 0\.0\.1 -> .*--force"):
        ablate(p, sets=sets, out=out, workers=1, console=quiet())
    assert tree(out) == before  # nothing was run or written
    r = ablate(p, sets=sets, out=out, workers=1, force=True, console=quiet())  # --force starts it over
    assert r.exit_code == 0 and run_state(run) == "finished"
