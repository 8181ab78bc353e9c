"""Paired comparisons of arms over seeds (pure Python: no numpy, no scipy, no pandas).

Runs of different arms with the same seed are pairs, so a comparison is computed per seed first (one
difference, or one contrast, per seed every arm involved has), then over seeds: the mean, its Student-t
interval ``t_{(1+level)/2, n-1} * sd / sqrt(n)`` (ddof=1; none below 2 seeds) and the sign count ("10/10").

An arm is identified by the values of all of ``config.OBJECTIVE_KNOBS`` (:class:`Knobs`; a config without a
key has the TrainConfig default), never by its label. GRPO = (adv_scale group, loss_agg seq_mean), Dr. GRPO =
(none, max_tokens), the 2x2 cells likewise, each with every other knob at its default. Which comparisons
(:func:`plan_contrasts`): GRPO − Dr. GRPO, the 2x2 main effects, else each arm against a reference arm: the
GRPO arm if there is one, else the Dr. GRPO arm, else the one arm with loss_agg seq_mean, else the first arm.
Signs: a positive number means "the GRPO-like side has more of it": "reference − arm" against GRPO, the
seq_mean arm or the first arm; "arm − Dr. GRPO" against Dr. GRPO (the arm is the side further from Dr.
GRPO). A knob text names adv_scale and loss_agg, then only the other knobs off their defaults ("none,
max_tokens, length_alpha=1"). Why: docs/design/report.md.
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

from drgrpo_cli.config import OBJECTIVE_KNOBS, TrainConfig, arm_label
from drgrpo_cli.metrics import finite, mean
from drgrpo_cli.report.text import number_text

#: Confidence level of every interval reported.
LEVEL = 0.95
#: The knobs that identify an arm (config.OBJECTIVE_KNOBS), and their TrainConfig defaults (a config
#: without the key has the default).
KNOBS = OBJECTIVE_KNOBS
KNOB_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrainConfig) if f.name in KNOBS}
#: The two bias knobs every knob text names; the others are named only off their defaults.
BIAS_KNOBS = ("adv_scale", "loss_agg")
#: One arm's knob values, in KNOBS order (a tuple: hashable, compares equal to a plain tuple).
Knobs = namedtuple("Knobs", KNOBS)  # type: ignore[misc]


def knob_value(name: str, v: Any) -> Any:
    """``v`` as the type of the knob's default, so that equal settings compare equal (1 == 1.0, "true" ==
    True); a value that does not convert stays as it is (then it differs from every valid one)."""
    d = KNOB_DEFAULTS[name]
    if isinstance(d, bool):
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        return bool(v) if isinstance(v, (bool, int)) and v in (0, 1) else v
    if isinstance(d, (int, float)):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        try:
            return float(v) if isinstance(v, str) else v
        except ValueError:
            return v
    return v if isinstance(v, str) else str(v)


def knobs_with(**values: Any) -> Knobs:
    """The knobs with ``values`` set and every other knob at its default."""
    unknown = sorted(set(values) - set(KNOBS))
    if unknown:
        raise KeyError(f"not an objective knob: {', '.join(unknown)}")
    return Knobs(*(knob_value(k, values.get(k, KNOB_DEFAULTS[k])) for k in KNOBS))


GRPO_KNOBS = knobs_with(adv_scale="group", loss_agg="seq_mean")
DRGRPO_KNOBS = knobs_with(adv_scale="none", loss_agg="max_tokens")
#: The four cells of the bias 2x2: adv_scale in (group, none) x loss_agg in (seq_mean, max_tokens), the
#: other knobs at their defaults.
CELLS_2X2 = tuple(knobs_with(adv_scale=a, loss_agg=g)
                  for a, g in (("group", "seq_mean"), ("none", "seq_mean"), ("group", "max_tokens"),
                               ("none", "max_tokens")))

__all__ = [
    "LEVEL", "KNOBS", "KNOB_DEFAULTS", "BIAS_KNOBS", "Knobs", "GRPO_KNOBS", "DRGRPO_KNOBS", "CELLS_2X2",
    "t_quantile", "t_crit", "sd", "mean_ci", "Contrast", "Paired", "paired", "paired_diff", "contrast_values",
    "evaluate", "plan_contrasts", "knob_value", "knobs_with", "knobs_of", "arm_knobs", "differing_knobs",
    "extra_knobs", "knob_value_text", "knob_text", "knob_label", "by_seed", "describe",
]


# ------------------------------------------------------------------------------------------------------
# Student t (scipy is not a dependency): regularized incomplete beta + bisection, exact to ~1e-10
def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    bt = math.exp(lbt)
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` (> 0, may be fractional) degrees of freedom."""
    if not 0 < p < 1 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


_T_CACHE: dict[tuple[float, float], float] = {}


def t_crit(df: float, level: float = LEVEL) -> float:
    """The two-sided ``level`` critical value ``t_{(1+level)/2, df}`` (cached)."""
    k = (float(df), float(level))
    if k not in _T_CACHE:
        _T_CACHE[k] = t_quantile(0.5 + level / 2.0, df)
    return _T_CACHE[k]


def sd(xs: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); NaN below two values."""
    n = len(xs)
    if n < 2:
        return math.nan
    m = math.fsum(xs) / n
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - 1))


def _finite_list(xs: Iterable[Any]) -> list[float]:
    return [f for f in map(finite, xs) if f is not None]


def mean_ci(xs: Iterable[Any], level: float = LEVEL) -> dict[str, Any]:
    """Mean, sd (ddof=1), n and the ``level`` Student-t interval of the mean over the finite ``xs``.

    ``lo``/``hi`` (and ``sd``) are NaN with fewer than two values; ``mean`` is NaN with none.
    """
    vals = _finite_list(xs)
    n = len(vals)
    m = mean(vals)
    m = math.nan if m is None else m
    s = sd(vals)
    if n >= 2:
        half = t_crit(n - 1, level) * s / math.sqrt(n)
        lo, hi = m - half, m + half
    else:
        lo = hi = math.nan
    return {"mean": m, "sd": s, "n": n, "lo": lo, "hi": hi, "values": vals}


# ------------------------------------------------------------------------------------------------------
# paired differences and contrasts
def _seed_order(s: Any) -> tuple[int, float, str]:
    f = finite(s)
    return (0, f, "") if f is not None else (1, 0.0, str(s))


@dataclass
class Paired:
    """A paired comparison over seeds: the per-seed values (differences or contrasts) and their summary."""

    seeds: list[Any]  # the seeds every arm involved has, in seed order
    diffs: list[float]  # one value per seed
    mean: float  # NaN without seeds
    sd: float  # ddof=1; NaN below 2 seeds
    lo: float  # Student-t interval of the mean; NaN below 2 seeds
    hi: float
    same_sign: int  # seeds whose value has the sign of the mean (0 counts as its own sign)
    level: float = LEVEL

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def signs(self) -> str:
        """``"same_sign/n"``, e.g. ``"10/10"``; ``""`` without seeds."""
        return f"{self.same_sign}/{self.n}" if self.n else ""

    @property
    def excludes_zero(self) -> bool | None:
        """Whether the interval excludes 0; None without an interval."""
        if math.isnan(self.lo):
            return None
        return self.lo > 0 or self.hi < 0

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "seeds": list(self.seeds), "diffs": list(self.diffs), "mean": self.mean, "sd": self.sd,
                "lo": self.lo, "hi": self.hi, "same_sign": self.same_sign, "signs": self.signs,
                "level": self.level, "excludes_zero": self.excludes_zero}


def paired(values: Mapping[Any, Any], level: float = LEVEL) -> Paired:
    """Summary of per-seed values (already differences or contrasts): ``{seed: value}``, non-finite skipped."""
    items = sorted(((s, finite(v)) for s, v in values.items()), key=lambda sv: _seed_order(sv[0]))
    items = [(s, v) for s, v in items if v is not None]
    seeds, diffs = [s for s, _ in items], [v for _, v in items]
    st = mean_ci(diffs, level)
    m = st["mean"]
    if diffs:
        sign = (m > 0) - (m < 0)
        same = sum(((d > 0) - (d < 0)) == sign for d in diffs)
    else:
        same = 0
    return Paired(seeds=seeds, diffs=diffs, mean=m, sd=st["sd"], lo=st["lo"], hi=st["hi"], same_sign=same,
                  level=level)


def paired_diff(a: Mapping[Any, Any], b: Mapping[Any, Any], level: float = LEVEL) -> Paired:
    """``a - b`` per seed over the seeds both have (finite values), then :func:`paired`."""
    d = {}
    for s in a:
        if s in b:
            x, y = finite(a[s]), finite(b[s])
            if x is not None and y is not None:
                d[s] = x - y
    return paired(d, level)


@dataclass(frozen=True)
class Contrast:
    """A per-seed linear combination of arms: ``sum(weight * value of arm)``.

    ``kind`` (a stable identifier): ``"grpo_vs_drgrpo"``, ``"length_norm"`` / ``"std_norm"`` (the 2x2 main
    effects) or ``"vs_reference"``. ``name``: short, for tables
    ("GRPO − Dr. GRPO"). ``detail``: the arms and their knobs, e.g. "GRPO (group, seq_mean) − Dr. GRPO
    (none, max_tokens)". ``plus``/``minus``: what a positive value means in words (which side is larger).
    """

    name: str
    kind: str
    weights: tuple[tuple[str, float], ...]
    detail: str = ""
    plus: str = ""
    minus: str = ""

    @property
    def arms(self) -> list[str]:
        return [a for a, w in self.weights if w]


def contrast_values(c: Contrast, by_arm: Mapping[str, Mapping[Any, Any]]) -> dict[Any, float]:
    """The contrast per seed, over the seeds for which every arm in it has a finite value."""
    arms = c.arms
    if not arms or any(a not in by_arm for a in arms):
        return {}
    seeds = set(by_arm[arms[0]])
    for a in arms[1:]:
        seeds &= set(by_arm[a])
    terms = [(a, w) for a, w in c.weights if w]
    out = {}
    for s in seeds:
        vals = [finite(by_arm[a][s]) for a, _ in terms]
        if all(v is not None for v in vals):
            out[s] = math.fsum(w * v for (_, w), v in zip(terms, vals))  # type: ignore[operator]
    return out


def evaluate(c: Contrast, by_arm: Mapping[str, Mapping[Any, Any]], level: float = LEVEL) -> Paired:
    """:func:`contrast_values` summarised by :func:`paired`."""
    return paired(contrast_values(c, by_arm), level)


def knobs_of(config: Mapping[str, Any]) -> Knobs:
    """The objective knobs of one run's config (TrainConfig defaults where a key is absent: older runs)."""
    return Knobs(*(knob_value(k, config.get(k, KNOB_DEFAULTS[k])) for k in KNOBS))


def arm_knobs(configs: Iterable[Mapping[str, Any]]) -> Knobs | None:
    """The knobs shared by all runs of an arm; None when they differ or there is no run."""
    found = {knobs_of(c) for c in configs}
    return found.pop() if len(found) == 1 else None


def differing_knobs(configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The knobs whose values differ between ``configs`` (in KNOBS order)."""
    found = {knobs_of(c) for c in configs}
    return [k for i, k in enumerate(KNOBS) if len({kn[i] for kn in found}) > 1]


def extra_knobs(k: Sequence[Any]) -> list[tuple[str, Any]]:
    """``(name, value)`` of the knobs beyond adv_scale and loss_agg that are off their defaults."""
    return [(n, v) for n, v in zip(KNOBS, k)
            if n not in BIAS_KNOBS and v != knob_value(n, KNOB_DEFAULTS[n])]


def knob_value_text(v: Any) -> str:
    """A knob value as the report writes it: 1.0 as "1", True as "true", strings as they are."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    return str(v)


def knob_text(k: Sequence[Any]) -> str:
    """"adv_scale, loss_agg", then ``name=value`` for each other knob off its default, e.g. "none,
    max_tokens, length_alpha=1"."""
    d = dict(zip(KNOBS, k))
    return ", ".join([str(d["adv_scale"]), str(d["loss_agg"])]
                     + [f"{n}={knob_value_text(v)}" for n, v in extra_knobs(k)])


def knob_label(k: Sequence[Any]) -> str:
    """A readable arm name from its knobs: ``config.arm_label`` of the bias knobs, then the other knobs off
    their defaults in parentheses, e.g. "Dr. GRPO (length_alpha=1)"."""
    d = dict(zip(KNOBS, k))
    extra = ", ".join(f"{n}={knob_value_text(v)}" for n, v in extra_knobs(k))
    return arm_label(str(d["adv_scale"]), str(d["loss_agg"])) + (f" ({extra})" if extra else "")


def _as_knobs(k: Sequence[Any]) -> Knobs:
    if len(k) != len(KNOBS):
        raise ValueError(f"knobs are {len(KNOBS)} values ({', '.join(KNOBS)}), got {tuple(k)!r}: see knobs_with")
    return Knobs(*map(knob_value, KNOBS, k))


def _cells(knobs: Mapping[str, Knobs | None]) -> tuple[list[str], dict[Knobs, str]]:
    """The arms with knobs, and knobs -> arm for the knobs exactly one arm has (two arms with the same knobs,
    e.g. an lr sweep, are not identifiable by knobs)."""
    arms = [a for a, k in knobs.items() if k is not None]
    cell: dict[Knobs, str] = {}
    dup: set[Knobs] = set()
    for a in arms:
        k = knobs[a]
        if k in cell:
            dup.add(k)  # type: ignore[arg-type]
        cell[k] = a  # type: ignore[index]
    for k in dup:
        del cell[k]
    return arms, cell


def reference_arm(knobs: Mapping[str, Knobs | None]) -> str | None:
    """The arm the others are compared with: the GRPO arm, else the Dr. GRPO arm, else the one arm with
    loss_agg seq_mean, else the first arm (None without arms)."""
    arms, cell = _cells(knobs)
    for k in (GRPO_KNOBS, DRGRPO_KNOBS):
        if k in cell:
            return cell[k]
    seq = [a for a in arms if dict(zip(KNOBS, knobs[a]))["loss_agg"] == "seq_mean"]  # type: ignore[arg-type]
    return seq[0] if len(seq) == 1 else arms[0] if arms else None


def _vs_reference(a: str, ref: str, knobs: Mapping[str, Knobs | None], ref_is_drgrpo: bool) -> Contrast:
    """``ref − a``, or ``a − ref`` against the Dr. GRPO arm (positive = more on the GRPO-like side)."""
    hi, lo = (a, ref) if ref_is_drgrpo else (ref, a)
    return Contrast(
        name=f"{hi} − {lo}", kind="vs_reference", weights=((hi, 1.0), (lo, -1.0)),
        detail=f"{hi} ({knob_text(knobs[hi])}) − {lo} ({knob_text(knobs[lo])}); "  # type: ignore[arg-type]
               f"reference arm: {ref}",
        plus=f"larger under {hi}", minus=f"larger under {lo}")


def plan_contrasts(knobs: Mapping[str, Sequence[Any] | None]) -> list[Contrast]:
    """The comparisons a sweep gets, from ``{arm label: its knobs}`` (:func:`knobs_of`; None = arm of mixed
    knobs; such an arm is left out). Order: GRPO − Dr. GRPO, the 2x2 main effects, then other arms vs the
    reference (:func:`reference_arm`). See the module docstring; labels only name things, knobs decide."""
    knobs = {a: None if k is None else _as_knobs(k) for a, k in knobs.items()}
    arms, cell = _cells(knobs)
    out: list[Contrast] = []
    used: set[str] = set()
    g, d = cell.get(GRPO_KNOBS), cell.get(DRGRPO_KNOBS)
    if g and d:
        out.append(Contrast(
            name="GRPO − Dr. GRPO", kind="grpo_vs_drgrpo", weights=((g, 1.0), (d, -1.0)),
            detail=f"{g} ({knob_text(GRPO_KNOBS)}) − {d} ({knob_text(DRGRPO_KNOBS)})",
            plus=f"larger under {g}", minus=f"larger under {d}"))
        used |= {g, d}
    if all(k in cell for k in CELLS_2X2):
        gs, ns, gm, nm = (cell[k] for k in CELLS_2X2)
        out.append(Contrast(
            name="length norm. (seq_mean − max_tokens)", kind="length_norm",
            weights=((gs, 0.5), (gm, -0.5), (ns, 0.5), (nm, -0.5)),
            detail=f"mean over adv_scale of [loss_agg seq_mean − max_tokens]: (({gs} − {gm}) + ({ns} − {nm})) / 2",
            plus="larger with seq_mean", minus="larger with max_tokens"))
        out.append(Contrast(
            name="std norm. (group − none)", kind="std_norm",
            weights=((gs, 0.5), (ns, -0.5), (gm, 0.5), (nm, -0.5)),
            detail=f"mean over loss_agg of [adv_scale group − none]: (({gs} − {ns}) + ({gm} − {nm})) / 2",
            plus="larger with adv_scale=group", minus="larger with adv_scale=none"))
        used |= {gs, ns, gm, nm}
    ref = reference_arm(knobs)
    ref_is_drgrpo = ref is not None and GRPO_KNOBS not in cell and cell.get(DRGRPO_KNOBS) == ref
    out += [_vs_reference(a, ref, knobs, ref_is_drgrpo)  # type: ignore[arg-type]
            for a in arms if a not in used and a != ref]
    return out


def by_seed(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, float | None]:
    """``{seed: value}`` from ``(seed, value)`` pairs; a seed given twice gets the mean of its finite values."""
    acc: dict[Any, list[float]] = {}
    seen: list[Any] = []
    for s, v in pairs:
        if s not in acc:
            acc[s] = []
            seen.append(s)
        f = finite(v)
        if f is not None:
            acc[s].append(f)
    return {s: mean(acc[s]) for s in seen}


def describe(c: Contrast, p: Paired, what: str, unit: str = "", nd: int = 1) -> str:
    """One honest sentence about a paired result, e.g. "GRPO − Dr. GRPO, wrong-answer length growth: +18.2
    tokens (95% CI [+15.0, +21.4], paired over 10 seeds); larger under GRPO in 10/10 seeds; the CI excludes 0."
    """
    u = f" {unit}" if unit else ""
    if p.n == 0:
        return f"{c.name}, {what}: no seed has every arm of this comparison."
    pct = f"{round(100 * p.level)}%"
    if p.n < 2:
        return (f"{c.name}, {what}: {number_text(p.mean, nd, True)}{u} from 1 seed (seed {p.seeds[0]}); no interval "
                f"with one seed.")
    text = (f"{c.name}, {what}: {number_text(p.mean, nd, True)}{u} ({pct} CI [{number_text(p.lo, nd, True)}, "
            f"{number_text(p.hi, nd, True)}], paired over {p.n} seeds)")
    side = c.plus if p.mean > 0 else c.minus if p.mean < 0 else ""
    if side:
        text += f"; {side} in {p.signs} seeds"
    if p.excludes_zero:
        text += "; the CI excludes 0."
    else:
        text += "; the CI includes 0, so these seeds do not separate the arms."
    return text

