"""``drgrpo plot``: figures and a report from run directories, as a library (:func:`plot`).

``plot(paths, out=None, metrics=None, smooth=1, formats=("png", "svg")) -> PlotResult`` reads run
directories (the contract of :mod:`drgrpo_cli.runlog`) and writes, into one output folder and nowhere else:

* ``length_growth.{png,svg}``    - the layout of the paper's Fig. 6: a "train" row (reward, response
  length, length of correct, length of incorrect responses) and an "eval (greedy)" row (accuracy,
  response length, length of correct, length of incorrect) over policy steps;
* ``token_efficiency.{png,svg}`` - the paper's Fig. 1 (right): train reward against mean response length,
  one trajectory per arm, start (o) and end (*) marked (plus the same for eval when logged);
* ``difficulty_bias.{png,svg}``  - the gradient weight a group gets by its pass rate k/G, per arm;
* ``metrics.{png,svg}``          - only with ``metrics=[...]``: one panel per requested key;
* ``report.md`` and ``report.html`` - configs, final metrics, incorrect-length growth, the difficulty
  diagnostic, warnings, and the figures embedded. Every number comes from the logs.

Choices made here and why
-------------------------
Inputs. Each path is a run directory (it holds ``config.json``) or a folder searched for run
directories (up to three levels down, never inside a run directory, so a checkpoint's ``config.json``
is not mistaken for a run). An optional ``grid.json`` at a searched folder's root maps run directories to
arm labels; the shapes understood are ``{"arms": {"<run dir>": "<label>"}}``, ``{"arms": {"<label>":
["<run dir>", ...]}}``, ``{"runs": [{"dir"|"run_dir"|"name"|"path": ..., "arm"|"label": ...}]}`` and
dict-valued variants with an ``arm``/``label`` key; anything else is ignored with a note. Without it a
run's arm is its config's ``arm`` key if present, else ``arm_label(adv_scale, loss_agg)``. When labels
come from the knobs and runs of one label differ in another config key (a learning-rate sweep, say),
the differing keys are appended to the label, so different configs are never pooled as "seeds"
(keys that only say where/how a run executed - ``seed``, ``device``, ``threads``, ... - do not count).
Seeds are the runs of one arm. Config files are read as plain JSON, not through ``TrainConfig``, so runs
written by an older or newer drgrpo still plot.

Output folder. One searched folder (a sweep) -> ``<sweep>/figures/``; anything else (one or several run
directories, several sweeps) -> ``./drgrpo-plot/`` in the working directory, because writing into a run
directory or into a parent we did not create would put files where other tools own the layout. File
names are fixed, so a re-run overwrites its own outputs and nothing else. SVG/PDF carry no date and SVG
ids use a fixed hash salt; report.md/report.html hold no timestamps, so the same logs give the same report.

Aggregation. A curve is the mean over an arm's seeds at each step; the band is the 95% Student-t
interval of that mean (``t_{0.975, n-1} * sd / sqrt(n)``, sd with ddof=1), drawn only where >= 2 seeds
have the step (runs of different lengths: n varies along the curve). scipy is not a dependency, so the
t quantile is computed here (regularized incomplete beta + bisection, exact to ~1e-10).
``smooth`` is a trailing rolling mean over ``smooth`` logged steps (``min_periods=1``), applied to each run
before averaging, to per-step (train/time/...) metrics only: eval points are sparse and never smoothed,
and no number in the report is ever smoothed (it does not depend on ``smooth``).

Report numbers. Computed per run exactly as the trainer's ``summary.json`` (``final``/``growth``) and
``drgrpo ablate``'s ``summary.csv`` do, by the same functions (:mod:`drgrpo_cli.metrics_math`), so the
report agrees with them: training windows cover the training rows only, ``step >= 1`` (the step-0 row is
the eval-only row logged before training); a train metric's final value is the mean over the last 10% of
those steps (``ceil(0.1 * n)``, at least one); an eval metric's final value is the run's *last eval point*
(evals are sparse; the last 10% of steps may hold none). Incorrect-length growth is
:func:`~drgrpo_cli.metrics_math.length_growth` per run (mean of ``train/len_incorrect`` over the last 20% of
training steps minus the mean over the first 10%; null steps inside a window are skipped). Per arm: the
mean over seeds (the same mean as summary.csv) +- std (ddof=1), growth with a 95% t-interval. Unlike
summary.csv, which counts finished runs only, partial/failed runs are included (with a warning). GRPO -
Dr. GRPO is a difference of two independent means with a Welch interval (seeds of different arms are
separate runs, not pairs).

Difficulty diagnostic. From ``difficulty/k{k}/groups`` (n_k) and ``difficulty/k{k}/abs_adv`` (a_k), pooled
over all steps of all seeds of an arm: the mean weight of a group with k of G correct is
``sum n_k a_k / sum n_k``, its share of the total weight is ``sum n_k a_k / sum_j sum n_j a_j``. With
binary rewards a group's mean |A| is ``2 p (1 - p)`` without std scaling and about ``2 sqrt(p (1 - p))``
with it, so std scaling raises the weight of near-all-wrong / near-all-right groups (k = 1, G - 1)
*relative to* mid-difficulty ones (k = G/2); the report states that ratio per arm from the logs.

Rendering. Figures are ``matplotlib.figure.Figure`` objects saved directly (Agg for PNG), never pyplot:
no global backend switch, headless, nothing left open. 150 dpi; the length-growth and difficulty
figures are 16 in wide (2400 px), the narrowest figure is 9 in (1350 px) - all >= 1200 px.
matplotlib and pandas are imported inside functions, so importing this module (the CLI's ``--help``)
costs only the standard library.

Robustness. Partial runs (no finished ``summary.json``), failed runs and a torn last metrics line plot
what exists and add a warning; a run with no eval rows leaves the eval panels (noted); a run with no
metrics rows is skipped (noted). A missing path, an empty folder, a folder with no run directories,
runs with no metrics at all, a bad option or an unknown ``metrics`` key raise :class:`PlotError` with a
one-line message, before anything is written.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .config import arm_label
from .metrics_math import FINAL_FRAC, finite, last_value, length_growth, mean, series, tail_mean, train_series
from .runlog import CONFIG, METRICS, read_jsonl, read_summary, run_state

__all__ = [
    "PlotError",
    "PlotResult",
    "plot",
    "t_quantile",
    "mean_ci",
    "ARM_ORDER",
    "DEFAULT_MULTI_OUT",
]

#: Fixed arm order (and colour order); other labels follow, sorted by name.
ARM_ORDER = ("GRPO", "std-only fix", "length-only fix", "Dr. GRPO")
ARM_COLORS = {"GRPO": "#d62728", "std-only fix": "#ff7f0e", "length-only fix": "#2ca02c", "Dr. GRPO": "#1f77b4"}
OTHER_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939")
FORMATS = ("png", "svg", "pdf")
GRID_FILE = "grid.json"
#: Default output folder when the inputs are not exactly one sweep folder (relative to the working dir).
DEFAULT_MULTI_OUT = Path("drgrpo-plot")
SWEEP_OUT = "figures"
DPI = 150
SEARCH_DEPTH = 3
#: Config keys that may differ between the seeds of one arm without making it another arm (where and
#: how a run was executed, not what it trains).
SEED_KEYS = frozenset({"seed", "device", "threads", "checkpoint_every", "samples_per_step",
                       "gradient_checkpointing", "out", "output_dir", "run_dir", "name"})

TRAIN_PANELS = (
    ("train/reward", "reward", "reward"),
    ("train/len_mean", "response length", "tokens"),
    ("train/len_correct", "length of correct responses", "tokens"),
    ("train/len_incorrect", "length of incorrect responses", "tokens"),
)
EVAL_PANELS = (
    ("eval/accuracy", "accuracy", "accuracy"),
    ("eval/len_mean", "response length", "tokens"),
    ("eval/len_correct", "length of correct responses", "tokens"),
    ("eval/len_incorrect", "length of incorrect responses", "tokens"),
)
FINAL_METRICS = (
    ("train/reward", "reward", 3),
    ("train/accuracy", "accuracy", 3),
    ("train/len_mean", "len", 1),
    ("train/len_correct", "len correct", 1),
    ("train/len_incorrect", "len incorrect", 1),
    ("eval/accuracy", "eval accuracy", 3),
)
_NAMED_EVAL = re.compile(r"^eval/([^/]+)/(accuracy|len_mean|len_correct|len_incorrect)$")
_DIFF_KEY = re.compile(r"^difficulty/k(\d+)/(groups|abs_adv)$")


class PlotError(ValueError):
    """Nothing sensible to plot (bad path, no runs, bad option); the message is one line for the user."""


@dataclass
class PlotResult:
    files: list[Path]  # every file written, figures first, report.md / report.html last
    report: Path  # report.md
    warnings: list[str]
    out: Path  # the output folder
    summary: dict[str, Any] = field(default_factory=dict)  # the report's numbers, machine-readable


# ================================================================================================
# pure numerics (standard library only)
# ================================================================================================
def _num(v: Any) -> float:
    """A float, or NaN for None / non-numbers / non-finite values (JSON null = missing)."""
    f = finite(v)
    return math.nan if f is None else f


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


def _t_crit(df: float, level: float = 0.95) -> float:
    k = (float(df), level)
    if k not in _T_CACHE:
        _T_CACHE[k] = t_quantile(0.5 + level / 2.0, df)
    return _T_CACHE[k]


def _sd(xs: Sequence[float]) -> float:
    n = len(xs)
    if n < 2:
        return math.nan
    m = math.fsum(xs) / n
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - 1))


def mean_ci(xs: Iterable[float], level: float = 0.95) -> dict[str, Any]:
    """Mean, sd (ddof=1), n and the ``level`` Student-t interval of the mean over the finite ``xs``.

    The mean is :func:`drgrpo_cli.metrics_math.mean` (as ablate's per-arm mean over seeds); ``lo``/``hi``
    are NaN with fewer than two values.
    """
    vals = [x for x in (_num(v) for v in xs) if not math.isnan(x)]
    n = len(vals)
    m = _num(mean(vals))
    sd = _sd(vals)
    if n >= 2:
        half = _t_crit(n - 1, level) * sd / math.sqrt(n)
        lo, hi = m - half, m + half
    else:
        lo = hi = math.nan
    return {"mean": m, "sd": sd, "n": n, "lo": lo, "hi": hi, "values": vals}


def _welch(a: dict[str, Any], b: dict[str, Any], level: float = 0.95) -> dict[str, Any]:
    """Difference of two independent means (a - b) with a Welch t-interval."""
    d = a["mean"] - b["mean"]
    out = {"mean": d, "lo": math.nan, "hi": math.nan, "df": math.nan}
    if a["n"] < 2 or b["n"] < 2:
        return out
    va, vb = a["sd"] ** 2 / a["n"], b["sd"] ** 2 / b["n"]
    se = math.sqrt(va + vb)
    if se == 0:
        out.update(lo=d, hi=d, df=float(a["n"] + b["n"] - 2))
        return out
    df = (va + vb) ** 2 / (va**2 / (a["n"] - 1) + vb**2 / (b["n"] - 1))
    half = _t_crit(df, level) * se
    out.update(lo=d - half, hi=d + half, df=df)
    return out


# ================================================================================================
# discovering runs
# ================================================================================================
@dataclass
class _Run:
    path: Path
    name: str  # relative to the searched folder (or the run dir's own name)
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    torn: bool
    state: str
    root: Path | None  # the searched folder it was found in, None when given directly
    arm: str = ""
    arm_source: str = ""
    frame: Any = None  # pandas DataFrame indexed by step

    @property
    def seed(self) -> Any:
        return self.config.get("seed")


def _find_runs(root: Path) -> list[Path]:
    found: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        try:
            children = sorted((p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")), key=str)
        except OSError:
            return
        for c in children:
            if (c / CONFIG).is_file():
                found.append(c)
            elif depth < SEARCH_DEPTH:
                walk(c, depth + 1)

    walk(root, 1)
    return found


def _grid_mapping(root: Path, warnings: list[str]) -> dict[str, str]:
    """``run dir name -> arm label`` from ``<root>/grid.json``; {} when absent or not understood."""
    p = root / GRID_FILE
    if not p.is_file():
        return {}
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        warnings.append(f"{p}: not valid JSON; arms taken from the run configs")
        return {}
    mapping: dict[str, str] = {}

    def label_of(v: Any) -> str | None:
        if isinstance(v, str):
            return v
        if isinstance(v, dict):
            for k in ("arm", "label", "arm_label"):
                if isinstance(v.get(k), str):
                    return v[k]
        return None

    def dir_of(v: dict[str, Any]) -> str | None:
        for k in ("dir", "run_dir", "run", "path", "out", "name"):
            if isinstance(v.get(k), str):
                return v[k]
        return None

    def take(section: Any) -> None:
        if isinstance(section, dict):
            for k, v in section.items():
                if isinstance(v, list) and all(isinstance(x, str) for x in v):  # label -> [run dirs]
                    for run in v:
                        mapping[run] = k
                    continue
                lab = label_of(v)
                if lab is not None:
                    if isinstance(v, dict) and isinstance(v.get("runs"), list):  # label -> {label, runs}
                        for run in v["runs"]:
                            if isinstance(run, str):
                                mapping[run] = lab
                    else:
                        mapping[k] = lab
        elif isinstance(section, list):
            for v in section:
                if not isinstance(v, dict):
                    continue
                lab = label_of(v) or (v.get("name") if isinstance(v.get("name"), str) else None)
                runs = v.get("runs") or v.get("run_dirs") or v.get("dirs")
                if lab is not None and isinstance(runs, list):
                    for run in runs:
                        if isinstance(run, str):
                            mapping[run] = lab
                        elif isinstance(run, dict) and dir_of(run):
                            mapping[dir_of(run)] = lab  # type: ignore[index]
                elif label_of(v) is not None and dir_of(v) is not None:
                    mapping[dir_of(v)] = label_of(v)  # type: ignore[index,assignment]

    if isinstance(obj, dict):
        for sec in ("arms", "runs"):
            take(obj.get(sec))
    if not mapping:
        warnings.append(f"{p}: no run -> arm mapping understood; arms taken from the run configs")
    return mapping


def _lookup(mapping: dict[str, str], run: _Run) -> str | None:
    if not mapping:
        return None
    norm = {Path(k).as_posix().rstrip("/"): v for k, v in mapping.items()}
    for cand in (run.name, run.path.name, str(run.path)):
        if cand in norm:
            return norm[cand]
    base = {Path(k).name: v for k, v in mapping.items()}
    return base.get(run.path.name)


def _load_run(path: Path, name: str, root: Path | None, warnings: list[str]) -> _Run | None:
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        warnings.append(f"{name}: unreadable config.json ({e}); skipped")
        return None
    try:
        rows, torn = read_jsonl(path / METRICS)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        warnings.append(f"{name}: unreadable metrics.jsonl ({e}); skipped")
        return None
    rows = [r for r in rows if isinstance(r, dict)]
    return _Run(path=path, name=name, config=config, rows=rows, torn=torn, state=run_state(path), root=root)


def _discover(paths: Sequence[Path], warnings: list[str]) -> tuple[list[_Run], list[Path]]:
    """All runs under ``paths`` and the folders that were searched (sweeps)."""
    if not paths:
        raise PlotError("no path given: pass a sweep folder or one or more run directories")
    runs: list[_Run] = []
    sweeps: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise PlotError(f"no such file or directory: {p}")
        if not p.is_dir():
            raise PlotError(f"not a directory: {p} (pass a sweep folder or run directories)")
        if (p / CONFIG).is_file():
            found = [(p, p.name, None)]
        else:
            if not any(p.iterdir()):
                raise PlotError(f"empty directory: {p}")
            dirs = _find_runs(p)
            if not dirs:
                raise PlotError(f"no run directories (folders with {CONFIG}) in {p}")
            sweeps.append(p)
            found = [(d, d.relative_to(p).as_posix(), p) for d in dirs]
        mapping = _grid_mapping(p, warnings) if found[0][2] is not None else {}
        unmatched: list[str] = []
        for d, name, root in found:
            key = d.resolve()
            if key in seen:
                continue
            seen.add(key)
            run = _load_run(d, name, root, warnings)
            if run is None:
                continue
            lab = _lookup(mapping, run)
            if lab is not None:
                run.arm, run.arm_source = lab, "grid"
            else:
                if mapping:
                    unmatched.append(name)
                if isinstance(run.config.get("arm"), str) and run.config["arm"]:
                    run.arm, run.arm_source = run.config["arm"], "config"
                else:
                    run.arm = arm_label(str(run.config.get("adv_scale", "group")),
                                        str(run.config.get("loss_agg", "seq_mean")))
                    run.arm_source = "knobs"
            runs.append(run)
        if unmatched:
            warnings.append(f"{p / GRID_FILE}: no arm for {', '.join(unmatched)}; taken from their configs")
    if not runs:
        raise PlotError("no readable runs in " + ", ".join(str(p) for p in paths))
    return runs, sweeps


def _fmt_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def _split_mixed_arms(runs: list[_Run]) -> None:
    """Runs labelled from their knobs whose configs differ beyond the seed get the difference in the label."""
    by_arm: dict[str, list[_Run]] = {}
    for r in runs:
        if r.arm_source == "knobs":
            by_arm.setdefault(r.arm, []).append(r)
    for arm, group in by_arm.items():
        keys = sorted({k for r in group for k in r.config} - SEED_KEYS)
        differ = [k for k in keys if len({_fmt_value(r.config.get(k)) for r in group}) > 1]
        if not differ:
            continue
        for r in group:
            r.arm = f"{arm} (" + ", ".join(f"{k}={_fmt_value(r.config.get(k))}" for k in differ) + ")"


def _seed_key(r: _Run) -> tuple[Any, ...]:
    s = r.seed
    if isinstance(s, (int, float)) and not isinstance(s, bool):
        return (0, float(s), r.name)
    return (1, str(s), r.name)


def _arm_order(labels: Iterable[str]) -> list[str]:
    labels = set(labels)
    known = [a for a in ARM_ORDER if a in labels]
    return known + sorted(labels - set(known))


def _arm_colors(arms: Sequence[str]) -> dict[str, str]:
    colors: dict[str, str] = {}
    i = 0
    for a in arms:
        if a in ARM_COLORS:
            colors[a] = ARM_COLORS[a]
        else:
            colors[a] = OTHER_COLORS[i % len(OTHER_COLORS)]
            i += 1
    return colors


# ================================================================================================
# frames and curves (pandas, imported lazily)
# ================================================================================================
def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_records(rows)
    if "step" not in df.columns:
        df["step"] = range(1, len(df) + 1)
    df = df.apply(pd.to_numeric, errors="coerce").astype("float64")
    df = df[df["step"].notna()]
    df = df[~df["step"].duplicated(keep="last")].sort_values("step", kind="stable").set_index("step")
    return df


def _fill_named_eval(df: Any) -> list[str]:
    """Where ``eval/<m>`` is not logged but named sets ``eval/<name>/<m>`` are, use their row-wise mean."""
    named: dict[str, list[str]] = {}
    for c in df.columns:
        m = _NAMED_EVAL.match(str(c))
        if m:
            named.setdefault(m.group(2), []).append(c)
    filled = []
    for metric, cols in named.items():
        key = f"eval/{metric}"
        if key not in df.columns or df[key].notna().sum() == 0:
            df[key] = df[cols].mean(axis=1, skipna=True)
            filled.append(key)
    return filled


def _series(frame: Any, key: str, smooth: int) -> Any:
    if frame is None or key not in frame.columns:
        return None
    s = frame[key]
    if smooth > 1 and not key.startswith("eval/"):
        s = s.rolling(smooth, min_periods=1).mean()
    s = s.dropna()
    return s if len(s) else None


def _curve(frames: Sequence[Any], key: str, smooth: int) -> Any:
    """Mean over runs per step with the 95% t band; None when no run has the key."""
    import numpy as np
    import pandas as pd

    cols = [s for s in (_series(f, key, smooth) for f in frames) if s is not None]
    if not cols:
        return None
    m = pd.concat(cols, axis=1, keys=range(len(cols)), sort=True)
    mean = m.mean(axis=1)
    n = m.count(axis=1)
    sd = m.std(axis=1, ddof=1)
    tc = n.map(lambda k: _t_crit(k - 1) if k >= 2 else math.nan).astype("float64")
    half = tc * sd / np.sqrt(n)
    return pd.DataFrame({"mean": mean, "lo": mean - half, "hi": mean + half, "n": n})


# ================================================================================================
# figures (matplotlib, imported lazily; Figure objects, no pyplot)
# ================================================================================================
_RC = {
    "font.size": 13,
    "axes.titlesize": 14,
    "axes.labelsize": 13,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 12,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "drgrpo-plot",
    "svg.fonttype": "path",
    "lines.linewidth": 2.0,
}


def _save(fig: Any, out: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    written = []
    for fmt in formats:
        p = out / f"{stem}.{fmt}"
        meta: dict[str, Any] = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt, {})
        fig.savefig(p, format=fmt, dpi=DPI, metadata=meta, facecolor="white")
        written.append(p)
    return written


def _draw_curve(ax: Any, c: Any, color: str, sparse: bool, label: str | None = None) -> Any:
    x = c.index.to_numpy()
    (line,) = ax.plot(x, c["mean"].to_numpy(), color=color, label=label,
                      marker="o" if sparse else None, markersize=4 if sparse else None)
    if c["lo"].notna().any():
        ax.fill_between(x, c["lo"].to_numpy(), c["hi"].to_numpy(), color=color, alpha=0.18, linewidth=0)
    return line


def _no_data(ax: Any, text: str = "not logged") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.5")


def _legend(fig: Any, arms: Sequence[str], colors: dict[str, str], nseeds: dict[str, int], extra: Sequence[Any] = ()) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[a], linewidth=3, label=f"{a} (n={nseeds[a]})") for a in arms]
    handles += list(extra)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False)


def _fig_length_growth(ctx: _Ctx, out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    has_eval = ctx.has_eval
    fig = Figure(figsize=(16, 8.6 if has_eval else 4.9), layout="constrained")
    band = "mean over seeds, shaded: 95% t-interval" + (f", smoothed over {ctx.smooth} steps" if ctx.smooth > 1 else "")
    fig.suptitle(f"Response length during training ({band})", fontsize=15)
    _legend(fig, ctx.arms, ctx.colors, ctx.nseeds)
    rows = [("train", TRAIN_PANELS, False)] + ([("eval (greedy)", EVAL_PANELS, True)] if has_eval else [])
    subfigs = fig.subfigures(len(rows), 1, hspace=0.04) if len(rows) > 1 else [fig.subfigures(1, 1)]
    for sub, (title, panels, sparse) in zip(subfigs, rows):
        sub.suptitle(title, fontweight="bold", fontsize=15)
        axes = sub.subplots(1, len(panels))
        for ax, (key, ptitle, ylabel) in zip(axes, panels):
            ax.set_title(ptitle)
            ax.set_xlabel("policy step")
            ax.set_ylabel(ylabel)
            drawn = False
            for arm in ctx.arms:
                c = _curve(ctx.frames[arm], key, ctx.smooth)
                if c is not None:
                    _draw_curve(ax, c, ctx.colors[arm], sparse)
                    drawn = True
            if not drawn:
                _no_data(ax)
    return _save(fig, out, "length_growth", ctx.formats)


def _fig_token_efficiency(ctx: _Ctx, out: Path) -> list[Path]:
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    specs = [("train", "train/len_mean", "train/reward", "mean response length (tokens)", "train reward")]
    if ctx.has_eval:
        specs.append(("eval (greedy)", "eval/len_mean", "eval/accuracy", "mean response length (tokens)",
                      "eval accuracy"))
    fig = Figure(figsize=(9 if len(specs) == 1 else 16, 6.2), layout="constrained")
    fig.suptitle("Token efficiency: reward vs response length over training", fontsize=15)
    marks = [Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle="", markersize=9, label="start"),
             Line2D([], [], color="0.3", marker="*", linestyle="", markersize=14, label="end")]
    _legend(fig, ctx.arms, ctx.colors, ctx.nseeds, marks)
    axes = fig.subplots(1, len(specs), squeeze=False)[0]
    for ax, (title, xk, yk, xl, yl) in zip(axes, specs):
        ax.set_title(title, fontweight="bold")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        drawn = False
        for arm in ctx.arms:
            cx = _curve(ctx.frames[arm], xk, ctx.smooth)
            cy = _curve(ctx.frames[arm], yk, ctx.smooth)
            if cx is None or cy is None:
                continue
            j = pd.concat([cx["mean"].rename("x"), cy["mean"].rename("y")], axis=1, join="inner").dropna()
            if j.empty:
                continue
            xs, ys = j["x"].to_numpy(), j["y"].to_numpy()
            col = ctx.colors[arm]
            ax.plot(xs, ys, color=col, alpha=0.85, marker="." if len(xs) < 40 else None)
            ax.plot(xs[:1], ys[:1], color=col, marker="o", markerfacecolor="white", markersize=10, markeredgewidth=2,
                    linestyle="")
            ax.plot(xs[-1:], ys[-1:], color=col, marker="*", markersize=18, markeredgecolor="black",
                    markeredgewidth=0.6, linestyle="")
            drawn = True
        if not drawn:
            _no_data(ax)
    return _save(fig, out, "token_efficiency", ctx.formats)


def _fig_difficulty(ctx: _Ctx, diff: dict[str, Any], out: Path) -> list[Path]:
    import numpy as np
    from matplotlib.figure import Figure

    arms = [a for a in ctx.arms if a in diff]
    fracs = sorted({(k, g) for a in arms for k, g in zip(diff[a]["k"], diff[a]["G"])}, key=lambda kg: kg[0] / kg[1])
    xs_labels: list[str] = []
    pos: dict[tuple[int, int], int] = {}
    for kg in fracs:
        lab = f"{kg[0]}/{kg[1]}"
        if lab not in xs_labels:
            xs_labels.append(lab)
        pos[kg] = xs_labels.index(lab)
    fig = Figure(figsize=(16, 5.6), layout="constrained")
    fig.suptitle("Difficulty bias: gradient weight of a group by its pass rate k/G "
                 "(pooled over steps and seeds, weighted by group counts)", fontsize=15)
    _legend(fig, arms, ctx.colors, ctx.nseeds)
    axes = fig.subplots(1, 3)
    panels = [("mean_abs_adv", "mean |advantage| per group", "mean |A|"),
              ("relative", "relative to a mid group (k = G/2)", "weight / weight at k = G/2"),
              ("share", "share of total weight", "% of sum over groups of mean |A|")]
    width = 0.8 / max(1, len(arms))
    x = np.arange(len(xs_labels))
    for ax, (key, title, ylabel) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("pass rate k/G")
        ax.set_ylabel(ylabel)
        ax.grid(axis="x", visible=False)
        for i, arm in enumerate(arms):
            d = diff[arm]
            vals = np.full(len(xs_labels), np.nan)
            for k, g, v in zip(d["k"], d["G"], d[key]):
                vals[pos[(k, g)]] = v * (100.0 if key == "share" else 1.0)
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width=width, color=ctx.colors[arm])
        ax.set_xticks(x, xs_labels, rotation=0 if len(xs_labels) <= 12 else 90)
        if key == "relative":
            ax.axhline(1.0, color="0.4", linewidth=1, linestyle="--")
    return _save(fig, out, "difficulty_bias", ctx.formats)


def _fig_metrics(ctx: _Ctx, keys: Sequence[str], out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    ncol = min(3, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig = Figure(figsize=(16, 1.0 + 4.4 * nrow), layout="constrained")
    band = "mean over seeds, shaded: 95% t-interval" + (f", smoothed over {ctx.smooth} steps" if ctx.smooth > 1 else "")
    fig.suptitle(f"Requested metrics ({band})", fontsize=15)
    _legend(fig, ctx.arms, ctx.colors, ctx.nseeds)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        ax.set_title(key)
        ax.set_xlabel("policy step")
        drawn = False
        for arm in ctx.arms:
            c = _curve(ctx.frames[arm], key, ctx.smooth)
            if c is not None:
                _draw_curve(ax, c, ctx.colors[arm], key.startswith("eval/") or len(c) < 0.5 * ctx.max_steps)
                drawn = True
        if not drawn:
            _no_data(ax)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    return _save(fig, out, "metrics", ctx.formats)


# ================================================================================================
# numbers for the report
# ================================================================================================
@dataclass
class _Ctx:
    runs: list[_Run]
    arms: list[str]
    colors: dict[str, str]
    nseeds: dict[str, int]
    frames: dict[str, list[Any]]  # arm -> frames of its runs
    runs_by_arm: dict[str, list[_Run]]
    has_eval: bool
    smooth: int
    formats: tuple[str, ...]
    max_steps: int


def _final_metrics(ctx: _Ctx, named_evals: list[str]) -> dict[str, dict[str, Any]]:
    """Per run as in summary.json / summary.csv (:mod:`drgrpo_cli.metrics_math`): train keys are the mean over
    the last 10% of training steps (``step >= 1``), eval keys the last eval point; then mean_ci over seeds."""
    keys = [k for k, _, _ in FINAL_METRICS] + [f"eval/{n}/accuracy" for n in named_evals]
    out: dict[str, dict[str, Any]] = {}
    for arm in ctx.arms:
        res: dict[str, Any] = {}
        for key in keys:
            per_run = []
            for r in ctx.runs_by_arm[arm]:
                f = r.frame
                if key not in f.columns:
                    per_run.append(None)
                elif key.startswith("eval/"):
                    per_run.append(last_value(series(f, key)))
                else:
                    per_run.append(tail_mean(train_series(f, key), FINAL_FRAC))
            res[key] = mean_ci(per_run)
        out[arm] = res
    return out


def _growth(ctx: _Ctx, key: str) -> dict[str, dict[str, Any]]:
    out = {}
    for arm in ctx.arms:
        per = []
        for r in ctx.runs_by_arm[arm]:
            g = length_growth(train_series(r.frame, key)) if key in r.frame.columns else None
            per.append(_num(g))
        out[arm] = mean_ci(per)
        out[arm]["per_run"] = {r.name: v for r, v in zip(ctx.runs_by_arm[arm], per)}
    return out


def _difficulty(ctx: _Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm in ctx.arms:
        w: dict[tuple[int, int], float] = {}
        c: dict[tuple[int, int], float] = {}
        for r in ctx.runs_by_arm[arm]:
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
        if not c:
            continue
        kgs = sorted(c, key=lambda kg: (kg[0] / kg[1], kg[1]))
        total_w = math.fsum(w.values())
        total_c = math.fsum(c.values())
        abs_adv = [w[kg] / c[kg] if c[kg] > 0 else math.nan for kg in kgs]
        gs = {kg[1] for kg in kgs}
        # the mid group (k = G/2; mean of the two middle k for odd G), for the relative panel
        ref: list[float] = []
        for g in gs:
            mids = {g // 2, (g + 1) // 2}
            ref += [m for kg, m in zip(kgs, abs_adv) if kg[1] == g and kg[0] in mids and not math.isnan(m)]
        mid = _num(mean(ref))
        out[arm] = {
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
        edge_share = math.fsum(s for kg, s in zip(kgs, out[arm]["share"]) if kg[0] in (1, kg[1] - 1) and kg[1] > 2)
        out[arm]["edge_ratio"] = _num(mean(edge)) / mid if edge and mid and not math.isnan(mid) else math.nan
        out[arm]["edge_share"] = edge_share if edge else math.nan
        out[arm]["std_scaled"] = _std_scaled(ctx.runs_by_arm[arm])
    return out


def _std_scaled(runs: Sequence[_Run]) -> bool | None:
    vals = {str(r.config.get("adv_scale", "group")) for r in runs}
    if len(vals) != 1:
        return None
    return vals.pop() != "none"


# ================================================================================================
# report
# ================================================================================================
def _f(x: Any, nd: int = 1, sign: bool = False) -> str:
    x = _num(x)
    if math.isnan(x):
        return "—"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def _pm(s: dict[str, Any], nd: int) -> str:
    if s["n"] == 0:
        return "—"
    if s["n"] >= 2:
        return f"{_f(s['mean'], nd)} ± {_f(s['sd'], nd)}"
    return _f(s["mean"], nd)


def _ci(s: dict[str, Any], nd: int = 1, sign: bool = True) -> str:
    if math.isnan(_num(s.get("lo"))):
        return "—"
    return f"[{_f(s['lo'], nd, sign)}, {_f(s['hi'], nd, sign)}]"


def _cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _config_table(ctx: _Ctx) -> list[str]:
    keys_first = ("adv_scale", "loss_agg")
    all_keys = sorted({k for r in ctx.runs for k in r.config})
    all_keys = [k for k in keys_first if k in all_keys] + [k for k in all_keys if k not in keys_first]
    per_arm: dict[str, dict[str, str]] = {}
    for arm in ctx.arms:
        d = {}
        for k in all_keys:
            vals = sorted({_fmt_value(r.config[k]) for r in ctx.runs_by_arm[arm] if k in r.config},
                          key=lambda s: (len(s), s))
            d[k] = ", ".join(vals) if vals else "—"
        per_arm[arm] = d
    differ = [k for k in all_keys if len({per_arm[a][k] for a in ctx.arms}) > 1]
    shared = [k for k in all_keys if k not in differ]
    header = ["key", "all arms"] + list(ctx.arms)
    rows = [[f"**{k}**", ""] + [f"`{per_arm[a][k]}`" for a in ctx.arms] for k in differ]
    rows += [[k, f"`{per_arm[ctx.arms[0]][k]}`"] + [""] * len(ctx.arms) for k in shared]
    lines = [f"Keys that differ between arms first (bold, one column per arm), then the keys all arms share. "
             f"Several values in a cell are the values of that arm's seeds."]
    return lines + [""] + _table(header, rows)


def _verb(growth: dict[str, Any], arms: Iterable[str]) -> str:
    means = [growth[a]["mean"] for a in arms if growth[a]["n"]]
    return "grew" if means and all(m >= 0 for m in means) else "changed"


def _growth_paragraph(growth: dict[str, Any], diff: dict[str, Any] | None, ctx: _Ctx) -> str:
    def one(arm: str) -> str:
        s = growth[arm]
        if s["n"] == 0:
            return f"no incorrect responses were logged under {arm}"
        ci = f" (95% CI {_ci(s)}, {s['n']} seeds)" if s["n"] >= 2 else " (1 seed, no interval)"
        return f"{_f(s['mean'], 1, True)} tokens under {arm}{ci}"

    if "GRPO" in growth and "Dr. GRPO" in growth:
        text = (f"Incorrect responses {_verb(growth, ('GRPO', 'Dr. GRPO'))} by {one('GRPO')} vs {one('Dr. GRPO')}, "
                f"from the first 10% to the last 20% of training steps.")
        others = [a for a in ctx.arms if a not in ("GRPO", "Dr. GRPO") and growth[a]["n"]]
        if others:
            text += " For comparison: " + "; ".join(one(a) for a in others) + "."
        if diff is not None and not math.isnan(_num(diff["mean"])):
            d = diff["mean"]
            text += f" The difference GRPO − Dr. GRPO is {_f(d, 1, True)} tokens"
            if not math.isnan(_num(diff["lo"])):
                text += f" (95% Welch CI {_ci(diff)})"
                if diff["lo"] > 0:
                    text += ": GRPO lengthened its incorrect responses more than Dr. GRPO did, and the interval excludes 0."
                elif diff["hi"] < 0:
                    text += ": Dr. GRPO lengthened its incorrect responses more than GRPO did, and the interval excludes 0."
                else:
                    text += "; the interval includes 0, so these seeds do not separate the two arms."
            else:
                text += " (no interval: an arm has fewer than 2 seeds)."
        return text
    parts = [one(a) for a in ctx.arms if growth[a]["n"]]
    if not parts:
        return "No run logged `train/len_incorrect`, so the incorrect-length growth cannot be computed."
    return (f"Incorrect responses {_verb(growth, ctx.arms)} by " + "; ".join(parts) + ", from the first 10% to the last 20% of training "
            "steps. (GRPO − Dr. GRPO needs both arms in the inputs.)")


def _difficulty_paragraph(diff: dict[str, Any], ctx: _Ctx) -> str:
    arms = [a for a in ctx.arms if a in diff and not math.isnan(_num(diff[a]["edge_ratio"]))]
    if not arms:
        return ("Not enough pass-rate bins were logged (needs groups with k = 1 or G − 1 and k = G/2 correct) "
                "to compare near-all-wrong/right groups with mid-difficulty ones.")
    gs = sorted({g for a in arms for g in diff[a]["G"]})
    g = gs[0] if len(gs) == 1 else None
    edge = f"1/{g} or {g - 1}/{g}" if g else "1/G or (G−1)/G"
    mid = f"{g // 2}/{g}" if g else "G/2"
    parts = [f"{_f(diff[a]['edge_ratio'], 2)}× under {a}" for a in arms]
    text = (f"The mean |advantage| of a near-all-wrong or near-all-right group ({edge} correct) is "
            + ", ".join(parts) + f" that of a mid-difficulty group ({mid} correct).")
    shares = [f"{_f(100 * diff[a]['edge_share'], 1)}% under {a}" for a in arms]
    text += " Those groups carry " + ", ".join(shares) + " of the total weight (sum over groups of mean |A|)."
    std = [diff[a]["edge_ratio"] for a in arms if diff[a]["std_scaled"] is True]
    nostd = [diff[a]["edge_ratio"] for a in arms if diff[a]["std_scaled"] is False]
    if std and nostd:
        rs, rn = _num(mean(std)), _num(mean(nostd))
        names_s = ", ".join(a for a in arms if diff[a]["std_scaled"] is True)
        names_n = ", ".join(a for a in arms if diff[a]["std_scaled"] is False)
        if rs > rn:
            text += (f" Dividing by the group std ({names_s}) up-weights these too-easy/too-hard groups "
                     f"{_f(rs / rn, 2)}× relative to mid-difficulty groups compared with no std scaling "
                     f"(`--no-std`: {names_n}), which keeps the plain mean-centred weighting (2p(1−p) for 0/1 rewards): the difficulty bias.")
        else:
            text += (f" Here the std-scaled arms ({names_s}) do not up-weight these groups relative to the "
                     f"unscaled ones ({names_n}) (ratio {_f(rs / rn, 2)}×), contrary to the expected difficulty bias.")
    elif std:
        text += " All arms here scale by the std; add a `--no-std` arm to compare."
    elif nostd:
        text += " No arm here scales by the std; add a GRPO arm to see the difficulty bias."
    text += (" (This is the advantage weight per group; the per-token weight additionally depends on the loss "
             "aggregation `loss_agg`.)")
    return text


def _report(ctx: _Ctx, inputs: Sequence[Path], files: Sequence[Path], figures: dict[str, Path], warnings: list[str],
            final: dict[str, Any], named_evals: list[str], growth: dict[str, Any], growth_c: dict[str, Any],
            gdiff: dict[str, Any] | None, diff: dict[str, Any]) -> str:
    from . import __version__

    L: list[str] = ["# drgrpo plot report", ""]
    L.append(f"Inputs: {', '.join(f'`{p}`' for p in inputs)} — {len(ctx.runs)} runs, {len(ctx.arms)} arms "
             f"({', '.join(f'{a}: {ctx.nseeds[a]}' for a in ctx.arms)} seeds). drgrpo {__version__}.")
    L.append("")
    L.append("Curves and bands: mean over seeds and its 95% Student-t interval (no band with one seed)"
             + (f"; train curves smoothed over {ctx.smooth} steps" if ctx.smooth > 1 else "")
             + ". The numbers below are never smoothed and are those of `summary.json` / `summary.csv`: training "
             "windows over steps ≥ 1 (not the step-0 eval-only row), final eval = the last eval point.")
    L.append("")
    if warnings:
        L += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]

    L += ["## Runs", ""]
    rows = []
    for arm in ctx.arms:
        for r in ctx.runs_by_arm[arm]:
            f = r.frame
            n_eval = int(f["eval/accuracy"].notna().sum()) if "eval/accuracy" in f.columns else 0
            notes = []
            if r.torn:
                notes.append("torn last line dropped")
            rows.append([r.name, arm, _fmt_value(r.seed), r.state, len(f),
                         int(f.index.max()) if len(f) else "—", n_eval, "; ".join(notes)])
    L += _table(["run", "arm", "seed", "state", "steps logged", "last step", "eval points", "notes"], rows) + [""]

    L += ["## Configuration", ""] + _config_table(ctx) + [""]

    L += ["## Final metrics", "",
          "Per run, as in its `summary.json` (`final`) and the sweep's `summary.csv`: train metrics are the mean "
          "over the last 10% of its training steps (step ≥ 1; the step-0 row is the eval-only row logged before "
          "training), eval metrics are its **last eval point**; then mean ± std over seeds (std only with ≥ 2 "
          "seeds).", ""]
    header = ["arm", "seeds"] + [lab for _, lab, _ in FINAL_METRICS] + [f"eval {n} accuracy" for n in named_evals]
    nds = [nd for _, _, nd in FINAL_METRICS] + [3] * len(named_evals)
    keys = [k for k, _, _ in FINAL_METRICS] + [f"eval/{n}/accuracy" for n in named_evals]
    rows = [[arm, ctx.nseeds[arm]] + [_pm(final[arm][k], nd) for k, nd in zip(keys, nds)] for arm in ctx.arms]
    L += _table(header, rows) + [""]

    L += ["## Incorrect-length growth", "",
          "Per run: mean of `train/len_incorrect` over the last 20% of training steps (step ≥ 1) minus the mean "
          "over the first 10% (tokens), as `growth` in `summary.json`; then the mean over seeds with its 95% t-interval. The same for correct responses alongside.",
          ""]
    rows = []
    for arm in ctx.arms:
        s, sc = growth[arm], growth_c[arm]
        per = ", ".join(_f(v, 1, True) for v in s["per_run"].values())
        rows.append([arm, s["n"], _f(s["mean"], 1, True), _ci(s), per or "—", _f(sc["mean"], 1, True), _ci(sc)])
    L += _table(["arm", "seeds", "incorrect-length growth", "95% CI", "per seed", "correct-length growth",
                 "95% CI (correct)"], rows) + [""]
    if gdiff is not None:
        L += [f"**GRPO − Dr. GRPO** (incorrect-length growth): {_f(gdiff['mean'], 1, True)} tokens, "
              f"95% Welch CI {_ci(gdiff)}" + (f", df = {_f(gdiff['df'], 1)}" if not math.isnan(_num(gdiff['df'])) else "")
              + ".", ""]
    L += [_growth_paragraph(growth, gdiff, ctx), ""]

    L += ["## Difficulty bias", ""]
    if diff:
        L += ["Per arm, pooled over all steps and seeds: `groups` = groups with k of G correct, `mean |A|` = "
              "the mean over those groups of their mean |advantage| (the gradient weight a group gets), "
              "`rel.` = that relative to k = G/2, `share` = its part of the sum over all groups of mean |A|.", ""]
        rows = []
        for arm in ctx.arms:
            if arm not in diff:
                continue
            d = diff[arm]
            for i in range(len(d["k"])):
                rows.append([arm, f"{d['k'][i]}/{d['G'][i]}", f"{d['groups'][i]:.0f} ({100 * d['groups_share'][i]:.1f}%)",
                             _f(d["mean_abs_adv"][i], 3), _f(d["relative"][i], 2),
                             _f(100 * d["share"][i], 1) + "%"])
        L += _table(["arm", "k/G", "groups", "mean |A|", "rel.", "share"], rows) + [""]
        L += [_difficulty_paragraph(diff, ctx), ""]
    else:
        L += ["No `difficulty/k{k}/groups` / `difficulty/k{k}/abs_adv` metrics were logged.", ""]

    L += ["## Figures", ""]
    titles = {"length_growth": "Length growth (train and eval)", "token_efficiency": "Token efficiency",
              "difficulty_bias": "Difficulty bias", "metrics": "Requested metrics"}
    for stem, p in figures.items():
        L += [f"### {titles.get(stem, stem)}", "", f"![{titles.get(stem, stem)}]({p.name})", ""]
    if not figures:
        L += ["Figures (not embeddable here): " + ", ".join(f"`{p.name}`" for p in files) + ".", ""]
    if not ctx.has_eval:
        L += ["(No run logged eval rows, so the eval panels are left out.)", ""]
    return "\n".join(L)


def _inline(s: str) -> str:
    s = html.escape(s, quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    return s


def markdown_to_html(md: str, title: str = "drgrpo plot report") -> str:
    """The small Markdown subset :func:`plot` writes (headings, paragraphs, lists, tables, images, ``code``,
    **bold**) as a standalone HTML page. Not a general Markdown converter."""
    out: list[str] = []
    lines = md.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        m = re.match(r"^(#{1,6}) (.*)$", line)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
            i += 1
            continue
        m = re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", line.strip())
        if m:
            out.append(f'<p><img src="{html.escape(m.group(2))}" alt="{html.escape(m.group(1))}" '
                       f'style="max-width:100%"></p>')
            i += 1
            continue
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1

            def cells(row: str) -> list[str]:
                parts = re.split(r"(?<!\\)\|", row.strip()[1:-1])
                return [_inline(c.strip().replace("\\|", "|")) for c in parts]

            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells(block[0])) + "</tr>")
            for row in block[2:]:
                out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells(row)) + "</tr>")
            out.append("</table>")
            continue
        if line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
            continue
        para = []
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||- |!\[)", lines[i]):
            para.append(lines[i])
            i += 1
        out.append(f"<p>{_inline(' '.join(para))}</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.92em}"
             "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
             "code{background:#f3f3f3;padding:0 3px}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head>\n<body>\n" + "\n".join(out) + "\n</body></html>\n")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ================================================================================================
# entry point
# ================================================================================================
def _default_out(paths: Sequence[Path], sweeps: Sequence[Path]) -> Path:
    if len(paths) == 1 and len(sweeps) == 1:
        return Path(sweeps[0]) / SWEEP_OUT
    return DEFAULT_MULTI_OUT


def plot(
    paths: list[Path],
    out: Path | None = None,
    metrics: list[str] | None = None,
    smooth: int = 1,
    formats: Sequence[str] = ("png", "svg"),
) -> PlotResult:
    """Figures and ``report.md``/``report.html`` for the runs under ``paths``; see the module docstring.

    ``paths``: one sweep folder (run directories below it, optional ``grid.json``) or run directories
    (or several sweeps). ``out``: the output folder, created if needed; default ``<sweep>/figures/`` for
    exactly one sweep folder, else ``./drgrpo-plot/``. ``metrics``: extra metric keys (as in
    metrics.jsonl) for ``metrics.<fmt>``. ``smooth``: rolling mean over this many steps (>= 1, 1 = off).
    ``formats``: any of ``png``, ``svg``, ``pdf``. Raises :class:`PlotError` (one line) before writing
    anything when there is nothing sensible to plot.
    """
    # ---- options --------------------------------------------------------------------------------
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise PlotError(f"smooth must be an integer >= 1, got {smooth!r}")
    fmts: list[str] = []
    for f in formats:
        f = str(f).lower().lstrip(".")
        if f not in FORMATS:
            raise PlotError(f"unknown format {f!r}; choose from {', '.join(FORMATS)}")
        if f not in fmts:
            fmts.append(f)
    if not fmts:
        raise PlotError(f"no output format; choose from {', '.join(FORMATS)}")
    metric_keys = list(dict.fromkeys(str(m) for m in (metrics or [])))
    paths = [Path(p) for p in (paths or [])]

    # ---- runs -----------------------------------------------------------------------------------
    warnings: list[str] = []
    runs, sweeps = _discover(paths, warnings)
    out_dir = Path(out) if out is not None else _default_out(paths, sweeps)
    if out_dir.exists() and not out_dir.is_dir():
        raise PlotError(f"--out exists and is not a directory: {out_dir}")

    named_evals: set[str] = set()
    filled_notes: set[str] = set()
    for r in runs:
        r.frame = _frame(r.rows)
        if not len(r.frame):
            pass
        elif r.state == "partial":
            warnings.append(f"{r.name}: partial run (no finished summary.json); plotting its {len(r.frame)} logged steps")
        elif r.state == "failed":
            err = (read_summary(r.path) or {}).get("error")
            err = str(err).splitlines()[0][:120] if err else "no error message"
            warnings.append(f"{r.name}: failed run ({err}); plotting its {len(r.frame)} logged steps")
        if r.torn:
            warnings.append(f"{r.name}: torn last line of metrics.jsonl dropped (run killed mid-write?)")
        if len(r.frame):
            for c in r.frame.columns:
                m = _NAMED_EVAL.match(str(c))
                if m and m.group(2) == "accuracy" and r.frame[c].notna().any():
                    named_evals.add(m.group(1))
            for key in _fill_named_eval(r.frame):
                filled_notes.add(key)
    for key in sorted(filled_notes):
        warnings.append(f"note: {key} not logged; using the mean over the named eval sets ({key.replace('eval/', 'eval/<name>/')})")
    empty = [r for r in runs if len(r.frame) == 0]
    for r in empty:
        warnings.append(f"{r.name}: no metrics rows yet; skipped")
    runs = [r for r in runs if len(r.frame)]
    if not runs:
        raise PlotError("no metrics to plot: no run has any rows in metrics.jsonl")
    _split_mixed_arms(runs)

    missing = [k for k in metric_keys if not any(k in r.frame.columns and r.frame[k].notna().any() for r in runs)]
    if missing:
        import difflib

        avail = sorted({str(c) for r in runs for c in r.frame.columns})
        hints = []
        for k in missing:
            close = difflib.get_close_matches(k, avail, n=3)
            hints.append(f"{k!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise PlotError(f"unknown metric key {'; '.join(hints)}; no run logged it")

    arms = _arm_order({r.arm for r in runs})
    runs_by_arm = {a: sorted((r for r in runs if r.arm == a), key=lambda r: _seed_key(r)) for a in arms}
    runs = [r for a in arms for r in runs_by_arm[a]]
    has_eval_run = {r.name: "eval/accuracy" in r.frame.columns and bool(r.frame["eval/accuracy"].notna().any())
                    for r in runs}
    has_eval = any(has_eval_run.values())
    if not has_eval:
        warnings.append("no run has eval rows (eval_every=0, or stopped before the first eval); eval panels skipped")
    else:
        for r in runs:
            if not has_eval_run[r.name]:
                warnings.append(f"{r.name}: no eval rows; left out of the eval panels")
    ctx = _Ctx(runs=runs, arms=arms, colors=_arm_colors(arms), nseeds={a: len(runs_by_arm[a]) for a in arms},
               frames={a: [r.frame for r in runs_by_arm[a]] for a in arms}, runs_by_arm=runs_by_arm,
               has_eval=has_eval, smooth=smooth, formats=tuple(fmts),
               max_steps=max(len(r.frame) for r in runs))

    # ---- numbers --------------------------------------------------------------------------------
    named = sorted(named_evals)
    final = _final_metrics(ctx, named)
    growth = _growth(ctx, "train/len_incorrect")
    growth_c = _growth(ctx, "train/len_correct")
    gdiff = _welch(growth["GRPO"], growth["Dr. GRPO"]) if "GRPO" in growth and "Dr. GRPO" in growth else None
    diff = _difficulty(ctx)

    # ---- figures --------------------------------------------------------------------------------
    import matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    figures: dict[str, Path] = {}
    embed = "png" if "png" in fmts else "svg" if "svg" in fmts else None

    def keep(stem: str, written: list[Path]) -> None:
        files.extend(written)
        if embed:
            figures[stem] = out_dir / f"{stem}.{embed}"

    with matplotlib.rc_context(_RC):
        keep("length_growth", _fig_length_growth(ctx, out_dir))
        if any("train/len_mean" in f.columns and "train/reward" in f.columns for fs in ctx.frames.values() for f in fs):
            keep("token_efficiency", _fig_token_efficiency(ctx, out_dir))
        else:
            warnings.append("train/len_mean or train/reward not logged; token-efficiency figure skipped")
        if diff:
            keep("difficulty_bias", _fig_difficulty(ctx, diff, out_dir))
        else:
            warnings.append("no difficulty/k{k}/... metrics logged; difficulty-bias figure skipped")
        if metric_keys:
            keep("metrics", _fig_metrics(ctx, metric_keys, out_dir))

    # ---- report ---------------------------------------------------------------------------------
    md = _report(ctx, paths, files, figures, warnings, final, named, growth, growth_c, gdiff, diff)
    report = out_dir / "report.md"
    _write_text(report, md + "\n")
    report_html = out_dir / "report.html"
    _write_text(report_html, markdown_to_html(md))
    files += [report, report_html]

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k != "values"} | {"values": list(d.get("values", []))}

    summary = {
        "arms": {
            a: {
                "runs": [r.name for r in runs_by_arm[a]],
                "n": len(runs_by_arm[a]),
                "final": {k: clean(v) for k, v in final[a].items()},
                "len_incorrect_growth": clean(growth[a]),
                "len_correct_growth": clean(growth_c[a]),
            }
            for a in arms
        },
        "growth_diff_grpo_minus_drgrpo": gdiff,
        "difficulty": diff,
        "has_eval": has_eval,
    }
    return PlotResult(files=files, report=report, warnings=warnings, out=out_dir, summary=summary)
