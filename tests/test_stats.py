"""Paired statistics over seeds (:mod:`drgrpo_cli.report.stats`) and the per-run headline numbers
(:func:`drgrpo_cli.metrics.run_numbers`), with numbers computed by hand."""

from __future__ import annotations

import math

import pytest

from drgrpo_cli.metrics import HEADLINE, HEADLINE_FALLBACK, headline, headline_key, run_numbers
from drgrpo_cli.report.stats import KNOBS as KNOBS_
from drgrpo_cli.report.stats import (
    DRGRPO_KNOBS,
    GRPO_KNOBS,
    Contrast,
    Knobs,
    arm_knobs,
    by_seed,
    contrast_values,
    describe,
    differing_knobs,
    evaluate,
    knob_label,
    knob_text,
    knobs_of,
    mean_ci,
    paired,
    paired_diff,
    plan_contrasts,
    knobs_with,
    reference_arm,
    t_crit,
    t_quantile,
)

T3 = 3.1824463  # t_{0.975, 3}
T2 = 4.3026527  # t_{0.975, 2}


def test_t_quantiles():
    assert t_quantile(0.975, 3) == pytest.approx(T3, rel=1e-7)
    assert t_crit(2) == pytest.approx(T2, rel=1e-7)
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, rel=1e-7)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764451, rel=1e-7)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


def test_paired_hand_computed():
    # diffs 1, 2, 3, 4: mean 2.5, sd sqrt(5/3) = 1.291, CI 2.5 -+ 3.182 * 1.291 / 2 = [0.446, 4.554], 4/4
    p = paired({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0})
    assert p.n == 4 and p.mean == 2.5
    assert p.sd == pytest.approx(math.sqrt(5 / 3)) and p.sd == pytest.approx(1.291, abs=1e-3)
    assert p.lo == pytest.approx(0.446, abs=1e-3) and p.hi == pytest.approx(4.554, abs=1e-3)
    assert p.lo == pytest.approx(2.5 - T3 * math.sqrt(5 / 3) / 2)
    assert p.same_sign == 4 and p.signs == "4/4" and p.excludes_zero is True
    # the same as a - b over the seeds both arms have (seed 9 only in a, seed 4 has a None, 5 a NaN: skipped)
    a = {0: 11.0, 1: 12.0, 2: 13.0, 3: 14.0, 4: None, 5: 1.0, 9: 100.0}
    b = {0: 10.0, 1: 10.0, 2: 10.0, 3: 10.0, 4: 1.0, 5: float("nan")}
    q = paired_diff(a, b)
    assert q.seeds == [0, 1, 2, 3] and q.diffs == [1.0, 2.0, 3.0, 4.0]
    assert (q.mean, q.lo, q.hi, q.same_sign) == (p.mean, p.lo, p.hi, p.same_sign)
    # signs of the mean; an interval including 0; one seed: no interval; none: nothing
    r = paired({"s0": -3.0, "s1": 1.0, "s2": -1.0})
    assert r.mean == -1.0 and r.signs == "2/3" and r.excludes_zero is False and r.lo < 0 < r.hi
    one = paired({7: 2.0})
    assert one.n == 1 and one.mean == 2.0 and math.isnan(one.lo) and one.excludes_zero is None and one.signs == "1/1"
    none = paired({})
    assert none.n == 0 and math.isnan(none.mean) and none.signs == "" and none.same_sign == 0
    # zero differences: sd 0, a point interval
    z = paired({0: 0.0, 1: 0.0})
    assert z.lo == z.hi == 0.0 and z.same_sign == 2 and z.excludes_zero is False


def test_mean_ci_and_by_seed():
    s = mean_ci([40.0, 50.0, None, float("nan")])
    assert s["n"] == 2 and s["mean"] == 45.0 and s["lo"] == pytest.approx(45 - 12.7062047 * 5)
    assert math.isnan(mean_ci([1.0])["lo"]) and math.isnan(mean_ci([])["mean"])
    assert by_seed([(0, 1.0), (1, None), (0, 3.0)]) == {0: 2.0, 1: None}  # duplicates: their mean


def K(adv_scale: str, loss_agg: str, **other) -> Knobs:
    """An arm's knobs: the two bias knobs, ``other`` objective knobs, the rest at their defaults."""
    return knobs_with(adv_scale=adv_scale, loss_agg=loss_agg, **other)


# the 2x2 with 3 seeds, growth per seed (tokens)
GS, NS, GM, NM = "GRPO", "std-only fix", "length-only fix", "Dr. GRPO"
KNOBS = {GS: K("group", "seq_mean"), NS: K("none", "seq_mean"), GM: K("group", "max_tokens"),
         NM: K("none", "max_tokens")}
VALUES = {GS: {0: 20.0, 1: 24.0, 2: 16.0}, NS: {0: 18.0, 1: 20.0, 2: 16.0},
          GM: {0: 2.0, 1: 4.0, 2: 0.0}, NM: {0: 0.0, 1: 2.0, 2: 1.0}}


def test_2x2_contrasts_by_hand():
    cs = plan_contrasts(KNOBS)
    assert [c.kind for c in cs] == ["grpo_vs_drgrpo", "length_norm", "std_norm"]
    main, length, std = (evaluate(c, VALUES) for c in cs)
    # GRPO - Dr. GRPO: 20, 22, 15 -> mean 19, deviations 1, 3, -4 -> var 26/2 = 13
    assert main.diffs == [20.0, 22.0, 15.0] and main.mean == 19.0 and main.sd == pytest.approx(math.sqrt(13))
    half = T2 * math.sqrt(13) / math.sqrt(3)
    assert (main.lo, main.hi) == pytest.approx((19 - half, 19 + half)) and main.signs == "3/3"
    assert (main.lo, main.hi) == pytest.approx((10.043, 27.957), abs=1e-3)
    # length switch per seed: ((GRPO - length-only) + (std-only - Dr. GRPO)) / 2 = (18+18)/2, (20+18)/2, (16+15)/2
    assert contrast_values(cs[1], VALUES) == {0: 18.0, 1: 19.0, 2: 15.5}
    assert length.mean == 17.5 and length.sd == pytest.approx(math.sqrt(3.25)) and length.signs == "3/3"
    assert (length.lo, length.hi) == pytest.approx((13.0216, 21.9784), abs=1e-4) and length.excludes_zero
    # std switch per seed: ((GRPO - std-only) + (length-only - Dr. GRPO)) / 2 = (2+2)/2, (4+2)/2, (0-1)/2
    assert contrast_values(cs[2], VALUES) == {0: 2.0, 1: 3.0, 2: -0.5}
    assert std.mean == 1.5 and std.signs == "2/3" and std.excludes_zero is False
    assert (std.lo, std.hi) == pytest.approx((-2.9784, 5.9784), abs=1e-4)
    # a seed missing in one arm drops out of every contrast that uses that arm
    partial = {**VALUES, NS: {0: 18.0, 1: 20.0}}
    assert evaluate(cs[0], partial).n == 3 and evaluate(cs[1], partial).seeds == [0, 1]


def test_plan_contrasts_uses_knobs_not_labels():
    # non-standard labels: still GRPO - Dr. GRPO and the main effects, in fixed order
    knobs = {"fixed": K("none", "max_tokens"), "baseline": K("group", "seq_mean"), "x": K("none", "seq_mean"),
             "y": K("group", "max_tokens")}
    cs = plan_contrasts(knobs)
    assert [c.name for c in cs] == ["GRPO − Dr. GRPO", "length norm. (seq_mean − max_tokens)",
                                    "std norm. (group − none)"]
    assert cs[0].weights == (("baseline", 1.0), ("fixed", -1.0))
    assert cs[0].detail == "baseline (group, seq_mean) − fixed (none, max_tokens)"
    assert dict(cs[1].weights) == {"baseline": 0.5, "y": -0.5, "x": 0.5, "fixed": -0.5}
    assert dict(cs[2].weights) == {"baseline": 0.5, "x": -0.5, "y": 0.5, "fixed": -0.5}
    # the two paper arms only
    (c,) = plan_contrasts({"Dr. GRPO": K("none", "max_tokens"), "GRPO": K("group", "seq_mean")})
    assert c.kind == "grpo_vs_drgrpo" and c.plus == "larger under GRPO"
    # loss-modes: adv_scale fixed, 4 loss_agg -> each arm against the seq_mean (GRPO-like) arm, reference first
    lm = {"GRPO": K("group", "seq_mean"), "DAPO": K("group", "token_mean"), "Dr loss": K("group", "max_tokens"),
          "sum": K("group", "seq_sum")}
    cs = plan_contrasts(lm)
    assert [c.name for c in cs] == ["GRPO − DAPO", "GRPO − Dr loss", "GRPO − sum"]
    assert {c.kind for c in cs} == {"vs_reference"} and all(c.weights[0] == ("GRPO", 1.0) for c in cs)
    # no GRPO-like arm: the one seq_mean arm is the reference
    cs = plan_contrasts({"a": K("none", "token_mean"), "b": K("none", "seq_mean"), "c": K("none", "seq_sum")})
    assert [c.name for c in cs] == ["b − a", "b − c"]
    # a 2x2 plus an extra arm: the extra arm is compared with the GRPO-like arm
    cs = plan_contrasts({**KNOBS, "DAPO": K("group", "token_mean")})
    assert [c.kind for c in cs] == ["grpo_vs_drgrpo", "length_norm", "std_norm", "vs_reference"]
    assert cs[-1].name == "GRPO − DAPO"
    # arms of mixed knobs (None) are left out; two arms with the same knobs are not identifiable by knobs
    assert plan_contrasts({"GRPO": None, "Dr. GRPO": K("none", "max_tokens")}) == []
    # (no GRPO arm left: the Dr. GRPO arm is the reference, "arm − Dr. GRPO")
    cs = plan_contrasts({"g1": K("group", "seq_mean"), "g2": K("group", "seq_mean"), "d": K("none", "max_tokens")})
    assert [c.kind for c in cs] == ["vs_reference", "vs_reference"] and [c.name for c in cs] == ["g1 − d", "g2 − d"]
    assert plan_contrasts({"only": K("group", "seq_mean")}) == []


def test_knobs_are_every_objective_knob_with_config_defaults():
    from drgrpo_cli.config import OBJECTIVE_KNOBS, TrainConfig

    assert KNOBS_ == OBJECTIVE_KNOBS and tuple(GRPO_KNOBS._fields) == OBJECTIVE_KNOBS
    assert GRPO_KNOBS == tuple(getattr(TrainConfig(), k) for k in OBJECTIVE_KNOBS)  # the dataclass's defaults
    # an old config.json (no new keys) has the defaults: the same arm as a new one at the defaults
    assert knobs_of({"adv_scale": "none", "loss_agg": "max_tokens"}) == DRGRPO_KNOBS
    assert knobs_of(TrainConfig(adv_scale="none", loss_agg="max_tokens").to_dict()) == DRGRPO_KNOBS
    assert knobs_of({}) == GRPO_KNOBS
    # values compare as values: 1 == 1.0, "true" == True, 0 == False
    dl = knobs_of({"adv_scale": "none", "loss_agg": "max_tokens", "length_alpha": 1})
    assert dl == knobs_with(adv_scale="none", loss_agg="max_tokens", length_alpha=1.0) != DRGRPO_KNOBS
    assert knobs_of({"mask_truncated": "true"}) == knobs_of({"mask_truncated": True}) == knobs_with(mask_truncated=1)
    assert knobs_of({"dynamic_sampling": 0, "overlong_buffer_frac": 0}) == GRPO_KNOBS
    assert arm_knobs([{"length_alpha": 1}, {"length_alpha": 1.0}]) == knobs_with(length_alpha=1.0)
    assert arm_knobs([{"length_alpha": 1}, {}]) is None and arm_knobs([]) is None
    assert differing_knobs([{"length_alpha": 1}, {"ratio_level": "sequence"}]) == ["length_alpha", "ratio_level"]
    with pytest.raises(KeyError):
        knobs_with(epsilon=0.1)  # not an objective knob
    with pytest.raises(ValueError, match="knobs are 11 values"):
        plan_contrasts({"a": ("group", "seq_mean")})


def test_knob_text_names_only_the_other_knobs_off_their_defaults():
    assert knob_text(GRPO_KNOBS) == "group, seq_mean" and knob_text(DRGRPO_KNOBS) == "none, max_tokens"
    assert knob_text(K("none", "max_tokens", length_alpha=1)) == "none, max_tokens, length_alpha=1"
    assert knob_text(K("none", "seq_mean", ratio_level="sequence")) == "none, seq_mean, ratio_level=sequence"
    dapo = K("group", "token_mean", dynamic_sampling=True, overlong_buffer_frac=0.2, mask_truncated=True)
    assert knob_text(dapo) == ("group, token_mean, dynamic_sampling=true, overlong_buffer_frac=0.2, "
                               "mask_truncated=true")
    assert knob_label(K("none", "max_tokens", length_alpha=1.0)) == "Dr. GRPO (length_alpha=1)"
    assert knob_label(K("none", "seq_mean", ratio_level="sequence")) == "std-only fix (ratio_level=sequence)"
    assert knob_label(K("none", "prompt_mean")) == "none/prompt_mean" and knob_label(GRPO_KNOBS) == "GRPO"


#: The length-normalizer grid: every arm adv_scale none; "ΔL" and "GSPO" differ from the max_tokens and the
#: seq_mean arm only in a knob beyond the two bias knobs.
SIX = {"seq_mean": K("none", "seq_mean"), "token_mean": K("none", "token_mean"),
       "max_tokens": K("none", "max_tokens"), "prompt_mean": K("none", "prompt_mean"),
       "ΔL": K("none", "max_tokens", length_alpha=1.0),
       "GSPO": K("none", "seq_mean", ratio_level="sequence")}


def test_reference_is_grpo_else_drgrpo_else_the_seq_mean_arm_else_the_first():
    assert reference_arm({"d": DRGRPO_KNOBS, "g": GRPO_KNOBS, "x": K("group", "token_mean")}) == "g"
    assert reference_arm({"x": K("group", "token_mean"), "d": DRGRPO_KNOBS, "s": K("none", "seq_mean")}) == "d"
    assert reference_arm({"x": K("none", "token_mean"), "s": K("none", "seq_mean")}) == "s"
    assert reference_arm({"x": K("none", "token_mean"), "y": K("none", "seq_sum")}) == "x"
    assert reference_arm({"a": None}) is None
    # the six-arm grid: no GRPO arm, so every other arm is compared with the Dr. GRPO arm, as "arm − Dr. GRPO"
    cs = plan_contrasts(SIX)
    assert [c.name for c in cs] == ["seq_mean − max_tokens", "token_mean − max_tokens", "prompt_mean − max_tokens",
                                    "ΔL − max_tokens", "GSPO − max_tokens"]
    assert {c.kind for c in cs} == {"vs_reference"}
    dl, gspo = cs[3], cs[4]
    assert dl.weights == (("ΔL", 1.0), ("max_tokens", -1.0))
    assert dl.detail == ("ΔL (none, max_tokens, length_alpha=1) − max_tokens (none, max_tokens); "
                         "reference arm: max_tokens")
    assert gspo.detail == ("GSPO (none, seq_mean, ratio_level=sequence) − max_tokens (none, max_tokens); "
                           "reference arm: max_tokens")
    # a positive number means more under the arm, a negative one more under Dr. GRPO
    assert (dl.plus, dl.minus) == ("larger under ΔL", "larger under max_tokens")
    base = {"max_tokens": {0: 10.0, 1: 20.0}}
    more = describe(dl, evaluate(dl, {"ΔL": {0: 30.0, 1: 40.0}, **base}), "growth", "tokens")
    assert more.startswith("ΔL − max_tokens, growth: +20.0 tokens") and "larger under ΔL in 2/2 seeds" in more
    less = describe(dl, evaluate(dl, {"ΔL": {0: 5.0, 1: 9.0}, **base}), "growth", "tokens")
    assert less.startswith("ΔL − max_tokens, growth: -8.0 tokens") and "larger under max_tokens in 2/2" in less
    # labels do not decide: with the labels swapped the comparisons follow the knobs
    swapped = {"ΔL": SIX["max_tokens"], "max_tokens": SIX["ΔL"], "GSPO": SIX["seq_mean"], "seq_mean": SIX["GSPO"]}
    cs = plan_contrasts({**SIX, **swapped})
    assert [c.name for c in cs] == ["seq_mean − ΔL", "token_mean − ΔL", "max_tokens − ΔL", "prompt_mean − ΔL",
                                    "GSPO − ΔL"]
    assert cs[2].detail.startswith("max_tokens (none, max_tokens, length_alpha=1) − ΔL (none, max_tokens);")
    # with pairs only, ΔL and GSPO would share the knobs of max_tokens and seq_mean; now they are other cells:
    # the 2x2 needs its four cells at the other knobs' defaults
    two = {"g": GRPO_KNOBS, "gspo": K("group", "seq_mean", ratio_level="sequence"), "d": DRGRPO_KNOBS}
    cs = plan_contrasts(two)
    assert [c.name for c in cs] == ["GRPO − Dr. GRPO", "g − gspo"]
    assert cs[1].detail == "g (group, seq_mean) − gspo (group, seq_mean, ratio_level=sequence); reference arm: g"


def test_describe_is_honest():
    c = Contrast("GRPO − Dr. GRPO", "grpo_vs_drgrpo", (("GRPO", 1.0), ("Dr. GRPO", -1.0)),
                 plus="larger under GRPO", minus="larger under Dr. GRPO")
    text = describe(c, paired({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}), "growth", "tokens")
    assert text == ("GRPO − Dr. GRPO, growth: +2.5 tokens (95% CI [+0.4, +4.6], paired over 4 seeds); "
                    "larger under GRPO in 4/4 seeds; the CI excludes 0.")
    text = describe(c, paired({0: -3.0, 1: 1.0, 2: -1.0}), "final reward", nd=3)
    assert "larger under Dr. GRPO in 2/3 seeds; the CI includes 0, so these seeds do not separate the arms." in text
    assert describe(c, paired({5: 2.0}), "growth", "tokens").endswith("from 1 seed (seed 5); no interval with one seed.")
    assert "no seed has every arm" in describe(c, paired({}), "growth")


def test_run_numbers_headline_and_fallback():
    # step 0 is eval-only; 10 training steps; derailed wrong length 10 at step 1, 30 on the last 20% (steps 9, 10)
    rows = [{"step": 0, "eval/accuracy": 0.1}]
    for s in range(1, 11):
        rows.append({"step": s, "train/reward": 0.1 * s, "train/accuracy": 0.5, "train/len_incorrect": 20.0 + s,
                     "train/len_correct": 5.0, HEADLINE: 10.0 if s == 1 else 30.0 if s >= 9 else None})
    rows[5]["eval/accuracy"] = 0.7
    n = run_numbers(rows)
    assert n["final_reward"] == pytest.approx(1.0) and n["eval_accuracy"] == 0.7
    assert n["derailed_len_incorrect_early"] == 10.0 and n["derailed_len_incorrect_late"] == 30.0
    assert n["derailed_len_incorrect_growth"] == 20.0
    assert n["len_incorrect_growth"] == pytest.approx(29.5 - 21.0) and n["len_correct_growth"] == 0.0
    assert n["headline_metric"] == HEADLINE
    assert headline(n, HEADLINE) == {"early": 10.0, "late": 30.0, "growth": 20.0}
    old = run_numbers([{k: v for k, v in r.items() if k != HEADLINE} for r in rows])
    assert old["headline_metric"] == HEADLINE_FALLBACK and old["derailed_len_incorrect_growth"] is None
    assert headline(old, HEADLINE_FALLBACK)["growth"] == old["len_incorrect_growth"]
    # one metric for a whole sweep: the fallback unless every run has the headline
    assert headline_key([n, n]) == HEADLINE
    assert headline_key([n, old]) == HEADLINE_FALLBACK and headline_key([]) == HEADLINE_FALLBACK
    assert run_numbers([])["final_reward"] is None  # nothing logged: None, not an error


def test_t_quantile_matches_tables():
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, rel=1e-7)
    assert t_quantile(0.975, 2) == pytest.approx(4.3026527, rel=1e-7)
    assert t_quantile(0.975, 10) == pytest.approx(2.2281389, rel=1e-7)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959966, rel=1e-5)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764451, rel=1e-7)
    s = mean_ci([40.0, 50.0])
    assert s["mean"] == 45.0 and s["lo"] == pytest.approx(45 - 12.7062047 * 5)
    assert math.isnan(mean_ci([1.0])["lo"])
