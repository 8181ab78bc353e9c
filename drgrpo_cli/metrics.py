"""Pure-Python window statistics over per-step metric series (no numpy, no pandas, no matplotlib, no torch).

The one place the per-run numbers are computed: the trainer's ``summary.json`` (:func:`run_summary`),
``drgrpo ablate``'s summary.csv and ``drgrpo plot``'s report all use these functions, so they report the
same numbers.

Choices and why:

* A *series* is one value per logged step, in step order. Windows are counted in rows, so "the last
  10%" of a 200-step run is its last 20 rows. A window holds ``ceil(frac * n)`` rows and never fewer
  than one, so short runs (a 2-step smoke test) still give a number instead of nothing.
* Training windows are over the *training* rows only, ``step >= 1`` (:data:`FIRST_TRAIN_STEP`): the trainer
  logs an eval-only ``step 0`` row before the first update, which is not a training step.
  :func:`train_series` does that selection; :func:`series` turns logged rows (``metrics.jsonl`` dicts, a
  pandas DataFrame or Series, duck-typed: pandas is never imported here) into a series.
* A run's *final* training value is the mean over its last 10% (:data:`FINAL_FRAC`) of training steps; its
  final *eval* value is the last eval point (:func:`last_value`): evals are sparse, so the last 10% of
  steps may hold none, and the last point is what the run ended with.
* Missing values (``None``/NaN, non-numbers: a step with no incorrect response has no ``len_incorrect``)
  are skipped inside a window; a window with no value at all gives ``None`` rather than a made-up 0.
* ``length_growth`` = mean over the last ``last_frac`` (20%) minus mean over the first ``first_frac`` (10%):
  how much a length grew during training, the paper's symptom of the length bias (wrong answers getting longer).
* The *headline* number of a run (:func:`run_numbers`) is that growth for the wrong answers in the failure
  state, :data:`HEADLINE` (``train/derailed/len_incorrect``: the built-in task's unanswerable prompts, where
  a longer wrong answer is pure length bias, not harder problems). A run that never logged it (math tasks,
  runs from before the tag existed) falls back to the pooled :data:`HEADLINE_FALLBACK`; a sweep uses the
  fallback for every run unless all of them have the headline (:func:`headline_key`), so arms are always
  compared on the same metric.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

Number = float | int | None

#: The trainer's first training step; ``step 0`` is the eval-only row written before training.
FIRST_TRAIN_STEP = 1
#: A run's final training value: the mean over this fraction of its last training steps.
FINAL_FRAC = 0.1
#: Length growth: mean over the last GROWTH_LAST of training steps minus the mean over the first GROWTH_FIRST.
GROWTH_FIRST = 0.1
GROWTH_LAST = 0.2
#: The headline metric: wrong-answer length in the failure state (built-in task, ``derailed`` rollouts).
HEADLINE = "train/derailed/len_incorrect"
#: Its fallback for runs that did not log it: the pooled wrong-answer length.
HEADLINE_FALLBACK = "train/len_incorrect"
#: The :func:`run_numbers` name prefix of each headline key.
HEADLINE_PREFIX = {HEADLINE: "derailed_len_incorrect", HEADLINE_FALLBACK: "len_incorrect"}


def finite(v: Any) -> float | None:
    """``v`` as a float if it is a finite real number (numpy scalars included, bools not), else None."""
    if v is None or isinstance(v, (bool, str, bytes)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def mean(values: Iterable[Any]) -> float | None:
    """Mean of the finite values, or None when there is none."""
    vals = [f for f in map(finite, values) if f is not None]
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


def tail_mean(series: Sequence[Number], frac: float = FINAL_FRAC) -> float | None:
    """Mean over the last ``frac`` of the series (the "final" value of a noisy curve)."""
    k = window_size(len(series), frac)
    return mean(series[len(series) - k:]) if k else None


def last_value(series: Iterable[Any]) -> float | None:
    """The last finite value of the series (a run's final eval number), or None when there is none."""
    out = None
    for v in series:
        f = finite(v)
        if f is not None:
            out = f
    return out


def growth_windows(series: Sequence[Number], first_frac: float = GROWTH_FIRST,
                   last_frac: float = GROWTH_LAST) -> tuple[float | None, float | None, float | None]:
    """``(early, late, growth)``: the means over the first ``first_frac`` and the last ``last_frac`` of the
    series and ``late - early`` (None where a window has no value)."""
    first = head_mean(series, first_frac)
    last = tail_mean(series, last_frac)
    return first, last, (None if first is None or last is None else last - first)


def length_growth(series: Sequence[Number], first_frac: float = GROWTH_FIRST,
                  last_frac: float = GROWTH_LAST) -> float | None:
    """Mean over the last ``last_frac`` minus mean over the first ``first_frac``; None if either is empty."""
    return growth_windows(series, first_frac, last_frac)[2]


def series(data: Any, key: str | None = None, *, min_step: float | None = None) -> list[float | None]:
    """The ``key`` values of logged rows, one per step in step order (``None`` where missing).

    ``data``: the row dicts of ``metrics.jsonl`` (step from ``"step"``, else the row's position + 1), a pandas
    DataFrame (column ``key``; steps from its ``step`` column, else its index), a pandas Series (steps from
    its index), or a plain sequence of values already in step order (returned as is: it has no steps).
    A step logged twice keeps its last row (as a resumed run's log is read). With ``min_step`` only rows
    with ``step >= min_step`` are kept. Raises KeyError when a DataFrame has no column ``key``.
    """
    if not hasattr(data, "columns") and not (hasattr(data, "sort_index") and hasattr(data, "tolist")):
        items = list(data)
        if not (items and all(isinstance(r, dict) for r in items)):
            return [finite(v) for v in items]
        data = items
    return [v for _, v in points(data, key, min_step=min_step)]


def points(data: Any, key: str | None = None, *, min_step: float | None = None) -> list[tuple[float, float | None]]:
    """``(step, value)`` of :func:`series`, for row dicts, a DataFrame or a Series (not a plain sequence)."""
    if hasattr(data, "columns"):  # pandas DataFrame
        if key not in data.columns:
            raise KeyError(f"no column {key!r}")
        steps = data["step"].tolist() if "step" in data.columns else data.index.tolist()
        pairs = list(zip(steps, data[key].tolist()))
    elif hasattr(data, "sort_index") and hasattr(data, "tolist"):  # pandas Series
        pairs = list(zip(data.index.tolist(), data.tolist()))
    else:
        pairs = [(r.get("step", i + 1), r.get(key)) for i, r in enumerate(data)]
    by_step: dict[float, Any] = {}
    for s, v in pairs:
        s = finite(s)
        if s is not None and (min_step is None or s >= min_step):
            by_step[s] = v
    return [(s, finite(by_step[s])) for s in sorted(by_step)]


def train_series(data: Any, key: str) -> list[float | None]:
    """:func:`series` over the training rows only (``step >= 1``: not the step-0 eval-only row)."""
    return series(data, key, min_step=FIRST_TRAIN_STEP)


def train_points(data: Any, key: str) -> list[tuple[float, float | None]]:
    """:func:`points` over the training rows only (``step >= 1``)."""
    return points(data, key, min_step=FIRST_TRAIN_STEP)


def _train(data: Any, key: str) -> list[float | None]:
    try:
        return train_series(data, key)
    except KeyError:
        return []


def final_value(data: Any, key: str) -> float | None:
    """A run's final value of ``key`` (anything :func:`series` reads): for training keys the mean over the last
    :data:`FINAL_FRAC` of training steps, for eval keys (``eval/...``, ``eval_sampled/...``) the last eval
    point; None when it was not logged."""
    try:
        if key.startswith("eval"):
            return last_value(series(data, key))
        return tail_mean(train_series(data, key), FINAL_FRAC)
    except KeyError:
        return None


def run_numbers(data: Any) -> dict[str, Any]:
    """The per-run numbers of ``summary.csv`` and of ``drgrpo plot``'s report, from a run's logged rows
    (anything :func:`series` reads), computed as the trainer's ``summary.json`` does. Keys:

    * ``final_reward``, ``final_accuracy``: mean of ``train/reward`` / ``train/accuracy`` over the last 10%
      of training steps; ``eval_accuracy``: the last ``eval/accuracy`` point;
    * ``len_incorrect_{early,late,growth}``: :func:`growth_windows` of the pooled ``train/len_incorrect``;
      ``len_correct_growth`` likewise for ``train/len_correct``;
    * ``derailed_len_incorrect_{early,late,growth}``: the same for :data:`HEADLINE` (None when not logged);
    * ``headline_metric``: :data:`HEADLINE` when the run logged it (any finite value), else
      :data:`HEADLINE_FALLBACK`.
    Missing keys give None, never an error.
    """
    out: dict[str, Any] = {"final_reward": final_value(data, "train/reward"),
                           "final_accuracy": final_value(data, "train/accuracy"),
                           "eval_accuracy": final_value(data, "eval/accuracy")}
    for key, prefix in HEADLINE_PREFIX.items():
        s = _train(data, key)
        early, late, growth = growth_windows(s)
        out.update({f"{prefix}_early": early, f"{prefix}_late": late, f"{prefix}_growth": growth})
        if key == HEADLINE:
            out["headline_metric"] = HEADLINE if any(v is not None for v in s) else HEADLINE_FALLBACK
    out["len_correct_growth"] = length_growth(_train(data, "train/len_correct"))
    return out


def run_summary(rows: Sequence[dict[str, Any]], arm: str, adv_scale: str, loss_agg: str, seed: int) -> dict[str, Any]:
    """The numbers of a finished run's ``summary.json`` from its ``metrics.jsonl`` rows: ``steps`` (training
    rows), the run's arm, knobs and seed, ``final`` (training keys: :func:`tail_mean` over the last 10% of
    training steps; eval keys: the last eval point; per-state and sampled-eval keys where logged) and
    ``growth`` (:func:`length_growth` of each logged length)."""
    keys = ["train/reward", "train/accuracy", "train/len_mean", "train/len_correct", "train/len_incorrect",
            "train/truncated_frac", "eval/accuracy", "eval/len_mean", "eval/len_correct", "eval/len_incorrect"]
    logged = [f"train/{tag}/{k}" for tag in ("derailed", "clean") for k in ("accuracy", "len_correct",
                                                                             "len_incorrect", "entropy")]
    logged += ["eval_sampled/accuracy", "eval_sampled/derailed/len_incorrect"]
    keys += [k for k in logged if any(k in r for r in rows)]
    final = {key: final_value(rows, key) for key in keys}
    growth = {k: length_growth(train_series(rows, f"train/{k}"))
              for k in ("len_incorrect", "len_correct", "len_mean", "derailed/len_incorrect", "clean/len_correct")
              if any(f"train/{k}" in r for r in rows)}
    return {"steps": len(train_series(rows, "train/reward")), "arm": arm, "adv_scale": adv_scale,
            "loss_agg": loss_agg, "seed": seed, "final": final, "growth": growth}


#: The per-run numbers arms are compared on, paired by seed (``paired.csv`` and ``drgrpo plot``'s report).
PAIRED_METRICS = ("headline_growth", "final_reward", "len_incorrect_growth")


def paired_metrics(key: str) -> tuple[str, ...]:
    """:data:`PAIRED_METRICS` of a sweep whose headline is ``key``: the pooled wrong-answer growth is left out
    when it is the headline already."""
    return tuple(m for m in PAIRED_METRICS if not (m == "len_incorrect_growth" and key == HEADLINE_FALLBACK))


def paired_value(numbers: dict[str, Any], metric: str, key: str) -> float | None:
    """One run's value of a paired metric, from its :func:`run_numbers` (``key``: the sweep's headline key)."""
    if metric == "headline_growth":
        return headline(numbers, key)["growth"]
    return numbers.get(metric)


def headline_key(numbers: Iterable[dict[str, Any]]) -> str:
    """The headline key for a set of runs (:func:`run_numbers` dicts): :data:`HEADLINE` if every run logged
    it, else :data:`HEADLINE_FALLBACK` for all of them (comparisons need one metric)."""
    nums = list(numbers)
    return HEADLINE if nums and all(n.get("headline_metric") == HEADLINE for n in nums) else HEADLINE_FALLBACK


def headline(numbers: dict[str, Any], key: str) -> dict[str, float | None]:
    """``{"early", "late", "growth"}`` of one run's :func:`run_numbers` for headline ``key``."""
    p = HEADLINE_PREFIX[key]
    return {w: numbers.get(f"{p}_{w}") for w in ("early", "late", "growth")}
