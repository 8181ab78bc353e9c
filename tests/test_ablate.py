"""Tests of ``drgrpo ablate``: grid files, run-dir naming, the local and Ray runners (with fake trainers), resume,
failure isolation, summary numbers, and the CLI function.

The fake trainers below are module-level so that spawned worker processes (and Ray workers) can import them.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from drgrpo_cli.sweep import grid as gridmod
from drgrpo_cli.sweep.ablate import (
    CSV_COLUMNS,
    PAIRED_COLUMNS,
    AblateError,
    ablate,
    ablate_status,
    paired_comparisons,
    paired_csv_text,
    summarize,
    summary_csv_text,
)
from drgrpo_cli.config import TrainConfig
from drgrpo_cli.sweep.grid import BUNDLED_GRIDS, GridError, load_grid, resolve_grid_path, slugify
from drgrpo_cli.metrics import length_growth, tail_mean, window_size
from drgrpo_cli.runlog import run_state

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------------------------------------
# fake trainers (same signature as drgrpo_cli.trainer.train)


class RunExistsError(Exception):
    pass


def _metrics_row(config: TrainConfig, step: int) -> dict:
    # deterministic, seed-dependent synthetic metrics (exact binary fractions)
    k = 1 + config.seed
    row = {
        "step": step,
        "train/reward": step / (8 * k),
        "train/accuracy": 0.5,
        "train/len_correct": 20.0,
        "train/len_incorrect": 10.0 * step * k,
        "train/len_mean": 15.0,
    }
    if step % 5 == 0:
        row["eval/accuracy"] = 0.25 * (step // 5)
    return row


def fake_train(config, out_dir, *, resume=False, force=False, on_step=None, progress=True):
    """Mimics the trainer's contract: refuses an existing dir, resumes after the last metrics row."""
    out_dir = Path(out_dir)
    summary_path = out_dir / "summary.json"
    if out_dir.exists() and (out_dir / "config.json").exists() and not (resume or force):
        raise RunExistsError(f"{out_dir} exists")
    if resume and summary_path.exists() and json.loads(summary_path.read_text()).get("status") == "finished":
        return json.loads(summary_path.read_text())
    if force and out_dir.exists():
        for p in out_dir.iterdir():
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "calls.jsonl", "a") as f:
        f.write(json.dumps({"resume": resume, "force": force, "pid": os.getpid(), "start": time.time()}) + "\n")
    (out_dir / "config.json").write_text(json.dumps(config.validate().to_dict()))
    done = 0
    metrics = out_dir / "metrics.jsonl"
    if resume and metrics.exists():
        done = len([ln for ln in metrics.read_text().splitlines() if ln.strip()])
    if summary_path.exists():
        summary_path.unlink()
    with open(metrics, "a") as f:
        for step in range(done + 1, config.steps + 1):
            row = _metrics_row(config, step)
            f.write(json.dumps(row) + "\n")
            f.flush()
            if on_step:
                on_step(row)
            _maybe_fail(config, step, out_dir)
    summary = {"status": "finished", "steps": config.steps}
    summary_path.write_text(json.dumps(summary))
    with open(out_dir / "calls.jsonl", "a") as f:
        f.write(json.dumps({"end": time.time()}) + "\n")
    return summary


def _maybe_fail(config, step, out_dir):
    """Failure injection keyed on lr (so grids can choose which arm fails)."""
    if config.lr == 0.125 and step == 2:
        raise FloatingPointError("NaN loss at step 2")
    if config.lr == 0.25 and step == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    if config.lr == 0.375 and step == 2:
        os._exit(3)
    if config.lr == 0.5:
        time.sleep(0.4)  # slow enough to see two runs overlap


def calls(run_dir: Path) -> list[dict]:
    p = Path(run_dir) / "calls.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines()] if p.exists() else []


def quiet():
    from rich.console import Console

    return Console(file=io.StringIO(), width=160)


def write(tmp_path: Path, text: str, name: str = "g.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


SMALL = """
name = "small"
seeds = [0]
[base]
steps = 4
[axes]
adv_scale = ["group", "none"]
loss_agg = ["seq_mean", "max_tokens"]
[arms]
GRPO = {adv_scale="group", loss_agg="seq_mean"}
"Dr. GRPO" = {adv_scale="none", loss_agg="max_tokens"}
"""


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------------------
# metrics math


def test_windows_and_growth():
    assert window_size(200, 0.1) == 20 and window_size(200, 0.2) == 40
    assert window_size(10, 0.1) == 1 and window_size(2, 0.1) == 1 and window_size(0, 0.1) == 0
    assert window_size(15, 0.1) == 2  # ceil
    s = [float(i) for i in range(1, 11)]
    assert tail_mean(s, 0.1) == 10.0
    assert length_growth(s) == 9.5 - 1.0
    assert length_growth([None, 2.0, None, 4.0, None], 0.2, 0.4) is None  # first window has no value
    assert length_growth([None] * 5) is None
    assert length_growth([1.0, None, 3.0, float("nan"), 5.0], 0.4, 0.4) == 5.0 - 1.0


# ----------------------------------------------------------------------------------------------------------
# grid files


def test_packaged_grids_are_the_ablations_folder():
    """One copy of each grid: ablations/*.toml, installed as the package drgrpo_cli.grids (pyproject.toml)."""
    repo = sorted(p.name for p in (REPO / "ablations").glob("*.toml"))
    assert repo == sorted(f"{n}.toml" for n in BUNDLED_GRIDS)
    assert not (REPO / "drgrpo_cli" / "data").exists() and not (REPO / "drgrpo_cli" / "grids").exists()
    for n in BUNDLED_GRIDS:  # the bundled grids read by name are these files
        assert resolve_grid_path(n).read_bytes() == (REPO / "ablations" / f"{n}.toml").read_bytes(), n
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setup["package-dir"] == {"drgrpo_cli.grids": "ablations"}
    assert setup["package-data"]["drgrpo_cli.grids"] == ["*.toml"]
    # the packages are listed, not found: every package of the source tree must be in the list
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "drgrpo_cli").rglob("__init__.py")}
    assert sorted(setup["packages"]) == sorted(found | {"drgrpo_cli.grids"})

def test_default_grid_resolution(tmp_path, monkeypatch):
    assert resolve_grid_path(None) == gridmod.grids_dir() / "bias-2x2.toml"
    assert resolve_grid_path("loss-modes") == gridmod.grids_dir() / "loss-modes.toml"
    assert resolve_grid_path("loss-modes.toml") == gridmod.grids_dir() / "loss-modes.toml"
    own = write(tmp_path, SMALL, "loss-modes.toml")
    monkeypatch.chdir(tmp_path)
    assert resolve_grid_path("loss-modes.toml") == Path("loss-modes.toml")  # an existing file wins
    assert resolve_grid_path(own) == own
    with pytest.raises(GridError, match="no such grid file"):
        resolve_grid_path("nope")


def test_bias_2x2_grid():
    g = load_grid(None)
    assert g.name == "bias-2x2" and g.seeds == (0, 1, 2)  # 3 paired seeds by default
    assert [(r.name, r.arm) for r in g.runs] == [  # seed-major: every arm of seed 0 first
        (f"{slug}__seed{s}", arm) for s in (0, 1, 2) for slug, arm in (
            ("grpo", "GRPO"), ("std-only-fix", "std-only fix"), ("length-only-fix", "length-only fix"),
            ("dr-grpo", "Dr. GRPO"))]
    knobs = {r.arm: (r.config.adv_scale, r.config.loss_agg) for r in g.runs}
    assert knobs == {"GRPO": ("group", "seq_mean"), "std-only fix": ("none", "seq_mean"),
                     "length-only fix": ("group", "max_tokens"), "Dr. GRPO": ("none", "max_tokens")}
    base = TrainConfig()
    for r in g.runs:  # base = the built-in task defaults, 60 steps with an eval every 15
        assert r.config.task == "builtin" and r.config.lr == base.lr and r.config.group_size == base.group_size
        assert (r.config.steps, r.config.eval_every) == (60, 15)


def test_loss_modes_grid():
    g = load_grid("loss-modes")
    assert g.seeds == (0, 1, 2)
    assert [(r.name, r.arm, r.config.adv_scale, r.config.loss_agg) for r in g.runs if r.seed == 0] == [
        ("grpo__seed0", "GRPO", "group", "seq_mean"),
        ("dapo-token_mean__seed0", "DAPO (token_mean)", "group", "token_mean"),
        ("dr-grpo-loss-max_tokens__seed0", "Dr. GRPO loss (max_tokens)", "group", "max_tokens"),
        ("seq_sum__seed0", "seq_sum", "group", "seq_sum")]


def test_qwen_grid_validates():
    g = load_grid("qwen-math-1.5b-2x2")
    assert len(g.runs) == 4
    for r in g.runs:
        c = r.config.validate()
        assert (c.model, c.task, c.dataset, c.eval_datasets, c.template) == (
            "Qwen/Qwen2.5-Math-1.5B", "math", "data/math_lvl3to5.jsonl", ("data/math500.jsonl",), "qwen_math")
        assert (c.backend, c.device, c.dtype) == ("vllm", "cuda", "bfloat16")
        assert (c.group_size, c.prompts_per_step, c.max_tokens, c.lr, c.beta, c.epsilon, c.temperature,
                c.eval_every, c.steps) == (8, 128, 3000, 1e-6, 0.0, 0.2, 1.0, 16, 150)
        assert c.loss_max_tokens == 3000


def test_slugify():
    assert slugify("GRPO") == "grpo"
    assert slugify("Dr. GRPO") == "dr-grpo"
    assert slugify("std-only fix") == "std-only-fix"
    assert slugify("DAPO (token_mean)") == "dapo-token_mean"
    assert slugify("lr 0.001") == "lr-0.001"
    assert slugify("  ##  ") == ""


def test_unnamed_points_and_seeds_and_sets(tmp_path):
    p = write(tmp_path, """
        seeds = [0, 1]
        [base]
        steps = 3
        [axes]
        adv_scale = ["group", "none"]
        loss_agg = ["seq_mean", "max_tokens"]
        lr = [0.001]
    """)
    g = load_grid(p, sets=["steps=7", "max_tokens=32"])
    assert g.name == "g"  # file stem
    names = [r.name for r in g.runs]
    assert names[:4] == ["group-seq_mean-0.001__seed0", "group-max_tokens-0.001__seed0",
                         "none-seq_mean-0.001__seed0", "none-max_tokens-0.001__seed0"]
    assert names[4:] == [n.replace("seed0", "seed1") for n in names[:4]]  # seed-major
    assert [r.arm for r in g.runs[:4]] == ["GRPO (lr=0.001)", "length-only fix (lr=0.001)",
                                           "std-only fix (lr=0.001)", "Dr. GRPO (lr=0.001)"]
    assert all(r.config.steps == 7 and r.config.max_tokens == 32 for r in g.runs)
    assert [r.config.seed for r in g.runs] == [0] * 4 + [1] * 4
    assert g.runs[0].overrides == {"adv_scale": "group", "loss_agg": "seq_mean", "lr": 0.001}
    g2 = load_grid(p, seeds=[3])
    assert [r.name for r in g2.runs][0] == "group-seq_mean-0.001__seed3" and len(g2.runs) == 4
    j = g.to_json()
    assert j["arms"]["none-max_tokens-0.001__seed1"] == "Dr. GRPO (lr=0.001)"
    assert j["runs"][0]["overrides"] == {"adv_scale": "group", "loss_agg": "seq_mean", "lr": 0.001}


def test_arms_only_grid(tmp_path):
    p = write(tmp_path, """
        name = "presets"
        [base]
        steps = 3
        [arms]
        GRPO = {adv_scale="group", loss_agg="seq_mean"}
        "DAPO-ish" = {adv_scale="group", loss_agg="token_mean", epsilon_high=0.28}
        [arms."Dr. GRPO"]
        adv_scale = "none"
        loss_agg = "max_tokens"
        lr = 0.01
    """)
    g = load_grid(p)
    assert [(r.name, r.arm) for r in g.runs] == [("grpo__seed0", "GRPO"), ("dapo-ish__seed0", "DAPO-ish"),
                                                 ("dr-grpo__seed0", "Dr. GRPO")]
    assert g.runs[1].config.epsilon_high == 0.28 and g.runs[2].config.lr == 0.01


def test_lists_and_types_are_coerced(tmp_path):
    p = write(tmp_path, """
        [base]
        lr = 1
        task = "math"
        dataset = "d.jsonl"
        eval_datasets = ["a.jsonl", "b.jsonl"]
        [arms]
        a = {}
    """)
    c = load_grid(p).runs[0].config
    assert c.lr == 1.0 and isinstance(c.lr, float) and c.eval_datasets == ("a.jsonl", "b.jsonl")


ERRORS = [
    # (grid text, line, fragment of the message)
    ('name = "x"\n[axes]\nadv_scale = ["group" "none"]\n', 3, "TOML syntax error: Unclosed array"),
    ('[axes]\nadv_scale = ["group",\n', 2, "TOML syntax error"),
    ('[base]\nsteps = 3\n[base]\nlr = 1\n', 3, "twice"),
    ('name = "x"\nstepz = 3\n[axes]\nadv_scale = ["group"]\n', 2, "unknown top-level key 'stepz'"),
    ('name = "x"\nsteps = 3\n[axes]\nadv_scale = ["group"]\n', 2, "config fields go in [base]"),
    ('[base]\nsteps = 3\nlrr = 0.1\n[axes]\nadv_scale = ["group"]\n', 3, "unknown config key 'lrr'"),
    ('[base]\nsteps = 3\n[axes]\nadv_scale = ["group"]\nloss_aggr = ["seq_mean"]\n', 5, "unknown config key 'loss_aggr'"),
    ('[axes]\nadv_scale = ["group", "none"]\nloss_agg = []\n', 3, "empty"),
    ('[axes]\nadv_scale = "group"\n', 2, "must be a list"),
    ('[base]\nsteps = "many"\n[axes]\nadv_scale = ["group"]\n', 2, "steps"),
    ('[base]\nsteps = 2.5\n[axes]\nadv_scale = ["group"]\n', 2, "expected int"),
    ('[axes]\nadv_scale = ["group", "grp"]\n', 2, "adv_scale must be one of"),
    ('[base]\nsteps = 0\n[axes]\nadv_scale = ["group"]\n', 2, "steps must be >= 1"),
    ('[base]\nseed = 3\n[axes]\nadv_scale = ["group"]\n', 2, "seed is not a grid key"),
    ('seeds = []\n[axes]\nadv_scale = ["group"]\n', 1, "seeds must be a non-empty list"),
    ('name = "x"\n[base]\nsteps = 3\n', 1, "grid has no runs"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\nX = {adv_scale="batch"}\n', 4, "matches no grid point"),
    ('[axes]\nadv_scale = ["group"]\nloss_agg = ["seq_mean", "max_tokens"]\n[arms]\n"My arm" = {adv_scale="group"}\n',
     5, "matches 2 grid points; give a value for loss_agg"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\nA = {adv_scale="none"}\nB = {adv_scale="none"}\n', 5,
     "name the same grid point"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\nA = {adv_scale="none", lr=0.1}\n', 4, "not an axis"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\nA = {adv_scale="none", lrr=0.1}\n', 4, "unknown config key 'lrr'"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\n"A!" = {adv_scale="none"}\n"a" = {adv_scale="group"}\n', 5,
     "same directory name"),
    ('[base]\nsteps = 3\n[arms]\nA = {adv_scale="none"}\nB = {adv_scale="group", loss_agg="nope"}\n', 5,
     "loss_agg must be one of"),
    ('[base]\ntask = "math"\n[axes]\nadv_scale = ["group"]\n', 2, "task 'math' needs --dataset"),
]


@pytest.mark.parametrize("text,line,fragment", ERRORS)
def test_grid_errors_name_file_and_line(tmp_path, text, line, fragment):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(GridError) as ei:
        load_grid(p)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}:{line}: "), msg
    assert fragment in msg, msg


def test_set_errors(tmp_path):
    p = write(tmp_path, SMALL)
    for sets, fragment in ((["stepz=3"], "--set stepz=3: unknown config key"), (["steps"], "expected KEY=VALUE"),
                           (["adv_scale=none"], "is an axis"), (["seed=3"], "--seeds"),
                           (["lr=fast"], "--set lr=fast"), (["lr=-1"], "lr must be > 0")):
        with pytest.raises(GridError, match=None) as ei:
            load_grid(p, sets=sets)
        assert fragment in str(ei.value), (sets, str(ei.value))
    with pytest.raises(GridError, match="--seeds"):
        load_grid(p, seeds=[-1])


def test_unreadable_grid(tmp_path):
    with pytest.raises(GridError, match="no such grid file"):
        load_grid(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------------------------------------
# runner: dry run, parallel, failures, resume, grid.json, summary


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


FAILING = """
name = "failing"
[base]
steps = 4
[arms]
ok1 = {adv_scale="group", loss_agg="seq_mean"}
nan = {adv_scale="none", loss_agg="max_tokens", lr=0.125}
sigkill = {adv_scale="none", loss_agg="seq_mean", lr=0.25}
osexit = {adv_scale="group", loss_agg="max_tokens", lr=0.375}
ok2 = {adv_scale="group", loss_agg="token_mean"}
"""


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


def test_grid_json_conflict_and_merge(tmp_path):
    p = write(tmp_path, SMALL)
    out = tmp_path / "sweep"
    ablate(p, out=out, train_fn=fake_train, console=quiet())
    g1 = (out / "grid.json").read_bytes()
    with pytest.raises(GridError) as ei:
        ablate(p, out=out, sets=["steps=5"], train_fn=fake_train, console=quiet())
    assert "different grid" in str(ei.value) and "--force" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(GridError):
        ablate(p, out=out, sets=["steps=5"], dry_run=True, train_fn=fake_train, console=quiet())
    assert (out / "grid.json").read_bytes() == g1
    # more seeds: compatible, grid.json becomes the union
    r = ablate(p, out=out, seeds=[1], train_fn=fake_train, console=quiet())
    assert r.exit_code == 0
    g = json.loads((out / "grid.json").read_text())
    assert len(g["runs"]) == 8 and g["seeds"] == [0, 1] and len(g["arms"]) == 8
    arms = summarize(out)
    assert [(a.arm, a.runs_done, a.runs_total) for a in arms][0] == ("GRPO", 2, 2)
    # --force replaces it
    r = ablate(p, out=out, sets=["steps=2"], force=True, train_fn=fake_train, console=quiet())
    g = json.loads((out / "grid.json").read_text())
    assert r.exit_code == 0 and len(g["runs"]) == 4 and g["runs"][0]["config"]["steps"] == 2


def test_summary_numbers_exact(tmp_path):
    p = write(tmp_path, """
        name = "numbers"
        seeds = [0, 1]
        [base]
        steps = 10
        [arms]
        GRPO = {adv_scale="group", loss_agg="seq_mean"}
    """)
    out = tmp_path / "sweep"
    r = ablate(p, out=out, train_fn=fake_train, console=quiet())
    assert r.exit_code == 0
    # seed 0 (k=1): reward = step/8 -> last 10% (step 10) = 1.25; seed 1 (k=2): step/16 -> 0.625
    # len_incorrect = 10*step*k: last 20% (steps 9, 10) = 95k, first 10% (step 1) = 10k -> growth 85k
    # eval/accuracy at steps 5 and 10 = 0.25, 0.5 -> last = 0.5
    a = r.arms[0]
    assert (a.arm, a.runs_done, a.runs_total, a.runs_failed) == ("GRPO", 2, 2, 0)
    assert a.final_reward == (1.25 + 0.625) / 2
    assert a.final_accuracy == 0.5
    assert a.eval_accuracy == 0.5
    assert a.len_incorrect_growth == (85.0 + 170.0) / 2
    assert a.len_correct_growth == 0.0
    # no train/derailed/len_incorrect logged: the headline is the pooled growth, and says so
    assert a.headline_growth == a.len_incorrect_growth and a.headline_metric == "train/len_incorrect"
    assert (a.adv_scale, a.loss_agg) == ("group", "seq_mean")
    assert (out / "summary.csv").read_text() == (
        ",".join(CSV_COLUMNS) + "\n" + "GRPO,2,2,0,0.9375,0.5,0.5,127.5,0,127.5,train/len_incorrect,group,seq_mean\n")
    # one arm: nothing to compare, paired.csv has its header only
    assert r.paired == [] and (out / "paired.csv").read_text() == ",".join(PAIRED_COLUMNS) + "\n"
    # a partial run does not count towards the numbers
    (out / "grpo__seed1" / "summary.json").unlink()
    s = ablate_status(out, console=quiet())
    assert s.arms[0].runs_done == 1 and s.arms[0].final_reward == 1.25
    assert {x.name: x.status for x in s.runs} == {"grpo__seed0": "finished", "grpo__seed1": "partial"}
    assert s.runs[0].step == 10 and s.runs[0].steps == 10


# growth of the failure-state wrong-answer length per arm and seed (2x2, 3 seeds), and final reward
HAND_GROWTH = {"GRPO": [20.0, 24.0, 16.0], "std-only fix": [18.0, 20.0, 16.0], "length-only fix": [2.0, 4.0, 0.0],
               "Dr. GRPO": [0.0, 2.0, 1.0]}
HAND_REWARD = {"GRPO": [0.5, 0.25, 0.5], "std-only fix": [0.5, 0.5, 0.5], "length-only fix": [0.5, 0.5, 0.5],
               "Dr. GRPO": [0.5, 0.5, 0.75]}
HAND_KNOBS = {"GRPO": ("group", "seq_mean"), "std-only fix": ("none", "seq_mean"),
              "length-only fix": ("group", "max_tokens"), "Dr. GRPO": ("none", "max_tokens")}
T2 = 4.3026527  # t_{0.975, 2}


def write_hand_sweep(root: Path, labels: dict[str, str] | None = None, derailed: bool = True) -> Path:
    """A finished 2x2 sweep (grid.json + run dirs) with 10 steps per run: failure-state wrong-answer length
    10 at step 1 and 10 + growth on the last 20% of steps; pooled length = 2x that; constant reward."""
    runs = []
    for arm, (adv, agg) in HAND_KNOBS.items():
        label = (labels or {}).get(arm, arm)
        for seed in range(3):
            d = root / f"{slugify(label)}__seed{seed}"
            d.mkdir(parents=True)
            cfg = TrainConfig(adv_scale=adv, loss_agg=agg, seed=seed, steps=10).to_dict()
            (d / "config.json").write_text(json.dumps(cfg))
            g, rew = HAND_GROWTH[arm][seed], HAND_REWARD[arm][seed]
            rows = [{"step": 0, "eval/accuracy": 0.25}]
            for s in range(1, 11):
                li = 10.0 if s == 1 else 10.0 + g if s >= 9 else 50.0
                row = {"step": s, "train/reward": rew, "train/accuracy": rew, "train/len_incorrect": 2 * li,
                       "train/len_correct": 5.0}
                if derailed:
                    row["train/derailed/len_incorrect"] = li
                rows.append(row)
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (d / "summary.json").write_text(json.dumps({"status": "finished", "steps": 10}))
            runs.append({"dir": d.name, "arm": label, "seed": seed, "overrides": {}, "config": cfg})
    (root / "grid.json").write_text(json.dumps({"name": "hand", "source": "test", "seeds": [0, 1, 2], "base": {},
                                                "arms": {r["dir"]: r["arm"] for r in runs}, "runs": runs}))
    return root


def test_summary_headline_and_paired_csv_by_hand(tmp_path):
    out = write_hand_sweep(tmp_path / "sweep")
    arms = summarize(out)
    by = {a.arm: a for a in arms}
    assert by["GRPO"].headline_growth == 20.0 and by["GRPO"].headline_metric == "train/derailed/len_incorrect"
    assert by["GRPO"].len_incorrect_growth == 40.0  # pooled = 2x, kept as a secondary column
    assert by["GRPO"].per_seed["headline_growth"] == {0: 20.0, 1: 24.0, 2: 16.0}
    csv_lines = summary_csv_text(arms).splitlines()
    assert csv_lines[1] == "GRPO,3,3,0,0.416667,0.416667,0.25,40,0,20,train/derailed/len_incorrect,group,seq_mean"
    assert csv_lines[4] == "Dr. GRPO,3,3,0,0.583333,0.583333,0.25,2,0,1,train/derailed/len_incorrect,none,max_tokens"

    rows = paired_comparisons(arms)
    assert [(r.metric, r.kind) for r in rows] == [
        (m, k) for m in ("headline_growth", "final_reward", "len_incorrect_growth")
        for k in ("grpo_vs_drgrpo", "length_norm", "std_norm")]
    main, length, std = (r.result for r in rows[:3])
    # GRPO - Dr. GRPO per seed 20, 22, 15: mean 19, sd sqrt(13)
    half = T2 * math.sqrt(13 / 3)
    assert main.diffs == [20.0, 22.0, 15.0] and (main.lo, main.hi) == pytest.approx((19 - half, 19 + half))
    assert main.signs == "3/3"
    assert length.diffs == [18.0, 19.0, 15.5] and length.mean == 17.5 and length.signs == "3/3"
    assert std.diffs == [2.0, 3.0, -0.5] and std.mean == 1.5 and std.signs == "2/3" and not std.excludes_zero
    # final reward GRPO - Dr. GRPO: 0, -0.25, -0.25
    assert rows[3].result.diffs == [0.0, -0.25, -0.25] and rows[3].result.signs == "2/3"

    text = paired_csv_text(rows)
    import csv as csv_mod

    recs = list(csv_mod.DictReader(io.StringIO(text)))
    assert list(recs[0]) == list(PAIRED_COLUMNS)
    r0 = recs[0]
    assert (r0["metric"], r0["key"], r0["comparison"], r0["kind"], r0["n_seeds"], r0["mean_diff"], r0["same_sign"],
            r0["seeds"], r0["per_seed"]) == ("headline_growth", "train/derailed/len_incorrect", "GRPO - Dr. GRPO",
                                             "grpo_vs_drgrpo", "3", "19", "3", "0;1;2", "20;22;15")
    assert float(r0["ci_lo"]) == pytest.approx(19 - half, abs=1e-4)
    assert float(r0["ci_hi"]) == pytest.approx(19 + half, abs=1e-4)
    assert r0["detail"] == "GRPO (group, seq_mean) - Dr. GRPO (none, max_tokens)"
    assert recs[1]["comparison"] == "length norm. (seq_mean - max_tokens)" and recs[1]["per_seed"] == "18;19;15.5"
    assert recs[6]["key"] == "train/len_incorrect" and recs[6]["per_seed"] == "40;44;30"  # pooled: 2x


def test_paired_uses_knobs_and_old_runs_fall_back(tmp_path):
    labels = {"GRPO": "baseline", "Dr. GRPO": "fixed", "std-only fix": "p", "length-only fix": "q"}
    arms = summarize(write_hand_sweep(tmp_path / "a", labels=labels))
    rows = paired_comparisons(arms)
    assert rows[0].comparison == "GRPO − Dr. GRPO" and rows[0].detail == "baseline (group, seq_mean) − fixed (none, max_tokens)"
    assert rows[0].result.mean == 19.0
    old = summarize(write_hand_sweep(tmp_path / "b", derailed=False))
    assert all(a.headline_metric == "train/len_incorrect" for a in old)
    rows = paired_comparisons(old)
    assert {r.metric for r in rows} == {"headline_growth", "final_reward"}  # headline = pooled: not twice
    assert rows[0].key == "train/len_incorrect" and rows[0].result.mean == 38.0


def test_status_prints_the_paired_table(tmp_path):
    from typer.testing import CliRunner

    from drgrpo_cli.cli.ablate import ablate_cli

    out = write_hand_sweep(tmp_path / "sweep")
    app = typer_app(ablate_cli)
    res = CliRunner().invoke(app, ["ablate", "--status", str(out)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "per arm (finished runs, mean over seeds)" in text and "Δlen wrong fail" in text
    assert "paired over seeds (finished runs)" in text
    assert text.index("per arm") < text.index("paired over seeds")
    lines = [ln for ln in text.splitlines() if "GRPO − Dr. GRPO" in ln]
    assert len(lines) == 3  # headline, final reward, pooled
    assert "Δlen wrong (fail)" in lines[0] and "+19.0" in lines[0] and "[+10.0, +28.0]" in lines[0]
    assert "3/3" in lines[0] and "excludes 0" in lines[0]
    std = [ln for ln in text.splitlines() if "std norm." in ln][0]
    assert "+1.5" in std and "2/3" in std and "includes 0" in std
    assert not (out / "paired.csv").exists()  # --status reads only


def typer_app(fn):
    import typer

    app = typer.Typer()
    app.command("ablate")(fn)
    app.command("other")(lambda: None)
    return app


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


def test_live_view_renders(tmp_path):
    from rich.console import Console

    buf = io.StringIO()
    con = Console(file=buf, width=160, force_terminal=True)
    p = write(tmp_path, SMALL)
    r = ablate(p, out=tmp_path / "sweep", train_fn=fake_train, console=con, live=True, workers=2)
    assert r.exit_code == 0
    text = buf.getvalue()
    assert "grpo__seed0" in text and "finished" in text and "4/4" in text


# ----------------------------------------------------------------------------------------------------------
# CLI function


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    code = ("import typer, sys\nfrom drgrpo_cli.cli.ablate import ablate_cli\n"
            "app = typer.Typer()\napp.command('ablate')(ablate_cli)\n@app.command()\ndef other(): pass\n"
            "app(prog_name='drgrpo')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "150"}
    return subprocess.run([sys.executable, "-c", code, "ablate", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_cli_module_imports_are_light():
    code = ("import sys, time; t = time.time(); import drgrpo_cli.cli.ablate; "
            "heavy = [m for m in ('torch', 'drgrpo_cli.sweep.ablate', 'ray', 'multiprocessing.managers') if m in sys.modules]; "
            "assert not heavy, heavy")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_cli_help_dry_run_and_errors(tmp_path):
    res = _cli("--help")
    assert res.returncode == 0 and "--seeds" in res.stdout and "--status" in res.stdout and "--set" in res.stdout
    res = _cli("--dry-run", "--set", "steps=3", "--seeds", "0,1", "-o", str(tmp_path / "s"))
    assert res.returncode == 0, res.stderr
    assert "dr-grpo__seed1" in res.stdout and not (tmp_path / "s").exists()
    for args, fragment in ((["--set", "stepz=3", "--dry-run"], "unknown config key"),
                           (["--seeds", "a", "--dry-run"], "--seeds"),
                           (["--seeds", "0-2,2", "--dry-run"], "lists a seed twice"),
                           (["--seeds", "5-3", "--dry-run"], "ranges like"),
                           (["nope.toml", "--dry-run"], "no such grid file"),
                           (["--backend", "slurm", "--dry-run"], "backend"),
                           (["--status", str(tmp_path / "none")], "no such sweep directory"),
                           (["--status", str(tmp_path), "--force"], "--status takes only")):
        res = _cli(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], (args, res.stderr)
    bad = tmp_path / "bad.toml"
    bad.write_text("[axes]\nadv_scale = [\n")
    res = _cli(str(bad), "--dry-run")
    assert res.returncode == 2 and f"{bad}:2:" in res.stderr


def test_cli_status_and_failed_exit_code(tmp_path):
    p = write(tmp_path, FAILING.replace('sigkill = {adv_scale="none", loss_agg="seq_mean", lr=0.25}\n', "")
              .replace('osexit = {adv_scale="group", loss_agg="max_tokens", lr=0.375}\n', ""))
    out = tmp_path / "sweep"
    ablate(p, out=out, train_fn=fake_train, console=quiet())
    res = _cli("--status", str(out))
    assert res.returncode == 0, res.stderr
    assert "nan__seed0" in res.stdout and "failed" in res.stdout and "NaN loss" in res.stdout


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

REAL_SETS = ["model=builtin-small", "prompts_per_step=4", "group_size=4", "max_tokens=24", "eval_every=2",
             "eval_max_prompts=8", "checkpoint_every=2", "samples_per_step=1", "threads=1"]


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
        from drgrpo_cli.sweep.ablate import _exit_with_parent
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


def test_seeds_take_lists_and_ranges():
    from drgrpo_cli.cli.ablate import parse_seeds

    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("0-9") == list(range(10))
    assert parse_seeds("0-2, 7") == [0, 1, 2, 7] and parse_seeds("3") == [3]
    for bad in ("", "a", "2-", "-1", "5-3", "1.5"):
        with pytest.raises(ValueError, match="ranges like"):
            parse_seeds(bad)
