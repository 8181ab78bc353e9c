"""A sweep's numbers (drgrpo_cli.sweep.summary): summary.csv per arm and paired.csv, exactly, by hand.
"""

from __future__ import annotations

import io
import math

import pytest

from drgrpo_cli.sweep.ablate import ablate, ablate_status
from drgrpo_cli.sweep.summary import (CSV_COLUMNS, PAIRED_COLUMNS, arm_summaries, paired_comparisons, paired_csv_text,
                                      summary_csv_text)
from sweep_helpers import T2, fake_train, quiet, write, write_hand_sweep

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


def test_summary_headline_and_paired_csv_by_hand(tmp_path):
    out = write_hand_sweep(tmp_path / "sweep")
    arms = arm_summaries(out)
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
    arms = arm_summaries(write_hand_sweep(tmp_path / "a", labels=labels))
    rows = paired_comparisons(arms)
    assert rows[0].comparison == "GRPO − Dr. GRPO" and rows[0].detail == "baseline (group, seq_mean) − fixed (none, max_tokens)"
    assert rows[0].result.mean == 19.0
    old = arm_summaries(write_hand_sweep(tmp_path / "b", derailed=False))
    assert all(a.headline_metric == "train/len_incorrect" for a in old)
    rows = paired_comparisons(old)
    assert {r.metric for r in rows} == {"headline_growth", "final_reward"}  # headline = pooled: not twice
    assert rows[0].key == "train/len_incorrect" and rows[0].result.mean == 38.0


def test_summary_csv_adds_a_knob_column_only_when_an_arm_is_off_its_default(tmp_path):
    # every arm at the defaults (here: old configs without the new keys): adv_scale and loss_agg only
    new_keys = ("baseline", "length_alpha", "ratio_level", "policy_loss", "dynamic_sampling", "overlong_buffer_frac",
                "mask_truncated", "kl_estimator", "kl_in")
    old = arm_summaries(write_hand_sweep(tmp_path / "old", drop=new_keys))
    assert all(a.knobs is not None and a.knobs.length_alpha == 0.0 for a in old)  # missing key = the default
    assert summary_csv_text(old).splitlines()[0] == ",".join(CSV_COLUMNS)
    assert [r.kind for r in paired_comparisons(old)][:3] == ["grpo_vs_drgrpo", "length_norm", "std_norm"]
    # Dr. GRPO's loss with Delta-L (length_alpha 1) and GSPO's sequence ratio on the std-only arm: a column each
    arms = arm_summaries(write_hand_sweep(tmp_path / "new", config={
        "Dr. GRPO": {"length_alpha": 1}, "std-only fix": {"ratio_level": "sequence", "epsilon": 3e-4}}))
    lines = summary_csv_text(arms).splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) + ",length_alpha,ratio_level"
    assert lines[1].endswith(",group,seq_mean,0,token") and lines[2].endswith(",none,seq_mean,0,sequence")
    assert lines[4] == "Dr. GRPO,3,3,0,0.583333,0.583333,0.25,2,0,1,train/derailed/len_incorrect,none,max_tokens,1,token"
    # the comparisons follow all the knobs: no Dr. GRPO cell and no 2x2, every arm against GRPO
    rows = [r for r in paired_comparisons(arms) if r.metric == "headline_growth"]
    assert [(r.comparison, r.kind) for r in rows] == [("GRPO − std-only fix", "vs_reference"),
                                                      ("GRPO − length-only fix", "vs_reference"),
                                                      ("GRPO − Dr. GRPO", "vs_reference")]
    assert rows[2].detail == "GRPO (group, seq_mean) − Dr. GRPO (none, max_tokens, length_alpha=1); reference arm: GRPO"
    assert rows[2].result.diffs == [20.0, 22.0, 15.0]
    assert "length_alpha=1" in paired_csv_text(rows)
