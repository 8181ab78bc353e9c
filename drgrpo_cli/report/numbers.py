"""The report's numbers, never smoothed: per run from :func:`drgrpo_cli.metrics.run_numbers` (the one
computation shared with the trainer's ``summary.json`` and ablate's ``summary.csv``), then per arm over
seeds (mean, sd, t-interval) and paired between arms by seed (:mod:`drgrpo_cli.report.stats`).

The paired comparisons use finished runs only, as ``paired.csv`` does (a partial run's windows differ);
the per-arm tables list every run. Difficulty: per arm, pooled over all steps and seeds, the mean weight
of a group with k of G correct is ``sum n_k a_k / sum n_k`` (``difficulty/k{k}/groups`` = n_k,
``.../abs_adv`` = a_k).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from drgrpo_cli.metrics import (HEADLINE, PAIRED_METRICS, final_value, headline, mean,
                                paired_metrics, paired_value)
from drgrpo_cli.report.claims import Claims, claim_arms, compute_claims
from drgrpo_cli.report.provenance_table import provenance_groups
from drgrpo_cli.report.runs import PlotContext, Run
from drgrpo_cli.report.stats import KNOBS, by_seed, evaluate, mean_ci, plan_contrasts
from drgrpo_cli.report.text import or_nan

__all__ = ["FINAL_METRICS", "PAIRED_METRICS", "ReportNumbers", "claim_numbers", "difficulty_numbers", "final_metrics",
           "growth_numbers", "headline_numbers", "metric_words", "paired_results", "report_numbers", "summary_dict"]

#: The metrics compared between arms (names as in ablate's summary.csv / paired.csv).
#: The final-metrics table: (metric key, column label, decimals).
FINAL_METRICS = (
    ("train/reward", "reward", 3),
    ("train/accuracy", "accuracy", 3),
    ("train/len_mean", "len", 1),
    ("train/len_correct", "len correct", 1),
    ("train/len_incorrect", "len incorrect", 1),
    ("eval/accuracy", "eval accuracy", 3),
)
_DIFF_KEY = re.compile(r"^difficulty/k(\d+)/(groups|abs_adv)$")


@dataclass
class ReportNumbers:
    """Everything the report and the figures' titles say in numbers, per arm (see the functions below)."""

    named_evals: list[str]  # named eval sets with an accuracy (eval/<name>/accuracy)
    final: dict[str, dict[str, Any]]  # arm -> metric key -> mean_ci of final_value over its runs
    head: dict[str, dict[str, Any]]  # arm -> headline early/late/growth, final_reward (mean_ci), per_run growth
    paired: list[dict[str, Any]]  # {"metric", "contrast", "result"}
    growth: dict[str, dict[str, Any]]  # arm -> mean_ci of len_incorrect_growth, with per_run
    growth_correct: dict[str, dict[str, Any]]  # arm -> mean_ci of len_correct_growth, with per_run
    difficulty: dict[str, Any]  # arm -> difficulty_numbers
    claims: Claims | None = None  # the claims for Dr. GRPO over GRPO (a GRPO and a Dr. GRPO arm only)


def report_numbers(ctx: PlotContext, named_evals: list[str]) -> ReportNumbers:
    return ReportNumbers(named_evals=named_evals, final=final_metrics(ctx, named_evals), head=headline_numbers(ctx),
                         paired=paired_results(ctx), growth=growth_numbers(ctx, "len_incorrect_growth"),
                         growth_correct=growth_numbers(ctx, "len_correct_growth"), difficulty=difficulty_numbers(ctx),
                         claims=claim_numbers(ctx))


def claim_numbers(ctx: PlotContext) -> Claims | None:
    """:func:`~drgrpo_cli.report.claims.compute_claims` for the GRPO and Dr. GRPO arms (by knobs), over their
    finished runs (a seed given twice: its first run); None without both arms."""
    arms = claim_arms(ctx.knobs)
    if arms is None:
        return None
    by_seed_rows = []
    for a in arms:
        d: dict[Any, Any] = {}
        for r in ctx.runs_by_arm[a]:
            if r.state == "finished" and r.seed not in d:
                d[r.seed] = r.rows
        by_seed_rows.append(d)
    return compute_claims(by_seed_rows[0], by_seed_rows[1], ctx.headline_key, labels=arms)


# ------------------------------------------------------------------------------------------------------
# paired comparisons
def metric_words(ctx: PlotContext, metric: str) -> tuple[str, str, int]:
    """(words, unit, decimals) of a paired metric."""
    if metric == "headline_growth":
        return ("failure-state wrong-answer length growth" if ctx.headline_key == HEADLINE
                else "wrong-answer length growth (pooled)", "tokens", 1)
    if metric == "final_reward":
        return "final reward", "", 3
    return "pooled wrong-answer length growth", "tokens", 1


def _per_seed(ctx: PlotContext, metric: str) -> dict[str, dict[Any, float | None]]:
    """Per arm, seed -> the metric, over finished runs only (as ``paired.csv``: a partial run's windows differ)."""
    return {a: by_seed((r.seed, paired_value(r.numbers, metric, ctx.headline_key)) for r in ctx.runs_by_arm[a]
                       if r.state == "finished") for a in ctx.arms}


def paired_results(ctx: PlotContext) -> list[dict[str, Any]]:
    """The paired comparisons (:func:`drgrpo_cli.report.stats.plan_contrasts` from the knobs) for each metric."""
    contrasts = plan_contrasts(ctx.knobs)
    out = []
    for metric in paired_metrics(ctx.headline_key):
        by_arm = _per_seed(ctx, metric)
        for c in contrasts:
            out.append({"metric": metric, "contrast": c, "result": evaluate(c, by_arm)})
    return out


# ------------------------------------------------------------------------------------------------------
# per arm over seeds
def headline_numbers(ctx: PlotContext) -> dict[str, dict[str, Any]]:
    """Per arm: mean_ci over seeds of the headline's early / late windows and growth, and of the final reward."""
    out = {}
    for arm in ctx.arms:
        runs = ctx.runs_by_arm[arm]
        h = [headline(r.numbers, ctx.headline_key) for r in runs]
        out[arm] = {w: mean_ci(x[w] for x in h) for w in ("early", "late", "growth")}
        out[arm]["final_reward"] = mean_ci(r.numbers["final_reward"] for r in runs)
        out[arm]["per_run"] = {r.name: or_nan(x["growth"]) for r, x in zip(runs, h)}
    return out


def final_metrics(ctx: PlotContext, named_evals: list[str]) -> dict[str, dict[str, Any]]:
    """Per arm and metric key (:data:`FINAL_METRICS`, then the named evals' accuracy): mean_ci over seeds
    of :func:`drgrpo_cli.metrics.final_value` (summary.json's ``final`` rule)."""
    keys = [k for k, _, _ in FINAL_METRICS] + [f"eval/{n}/accuracy" for n in named_evals]
    return {arm: {key: mean_ci(final_value(r.frame, key) for r in ctx.runs_by_arm[arm]) for key in keys}
            for arm in ctx.arms}


def growth_numbers(ctx: PlotContext, metric: str) -> dict[str, dict[str, Any]]:
    """Per arm: mean_ci over seeds of a per-run growth (``run_numbers[metric]``), with the per-run values."""
    out = {}
    for arm in ctx.arms:
        per = [or_nan(r.numbers.get(metric)) for r in ctx.runs_by_arm[arm]]
        out[arm] = mean_ci(per)
        out[arm]["per_run"] = {r.name: v for r, v in zip(ctx.runs_by_arm[arm], per)}
    return out


# ------------------------------------------------------------------------------------------------------
# difficulty
def _pooled_groups(runs: Sequence[Run]) -> tuple[dict[tuple[int, int], float], dict[tuple[int, int], float]]:
    """Over all steps and runs, per (k, G): the summed weight ``sum n_k a_k`` and the group count ``sum n_k``."""
    w: dict[tuple[int, int], float] = {}
    c: dict[tuple[int, int], float] = {}
    for r in runs:
        f = r.frame
        ks = sorted({int(m.group(1)) for m in (_DIFF_KEY.match(str(col)) for col in f.columns) if m})
        if not ks:
            continue
        g = r.config.get("group_size")
        g = int(g) if isinstance(g, int) and g >= max(ks) else max(ks)
        for k in ks:
            nk, ak = f.get(f"difficulty/k{k}/groups"), f.get(f"difficulty/k{k}/abs_adv")
            if nk is None or ak is None:
                continue
            ok = nk.notna() & ak.notna() & (nk > 0)
            c[(k, g)] = c.get((k, g), 0.0) + float(nk[ok].sum())
            w[(k, g)] = w.get((k, g), 0.0) + float((nk[ok] * ak[ok]).sum())
    return w, c


def _difficulty_of(runs: Sequence[Run]) -> dict[str, Any] | None:
    w, c = _pooled_groups(runs)
    if not c:
        return None
    kgs = sorted(c, key=lambda kg: (kg[0] / kg[1], kg[1]))
    total_w = math.fsum(w.values())
    total_c = math.fsum(c.values())
    abs_adv = [w[kg] / c[kg] if c[kg] > 0 else math.nan for kg in kgs]
    # the mid group (k = G/2; mean of the two middle k for odd G), for the relative panel
    ref: list[float] = []
    for g in {kg[1] for kg in kgs}:
        mids = {g // 2, (g + 1) // 2}
        ref += [m for kg, m in zip(kgs, abs_adv) if kg[1] == g and kg[0] in mids and not math.isnan(m)]
    mid = or_nan(mean(ref))
    d = {
        "k": [kg[0] for kg in kgs],
        "G": [kg[1] for kg in kgs],
        "groups": [c[kg] for kg in kgs],
        "groups_share": [c[kg] / total_c if total_c else math.nan for kg in kgs],
        "mean_abs_adv": abs_adv,
        "relative": [m / mid if mid and not math.isnan(mid) else math.nan for m in abs_adv],
        "share": [w[kg] / total_w if total_w else math.nan for kg in kgs],
    }
    # near-all-wrong / near-all-right (k = 1, G - 1) vs mid
    edge = [m for kg, m in zip(kgs, abs_adv) if kg[0] in (1, kg[1] - 1) and kg[1] > 2 and not math.isnan(m)]
    edge_share = math.fsum(s for kg, s in zip(kgs, d["share"]) if kg[0] in (1, kg[1] - 1) and kg[1] > 2)
    d["edge_ratio"] = or_nan(mean(edge)) / mid if edge and mid and not math.isnan(mid) else math.nan
    d["edge_share"] = edge_share if edge else math.nan
    d["std_scaled"] = _std_scaled(runs)
    return d


def difficulty_numbers(ctx: PlotContext) -> dict[str, Any]:
    """Per arm that logged ``difficulty/k{k}/...``: per (k, G) the group count, mean |advantage|, that
    relative to k = G/2 and its share of the total weight; the near-all-wrong/right ratio and share."""
    out: dict[str, Any] = {}
    for arm in ctx.arms:
        d = _difficulty_of(ctx.runs_by_arm[arm])
        if d is not None:
            out[arm] = d
    return out


def _std_scaled(runs: Sequence[Run]) -> bool | None:
    vals = {str(r.config.get("adv_scale", "group")) for r in runs}
    if len(vals) != 1:
        return None
    return vals.pop() != "none"


# ------------------------------------------------------------------------------------------------------
# machine-readable
def _json_stats(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "values"} | {"values": list(d.get("values", []))}


def summary_dict(ctx: PlotContext, nums: ReportNumbers) -> dict[str, Any]:
    """The report's numbers as ``PlotResult.summary``."""
    clean = _json_stats
    arms = {
        a: {
            "runs": [r.name for r in ctx.runs_by_arm[a]],
            "n": len(ctx.runs_by_arm[a]),
            "knobs": dict(zip(KNOBS, ctx.knobs[a])) if ctx.knobs[a] else None,  # every objective knob
            "final": {k: clean(v) for k, v in nums.final[a].items()},
            "headline": {w: clean(nums.head[a][w]) for w in ("early", "late", "growth")}
            | {"per_run": nums.head[a]["per_run"]},
            "len_incorrect_growth": clean(nums.growth[a]),
            "len_correct_growth": clean(nums.growth_correct[a]),
        }
        for a in ctx.arms
    }
    return {
        "arms": arms,
        "headline_key": ctx.headline_key,
        "paired": [{"metric": p["metric"], "comparison": p["contrast"].name, "kind": p["contrast"].kind,
                    "detail": p["contrast"].detail, **p["result"].as_dict()} for p in nums.paired],
        "smooth": ctx.smooth,
        "provenance": [{"runs": [r.name for r in rs], **rec} for rec, rs in provenance_groups(ctx)],
        "difficulty": nums.difficulty,
        "has_eval": ctx.has_eval,
        "claims": None if nums.claims is None else {
            "grpo": nums.claims.grpo, "drgrpo": nums.claims.drgrpo, "seeds": list(nums.claims.seeds),
            "rows": [{"claim": r.claim, "stat": r.stat, "summary": r.summary, "unit": r.unit, "value": r.value,
                      "lo": r.lo, "hi": r.hi, "n": r.n, "agree": r.agree, "verdict": r.verdict,
                      "per_seed": dict(r.per_seed)} for r in nums.claims.rows]},
    }
