"""The claims table (:mod:`drgrpo_cli.report.claims`, :mod:`drgrpo_cli.report.claims_text`): every statistic on
hand-built runs whose numbers are worked out by hand below, the verdict rule, the deterministic bootstrap, arms
found by knobs, and when there is no table or no verdict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from drgrpo_cli.config import TrainConfig
from drgrpo_cli.metrics import HEADLINE
from drgrpo_cli.report.claims import (NO_CI, claim_arms, compute_claims, converge_step, length_at_reward,
                                      percentile, rolling, variance_ratio, verdict)
from drgrpo_cli.report.plot import plot
from drgrpo_cli.report.stats import DRGRPO_KNOBS, GRPO_KNOBS, knobs_with, t_crit

STEPS = 10  # final window (last 10%) = step 10; first 10% = step 1; growth's last 20% = steps 9-10
T2 = t_crit(2)  # 4.303: the 95% t critical value with 3 seeds

# Per seed (0, 1, 2): reward = 0 before step c, R from step c on; len_mean, len_incorrect constant; the
# failure-state wrong-answer length and the per-tag accuracies are a0 at step 1, a1 from step 2 on.
#   GRPO:     c 3, 3, 3  R .5, .6, .7   len_mean 100, 100, 100  len_incorrect 100, 110, 120
#   Dr. GRPO: c 6, 7, 6  R .5, .6, .55  len_mean  80, 100, 110  len_incorrect  40,  60,  50
GRPO = {0: dict(c=3, R=0.5, L=100.0, LI=100.0, D=(10.0, 50.0), easy=(0.2, 0.8), hard=(0.1, 0.2)),
        1: dict(c=3, R=0.6, L=100.0, LI=110.0, D=(10.0, 52.0), easy=(0.2, 0.8), hard=(0.1, 0.2)),
        2: dict(c=3, R=0.7, L=100.0, LI=120.0, D=(10.0, 54.0), easy=(0.2, 0.8), hard=(0.1, 0.2))}
DRGRPO = {0: dict(c=6, R=0.5, L=80.0, LI=40.0, D=(10.0, 10.0), easy=(0.2, 0.9), hard=(0.1, 0.5)),
          1: dict(c=7, R=0.6, L=100.0, LI=60.0, D=(10.0, 11.0), easy=(0.2, 1.0), hard=(0.1, 0.55)),
          2: dict(c=6, R=0.55, L=110.0, LI=50.0, D=(10.0, 15.0), easy=(0.2, 0.8), hard=(0.1, 0.6))}


def rows_of(p: dict, steps: int = STEPS) -> list[dict]:
    rows = []
    for s in range(1, steps + 1):
        r = p["R"] if s >= p["c"] else 0.0
        pick = 0 if s == 1 else 1
        rows.append({"step": s, "train/reward": r, "train/accuracy": r, "train/len_mean": p["L"],
                     "train/len_correct": 20.0, "train/len_incorrect": p["LI"], HEADLINE: p["D"][pick],
                     "train/easy/accuracy": p["easy"][pick], "train/hard/accuracy": p["hard"][pick]})
    return rows


def write_claim_run(d: Path, p: dict, *, seed: int, adv_scale: str, loss_agg: str, arm: str | None = None) -> None:
    d.mkdir(parents=True)
    TrainConfig(adv_scale=adv_scale, loss_agg=loss_agg, seed=seed, steps=STEPS).save(d / "config.json")
    if arm:
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, "arm": arm}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_of(p)))
    (d / "summary.json").write_text(json.dumps({"status": "finished"}))


def claim_sweep(root: Path, seeds=(0, 1, 2), swap_labels: bool = False, second=("none", "max_tokens")) -> Path:
    for s in seeds:
        write_claim_run(root / f"a__seed{s}", GRPO[s], seed=s, adv_scale="group", loss_agg="seq_mean",
                        arm="Dr. GRPO" if swap_labels else None)
        write_claim_run(root / f"b__seed{s}", DRGRPO[s], seed=s, adv_scale=second[0], loss_agg=second[1],
                        arm="GRPO" if swap_labels else None)
    return root


def claims_of(seeds=(0, 1, 2)):
    return compute_claims({s: rows_of(GRPO[s]) for s in seeds}, {s: rows_of(DRGRPO[s]) for s in seeds}, HEADLINE)


def row(claims, stat_start: str):
    (r,) = [r for r in claims.rows if r.stat.startswith(stat_start)]
    return r


def approx_ci(r, mean: float, sd: float, n: int = 3) -> None:
    half = t_crit(n - 1) * sd / math.sqrt(n)
    assert r.value == pytest.approx(mean)
    assert (r.lo, r.hi) == (pytest.approx(mean - half), pytest.approx(mean + half))


# ---------------------------------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------------------------------


def test_rolling_is_pandas_centred_window_of_four():
    # window of position i: i-2 .. i+1, fewer at the ends (pandas rolling(4, center=True, min_periods=1))
    assert rolling([0, 0, 0, 1, 0, 0, 0]) == [0, 0, 0.25, 0.25, 0.25, 0.25, 0]
    assert rolling([None, 2.0, None]) == [2.0, 2.0, 2.0]


def test_converge_step_and_length_at_reward():
    # GRPO seed 0: reward 0 at steps 1-2, 0.5 from 3; rolling at step 4 = mean(steps 2-5) = 0.375 < 0.45,
    # at step 5 = mean(steps 3-6) = 0.5 >= 0.9 * 0.5 -> step 5
    assert converge_step(rows_of(GRPO[0])) == 5
    assert converge_step(rows_of(DRGRPO[0])) == 8  # c = 6: step 8 is the first whose window (6-9) is all 0.5
    # matched reward 0.5: GRPO's rolling reward is 0.5 at steps 5-10 -> their len_mean 100
    assert length_at_reward(rows_of(GRPO[0]), 0.5) == 100.0
    # GRPO seed 2 (R = .7): rolling values 0, .233, .35, .525, .7; none within .02 of .55 -> n/a
    assert length_at_reward(rows_of(GRPO[2]), 0.55) is None


def test_verdict_rule():
    assert verdict(-3.0, -1.0, -1) == "supported"
    assert verdict(1.0, 3.0, -1) == "contradicted"
    assert verdict(-1.0, 3.0, -1) == "inconclusive"
    assert verdict(1.2, 3.0, +1) == "supported"
    assert verdict(0.2, 0.9, -1, null=1.0) == "supported"
    assert verdict(math.nan, math.nan, -1) == NO_CI
    assert verdict(0.1, 0.2, 0) == "CI excludes 0" and verdict(-0.1, 0.2, 0) == "CI includes 0"


def test_percentile_is_numpys_linear():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 2.5) == pytest.approx(1.075)


def test_variance_ratio_bootstrap_is_deterministic():
    g, d = [0.5, 0.6, 0.7], [0.5, 0.6, 0.55]
    first, again = variance_ratio(g, d), variance_ratio(g, d)
    assert first == again
    # var(d) = 0.0025, var(g) = 0.01 -> 0.25. A resample with two distinct seeds i, j has ratio
    # ((d_i - d_j) / (g_i - g_j))^2: seeds {0,1} -> 1, {0,2} -> 1/16, {1,2} -> 1/4; all three -> 1/4. Each pair
    # alone is 6 of the 27 equally likely draws (22%), so the 2.5th percentile is 1/16, the 97.5th is 1.
    assert first == (pytest.approx(0.25), pytest.approx(0.0625), pytest.approx(1.0))
    assert all(math.isnan(x) for x in variance_ratio(g[:1], d[:1]))  # no ratio, no interval with 1 seed


def test_claim_arms_by_knobs():
    knobs = {"x": GRPO_KNOBS, "y": DRGRPO_KNOBS, "z": knobs_with(adv_scale="none", loss_agg="seq_mean")}
    assert claim_arms(knobs) == ("x", "y")
    assert claim_arms({"x": GRPO_KNOBS, "z": knobs["z"]}) is None
    assert claim_arms({"y": DRGRPO_KNOBS, "w": knobs_with(adv_scale="none", loss_agg="max_tokens",
                                                          length_alpha=1)}) is None  # Delta-L is not GRPO


# ---------------------------------------------------------------------------------------------------
# each claim on the hand-built sweep
# ---------------------------------------------------------------------------------------------------


def test_claim1_wrong_answer_length_supported():
    c = claims_of()
    r = row(c, "final wrong-answer length")
    # per seed 40-100, 60-110, 50-120 = -60, -50, -70: mean -60, sd 10; GRPO's mean 110 -> -54.5%
    approx_ci(r, -60.0, 10.0)
    assert r.pct[0] == pytest.approx(-60 / 110 * 100)
    assert r.pct[1] == pytest.approx(100 * (-60 - T2 * 10 / math.sqrt(3)) / 110)
    assert (r.agree, r.n, r.verdict, r.summary) == (3, 3, "supported", "−60%")
    g = row(c, "failure-state wrong-answer length growth")
    # growth = mean(steps 9-10) - step 1: GRPO 40, 42, 44; Dr. GRPO 0, 1, 5 -> -40, -41, -39: mean -40, sd 1
    approx_ci(g, -40.0, 1.0)
    assert g.verdict == "supported"


def test_claim2_token_efficiency_inconclusive_and_matched_length():
    c = claims_of()
    r = row(c, "reward per generated token")
    # efficiency = final reward / final len_mean: GRPO .5/100, .6/100, .7/100; Dr. GRPO .5/80, .6/100, .55/110
    # -> Dr/GRPO - 1 = +25%, 0%, (.005/.007 - 1) = -28.571%
    per = [25.0, 0.0, 100 * (0.005 / 0.007 - 1)]
    m = sum(per) / 3
    sd = math.sqrt(sum((x - m) ** 2 for x in per) / 2)
    approx_ci(r, m, sd)
    assert (r.agree, r.verdict, r.summary) == (1, "inconclusive", "+80%")
    mt = row(c, "length at matched reward")
    # target = lower final reward: .5 (both at steps where rolling = .5: 80 - 100 = -20), .6 (100 - 100 = 0),
    # .55 (GRPO never within .02 of it: n/a) -> -20, 0 over 2 seeds: mean -10, sd 14.142
    approx_ci(mt, -10.0, math.sqrt(200), n=2)
    assert mt.na == [2] and mt.n == 2 and mt.agree == 1


def test_claim3_seed_variance_ratio_and_its_bootstrap():
    r = row(claims_of(), "seed variance")
    # final rewards GRPO .5, .6, .7 (var .01), Dr. GRPO .5, .6, .55 (var .0025): ratio .25; CI see above
    assert r.value == pytest.approx(0.25)
    assert (r.lo, r.hi) == (pytest.approx(0.0625), pytest.approx(1.0))
    assert r.verdict == "inconclusive"  # the CI reaches 1
    assert (r.lo, r.hi) == (row(claims_of(), "seed variance").lo, row(claims_of(), "seed variance").hi)


def test_claim4_convergence_contradicted():
    r = row(claims_of(), "steps to 90%")
    # GRPO converges at step 5 in every seed; Dr. GRPO at 8, 9, 8 -> +3, +4, +3: mean 3.333, sd .577
    approx_ci(r, 10 / 3, math.sqrt(1 / 3))
    assert r.lo > 0 and (r.agree, r.verdict) == (0, "contradicted")


def test_claim5_per_tag_gain_difference():
    c = claims_of()
    easy, hard = row(c, "`easy`"), row(c, "`hard`")
    # easy gain: GRPO .6 every seed; Dr. GRPO .7, .8, .6 -> +.1, +.2, 0: mean .1, sd .1 -> includes 0
    approx_ci(easy, 0.1, 0.1)
    assert easy.verdict == "CI includes 0"
    # hard gain: GRPO .1; Dr. GRPO .4, .45, .5 -> +.3, +.35, +.4: mean .35, sd .05 -> excludes 0
    approx_ci(hard, 0.35, 0.05)
    assert hard.verdict == "CI excludes 0"


# ---------------------------------------------------------------------------------------------------
# in the report
# ---------------------------------------------------------------------------------------------------


def _table(res) -> dict[str, list[str]]:
    md = res.report.read_text()
    lines = md.split("## Claims for Dr. GRPO over GRPO\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if ln.startswith("| ")]
    return {r[1]: r for r in rows[1:]}


def test_report_table(tmp_path):
    res = plot([claim_sweep(tmp_path / "s")], out=tmp_path / "out", formats=("svg",))
    t = _table(res)
    r = t["final wrong-answer length, Dr. GRPO − GRPO"]
    half = T2 * 10 / math.sqrt(3)
    assert r[2:] == ["−60%", "-60.0 tokens (-54.5% of GRPO's)",
                     f"[{-60 - half:+.1f}, {-60 + half:+.1f}] ([{100 * (-60 - half) / 110:+.1f}%, "
                     f"{100 * (-60 + half) / 110:+.1f}%])", "3/3", "**supported**"]
    assert t["steps to 90% of the final reward, Dr. GRPO − GRPO"][-1] == "**contradicted**"
    assert t["reward per generated token, Dr. GRPO / GRPO − 1"][-1] == "**inconclusive**"
    assert t["length at matched reward, Dr. GRPO − GRPO"][-2] == "1/2; n/a: seed 2"
    assert t["seed variance of the final reward, Dr. GRPO / GRPO"][3:5] == ["0.25×", "[0.06×, 1.00×]"]
    md = res.report.read_text()
    assert "**Verdict rule**" in md and md.count("**Verdict rule**") == 1
    assert md.index("## Paired comparisons") < md.index("## Claims") < md.index("## Runs")
    assert res.report.with_suffix(".html").read_text().count("<strong>supported</strong>") >= 1
    # the same logs give the same report
    again = plot([tmp_path / "s"], out=tmp_path / "out2", formats=("svg",))
    assert again.report.read_text().replace("out2", "out") == md.replace("out2", "out")


def test_arms_found_by_knobs_when_labels_are_swapped(tmp_path):
    plain = _table(plot([claim_sweep(tmp_path / "a")], out=tmp_path / "oa", formats=("svg",)))
    res = plot([claim_sweep(tmp_path / "b", swap_labels=True)], out=tmp_path / "ob", formats=("svg",))
    assert _table(res) == plain
    md = res.report.read_text()
    # the Dr. GRPO-knob arm is labelled "GRPO" here, and is still the one measured relative to the other
    assert "checked on this sweep: **GRPO** (adv_scale none, loss_agg max_tokens) against **Dr. GRPO**" in md


def test_no_table_without_both_arms(tmp_path):
    res = plot([claim_sweep(tmp_path / "s", second=("none", "seq_mean"))], out=tmp_path / "o", formats=("svg",))
    assert "## Claims" not in res.report.read_text()
    assert "## Paired comparisons" in res.report.read_text()


def test_one_seed_no_ci_no_verdict(tmp_path):
    res = plot([claim_sweep(tmp_path / "s", seeds=(0,))], out=tmp_path / "o", formats=("svg",))
    t = _table(res)
    assert t and all(r[-1] == NO_CI for r in t.values())
    assert t["final wrong-answer length, Dr. GRPO − GRPO"][3:5] == ["-60.0 tokens (-60.0% of GRPO's)", "—"]  # 40 - 100
    assert t["seed variance of the final reward, Dr. GRPO / GRPO"][3:] == ["—", "—", "— (1 seed)", NO_CI]


def test_claims_in_plot_summary(tmp_path):
    res = plot([claim_sweep(tmp_path / "s")], out=tmp_path / "o", formats=("svg",))
    c = res.summary["claims"]
    assert (c["grpo"], c["drgrpo"], c["seeds"]) == ("GRPO", "Dr. GRPO", [0, 1, 2])
    r = [r for r in c["rows"] if r["stat"].startswith("final wrong-answer length")][0]
    assert (r["value"], r["verdict"], r["per_seed"]) == (pytest.approx(-60.0), "supported", {0: -60.0, 1: -50.0,
                                                                                             2: -70.0})
    res1 = plot([claim_sweep(tmp_path / "g", second=("none", "seq_mean"))], out=tmp_path / "o1", formats=("svg",))
    assert res1.summary["claims"] is None


def test_a_tiny_difference_is_printed_with_enough_digits():
    """A CI that excludes 0 by hundredths of a token is not printed as ``-0.0`` (the difficulty task's
    length at matched reward: -0.0067 [-0.0128, -0.0006])."""
    import math as _m

    from drgrpo_cli.report.claims_text import _ci, _value

    row = next(iter(_rows_like(-0.0066884, -0.0128137, -0.0005631)))
    assert _value(row) == "-0.007 tokens" and _ci(row) == "[-0.013, -0.001]"
    big = next(iter(_rows_like(-22.8, -25.0, -20.6)))
    assert _value(big) == "-22.8 tokens" and _ci(big) == "[-25.0, -20.6]"
    assert not _m.isnan(big.value)


def _rows_like(v, lo, hi):
    from drgrpo_cli.report.claims import ClaimRow

    return [ClaimRow(claim="2.", stat="length at matched reward", summary="—", unit="tokens", value=v, lo=lo, hi=hi,
                     side=-1, agree=8, n=10)]
