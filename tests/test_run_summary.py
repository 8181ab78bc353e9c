"""A run's summary.json numbers (:func:`drgrpo_cli.metrics.run_summary`): the published runs' summaries are
recomputed exactly from their metrics.jsonl, and the windows follow metrics.py's conventions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drgrpo_cli import runlog
from drgrpo_cli.config import TrainConfig
from drgrpo_cli.metrics import run_summary

RESULTS = Path(__file__).resolve().parents[1] / "results"
KEYS = ("steps", "arm", "adv_scale", "loss_agg", "seed", "final", "growth")


def _published() -> list[Path]:
    return sorted(p.parent for p in RESULTS.glob("*/*/summary.json")
                  if json.loads(p.read_text()).get("status") == "finished")


@pytest.mark.skipif(not _published(), reason="no published runs in this checkout")
def test_published_summaries_are_recomputed_exactly():
    for run in _published():
        summary = json.loads((run / runlog.SUMMARY).read_text())
        cfg = json.loads((run / runlog.CONFIG).read_text())
        rows, _ = runlog.read_jsonl(run / runlog.METRICS)
        arm = TrainConfig.from_dict(cfg).arm  # the trainer's name: the bias pair, then other knobs off default
        got = run_summary(rows, arm, cfg["adv_scale"], cfg["loss_agg"], cfg["seed"])
        assert got == {k: summary[k] for k in KEYS}, run.name


def test_windows_skip_step_0_and_keys_a_run_did_not_log():
    rows = [{"step": 0, "eval/accuracy": 0.1}]
    for s in range(1, 21):
        rows.append({"step": s, "train/reward": s / 20, "train/accuracy": s / 40, "train/len_mean": float(s),
                     "train/len_correct": 10.0, "train/len_incorrect": None if s == 20 else 2.0 * s,
                     "train/truncated_frac": 0.0, **({"eval/accuracy": 0.5} if s == 10 else {})})
    out = run_summary(rows, "GRPO", "group", "seq_mean", 7)
    assert (out["steps"], out["arm"], out["adv_scale"], out["loss_agg"], out["seed"]) == (20, "GRPO", "group",
                                                                                          "seq_mean", 7)
    f, g = out["final"], out["growth"]
    assert f["train/reward"] == pytest.approx((19 + 20) / 2 / 20)  # the last 10% of 20 training steps: 2 rows
    assert f["train/len_incorrect"] == 38.0  # a missing value is skipped inside its window
    assert f["eval/accuracy"] == 0.5 and f["eval/len_mean"] is None  # the last eval point; never logged: None
    assert not any(k.startswith(("train/derailed", "train/clean", "eval_sampled")) for k in f)
    assert g["len_mean"] == pytest.approx((17 + 18 + 19 + 20) / 4 - (1 + 2) / 2)  # late 20% - early 10%
    assert set(g) == {"len_incorrect", "len_correct", "len_mean"}
