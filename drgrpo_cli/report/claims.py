"""The claims made for Dr. GRPO over GRPO, checked on a sweep's paired seeds (pure: rows in, numbers out).

A sweep gets the claims table when it has a GRPO arm and a Dr. GRPO arm, found by their knobs
(``stats.GRPO_KNOBS`` / ``stats.DRGRPO_KNOBS``, the other knobs at their defaults), never by labels. Runs of
the two arms that share a seed are pairs. Every statistic is "Dr. GRPO relative to GRPO" and is computed per
seed first, then over seeds (Student-t 95% CI; the seed-variance ratio: a paired percentile bootstrap over
seeds). The verdict rule: *supported* = the CI excludes "no difference" on the claimed side, *contradicted* =
it excludes it on the other side, *inconclusive* = otherwise; no verdict without a CI (fewer than 2 paired
seeds). The exact definitions are the report's (``markdown._claims_section``); why: docs/design/report.md.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from drgrpo_cli.metrics import GROWTH_FIRST, HEADLINE, final_value, finite, growth_windows, head_mean, \
    mean, train_points, train_series
from drgrpo_cli.report.stats import DRGRPO_KNOBS, GRPO_KNOBS, Knobs, paired, sd

__all__ = ["BOOT_DRAWS", "BOOT_SEED", "CONVERGE_FRAC", "MATCH_TOL", "ROLL", "ClaimRow", "Claims", "claim_arms",
           "compute_claims", "converge_step", "length_at_reward", "percentile", "rolling", "variance_ratio", "verdict"]

#: The rolling window (steps) of the reward used by the matched-reward length and the convergence step:
#: centred, steps i-2 .. i+1 (pandas' ``rolling(4, center=True, min_periods=1)``).
ROLL = 4
#: Matched reward: steps whose rolling reward is within this of the lower of the two arms' final rewards.
MATCH_TOL = 0.02
#: Convergence: the first step whose rolling reward reaches this fraction of the run's final reward.
CONVERGE_FRAC = 0.9
#: The seed-variance ratio's bootstrap: draws and the fixed seed of its RNG (same logs, same report).
BOOT_DRAWS = 2000
BOOT_SEED = 0
NO_CI = "no CI, no verdict"

Rows = Sequence[Mapping[str, Any]]


@dataclass
class ClaimRow:
    """One row of the claims table. ``side``: the claimed sign of the value relative to ``null`` (+1 / -1;
    0 = no claimed side: only "CI excludes/includes" it). ``per_seed``: the per-seed values (None = n/a)."""

    claim: str
    stat: str
    summary: str  # the popular summary's number, "—" where there is none
    unit: str
    value: float
    lo: float
    hi: float
    side: int
    null: float = 0.0
    agree: int | None = None  # seeds whose value is on the claimed side (None: no per-seed value)
    n: int = 0  # paired seeds the value is computed over
    per_seed: dict[Any, float | None] = field(default_factory=dict)
    pct: tuple[float, float, float] | None = None  # value, lo, hi as % of GRPO's mean (claim 1)

    @property
    def verdict(self) -> str:
        return verdict(self.lo, self.hi, self.side, self.null)

    @property
    def na(self) -> list[Any]:
        return [s for s, v in self.per_seed.items() if v is None]


@dataclass
class Claims:
    grpo: str  # the arm labels
    drgrpo: str
    seeds: list[Any]  # the paired seeds
    rows: list[ClaimRow]


def verdict(lo: float, hi: float, side: int, null: float = 0.0) -> str:
    """supported / contradicted / inconclusive for a claimed ``side`` (+1: above ``null``, -1: below); with
    ``side`` 0 "CI excludes 0" / "CI includes 0"; :data:`NO_CI` without an interval."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return NO_CI
    above, below = lo > null, hi < null
    if side == 0:
        return "CI excludes 0" if above or below else "CI includes 0"
    if (above and side > 0) or (below and side < 0):
        return "supported"
    if above or below:
        return "contradicted"
    return "inconclusive"


def claim_arms(knobs: Mapping[str, Knobs | None]) -> tuple[str, str] | None:
    """(GRPO arm, Dr. GRPO arm) by knobs; None unless exactly one arm has each."""
    g = [a for a, k in knobs.items() if k is not None and tuple(k) == tuple(GRPO_KNOBS)]
    d = [a for a, k in knobs.items() if k is not None and tuple(k) == tuple(DRGRPO_KNOBS)]
    return (g[0], d[0]) if len(g) == 1 and len(d) == 1 else None


# ------------------------------------------------------------------------------------------------------
# per run
def rolling(values: Sequence[float | None], window: int = ROLL) -> list[float | None]:
    """Centred rolling mean over positions ``i - window//2 .. i + (window-1)//2`` of the finite values (as
    pandas' ``rolling(window, center=True, min_periods=1)``); None where the window has no value."""
    a, b = window // 2, (window - 1) // 2
    return [mean(v for v in values[max(0, i - a): i + b + 1] if v is not None) for i in range(len(values))]


def converge_step(rows: Rows, frac: float = CONVERGE_FRAC) -> float | None:
    """The first training step whose rolling ``train/reward`` reaches ``frac`` x the run's final reward
    (:func:`metrics.final_value`); None when it never does or nothing was logged."""
    final = final_value(rows, "train/reward")
    pts = train_points(rows, "train/reward")
    if final is None or not pts:
        return None
    for (s, _), r in zip(pts, rolling([v for _, v in pts])):
        if r is not None and r >= frac * final:
            return s
    return None


def length_at_reward(rows: Rows, target: float, tol: float = MATCH_TOL) -> float | None:
    """Mean ``train/len_mean`` over the steps whose rolling ``train/reward`` is within ``tol`` of ``target``;
    None when no step gets there."""
    rew = train_points(rows, "train/reward")
    lens = dict(train_points(rows, "train/len_mean"))
    roll = rolling([v for _, v in rew])
    hits = [lens.get(s) for (s, _), r in zip(rew, roll) if r is not None and abs(r - target) <= tol + 1e-12]
    return mean(v for v in hits if v is not None)


def accuracy_gain(rows: Rows, key: str) -> float | None:
    """Final window (last 10% of steps) minus the first-10% window of ``key``."""
    s = train_series(rows, key)
    last, first = final_value(rows, key), head_mean(s, GROWTH_FIRST)
    return None if last is None or first is None else last - first


def _tags(runs: Sequence[Rows]) -> list[str]:
    """The ``<tag>`` of every ``train/<tag>/accuracy`` the runs logged, sorted."""
    found = {k.split("/")[1] for rows in runs for r in rows for k in r
             if k.startswith("train/") and k.endswith("/accuracy") and k.count("/") == 2}
    return sorted(found)


# ------------------------------------------------------------------------------------------------------
# over seeds
def percentile(sorted_xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default)."""
    if not sorted_xs:
        return math.nan
    pos = (len(sorted_xs) - 1) * q / 100.0
    i = math.floor(pos)
    j = min(i + 1, len(sorted_xs) - 1)
    return sorted_xs[i] + (sorted_xs[j] - sorted_xs[i]) * (pos - i)


def _var(xs: Sequence[float]) -> float:
    """Sample variance (ddof=1); exactly 0 when every value is the same (no rounding residue)."""
    return 0.0 if len(set(xs)) < 2 else sd(xs) ** 2


def variance_ratio(g: Sequence[float], d: Sequence[float], draws: int = BOOT_DRAWS,
                   seed: int = BOOT_SEED) -> tuple[float, float, float]:
    """var(d) / var(g) (ddof=1; paired lists, one value per seed) and its 95% percentile-bootstrap interval:
    resample seed indices with replacement (the same indices for both arms), ``draws`` times, with
    ``random.Random(seed)``; a draw whose GRPO variance is 0 (e.g. one seed drawn every time) has no ratio
    and is skipped. The interval is NaN below two seeds."""
    n = len(g)
    var_g, var_d = _var(g), _var(d)
    value = var_d / var_g if n >= 2 and var_g > 0 else math.nan
    if n < 2:
        return value, math.nan, math.nan
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        idx = [rng.randrange(n) for _ in range(n)]
        vg = _var([g[i] for i in idx])
        if vg > 0:
            ratios.append(_var([d[i] for i in idx]) / vg)
    ratios.sort()
    return value, percentile(ratios, 2.5), percentile(ratios, 97.5)


def _row(claim: str, stat: str, summary: str, unit: str, per_seed: Mapping[Any, float | None], side: int,
         ties_agree: bool = False) -> ClaimRow:
    """A row from per-seed values (None = n/a): their mean and Student-t CI, seeds on the claimed side (0
    counts as agreeing with ``ties_agree``: "no slower"; for ``side`` 0: seeds with the sign of the mean)."""
    p = paired({s: v for s, v in per_seed.items() if v is not None})
    if side:
        agree = sum(v * side > 0 or (ties_agree and v == 0) for v in p.diffs)
    else:
        agree = p.same_sign
    return ClaimRow(claim=claim, stat=stat, summary=summary, unit=unit, value=p.mean, lo=p.lo, hi=p.hi, side=side,
                    agree=agree, n=p.n, per_seed=dict(per_seed))


def _diff(g: Mapping[Any, Rows], d: Mapping[Any, Rows], seeds: Sequence[Any], fn: Any) -> dict[Any, float | None]:
    """Per seed ``fn(Dr. GRPO rows) - fn(GRPO rows)``, None where either is None."""
    out: dict[Any, float | None] = {}
    for s in seeds:
        a, b = fn(d[s]), fn(g[s])
        out[s] = None if a is None or b is None else a - b
    return out


def _length_rows(g: Mapping[Any, Rows], d: Mapping[Any, Rows], seeds: Sequence[Any], headline: bool) -> list[ClaimRow]:
    claim = "1. wrong-answer length drops"
    per = _diff(g, d, seeds, lambda rows: final_value(rows, "train/len_incorrect"))
    row = _row(claim, "final wrong-answer length, Dr. GRPO − GRPO", "−60%", "tokens", per, -1)
    base = mean(final_value(g[s], "train/len_incorrect") for s in seeds if per[s] is not None)
    if base:
        row.pct = tuple(100 * x / base for x in (row.value, row.lo, row.hi))  # type: ignore[assignment]
    out = [row]
    if headline:
        per_h = _diff(g, d, seeds, lambda rows: growth_windows(train_series(rows, HEADLINE))[2])
        out.append(_row(claim, "failure-state wrong-answer length growth, Dr. GRPO − GRPO", "—", "tokens", per_h, -1))
    return out


def _efficiency(rows: Rows) -> float | None:
    r, n = final_value(rows, "train/reward"), final_value(rows, "train/len_mean")
    return None if r is None or not n else r / n


def _efficiency_rows(g: Mapping[Any, Rows], d: Mapping[Any, Rows], seeds: Sequence[Any]) -> list[ClaimRow]:
    claim = "2. token efficiency improves"
    ratio: dict[Any, float | None] = {}
    matched: dict[Any, float | None] = {}
    for s in seeds:
        eg, ed = _efficiency(g[s]), _efficiency(d[s])
        ratio[s] = None if eg is None or ed is None or eg == 0 else 100 * (ed / eg - 1)
        rg, rd = final_value(g[s], "train/reward"), final_value(d[s], "train/reward")
        if rg is None or rd is None:
            matched[s] = None
            continue
        target = min(rg, rd)
        lg, ld = length_at_reward(g[s], target), length_at_reward(d[s], target)
        matched[s] = None if lg is None or ld is None else ld - lg
    return [_row(claim, "reward per generated token, Dr. GRPO / GRPO − 1", "+80%", "%", ratio, +1),
            _row(claim, "length at matched reward, Dr. GRPO − GRPO", "—", "tokens", matched, -1)]


def _variance_row(g: Mapping[Any, Rows], d: Mapping[Any, Rows], seeds: Sequence[Any]) -> ClaimRow:
    fg = {s: final_value(g[s], "train/reward") for s in seeds}
    fd = {s: final_value(d[s], "train/reward") for s in seeds}
    both = [s for s in seeds if fg[s] is not None and fd[s] is not None]
    value, lo, hi = variance_ratio([fg[s] for s in both], [fd[s] for s in both])  # type: ignore[misc]
    return ClaimRow(claim="3. more stable across seeds", stat="seed variance of the final reward, Dr. GRPO / GRPO",
                    summary="−40%", unit="×", value=value, lo=lo, hi=hi, side=-1, null=1.0, agree=None, n=len(both))


def _tag_rows(g: Mapping[Any, Rows], d: Mapping[Any, Rows], seeds: Sequence[Any]) -> list[ClaimRow]:
    out = []
    for tag in _tags([g[s] for s in seeds] + [d[s] for s in seeds]):
        key = f"train/{tag}/accuracy"
        per = _diff(g, d, seeds, lambda rows, k=key: accuracy_gain(rows, k))
        out.append(_row("5. per-difficulty learning", f"`{tag}` accuracy gain, Dr. GRPO − GRPO", "—", "", per, 0))
    return out


def compute_claims(grpo: Mapping[Any, Rows], drgrpo: Mapping[Any, Rows], headline_key: str = "",
                   labels: tuple[str, str] = ("GRPO", "Dr. GRPO")) -> Claims:
    """The claims table's rows from ``{seed: metrics rows}`` of the GRPO and the Dr. GRPO arm (finished runs;
    the seeds both have are the pairs). ``headline_key`` == ``metrics.HEADLINE``: the task logs the
    failure-state length, so claim 1 gets its growth row too."""
    seeds = sorted(set(grpo) & set(drgrpo), key=lambda s: (finite(s) is None, finite(s) or 0.0, str(s)))
    rows = _length_rows(grpo, drgrpo, seeds, headline_key == HEADLINE)
    rows += _efficiency_rows(grpo, drgrpo, seeds)
    rows.append(_variance_row(grpo, drgrpo, seeds))
    conv = _diff(grpo, drgrpo, seeds, converge_step)
    rows.append(_row("4. convergence no slower", f"steps to {CONVERGE_FRAC:.0%} of the final reward, Dr. GRPO − GRPO",
                     "+30% faster", "steps", conv, -1, ties_agree=True))
    rows += _tag_rows(grpo, drgrpo, seeds)
    return Claims(grpo=labels[0], drgrpo=labels[1], seeds=seeds, rows=rows)
