"""The report's "Claims for Dr. GRPO over GRPO" section: the table of :mod:`drgrpo_cli.report.claims`' rows,
the verdict rule (stated once) and the exact definition of every statistic under it."""

from __future__ import annotations

import math

from drgrpo_cli.report.claims import (BOOT_DRAWS, BOOT_SEED, CONVERGE_FRAC, MATCH_TOL, NO_CI, ROLL, ClaimRow,
                                      Claims)
from drgrpo_cli.report.text import markdown_table, number_text

__all__ = ["claims_section"]

HEADER = ["claim", "statistic", "popular summary", "measured (Dr. GRPO vs GRPO)", "95% CI", "seeds agreeing",
          "verdict"]


def _num(x: float, unit: str, signed: bool = True, small: bool = False) -> str:
    """``small``: the row's numbers are all below 0.05 in size, so tokens, steps and % get 3 decimals (a CI
    that excludes 0 is never printed as ``-0.0``)."""
    if unit == "×":
        return number_text(x, 2) + ("×" if not math.isnan(x) else "")
    if unit == "%":
        return number_text(x, 3 if small else 1, signed) + ("%" if not math.isnan(x) else "")
    if unit == "":
        return number_text(x, 3, signed)
    return number_text(x, 3 if small else 1, signed)


def _small(r: ClaimRow) -> bool:
    sizes = [abs(v) for v in (r.value, r.lo, r.hi) if not math.isnan(v)]
    return bool(sizes) and 0 < max(sizes) < 0.05


def _value(r: ClaimRow) -> str:
    if r.n == 0 or math.isnan(r.value):
        return "—"
    text = _num(r.value, r.unit, small=_small(r)) + (f" {r.unit}" if r.unit in ("tokens", "steps") else "")
    if r.pct:
        text += f" ({number_text(r.pct[0], 1, True)}% of GRPO's)"
    return text


def _ci(r: ClaimRow) -> str:
    if math.isnan(r.lo) or math.isnan(r.hi):
        return "—"
    small = _small(r)
    text = f"[{_num(r.lo, r.unit, small=small)}, {_num(r.hi, r.unit, small=small)}]"
    if r.pct:
        text += f" ([{number_text(r.pct[1], 1, True)}%, {number_text(r.pct[2], 1, True)}%])"
    return text


def _seeds(r: ClaimRow) -> str:
    na = r.na
    if r.agree is None:
        text = f"— ({r.n} seed{'' if r.n == 1 else 's'})"
    elif r.side == 0:
        text = f"{r.agree}/{r.n} (sign of the mean)" if r.n else "0/0"
    else:
        text = f"{r.agree}/{r.n}"
    if na:
        text += "; n/a: seed " + ", ".join(str(s) for s in na)
    return text


def _verdict(r: ClaimRow) -> str:
    v = r.verdict
    return v if v == NO_CI or r.side == 0 else f"**{v}**"


def claims_section(c: Claims | None) -> list[str]:
    """The section's lines; none when the sweep has no GRPO arm or no Dr. GRPO arm."""
    if c is None:
        return []
    lines = ["## Claims for Dr. GRPO over GRPO", "",
             f"The claims made for Dr. GRPO over GRPO, checked on this sweep: **{c.drgrpo}** (adv_scale none, "
             f"loss_agg max_tokens) against **{c.grpo}** (group, seq_mean), the arms found by their knobs, not their "
             f"labels, paired by seed over the finished runs both have ({len(c.seeds)} seeds: "
             f"{', '.join(str(s) for s in c.seeds) or 'none'}). Every value is Dr. GRPO relative to GRPO; "
             "\"popular summary\" is the number the popular write-ups give, where there is one. "
             "**Verdict rule**: *supported* = the 95% CI excludes \"no difference\" (0; for a ratio, 1) on the "
             "claimed side; *contradicted* = it excludes it on the other side; *inconclusive* = otherwise. No "
             f"verdict without a CI (fewer than 2 paired seeds: \"{NO_CI}\"). \"Seeds agreeing\": in how many "
             "paired seeds the per-seed value is on the claimed side.", ""]
    lines += markdown_table(HEADER, [[r.claim, r.stat, r.summary, _value(r), _ci(r), _seeds(r), _verdict(r)]
                                     for r in c.rows]) + [""]
    return lines + _definitions(c) + [""]


def _definitions(c: Claims) -> list[str]:
    stats = {r.stat.split(",")[0] for r in c.rows}
    roll = (f"rolling reward = the centred mean of `train/reward` over {ROLL} steps (steps i−2 … i+1, fewer at the "
            "ends)")
    defs: list[tuple[str, str]] = [
        ("final wrong-answer length", "per seed, Dr. GRPO's final `train/len_incorrect` minus GRPO's (final = the mean "
         "over the last 10% of training steps, as in `summary.json`); mean and Student-t 95% CI over seeds; in "
         "brackets the same as a % of GRPO's mean final `train/len_incorrect` over those seeds. Claimed side: < 0."),
        ("failure-state wrong-answer length growth", "per seed, the growth of `train/derailed/len_incorrect` (mean "
         "over the last 20% of steps minus the first 10%) under Dr. GRPO minus under GRPO; t-CI over seeds. "
         "Claimed side: < 0."),
        ("reward per generated token", "per seed, efficiency = final `train/reward` / final `train/len_mean` for "
         "each arm, then 100 × (Dr. GRPO's / GRPO's − 1) %; t-CI over seeds of that per-seed ratio. Claimed "
         "side: > 0."),
        ("length at matched reward", f"per seed, target = the lower of the two arms' final rewards; per arm the "
         f"mean `train/len_mean` over the steps whose {roll} is within ±{MATCH_TOL} of the target; Dr. GRPO − GRPO, "
         "t-CI over seeds; n/a for a seed where an arm never gets there. Claimed side: < 0 (shorter at the same "
         "reward)."),
        ("seed variance of the final reward", "sample variance (ddof=1) over seeds of the final `train/reward` under "
         f"Dr. GRPO / the same under GRPO; 95% CI: percentile bootstrap over seeds ({BOOT_DRAWS} draws resampling "
         f"seeds with replacement, the same seeds for both arms, RNG seed {BOOT_SEED}; draws where GRPO's variance is "
         "0 are skipped). Claimed side: ratio < 1. No per-seed value, so no seed count."),
        (f"steps to {CONVERGE_FRAC:.0%} of the final reward", f"per run, the first training step whose {roll} reaches "
         f"{CONVERGE_FRAC:.0%} of that run's final reward (its first step when the reward starts there: then the "
         "statistic cannot tell the arms apart); per seed Dr. GRPO − GRPO in steps; t-CI over seeds. "
         "The claim is \"no slower\" (the summary says faster): supported when the CI's upper end < 0 (faster), "
         "contradicted only when its lower end > 0 (slower), otherwise inconclusive; seeds agreeing = seeds with a "
         "difference ≤ 0."),
    ]
    lines = ["Definitions (runs' metrics never smoothed, except the rolling reward where stated):", ""]
    lines += [f"- **{name}**: {text}" for name, text in defs if name in stats]
    tags = [r for r in c.rows if r.side == 0]
    if tags:
        lines.append("- **`<tag>` accuracy gain**: per run, `train/<tag>/accuracy` over the last 10% of steps minus "
                     "over the first 10%; per seed Dr. GRPO − GRPO, t-CI over seeds. Which direction the paper "
                     "predicts depends on the bucket, so no claimed side: the verdict column says only whether the "
                     "CI excludes 0 (a difference detected) or includes it.")
    return lines

