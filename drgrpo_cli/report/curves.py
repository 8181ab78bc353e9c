"""The curves the figures draw: per arm, each seed's series, their mean and a bootstrap band, and y-limits.

The band is a percentile-bootstrap 95% CI of the mean over seeds (fixed RNG seed: same logs, same figure),
clipped to the metric's range: it describes the seed spread; the inference is in the paired numbers.
Y-limits come from the arm means and bands, so one seed's spike cannot set the scale. numpy/pandas load
lazily (``drgrpo plot --help`` stays fast).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from drgrpo_cli.report.stats import LEVEL

__all__ = ["Curve", "auto_smooth", "bootstrap_band", "curve", "robust_ylim", "smoothed_series", "valid_range"]

#: Bootstrap resamples for the bands, and the fixed seed of their RNG (same logs -> same figure).
BOOT_N = 1000
BOOT_SEED = 0
#: Auto smoothing: a centred rolling mean over about 1/SMOOTH_DIV of the run's steps, at most SMOOTH_MAX.
SMOOTH_DIV = 15
SMOOTH_MAX = 10
_RATE = re.compile(r"(^|/)(reward|accuracy|frac|[a-z_]*_frac)$")
_LENGTH = re.compile(r"(^|/)(len|len_[a-z_]+)$")


def valid_range(key: str) -> tuple[float | None, float | None]:
    """The range a metric's values (and so its band) can take: rates [0, 1], lengths [0, inf), else free."""
    if _RATE.search(key):
        return (0.0, 1.0)
    if _LENGTH.search(key):
        return (0.0, None)
    return (None, None)


def auto_smooth(n_steps: int) -> int:
    """Default smoothing window: about ``n_steps / 15`` steps, between 1 and 10."""
    return max(1, min(SMOOTH_MAX, round(n_steps / SMOOTH_DIV)))


def smoothed_series(frame: Any, key: str, smooth: int) -> Any:
    """One run's ``key`` values by step: per-step train values as a centred rolling mean over ``smooth``
    steps, eval points as logged; None when the run has no value."""
    if frame is None or key not in frame.columns:
        return None
    s = frame[key]
    if smooth > 1 and not key.startswith("eval"):  # eval/ and eval_sampled/ points are sparse: never smoothed
        s = s.rolling(smooth, center=True, min_periods=1).mean().where(s.notna())  # no value made up where none was logged
    s = s.dropna()
    return s if len(s) else None


def bootstrap_band(values: Any, level: float = LEVEL, n_boot: int = BOOT_N, seed: int = BOOT_SEED) -> tuple[Any, Any]:
    """Percentile-bootstrap ``level`` interval of the mean over the columns (seeds), per row (step).

    ``values``: a 2-D array, NaN where a seed has no value at that step. Rows with fewer than two values get
    NaN. The RNG is ``numpy.random.default_rng(seed)``, so the band is the same on every call.
    """
    import numpy as np

    x = np.asarray(values, dtype="float64")
    lo = np.full(x.shape[0], np.nan)
    hi = np.full(x.shape[0], np.nan)
    if x.ndim != 2 or not x.size:
        return lo, hi
    mask = ~np.isnan(x)
    rng = np.random.default_rng(seed)
    patterns: dict[bytes, list[int]] = {}
    for i, m in enumerate(mask):
        if m.sum() >= 2:
            patterns.setdefault(m.tobytes(), []).append(i)
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    for key in sorted(patterns):  # sorted: the RNG stream does not depend on dict order
        rows = patterns[key]
        cols = np.flatnonzero(np.frombuffer(key, dtype=bool))
        sub = x[np.ix_(rows, cols)]  # steps x k
        idx = rng.integers(0, len(cols), size=(n_boot, len(cols)))
        means = sub[:, idx].mean(axis=2)  # steps x n_boot
        lo[rows], hi[rows] = np.percentile(means, q, axis=1)
    return lo, hi


@dataclass
class Curve:
    """One arm's curve: ``df`` (index = step; columns mean, lo, hi, n) and ``runs`` (steps x seeds)."""

    df: Any
    runs: Any


def curve(frames: Sequence[Any], key: str, smooth: int) -> Curve | None:
    """Per-seed values, their mean and the clipped bootstrap band; None if no run has the key."""
    import numpy as np
    import pandas as pd

    cols = [s for s in (smoothed_series(f, key, smooth) for f in frames) if s is not None]
    if not cols:
        return None
    m = pd.concat(cols, axis=1, keys=range(len(cols)), sort=True)
    lo, hi = bootstrap_band(m.to_numpy())
    vmin, vmax = valid_range(key)
    if vmin is not None:
        lo, hi = np.maximum(lo, vmin), np.maximum(hi, vmin)
    if vmax is not None:
        lo, hi = np.minimum(lo, vmax), np.minimum(hi, vmax)
    return Curve(pd.DataFrame({"mean": m.mean(axis=1), "lo": lo, "hi": hi, "n": m.count(axis=1)}, index=m.index), m)


def robust_ylim(curves: Iterable[Any], key: str, lo_q: float = 1.0, hi_q: float = 99.0,
                pad: float = 0.08) -> tuple[float, float] | None:
    """Y-limits from the arm *mean* curves and their bands: the ``lo_q``-``hi_q`` percentiles of those
    values, padded by ``pad`` of their span and clipped to the metric's :func:`valid_range`; per-seed lines
    do not count, so one seed's spike cannot set the scale. The span is at least 0.4 for rates and half the
    level for lengths, so noise around a flat curve is not blown up to fill the panel. None without values."""
    import numpy as np

    dfs = [getattr(c, "df", c) for c in curves if c is not None]
    vals = [np.asarray(df[col], dtype="float64") for df in dfs for col in ("mean", "lo", "hi")]
    vals = np.concatenate(vals) if vals else np.array([])
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return None
    a, b = (float(v) for v in np.percentile(vals, [lo_q, hi_q]))
    vmin, vmax = valid_range(key)
    span = b - a
    a, b = a - pad * span, b + pad * span
    level = abs(a + b) / 2
    least = max(0.4 if vmax == 1.0 else 0.5 * level if vmin == 0.0 else 0.1 * level, 1e-6)  # rates, lengths, other
    if b - a < least:
        mid = (a + b) / 2
        a, b = mid - least / 2, mid + least / 2
        if vmin is not None and a < vmin:
            a, b = vmin, vmin + least
        if vmax is not None and b > vmax:
            a, b = (max(vmin, vmax - least) if vmin is not None else vmax - least), vmax
    if vmin is not None:
        a = max(a, vmin)
    if vmax is not None:
        b = min(b, vmax)
    return a, b
