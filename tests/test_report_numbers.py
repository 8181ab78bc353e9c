"""The report's numbers (:mod:`drgrpo_cli.report.numbers`): per run as summary.json / summary.csv, per arm
over seeds, paired by seed between arms, difficulty; synthetic runs with known numbers."""

from __future__ import annotations

import json

import pytest

from drgrpo_cli.metrics import last_value, length_growth, series, tail_mean, train_series
from drgrpo_cli.report.plot import plot
from tests.report_helpers import (
    ABS_STD,
    COUNTS,
    G,
    axes_by_title,
    fake_sweep_10,
    md_table,
    small_sweep,
    trainer_like_run,
    write_fake_sweep,
    write_run,
)


sweep = pytest.fixture(scope="module", name="sweep")(small_sweep)  # the plot of the small sweep (made once)
fake10 = pytest.fixture(scope="module", name="fake10")(fake_sweep_10)  # the 10-seed 2x2 sweep's plot (made once)


def test_series_adapter_inputs_and_windows():
    """plot's inputs (rows, DataFrame, Series, plain lists) go through metrics.series, then its windows."""
    import pandas as pd

    vals = [100, 100, 110, 120, 130, 140, 150, 160, 170, 180]
    assert length_growth(vals) == 75.0  # last 2 (175) - first 1 (100)
    rows = [{"step": s + 1, "train/len_incorrect": v} for s, v in enumerate(vals)][::-1]  # unsorted rows
    key = "train/len_incorrect"
    assert series(rows, key) == [float(v) for v in vals]
    df = pd.DataFrame(rows)
    assert series(df, key) == series(rows, key) == series(df.set_index("step")[key], key)
    assert series(df.set_index("step"), key) == series(rows, key)  # steps from the index
    assert length_growth(series(df, key)) == 75.0
    # the step-0 row (eval-only, written before training) is not a training step; a step logged twice keeps its
    # last row (a resumed run)
    logged = [{"step": 0, "eval/accuracy": 0.1}] + rows + [{"step": 10, key: 200.0}]
    assert series(logged, key)[0] is None and len(series(logged, key)) == 11
    assert train_series(logged, key) == [float(v) for v in vals[:-1]] + [200.0]
    assert train_series(pd.DataFrame(logged).set_index("step"), key) == train_series(logged, key)
    # final eval = the last eval point (not a window over eval points)
    assert last_value(series(logged, "eval/accuracy")) == 0.1
    assert last_value([0.2, 0.4, None, float("nan")]) == 0.4 and last_value([None]) is None
    # n = 30 -> windows of 3 and 6 steps (no float round-up to 4)
    assert length_growth(list(range(30))) == pytest.approx((24 + 25 + 26 + 27 + 28 + 29) / 6 - 1)
    # nulls inside a window are skipped; a window of only nulls -> None
    assert length_growth([10, 20, 30, 40, 50, 60, 70, 80, None, 100]) == 90.0
    assert length_growth([None, 1, 2, 3, 4, 5, 6, 7, 8, 9]) is None
    assert length_growth([5.0]) == 0.0
    assert length_growth([]) is None
    assert tail_mean(vals, 0.1) == 180.0
    with pytest.raises(KeyError):
        series(df, "train/nope")


# ---------------------------------------------------------------------------------------------------
# a full sweep
# ---------------------------------------------------------------------------------------------------


def test_sweep_growth_numbers_exact(sweep):
    _, res = sweep
    arms = res.summary["arms"]
    assert list(arms) == ["GRPO", "Dr. GRPO"]
    g = arms["GRPO"]["len_incorrect_growth"]
    assert g["values"] == [40.0, 50.0] and g["mean"] == 45.0
    assert g["lo"] == pytest.approx(45 - 12.7062047 * 5) and g["hi"] == pytest.approx(45 + 12.7062047 * 5)
    assert arms["Dr. GRPO"]["len_incorrect_growth"]["mean"] == 15.0
    # old-style runs (no train/derailed/len_incorrect): the headline falls back to the pooled length
    assert res.summary["headline_key"] == "train/len_incorrect"
    assert arms["GRPO"]["headline"]["growth"]["values"] == [40.0, 50.0]
    # paired by seed: 40 - 10 = 30 and 50 - 20 = 30 -> sd 0, CI [30, 30], 2/2
    (d,) = [p for p in res.summary["paired"] if p["metric"] == "headline_growth"]
    assert d["comparison"] == "GRPO − Dr. GRPO" and d["kind"] == "grpo_vs_drgrpo"
    assert d["diffs"] == [30.0, 30.0] and d["seeds"] == [0, 1] and d["mean"] == 30.0
    assert d["lo"] == d["hi"] == 30.0 and d["signs"] == "2/2" and d["excludes_zero"] is True
    # final reward: GRPO 0.5 / 0.7, Dr. GRPO 0.5 / 0.5 -> diffs 0, 0.2: mean 0.1, sd 0.1414, t_{.975,1} = 12.706
    (r,) = [p for p in res.summary["paired"] if p["metric"] == "final_reward"]
    assert r["diffs"] == pytest.approx([0.0, 0.2]) and r["mean"] == pytest.approx(0.1)
    assert r["lo"] == pytest.approx(0.1 - 12.7062047 * 0.1) and r["hi"] == pytest.approx(0.1 + 12.7062047 * 0.1)
    assert r["signs"] == "1/2" and r["excludes_zero"] is False
    assert "growth_diff_grpo_minus_drgrpo" not in res.summary  # no independent-arms (Welch) comparison any more
    md = res.report.read_text()
    assert "Welch" not in md
    assert "| GRPO | 2 | +45.0 | [-18.5, +108.5] | +40.0, +50.0 |" in md
    assert "| Dr. GRPO | 2 | +15.0 | [-48.5, +78.5] | +10.0, +20.0 |" in md
    # headline table, growth 95% CI of each arm over its own seeds: GRPO 40, 50 -> mean 45, sd 7.0711,
    # half-width t_{.975,1} * sd / sqrt(2) = 12.7062 * 5 = 63.53 -> [-18.5, +108.5]
    assert ("| GRPO | group, seq_mean | 2 | 100.0 → 145.0 | +45.0 | [-18.5, +108.5] | +40.0, +50.0 | 0.600 ± 0.141 |"
            in md)
    assert "| Dr. GRPO | none, max_tokens | 2 | 100.0 → 115.0 | +15.0 | [-48.5, +78.5] | +10.0, +20.0 |" in md
    assert "| arm | adv_scale, loss_agg | seeds | early → late (tokens) | growth | growth 95% CI |" in md
    assert ("| wrong-answer length growth (pooled) | **GRPO − Dr. GRPO** | 2 | +30.0 tokens | [+30.0, +30.0] | "
            "2/2 (larger under GRPO) | excludes 0 |") in md
    assert "| final reward | **GRPO − Dr. GRPO** | 2 | +0.100 | [-1.171, +1.371] | 1/2 (larger under GRPO) | includes 0 |" in md
    assert ("GRPO − Dr. GRPO, final reward: +0.100 (95% CI [-1.171, +1.371], paired over 2 seeds); larger under GRPO "
            "in 1/2 seeds; the CI includes 0, so these seeds do not separate the arms.") in md
    assert "Fallback: no run logged `train/derailed/len_incorrect`" in md


def test_sweep_difficulty_numbers(sweep):
    _, res = sweep
    d = res.summary["difficulty"]
    grpo, dr = d["GRPO"], d["Dr. GRPO"]
    assert grpo["k"] == [0, 1, 2, 3, 4] and grpo["G"] == [G] * 5
    assert grpo["mean_abs_adv"] == pytest.approx(ABS_STD)
    total = sum(c * a for c, a in zip(COUNTS, ABS_STD))
    assert grpo["share"] == pytest.approx([c * a / total for c, a in zip(COUNTS, ABS_STD)])
    assert grpo["edge_ratio"] == pytest.approx(0.8) and dr["edge_ratio"] == pytest.approx(0.75)
    md = res.report.read_text()
    assert "is 0.80× under GRPO, 0.75× under Dr. GRPO that of a mid-difficulty group (2/4 correct)" in md
    assert "up-weights these too-easy/too-hard groups 1.07×" in md
    assert "| GRPO | 1/4 | 40 (22.2%) | 0.800 | 0.80 | 25.8% |" in md


def test_single_seed_has_no_interval(tmp_path):
    write_run(tmp_path / "sw" / "g", seed=0, last=130)
    write_run(tmp_path / "sw" / "d", adv_scale="none", loss_agg="max_tokens", seed=0, last=105)
    res = plot([tmp_path / "sw"], formats=("png",))
    md = res.report.read_text()
    assert "| GRPO | 1 | +30.0 | — |" in md
    assert "| **GRPO − Dr. GRPO** | 1 | +25.0 tokens | — | 1/1 (larger under GRPO) | — |" in md
    assert "+25.0 tokens from 1 seed (seed 0); no interval with one seed." in md


# ---------------------------------------------------------------------------------------------------
# the report agrees with summary.json (trainer) and summary.csv (ablate)
# ---------------------------------------------------------------------------------------------------


def test_report_final_metrics_match_summary_json_and_csv(tmp_path):
    from drgrpo_cli.metrics import run_numbers
    from drgrpo_cli.sweep.plan import read_rows
    from drgrpo_cli.sweep.summary import CSV_COLUMNS, arm_summaries, summary_csv_text

    root = tmp_path / "sw"
    runs = {"grpo-s0": ("group", "seq_mean", 0), "grpo-s1": ("group", "seq_mean", 1),
            "dr-s0": ("none", "max_tokens", 0), "dr-s1": ("none", "max_tokens", 1)}
    for name, (adv, agg, seed) in runs.items():
        rows = trainer_like_run(root / name, adv_scale=adv, loss_agg=agg, seed=seed)
    # not vacuous: the old plot conventions (step-0 row inside the windows, last 10% of eval points) differ
    assert tail_mean(series(rows, "train/reward")) != run_numbers(read_rows(root / "dr-s1"))["final_reward"]
    assert tail_mean(series(rows, "eval/accuracy")) != run_numbers(read_rows(root / "dr-s1"))["eval_accuracy"]

    res = plot([root], formats=("png",))
    arms = arm_summaries(root)
    csv_rows = {r.split(",")[0]: dict(zip(CSV_COLUMNS, r.split(","))) for r in summary_csv_text(arms).splitlines()[1:]}
    assert sorted(csv_rows) == sorted(res.summary["arms"]) == ["Dr. GRPO", "GRPO"]

    # per run: the plot's numbers are summary.json's and metrics.run_numbers'
    for a, s in res.summary["arms"].items():
        for name, growth in s["len_incorrect_growth"]["per_run"].items():
            sj = json.loads((root / name / "summary.json").read_text())
            nums = run_numbers(read_rows(root / name))
            assert growth == sj["growth"]["len_incorrect"] == nums["len_incorrect_growth"]
            # the headline (failure-state wrong-answer length growth) likewise
            head = s["headline"]["per_run"][name]
            assert head == nums["derailed_len_incorrect_growth"] is not None
            if "derailed/len_incorrect" in sj["growth"]:  # trainers that log the failure-state metrics
                assert head == sj["growth"]["derailed/len_incorrect"]
        finals = {k: s["final"][k]["values"] for k in ("train/reward", "train/accuracy", "eval/accuracy")}
        sjs = [json.loads((root / n / "summary.json").read_text())["final"] for n in s["runs"]]
        for k, v in finals.items():
            assert v == [f[k] for f in sjs], k

    # per arm: exactly summary.csv's numbers (ArmSummary), and the same text at the report's precision
    md = res.report.read_text()
    final_t, growth_t = md_table(md, "Final metrics"), md_table(md, "Pooled incorrect-length growth (secondary)")
    for a in arms:
        s, row = res.summary["arms"][a.arm], csv_rows[a.arm]
        assert s["final"]["train/reward"]["mean"] == a.final_reward
        assert s["final"]["train/accuracy"]["mean"] == a.final_accuracy
        assert s["final"]["eval/accuracy"]["mean"] == a.eval_accuracy
        assert s["len_incorrect_growth"]["mean"] == a.len_incorrect_growth
        assert s["len_correct_growth"]["mean"] == a.len_correct_growth
        f, g = final_t[a.arm], growth_t[a.arm]
        assert f[2].split(" ± ")[0] == f"{float(row['final_reward']):.3f}"  # reward
        assert f[3].split(" ± ")[0] == f"{float(row['final_accuracy']):.3f}"  # accuracy
        assert f[7].split(" ± ")[0] == f"{float(row['eval_accuracy']):.3f}"  # eval accuracy
        assert g[2] == f"{float(row['len_incorrect_growth']):+.1f}"
        assert g[5] == f"{float(row['len_correct_growth']):+.1f}"
        assert s["headline"]["growth"]["mean"] == a.headline_growth
        assert a.headline_metric == res.summary["headline_key"] == "train/derailed/len_incorrect"
    assert "**last eval point**" in md and "step ≥ 1" in md
    # the paired comparisons: the same numbers in the report and in ablate's paired.csv
    from drgrpo_cli.sweep.summary import paired_comparisons

    ab = {(r.metric, r.comparison): r.result for r in paired_comparisons(arms)}
    assert len(ab) == len(res.summary["paired"]) == 3
    for p in res.summary["paired"]:
        r = ab[(p["metric"], p["comparison"])]
        assert (p["diffs"], p["mean"], p["lo"], p["hi"], p["signs"]) == (r.diffs, r.mean, r.lo, r.hi, r.signs)


def test_paired_comparisons_use_finished_runs_only_as_paired_csv(tmp_path):
    from drgrpo_cli.sweep.summary import arm_summaries, paired_comparisons

    root = write_fake_sweep(tmp_path / "sweep", seeds=3, steps=30)
    (root / "group-seq_mean__seed1" / "summary.json").unlink()  # GRPO seed 1 still running: a partial run
    res = plot([root], formats=("png",))
    got = {(p["metric"], p["kind"]): p for p in res.summary["paired"]}[("headline_growth", "grpo_vs_drgrpo")]
    assert got["n"] == 2  # seeds 0 and 2; the partial run is drawn but not compared
    csv = {(r.metric, r.kind): r for r in paired_comparisons(arm_summaries(root))}[("headline_growth", "grpo_vs_drgrpo")]
    assert (csv.result.n, csv.result.mean) == (got["n"], pytest.approx(got["mean"]))


# ---------------------------------------------------------------------------------------------------
# a 2x2 sweep with the failure-state metrics (10 seeds); arms by knobs; old metric names
# ---------------------------------------------------------------------------------------------------


def test_fake_sweep_headline_is_failure_state_and_paired(fake10):
    res = fake10
    assert res.summary["headline_key"] == "train/derailed/len_incorrect"
    assert res.summary["smooth"] == 10  # auto: 150 steps / 15
    paired = {(p["metric"], p["kind"]): p for p in res.summary["paired"]}
    g = paired[("headline_growth", "grpo_vs_drgrpo")]
    assert g["n"] == 10 and g["signs"] == "10/10" and g["lo"] > 15 and g["excludes_zero"]
    assert paired[("headline_growth", "length_norm")]["lo"] > 10  # the loss_agg switch carries the growth
    std = paired[("headline_growth", "std_norm")]
    assert abs(std["mean"]) < 5  # the adv_scale switch does little to it
    rew = paired[("final_reward", "grpo_vs_drgrpo")]
    assert rew["excludes_zero"] is False  # same reward in every arm
    assert ("len_incorrect_growth", "grpo_vs_drgrpo") in paired  # the pooled length, as secondary
    md = res.report.read_text()
    assert "## Headline: wrong-answer length in the failure state" in md
    assert "Fallback" not in md
    assert "GRPO − Dr. GRPO, failure-state wrong-answer length growth: +" in md
    assert "larger under GRPO in 10/10 seeds; the CI excludes 0." in md
    assert "GRPO − Dr. GRPO, final reward:" in md and "the CI includes 0, so these seeds do not separate the arms" in md
    # the figure says the same in its subtitle
    fig = res.figures["length_growth"]
    sub = fig.subfigs[0]._suptitle.get_text()
    assert sub.startswith("GRPO − Dr. GRPO, paired over 10 seeds — failure-state wrong-answer growth: +")
    assert "larger under GRPO in 10/10 seeds" in sub and "final reward" in sub and "CI includes 0" in sub


def test_arms_are_identified_by_knobs_not_labels(tmp_path):
    labels = {"GRPO": "baseline", "Dr. GRPO": "fixed", "std-only fix": "a", "length-only fix": "b"}
    root = write_fake_sweep(tmp_path / "sw", seeds=3, steps=20, eval_every=10, labels=labels)
    res = plot([root], formats=("png",), smooth=1)
    kinds = {(p["metric"], p["kind"]): p for p in res.summary["paired"]}
    g = kinds[("headline_growth", "grpo_vs_drgrpo")]
    assert g["comparison"] == "GRPO − Dr. GRPO" and g["detail"] == "baseline (group, seq_mean) − fixed (none, max_tokens)"
    assert g["n"] == 3 and g["mean"] > 0
    assert ("headline_growth", "length_norm") in kinds and ("headline_growth", "std_norm") in kinds
    assert res.summary["arms"]["baseline"]["knobs"] == {  # every objective knob; old configs: the defaults
        "adv_scale": "group", "baseline": "group", "loss_agg": "seq_mean", "length_alpha": 0.0, "ratio_level": "token",
        "policy_loss": "ppo", "dynamic_sampling": False, "overlong_buffer_frac": 0.0, "mask_truncated": False,
        "kl_estimator": "k3", "kl_in": "loss"}
    # styles follow the knobs too
    legend = [t.get_text() for t in res.figures["length_growth"].legends[0].get_texts()]
    assert "baseline [group, seq_mean] (n=3)" in legend


def test_old_metric_names_fall_back_to_pooled_and_greedy(tmp_path):
    root = write_fake_sweep(tmp_path / "sw", seeds=3, steps=30, eval_every=10, new_names=False)
    res = plot([root], formats=("png",))
    assert res.summary["headline_key"] == "train/len_incorrect"
    assert not any("derailed" in w for w in res.warnings)  # all runs are old: said in the report, not a warning
    titles = list(axes_by_title(res.figures["length_growth"]))
    assert titles == ["train reward", "wrong-answer length (all prompts)", "correct-answer length",
                      "eval wrong-answer length\n(greedy)", "eval accuracy\n(greedy)"]
    md = res.report.read_text()
    assert "## Headline: wrong-answer length\n" in md and "Fallback: no run logged `train/derailed/len_incorrect`" in md
    assert "(This is the headline metric here; its paired comparisons are above.)" in md
    assert not any(p["metric"] == "len_incorrect_growth" for p in res.summary["paired"])
    # headline numbers are the pooled growth, exactly as metrics computes them
    from drgrpo_cli.metrics import run_numbers

    name = res.summary["arms"]["GRPO"]["runs"][0]
    rows = [json.loads(x) for x in (root / name / "metrics.jsonl").read_text().splitlines()]
    assert res.summary["arms"]["GRPO"]["headline"]["per_run"][name] == run_numbers(rows)["len_incorrect_growth"]


def test_mixed_new_and_old_runs_use_the_pooled_headline_and_warn(tmp_path):
    root = tmp_path / "sw"
    write_fake_sweep(root / "new", seeds=2, steps=20, eval_every=10)
    write_fake_sweep(root / "old", seeds=1, steps=20, eval_every=10, new_names=False)
    (root / "new" / "grid.json").unlink()
    (root / "old" / "grid.json").unlink()
    res = plot([root / "new", root / "old"], out=tmp_path / "o", formats=("png",))
    assert res.summary["headline_key"] == "train/len_incorrect"
    assert any("logged by only some runs" in w for w in res.warnings)
