"""Re-running a published run's first steps gives its first metric rows exactly (drgrpo_cli.sweep.reproduce and
benchmarks/reproduce.py).

The published studies are ``results/bias-2x2/<arm>__seed<N>/``, three runs of ``results/length-normalizers/`` and
one of ``results/difficulty/`` (``DRGRPO_PUBLISHED_RUN=<run folder>`` checks another run instead). That test is ``slow``: it builds the
``builtin`` base model on first use (about a minute) and skips, saying why, when the run folder is not in the checkout or the installed library versions
are not the run's (``results/constraints.txt`` installs them). The other tests make their own "published"
run with the quick test model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drgrpo_cli.sweep.reproduce import (ReproduceError, compare_rows, describe, library_mismatch, rerun_config,
                                  weights_mismatch)
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results" / "bias-2x2"
NORMALIZERS = ROOT / "results" / "length-normalizers"
SCRIPT = ROOT / "benchmarks" / "reproduce.py"
#: One run per setting of both knobs: GRPO (std, per-length) and Dr. GRPO (neither).
PUBLISHED = ("grpo__seed0", "dr-grpo__seed0")
STEPS = 3


# ---- the comparison --------------------------------------------------------------------------------------------
def test_compare_rows_is_exact_and_ignores_only_time_and_the_end_of_run_eval():
    pub = [{"step": 0, "eval/accuracy": 0.5}, {"step": 1, "train/loss": 0.1, "time/step_s": 1.0},
           {"step": 2, "train/loss": 0.2, "train/len_correct": None}, {"step": 3, "train/loss": 0.3}]
    rep = [{"step": 0, "eval/accuracy": 0.5}, {"step": 1, "train/loss": 0.1, "time/step_s": 9.0},
           {"step": 2, "train/loss": 0.2, "train/len_correct": None},
           {"step": 3, "train/loss": 0.3, "eval/accuracy": 0.6, "eval_sampled/accuracy": 0.4}]
    checks = compare_rows(pub, rep, 3)
    assert [c.step for c in checks] == [0, 1, 2, 3] and all(c.equal for c in checks)
    assert checks[3].ignored == ["eval/accuracy", "eval_sampled/accuracy"]
    assert describe(checks[3]) == "step 3: equal (end-of-run eval keys of the re-run ignored: 2)"
    # one ulp off is a difference; so is an eval key the re-run lacks, or has before its last step
    rep[2]["train/loss"] = 0.20000000000000004
    rep[1]["eval/accuracy"] = 0.5
    del rep[0]["eval/accuracy"]
    checks = compare_rows(pub, rep, 3)
    assert [c.equal for c in checks] == [False, False, False, True]
    assert checks[2].differ == [("train/loss", 0.2, 0.20000000000000004)]
    assert checks[1].differ == [("eval/accuracy", "<absent>", 0.5)]
    assert describe(checks[2]) == "step 2: 1 key(s) differ: train/loss 0.2 != 0.20000000000000004"
    # a missing row, and runs without a step-0 row (eval_every=0)
    assert compare_rows(pub, rep[:2], 3)[3].missing
    assert [c.step for c in compare_rows(pub[1:], rep[1:], 3)] == [1, 2, 3]


def _published(tmp_path: Path, **kw) -> Path:
    """A finished run of the quick test model, standing in for a published one."""
    from drgrpo_cli.trainer import train

    run = tmp_path / "published"
    train(tiny_config(**kw), run, progress=False)
    return run


def test_rerun_config_changes_only_steps_checkpoints_and_auto_threads(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    old = tiny_config(steps=60, threads=0).to_dict()
    old.update(dtype="auto", backend="auto")  # as drgrpo 0.1.0 saved it
    (run / "config.json").write_text(json.dumps(old))
    (run / "provenance.json").write_text(json.dumps({"machine": {"threads": 3}, "libraries": {}}))
    cfg = rerun_config(run, 3)
    want = tiny_config(steps=3, threads=3, checkpoint_every=0).validate()
    assert cfg == want and (cfg.dtype, cfg.backend, cfg.eval_every) == ("float32", "hf", 2)
    with pytest.raises(ReproduceError, match="steps must be in 1..60"):
        rerun_config(run, 61)
    (run / "provenance.json").unlink()
    with pytest.raises(ReproduceError, match="no provenance.json"):
        library_mismatch(run)


def test_a_run_reproduces_exactly_and_the_script_says_so(tmp_path, small_model):
    run = _published(tmp_path, steps=5, eval_every=2, checkpoint_every=2)
    assert library_mismatch(run) is None and weights_mismatch(run, rerun_config(run)) is None
    proc = subprocess.run([sys.executable, str(SCRIPT), str(run), "--steps", str(STEPS)], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1:5] == ["  match  step 0: equal", "  match  step 1: equal", "  match  step 2: equal",
                          "  match  step 3: equal (end-of-run eval keys of the re-run ignored: 32)"]
    assert lines[-1] == "4 of 4 rows match exactly"
    # other libraries: no verdict (exit 2), unless forced
    prov = json.loads((run / "provenance.json").read_text())
    prov["libraries"]["torch"] = "0.0.1"
    (run / "provenance.json").write_text(json.dumps(prov))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)
    assert proc.returncode == 2 and "torch 0.0.1 -> " in proc.stderr and "constraints.txt" in proc.stderr
    # other base weights: refused before training
    prov["weights_sha256"] = "0" * 64
    (run / "provenance.json").write_text(json.dumps(prov))
    assert "have sha256" in weights_mismatch(run, rerun_config(run))


# ---- the published study ----------------------------------------------------------------------------------------
def _published_runs() -> list[Path]:
    if os.environ.get("DRGRPO_PUBLISHED_RUN"):
        return [Path(os.environ["DRGRPO_PUBLISHED_RUN"])]
    # and the length-normalizers study's knobs beyond the 2x2: Delta-L's weights, GSPO's sequence ratio,
    # prompt_mean's group counts
    return [STUDY / name for name in PUBLISHED] + [
        NORMALIZERS / name for name in ("delta-l-alpha-1__seed0", "gspo__seed0", "prompt_mean__seed0")] + [
        ROOT / "results" / "difficulty" / "grpo__seed0"]  # the difficulty task and its own base model


@pytest.mark.slow
@pytest.mark.parametrize("run", _published_runs(), ids=lambda p: p.name)
def test_published_run_reproduces_exactly(run: Path, tmp_path):
    """Rows 0..3 of a published run, re-run here under its library versions, are equal key for key."""
    from drgrpo_cli.tasks.builtin_model import is_builtin
    from drgrpo_cli.provenance import cpu_model
    from drgrpo_cli.sweep.reproduce import reproduce

    if not all((run / f).is_file() for f in ("config.json", "metrics.jsonl", "provenance.json")):
        pytest.skip(f"published run {run} is not in this checkout (config.json, metrics.jsonl, provenance.json)")
    change = library_mismatch(run)
    if change:
        pytest.skip(f"installed libraries are not the ones {run.name} was made with ({change}); the same seed gives "
                    f"another random stream: pip install -e '.[test,math]' -c results/constraints.txt")
    cfg = rerun_config(run, STEPS)
    if not is_builtin(cfg.model) and not Path(cfg.model).is_dir():
        pytest.skip(f"{run.name} was trained from {cfg.model!r}, which is not a built-in or local model")
    prov = json.loads((run / "provenance.json").read_text())
    where = f"published on {prov.get('machine')}, re-run on {cpu_model()!r}"
    try:
        checks = reproduce(run, tmp_path / "rerun", steps=STEPS)
    except ReproduceError as e:  # the base model built here is not the run's
        pytest.fail(f"{e} ({where})")
    bad = [describe(c) for c in checks if not c.equal]
    assert not bad, f"{run.name} not reproduced ({where}): " + "; ".join(bad)
    assert [c.step for c in checks] == list(range(STEPS + 1))
