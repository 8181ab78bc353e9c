"""Pure-Python window statistics over per-step metric series (no numpy, no matplotlib, no torch).

Shared by ``drgrpo ablate`` (summary.csv) and ``drgrpo plot`` so both report the same numbers.

Choices and why:

* A *series* is one value per logged step, in step order. Windows are counted in rows, so "the last
  10%" of a 200-step run is its last 20 rows. A window holds ``ceil(frac * n)`` rows and never fewer
  than one, so short runs (a 2-step smoke test) still give a number instead of nothing.
* Missing values (``None``/NaN: a step with no incorrect response has no ``len_incorrect``) are skipped
  inside a window; a window with no value at all gives ``None`` rather than a made-up 0.
* ``length_growth`` = mean over the last ``last_frac`` minus mean over the first ``first_frac``: how much a
  length grew during training, the paper's symptom of the length bias (wrong answers getting longer).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

Number = float | int | None


def _ok(v: Number) -> bool:
    return v is not None and not isinstance(v, bool) and math.isfinite(v)


def mean(values: Iterable[Number]) -> float | None:
    """Mean of the finite values, or None when there is none."""
    vals = [float(v) for v in values if _ok(v)]
    return sum(vals) / len(vals) if vals else None


def window_size(n: int, frac: float) -> int:
    """Rows in a ``frac`` window of ``n`` rows: ``ceil(frac * n)``, at least 1, at most ``n``."""
    if n <= 0:
        return 0
    # round() first so that 0.1 * 200 = 20.000000000000004 does not become 21.
    return max(1, min(n, math.ceil(round(frac * n, 9))))


def head_mean(series: Sequence[Number], frac: float = 0.1) -> float | None:
    """Mean over the first ``frac`` of the series."""
    return mean(series[: window_size(len(series), frac)])


def tail_mean(series: Sequence[Number], frac: float = 0.1) -> float | None:
    """Mean over the last ``frac`` of the series (the "final" value of a noisy curve)."""
    k = window_size(len(series), frac)
    return mean(series[len(series) - k:]) if k else None


def length_growth(series: Sequence[Number], first_frac: float = 0.1, last_frac: float = 0.2) -> float | None:
    """Mean over the last ``last_frac`` minus mean over the first ``first_frac``; None if either is empty."""
    first = head_mean(series, first_frac)
    last = tail_mean(series, last_frac)
    if first is None or last is None:
        return None
    return last - first
