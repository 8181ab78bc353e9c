"""``drgrpo plot``: figures and a report from run directories, as a library (:func:`plot`).

``plot(paths, out=None, metrics=None, smooth=None, formats=("png", "svg")) -> PlotResult`` writes into one
output folder (default ``<sweep>/figures/`` for one sweep folder, else ``./drgrpo-plot/``) and nowhere else:
``length_growth``, ``token_efficiency``, ``difficulty_bias``, ``metrics`` (only with ``metrics=[...]``) as
PNG/SVG/PDF, and ``report.md``/``report.html``. File names are fixed; no timestamps anywhere, so the same
logs give the same files.

Conventions
-----------
* **Runs and arms.** A path is a run directory (holds ``config.json``) or a folder searched for them (3
  levels). An arm's label comes from ``grid.json``, else the config's ``arm``, else its knobs; runs of one
  knob label whose configs differ beyond the seed get the difference in the label. Seeds = an arm's runs.
* **Arms are compared by their knobs** (``adv_scale``, ``loss_agg`` from config.json), never by label, and
  *paired by seed* (same seed = same prompts and draws): :mod:`drgrpo_cli.report.stats` decides the comparisons
  (GRPO − Dr. GRPO, the 2x2 main effects, else each arm against a reference) and computes the mean
  per-seed difference, its Student-t 95% CI and the sign count. Colours follow the knobs too: GRPO-like
  dark red, Dr. GRPO-like dark blue, the one-switch arms dashed in the lighter shade of the arm they share
  ``loss_agg`` with (the switch that drives length).
* **Numbers** (report) come from :func:`drgrpo_cli.metrics.run_numbers`, the one computation shared
  with the trainer's ``summary.json`` and ablate's ``summary.csv``; never smoothed. The headline is the
  growth of the failure-state wrong-answer length (``train/derailed/len_incorrect``; pooled
  ``train/len_incorrect`` where not logged, said so). Partial/failed runs are drawn and listed in the per-arm
  tables, with a warning; the paired comparisons use finished runs only, as ``paired.csv`` does.
* **Curves** (figures): per arm, thin per-seed lines, the mean over seeds (thick) and a band = percentile
  bootstrap 95% CI of that mean (1000 resamples of the seeds, fixed RNG seed; a description of seed spread,
  the inference is in the paired numbers), clipped to the metric's range (rates in [0, 1], lengths >= 0).
  Per-step train curves are smoothed per run by a centred rolling mean over ``smooth`` steps (default:
  about 1/15 of the run, at most 10 steps; 1 = off); eval points are never smoothed. Y-limits come from
  the arm means and bands (1st-99th percentile, padded), so one seed's spike cannot set the scale.
* **Difficulty** (``difficulty_bias``): per arm, pooled over all steps and seeds, the mean weight of a group
  with k of G correct is ``sum n_k a_k / sum n_k`` (``difficulty/k{k}/groups`` = n_k, ``.../abs_adv`` = a_k).
* **Provenance.** The report's "Provenance" table has one row per distinct record (drgrpo version and
  commit, library versions, machine, threads, base weights' sha256, from each run's ``provenance.json``,
  else the copy in ``summary.json``) and which runs share it; runs from before provenance was recorded
  say "not recorded". Runs that differ in library versions (python included), base weights or drgrpo
  commit (a checkout with uncommitted code changes counts as another commit; edits to docs do not) are a warning: same seed then no
  longer means the same random stream, so a paired difference mixes the arms' effect with the code's.
* **Robustness.** Torn last lines, partial and failed runs plot what exists and warn; nothing to plot, a
  bad option or an unknown ``metrics`` key raise :class:`PlotError` (one line) before anything is written.
  Figures are ``matplotlib.figure.Figure`` objects (no pyplot); matplotlib/pandas/numpy load lazily.
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

from drgrpo_cli.config import arm_label
from drgrpo_cli.metrics import (
    FINAL_FRAC,
    GROWTH_FIRST,
    GROWTH_LAST,
    HEADLINE,
    HEADLINE_FALLBACK,
    finite,
    headline,
    headline_key,
    last_value,
    mean,
    run_numbers,
    series,
    tail_mean,
    train_series,
    window_size,
)
from drgrpo_cli.runlog import CONFIG, METRICS, PROVENANCE, read_jsonl, read_summary, run_state
from drgrpo_cli.report.stats import (
    DRGRPO_KNOBS,
    GRPO_KNOBS,
    LEVEL,
    Contrast,
    arm_knobs,
    by_seed,
    describe,
    evaluate,
    mean_ci,
    plan_contrasts,
    t_quantile,
)

__all__ = [
    "PlotError",
    "PlotResult",
    "plot",
    "t_quantile",
    "mean_ci",
    "ARM_ORDER",
    "DEFAULT_MULTI_OUT",
    "auto_smooth",
    "bootstrap_band",
    "robust_ylim",
    "valid_range",
]

#: Fixed arm order for the bundled labels; other labels follow, sorted by name.
ARM_ORDER = ("GRPO", "std-only fix", "length-only fix", "Dr. GRPO")
#: Styles by knobs (adv_scale, loss_agg): (colour, line style).
KNOB_STYLES = {
    GRPO_KNOBS: ("#c0392b", "-"),  # dark red
    DRGRPO_KNOBS: ("#1f4e9c", "-"),  # dark blue
    ("none", "seq_mean"): ("#f08a7e", "--"),  # std-only fix: keeps seq_mean -> light red, dashed
    ("group", "max_tokens"): ("#7fa8e0", "--"),  # length-only fix: has max_tokens -> light blue, dashed
}
OTHER_COLORS = ("#7b3fa0", "#2a9d5c", "#d4a017", "#17becf", "#7f7f7f", "#e377c2", "#8c564b", "#637939")
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
#: Bootstrap resamples for the bands, and the fixed seed of their RNG (same logs -> same figure).
BOOT_N = 1000
BOOT_SEED = 0
#: Auto smoothing: a centred rolling mean over about 1/SMOOTH_DIV of the run's steps, at most SMOOTH_MAX.
SMOOTH_DIV = 15
SMOOTH_MAX = 10


@dataclass(frozen=True)
class Panel:
    """One panel of the length-growth figure: the first key of ``keys`` that a run logged is drawn."""

    keys: tuple[str, ...]
    titles: tuple[str, ...]  # one per key (says what the fallback is)
    ylabel: str
    headline: bool = False


PANELS = (
    Panel(("train/reward",), ("train reward",), "reward"),
    Panel((HEADLINE, HEADLINE_FALLBACK),
          ("wrong-answer length, failure state", "wrong-answer length (all prompts)"), "tokens", headline=True),
    Panel(("train/clean/len_correct", "train/len_correct"),
          ("correct-answer length, clean prompts", "correct-answer length"), "tokens"),
    Panel(("eval_sampled/derailed/len_incorrect", "eval_sampled/len_incorrect", "eval/derailed/len_incorrect",
           "eval/len_incorrect"),
          ("eval wrong-answer length, failure state\n(sampled, T = 1)", "eval wrong-answer length\n(sampled, T = 1)",
           "eval wrong-answer length, failure state\n(greedy)", "eval wrong-answer length\n(greedy)"), "tokens"),
    Panel(("eval_sampled/accuracy", "eval/accuracy"), ("eval accuracy\n(sampled, T = 1)", "eval accuracy\n(greedy)"),
          "accuracy"),
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
_RATE = re.compile(r"(^|/)(reward|accuracy|frac|[a-z_]*_frac)$")
_LENGTH = re.compile(r"(^|/)(len|len_[a-z_]+)$")


class PlotError(ValueError):
    """Nothing sensible to plot (bad path, no runs, bad option); the message is one line for the user."""


@dataclass
class PlotResult:
    files: list[Path]  # every file written, figures first, report.md / report.html last
    report: Path  # report.md
    warnings: list[str]
    out: Path  # the output folder
    summary: dict[str, Any] = field(default_factory=dict)  # the report's numbers, machine-readable
    figures: dict[str, Any] = field(default_factory=dict)  # stem -> matplotlib Figure (for inspection)


def _num(v: Any) -> float:
    """A float, or NaN for None / non-numbers / non-finite values (JSON null = missing)."""
    f = finite(v)
    return math.nan if f is None else f


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
    numbers: dict[str, Any] = field(default_factory=dict)  # metrics_math.run_numbers of its rows
    provenance: dict[str, Any] | None = None  # provenance.json (or summary.json's copy); None = not recorded

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
    return _Run(path=path, name=name, config=config, rows=rows, torn=torn, state=run_state(path), root=root,
                provenance=_read_provenance(path))


def _read_provenance(path: Path) -> dict[str, Any] | None:
    """The run's provenance record: ``provenance.json``, else the copy in ``summary.json``, else None."""
    try:
        prov = json.loads((path / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        prov = (read_summary(path) or {}).get("provenance")
    return prov if isinstance(prov, dict) else None


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




def _arm_styles(arms: Sequence[str], knobs: dict[str, tuple[str, str] | None]) -> dict[str, tuple[str, str]]:
    """arm -> (colour, line style), by knobs (see KNOB_STYLES); arms sharing knobs after the first, and
    arms of other knobs, get the other colours, solid."""
    styles: dict[str, tuple[str, str]] = {}
    taken: set[tuple[str, str]] = set()
    i = 0
    for a in arms:
        k = knobs.get(a)
        if k in KNOB_STYLES and k not in taken:
            styles[a] = KNOB_STYLES[k]  # type: ignore[index]
            taken.add(k)  # type: ignore[arg-type]
        else:
            styles[a] = (OTHER_COLORS[i % len(OTHER_COLORS)], "-")
            i += 1
    return styles


def _series(frame: Any, key: str, smooth: int) -> Any:
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


def _curve(frames: Sequence[Any], key: str, smooth: int) -> Curve | None:
    """Per-seed values, their mean and the clipped bootstrap band; None if no run has the key."""
    import numpy as np
    import pandas as pd

    cols = [s for s in (_series(f, key, smooth) for f in frames) if s is not None]
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


def _draw_curve(ax: Any, curve: Curve, style: tuple[str, str], sparse: bool, seeds: bool = True) -> Any:
    """Thin per-seed lines, the clipped bootstrap band, and the thick mean line on top."""
    color, ls = style
    c, runs = curve.df, curve.runs
    x = c.index.to_numpy()
    if seeds and runs.shape[1] > 1:
        alpha = 0.3 if runs.shape[1] <= 5 else 0.18
        for col in runs.columns:
            s = runs[col].dropna()
            ax.plot(s.index.to_numpy(), s.to_numpy(), color=color, alpha=alpha, linewidth=0.7, zorder=1)
    if c["lo"].notna().any():
        ax.fill_between(x, c["lo"].to_numpy(), c["hi"].to_numpy(), color=color, alpha=0.18, linewidth=0, zorder=2)
    (line,) = ax.plot(x, c["mean"].to_numpy(), color=color, linestyle=ls, linewidth=2.8, zorder=3,
                      marker="o" if sparse else None, markersize=5 if sparse else None)
    return line


def _no_data(ax: Any, text: str = "not logged") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.5")


def _set_ylim(ax: Any, curves: Sequence[Any], key: str) -> None:
    lim = robust_ylim(curves, key)
    if lim is not None and lim[1] > lim[0]:
        ax.set_ylim(*lim)


def _band_note(ctx: _Ctx, windows: bool = False) -> str:
    sm = f"; train curves: centred rolling mean over {ctx.smooth} steps" if ctx.smooth > 1 else ""
    win = "; grey: the early (first 10%) and late (last 20%) steps of the growth numbers" if windows else ""
    return f"thin: one seed · thick: mean over seeds · band: bootstrap 95% CI of the mean{sm}{win}"


def _legend(fig: Any, ctx: _Ctx, arms: Sequence[str] | None = None, extra: Sequence[Any] = (),
            title: str | None = None) -> None:
    from matplotlib.lines import Line2D

    arms = ctx.arms if arms is None else arms
    handles = []
    for a in arms:
        color, ls = ctx.styles[a]
        k = ctx.knobs.get(a)
        knob = f" [{k[0]}, {k[1]}]" if k else ""
        handles.append(Line2D([], [], color=color, linestyle=ls, linewidth=3, label=f"{a}{knob} (n={ctx.nseeds[a]})"))
    handles += list(extra)
    leg = fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False,
                     title=title, title_fontsize=11)
    if title:
        leg.get_title().set_color("0.35")


def _pick_key(ctx: _Ctx, keys: Sequence[str]) -> tuple[int, str] | None:
    """The first of ``keys`` any run logged (a finite value), with its index."""
    for i, k in enumerate(keys):
        if any(k in f.columns and f[k].notna().any() for fs in ctx.frames.values() for f in fs):
            return i, k
    return None


def _headline_title(ctx: _Ctx, paired: Sequence[dict[str, Any]]) -> str:
    """The figure's numbers line: the first comparison (GRPO − Dr. GRPO when there is one) of the headline
    growth and of the final reward, each with its CI and sign count; honest when the CI includes 0."""
    rows = [p for p in paired if p["metric"] == "headline_growth"]
    if not rows:
        return "one arm only: no comparison"
    first = rows[0]
    c, r = first["contrast"], first["result"]
    what = "failure-state wrong-answer growth" if ctx.headline_key == HEADLINE else "wrong-answer growth"
    if r.n == 0:
        return f"{c.name}: no seed has both arms"
    text = f"{c.name}, paired over {r.n} seed{'s' if r.n != 1 else ''} — {what}: {_f(r.mean, 1, True)} tokens"
    if r.n >= 2:
        text += f" [95% CI {_f(r.lo, 1, True)}, {_f(r.hi, 1, True)}]"
        side = c.plus if r.mean > 0 else c.minus if r.mean < 0 else ""
        if side:
            text += f", {side} in {r.signs} seeds"
        if not r.excludes_zero:
            text += " (CI includes 0)"
    else:
        text += " (1 seed: no CI)"
    rew = next((p for p in paired if p["metric"] == "final_reward" and p["contrast"] == c), None)
    if rew is not None and rew["result"].n:
        rr = rew["result"]
        text += f" · final reward: {_f(rr.mean, 3, True)}"
        if rr.n >= 2:
            text += f" [{_f(rr.lo, 3, True)}, {_f(rr.hi, 3, True)}]" + ("" if rr.excludes_zero else ", CI includes 0")
    return text


def _fig_length_growth(ctx: _Ctx, paired: Sequence[dict[str, Any]]) -> Any:
    from matplotlib.figure import Figure

    panels = []
    for p in PANELS:
        keys = p.keys
        if p.headline:  # the numbers' key (one for all runs), so figure and report show the same metric
            keys = (ctx.headline_key,) + tuple(k for k in p.keys if k != ctx.headline_key)
        got = _pick_key(ctx, keys)
        if got is None and p.keys[0].startswith("eval"):
            continue  # no eval logged: leave the eval panels out
        key = got[1] if got is not None else keys[0]
        panels.append((p, key, p.titles[p.keys.index(key)], got is not None))
    fig = Figure(figsize=(4.4 * len(panels) + 0.4, 6.4), layout="constrained")
    fig.suptitle("Length bias: " + ("wrong-answer length in the failure state over training"
                                    if ctx.headline_key == HEADLINE else "wrong-answer length over training"),
                 fontsize=17, fontweight="bold")
    sub = fig.subfigures(1, 1)
    sub.suptitle(_headline_title(ctx, paired), fontsize=13)
    _legend(fig, ctx, title=_band_note(ctx, windows=ctx.max_train_steps >= 10))
    axes = sub.subplots(1, len(panels), squeeze=False)[0]
    for ax, (p, key, title, logged) in zip(axes, panels):
        ax.set_title(title, fontweight="bold" if p.headline else "normal", fontsize=14 if p.headline else 13)
        ax.set_xlabel("policy step")
        ax.set_ylabel(p.ylabel)
        if p.headline:
            ax.set_facecolor("#fffaf0")
            for s in ("left", "bottom"):
                ax.spines[s].set_linewidth(1.6)
        curves = []
        if logged:
            for arm in ctx.arms:
                c = _curve(ctx.frames[arm], key, ctx.smooth)
                if c is not None:
                    _draw_curve(ax, c, ctx.styles[arm], key.startswith("eval"))
                    curves.append(c)
        if not curves:
            _no_data(ax)
            continue
        if p.headline and ctx.max_train_steps >= 10:  # where the growth numbers come from
            n = ctx.max_train_steps
            first, last = window_size(n, GROWTH_FIRST), window_size(n, GROWTH_LAST)
            ax.axvspan(0.5, first + 0.5, color="0.5", alpha=0.1, linewidth=0, zorder=0)
            ax.axvspan(n - last + 0.5, n + 0.5, color="0.5", alpha=0.1, linewidth=0, zorder=0)
        _set_ylim(ax, curves, key)
        _budget_line(ax, ctx, key)
    return fig


def _budget_line(ax: Any, ctx: _Ctx, key: str) -> None:
    """A length panel that reaches the generation budget shows it: responses there are truncated (reward 0)."""
    budgets = {r.config.get("max_tokens") for r in ctx.runs}
    if "len" not in key.rsplit("/", 1)[-1] or len(budgets) != 1 or not isinstance(next(iter(budgets)), int):
        return
    budget = next(iter(budgets))
    lo, hi = ax.get_ylim()
    if hi < 0.8 * budget:
        return
    ax.set_ylim(lo, max(hi, budget * 1.06))
    ax.axhline(budget, color="0.35", linestyle=":", linewidth=1.4, zorder=1)
    ax.annotate(f"budget {budget}: truncated, reward 0", (0.02, budget), xycoords=("axes fraction", "data"),
                xytext=(0, 3), textcoords="offset points", fontsize=10, color="0.3", va="bottom")


def _fig_token_efficiency(ctx: _Ctx) -> Any:
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    specs = [("train", "train/len_mean", "train/reward", "mean response length (tokens)", "train reward")]
    if ctx.has_eval:
        specs.append(("eval (greedy)", "eval/len_mean", "eval/accuracy", "mean response length (tokens)",
                      "eval accuracy"))
    fig = Figure(figsize=(9 if len(specs) == 1 else 16, 6.2), layout="constrained")
    fig.suptitle("Token efficiency: reward vs response length over training (mean over seeds)", fontsize=15)
    marks = [Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle="", markersize=9, label="start"),
             Line2D([], [], color="0.3", marker="*", linestyle="", markersize=14, label="end")]
    _legend(fig, ctx, extra=marks,
            title=f"train curves: centred rolling mean over {ctx.smooth} steps" if ctx.smooth > 1 else None)
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
            j = pd.concat([cx.df["mean"].rename("x"), cy.df["mean"].rename("y")], axis=1, join="inner").dropna()
            if j.empty:
                continue
            xs, ys = j["x"].to_numpy(), j["y"].to_numpy()
            col, ls = ctx.styles[arm]
            ax.plot(xs, ys, color=col, linestyle=ls, alpha=0.9, marker="." if len(xs) < 40 else None)
            ax.plot(xs[:1], ys[:1], color=col, marker="o", markerfacecolor="white", markersize=10, markeredgewidth=2,
                    linestyle="")
            ax.plot(xs[-1:], ys[-1:], color=col, marker="*", markersize=18, markeredgecolor="black",
                    markeredgewidth=0.6, linestyle="")
            drawn = True
        if not drawn:
            _no_data(ax)
    return fig


def _fig_difficulty(ctx: _Ctx, diff: dict[str, Any]) -> Any:
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
    _legend(fig, ctx, arms=arms)
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
            color, ls = ctx.styles[arm]
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width=width, color=color,
                   hatch="//" if ls != "-" else None, edgecolor="white" if ls != "-" else None, linewidth=0)
        ax.set_xticks(x, xs_labels, rotation=0 if len(xs_labels) <= 12 else 90)
        if key == "relative":
            ax.axhline(1.0, color="0.4", linewidth=1, linestyle="--")
    return fig


def _fig_metrics(ctx: _Ctx, keys: Sequence[str]) -> Any:
    from matplotlib.figure import Figure

    ncol = min(3, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig = Figure(figsize=(16, 1.4 + 4.4 * nrow), layout="constrained")
    fig.suptitle("Requested metrics", fontsize=15)
    _legend(fig, ctx, title=_band_note(ctx))
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        ax.set_title(key)
        ax.set_xlabel("policy step")
        curves = []
        for arm in ctx.arms:
            c = _curve(ctx.frames[arm], key, ctx.smooth)
            if c is not None:
                _draw_curve(ax, c, ctx.styles[arm], key.startswith("eval") or len(c.df) < 0.5 * ctx.max_steps)
                curves.append(c)
        if curves:
            _set_ylim(ax, curves, key)
        else:
            _no_data(ax)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    return fig


# ================================================================================================
# numbers for the report
# ================================================================================================
@dataclass
class _Ctx:
    runs: list[_Run]
    arms: list[str]
    styles: dict[str, tuple[str, str]]  # arm -> (colour, line style)
    nseeds: dict[str, int]
    frames: dict[str, list[Any]]  # arm -> frames of its runs
    runs_by_arm: dict[str, list[_Run]]
    has_eval: bool
    smooth: int
    formats: tuple[str, ...]
    max_steps: int
    knobs: dict[str, tuple[str, str] | None] = field(default_factory=dict)  # arm -> (adv_scale, loss_agg)
    headline_key: str = HEADLINE_FALLBACK
    max_train_steps: int = 0


#: The metrics compared between arms (names as in ablate's summary.csv / paired.csv).
PAIRED_METRICS = ("headline_growth", "final_reward", "len_incorrect_growth")


def _metric_value(ctx: _Ctx, metric: str, numbers: dict[str, Any]) -> float | None:
    if metric == "headline_growth":
        return headline(numbers, ctx.headline_key)["growth"]
    return numbers.get(metric)


def _metric_text(ctx: _Ctx, metric: str) -> tuple[str, str, int]:
    """(words, unit, decimals) of a paired metric."""
    if metric == "headline_growth":
        return ("failure-state wrong-answer length growth" if ctx.headline_key == HEADLINE
                else "wrong-answer length growth (pooled)", "tokens", 1)
    if metric == "final_reward":
        return "final reward", "", 3
    return "pooled wrong-answer length growth", "tokens", 1


def _per_seed(ctx: _Ctx, metric: str) -> dict[str, dict[Any, float | None]]:
    """Per arm, seed -> the metric, over finished runs only (as ``paired.csv``: a partial run's windows differ)."""
    return {a: by_seed((r.seed, _metric_value(ctx, metric, r.numbers)) for r in ctx.runs_by_arm[a]
                       if r.state == "finished") for a in ctx.arms}


def _paired(ctx: _Ctx) -> list[dict[str, Any]]:
    """The paired comparisons (:func:`drgrpo_cli.report.stats.plan_contrasts` from the knobs) for each metric."""
    contrasts = plan_contrasts(ctx.knobs)
    out = []
    for metric in PAIRED_METRICS:
        if metric == "len_incorrect_growth" and ctx.headline_key == HEADLINE_FALLBACK:
            continue  # the headline is already the pooled length
        by_arm = _per_seed(ctx, metric)
        for c in contrasts:
            out.append({"metric": metric, "contrast": c, "result": evaluate(c, by_arm)})
    return out


def _headline(ctx: _Ctx) -> dict[str, dict[str, Any]]:
    """Per arm: mean_ci over seeds of the headline's early / late windows and growth, and of the final reward."""
    out = {}
    for arm in ctx.arms:
        runs = ctx.runs_by_arm[arm]
        h = [headline(r.numbers, ctx.headline_key) for r in runs]
        out[arm] = {w: mean_ci(x[w] for x in h) for w in ("early", "late", "growth")}
        out[arm]["final_reward"] = mean_ci(r.numbers["final_reward"] for r in runs)
        out[arm]["per_run"] = {r.name: _num(x["growth"]) for r, x in zip(runs, h)}
    return out


def _final_metrics(ctx: _Ctx, named_evals: list[str]) -> dict[str, dict[str, Any]]:
    """Per run as in summary.json / summary.csv (:mod:`drgrpo_cli.metrics`): train keys are the mean over
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




def _growth(ctx: _Ctx, metric: str) -> dict[str, dict[str, Any]]:
    """Per arm: mean_ci over seeds of a per-run growth (``run_numbers[metric]``), with the per-run values."""
    out = {}
    for arm in ctx.arms:
        per = [_num(r.numbers.get(metric)) for r in ctx.runs_by_arm[arm]]
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
    lines = ["Keys that differ between arms first (bold, one column per arm), then the keys all arms share. "
             "Several values in a cell are the values of that arm's seeds."]
    return lines + [""] + _table(header, rows)




NOT_RECORDED = "not recorded"
#: Library versions shown (and compared), in this order; vllm only where a run had it installed.
PROVENANCE_LIBS = ("python", "torch", "transformers", "numpy", "tokenizers", "safetensors", "vllm")


def _commit(prov: dict[str, Any]) -> str:
    """The commit's first 10 hex digits, ``+dirty`` when the checkout had uncommitted code changes (or a
    dirty record does not say which files: cannot tell); edits to docs only do not count."""
    from drgrpo_cli.provenance import code_dirty

    c = prov.get("commit")
    if not c:
        return "no git checkout"
    return str(c)[:10] + ("+dirty" if code_dirty(prov) else "")


def provenance_record(prov: dict[str, Any] | None) -> dict[str, str]:
    """The compact, comparable fields of a run's provenance record (all ``"not recorded"`` for None)."""
    if not prov:
        return {k: NOT_RECORDED for k in ("drgrpo", "libraries", "machine", "threads", "weights_sha256")}
    libs = prov.get("libraries") or {}
    lib_text = ", ".join(f"{k} {libs[k]}" for k in PROVENANCE_LIBS if libs.get(k)) or NOT_RECORDED
    m = prov.get("machine") or {}
    where = [str(m[k]) for k in ("gpu", "cpu") if m.get(k)]
    if m.get("device") and not str(m["device"]).startswith("cpu"):
        where.insert(0, str(m["device"]))
    sha = prov.get("weights_sha256")
    return {"drgrpo": f"{prov.get('drgrpo') or '?'} ({_commit(prov)})",
            "libraries": lib_text,
            "machine": ", ".join(where) or NOT_RECORDED,
            "threads": str(m["threads"]) if m.get("threads") is not None else NOT_RECORDED,
            "weights_sha256": str(sha)[:12] if sha else "none (hub model)"}


def _runs_text(ctx: _Ctx, runs: Sequence[_Run]) -> str:
    """Which runs: ``all 40 runs``, else per arm ``GRPO (all 10)`` or ``Dr. GRPO: seeds 0, 3``."""
    names = {r.name for r in runs}
    if names == {r.name for r in ctx.runs}:
        return f"all {len(runs)} runs" if len(runs) > 1 else "the run"
    parts = []
    for arm in ctx.arms:
        mine = [r for r in ctx.runs_by_arm[arm] if r.name in names]
        if not mine:
            continue
        if len(mine) == len(ctx.runs_by_arm[arm]):
            parts.append(f"{arm} (all {len(mine)})")
            continue
        seeds = [r.seed for r in mine]
        if len(set(map(str, seeds))) == len(seeds):
            parts.append(f"{arm}: seed{'s' if len(seeds) > 1 else ''} {_seed_ranges(seeds)}")
        else:
            parts.append(f"{arm}: {', '.join(r.name for r in mine)}")
    return "; ".join(parts)


def _seed_ranges(seeds: Sequence[Any]) -> str:
    """``0, 2-5, 9`` for integer seeds (runs of three or more consecutive seeds as a range), else as listed."""
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        return ", ".join(_fmt_value(x) for x in seeds)
    out: list[str] = []
    xs = sorted(seeds)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out += [f"{xs[i]}-{xs[j]}"] if j - i >= 2 else [str(x) for x in xs[i:j + 1]]
        i = j + 1
    return ", ".join(out)


def _provenance_groups(ctx: _Ctx) -> list[tuple[dict[str, str], list[_Run]]]:
    groups: dict[tuple[str, ...], tuple[dict[str, str], list[_Run]]] = {}
    for r in ctx.runs:
        rec = provenance_record(r.provenance)
        groups.setdefault(tuple(rec.values()), (rec, []))[1].append(r)
    return list(groups.values())


def provenance_warnings(ctx: _Ctx) -> list[str]:
    """One warning per thing the compared runs differ in: library versions, base weights, drgrpo commit."""
    out: list[str] = []
    recorded = [r for r in ctx.runs if r.provenance]
    missing = [r for r in ctx.runs if not r.provenance]
    if recorded and missing:
        out.append(f"provenance not recorded for {_runs_text(ctx, missing)} (made before drgrpo wrote "
                   f"provenance.json): whether they share the other runs' libraries and base weights is unknown")

    def differ(what: str, key, why: str) -> None:
        by: dict[str, list[_Run]] = {}
        for r in recorded:
            by.setdefault(key(r.provenance), []).append(r)
        if len(by) > 1:
            parts = "; ".join(f"{v} ({_runs_text(ctx, rs)})" for v, rs in by.items())
            out.append(f"the compared runs differ in {what}: {parts}; {why}")

    def lib(p: dict[str, Any], k: str) -> str:
        return str((p.get("libraries") or {}).get(k) or "not installed")

    keys = [k for k in PROVENANCE_LIBS if len({lib(r.provenance, k) for r in recorded}) > 1]  # those that differ
    if keys:
        differ("library versions", lambda p: ", ".join(f"{k} {lib(p, k)}" for k in keys),
               "same seed no longer means the same random stream, so differences mix the arms' effect with the "
               "libraries'")
    differ("base weights (sha256)", lambda p: str(p.get("weights_sha256") or "none")[:12],
           "the arms did not start from the same model")
    differ("drgrpo commit", _commit, "the runs may have been made by different code (+dirty: uncommitted changes "
           "to drgrpo's code, or a record that does not say which files changed)")
    return out


def _provenance_table(ctx: _Ctx) -> list[str]:
    groups = _provenance_groups(ctx)
    rows = [[_runs_text(ctx, runs), rec["drgrpo"], rec["libraries"], rec["machine"], rec["threads"],
             f"`{rec['weights_sha256']}`" if rec["weights_sha256"] != NOT_RECORDED else NOT_RECORDED]
            for rec, runs in groups]
    lines = ["What produced the runs, from each run's `provenance.json`: one row per distinct record and the runs "
             "that share it (drgrpo version and git commit, `+dirty` = uncommitted changes to its code; library versions; "
             "machine; torch threads; the first 12 hex digits of the base weights' sha256)."
             + (" One record: every run was made by the same code, libraries and base weights."
                if len(groups) == 1 and groups[0][1][0].provenance else ""), ""]
    return lines + _table(["runs", "drgrpo (commit)", "libraries", "machine", "threads", "weights sha256"], rows)


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




def _paired_rows(ctx: _Ctx, paired: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[list[Any]]:
    rows = []
    for p in paired:
        if p["metric"] not in metrics:
            continue
        c, r = p["contrast"], p["result"]
        words, unit, nd = _metric_text(ctx, p["metric"])
        ci = f"[{_f(r.lo, nd, True)}, {_f(r.hi, nd, True)}]" if r.n >= 2 else "—"
        verdict = "—" if r.excludes_zero is None else "excludes 0" if r.excludes_zero else "includes 0"
        side = c.plus if r.n and r.mean > 0 else c.minus if r.n and r.mean < 0 else ""
        sign = f"{r.signs} ({side})" if r.n and side else r.signs or "—"
        rows.append([words, f"**{c.name}**", r.n, _f(r.mean, nd, True) + (f" {unit}" if unit and r.n else ""), ci,
                     sign, verdict])
    return rows


_PAIRED_HEADER = ["metric", "comparison", "seeds", "mean difference", "95% CI", "same sign as the mean", "CI"]


def _report(ctx: _Ctx, inputs: Sequence[Path], files: Sequence[Path], figures: dict[str, Path], warnings: list[str],
            final: dict[str, Any], named_evals: list[str], head: dict[str, Any], paired: list[dict[str, Any]],
            growth: dict[str, Any], growth_c: dict[str, Any], diff: dict[str, Any]) -> str:
    from drgrpo_cli import __version__

    L: list[str] = ["# drgrpo plot report", ""]
    L.append(f"Inputs: {', '.join(f'`{p}`' for p in inputs)} — {len(ctx.runs)} runs, {len(ctx.arms)} arms "
             f"({', '.join(f'{a}: {ctx.nseeds[a]}' for a in ctx.arms)} seeds). drgrpo {__version__}.")
    L.append("")
    L.append("The numbers below are never smoothed and are those of `summary.json` / `summary.csv`: training "
             "windows over steps ≥ 1 (not the step-0 eval-only row), final eval = the last eval point. Figures: "
             "thin lines = seeds, thick = mean over seeds, band = bootstrap 95% CI of that mean (clipped to the "
             "metric's range)" + (f"; train curves are a centred rolling mean over {ctx.smooth} steps"
                                  if ctx.smooth > 1 else "") + ".")
    L.append("")
    if warnings:
        L += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]

    # ---- headline ----------------------------------------------------------------------------------
    key = ctx.headline_key
    if key == HEADLINE:
        L += ["## Headline: wrong-answer length in the failure state", "",
              f"Per run: the mean of `{key}` (length of the wrong answers to the unanswerable, *derailed* prompts, "
              "where a longer answer cannot be a better one) over the first 10% (early) and the last 20% (late) "
              "of training steps; growth = late − early. Per arm: the mean over seeds. Final reward: the mean of "
              "`train/reward` over the last 10% of steps.", ""]
    else:
        some = any(r.numbers.get("headline_metric") == HEADLINE for r in ctx.runs)
        why = ("not every run logged `train/derailed/len_incorrect`" if some
               else "no run logged `train/derailed/len_incorrect` (a math task, or runs from an older drgrpo)")
        L += ["## Headline: wrong-answer length", "",
              f"Fallback: {why}, so the headline is the **pooled** wrong-answer length `{key}` (all prompts, "
              "failure state or not). Per run: its mean over the first 10% (early) and the last 20% (late) of "
              "training steps; growth = late − early. Per arm: the mean over seeds. Final reward: the mean of "
              "`train/reward` over the last 10% of steps.", ""]
    rows = []
    for arm in ctx.arms:
        h = head[arm]
        k = ctx.knobs.get(arm)
        per = ", ".join(_f(v, 1, True) for v in h["per_run"].values())
        rows.append([arm, f"{k[0]}, {k[1]}" if k else "mixed", h["growth"]["n"],
                     f"{_f(h['early']['mean'])} → {_f(h['late']['mean'])}", _f(h["growth"]["mean"], 1, True),
                     per or "—", _pm(h["final_reward"], 3)])
    L += _table(["arm", "adv_scale, loss_agg", "seeds", "early → late (tokens)", "growth", "growth per seed",
                 "final reward (± std)"], rows) + [""]

    # ---- paired ------------------------------------------------------------------------------------
    L += ["## Paired comparisons", ""]
    if not paired:
        L += ["Only one arm (or arms whose runs mix knob values): nothing to compare.", ""]
    else:
        L += ["Runs with the same seed share prompts, environment draws and the torch seed, so arms are compared "
              "seed by seed: per seed the difference (for a 2x2 main effect, the mean of the two differences along "
              "that switch), then over the seeds that every arm involved has: the mean, its 95% Student-t CI, and "
              "in how many seeds the difference has the sign of the mean. Which comparisons is decided by the arms' "
              "`adv_scale`/`loss_agg`, not their labels:", ""]
        seen: list[Contrast] = []
        for p in paired:
            if p["contrast"] not in seen:
                seen.append(p["contrast"])
        L += [f"- **{c.name}**: {c.detail}" for c in seen] + [""]
        L += _table(_PAIRED_HEADER, _paired_rows(ctx, paired, ("headline_growth", "final_reward"))) + [""]
        for p in paired:
            if p["metric"] in ("headline_growth", "final_reward"):
                words, unit, nd = _metric_text(ctx, p["metric"])
                L.append("- " + describe(p["contrast"], p["result"], words, unit, nd))
        L.append("")

    # ---- final metrics -----------------------------------------------------------------------------
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

    L += ["## Provenance", ""] + _provenance_table(ctx) + [""]

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

    # ---- pooled (secondary) ------------------------------------------------------------------------
    L += ["## Pooled incorrect-length growth (secondary)", "",
          "Per run: mean of `train/len_incorrect` (all prompts) over the last 20% of training steps (step ≥ 1) "
          "minus the mean over the first 10% (tokens), as `growth` in `summary.json`; then the mean over seeds "
          "with its 95% t-interval (per arm; the arms are compared paired above"
          + (" and below" if key == HEADLINE else "") + "). The same for correct responses alongside.", ""]
    rows = []
    for arm in ctx.arms:
        s, sc = growth[arm], growth_c[arm]
        per = ", ".join(_f(v, 1, True) for v in s["per_run"].values())
        rows.append([arm, s["n"], _f(s["mean"], 1, True), _ci(s), per or "—", _f(sc["mean"], 1, True), _ci(sc)])
    L += _table(["arm", "seeds", "incorrect-length growth", "95% CI", "per seed", "correct-length growth",
                 "95% CI (correct)"], rows) + [""]
    if key == HEADLINE and paired:
        L += _table(_PAIRED_HEADER, _paired_rows(ctx, paired, ("len_incorrect_growth",))) + [""]
    elif key != HEADLINE:
        L += ["(This is the headline metric here; its paired comparisons are above.)", ""]

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
    titles = {"length_growth": "Length growth", "token_efficiency": "Token efficiency",
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
    smooth: int | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> PlotResult:
    """Figures and ``report.md``/``report.html`` for the runs under ``paths``; see the module docstring.

    ``paths``: one sweep folder (run directories below it, optional ``grid.json``) or run directories
    (or several sweeps). ``out``: the output folder, created if needed; default ``<sweep>/figures/`` for
    exactly one sweep folder, else ``./drgrpo-plot/``. ``metrics``: extra metric keys (as in
    metrics.jsonl) for ``metrics.<fmt>``. ``smooth``: centred rolling mean over this many steps for the
    per-step train curves (>= 1, 1 = off; None = :func:`auto_smooth` of the longest run). ``formats``: any
    of ``png``, ``svg``, ``pdf``. Raises :class:`PlotError` (one line) before writing anything when there
    is nothing sensible to plot. ``PlotResult.figures`` holds the Figure objects (for inspection).
    """
    # ---- options --------------------------------------------------------------------------------
    if smooth is not None and (isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1):
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
    for r in runs:
        r.numbers = run_numbers(r.frame)
    key = headline_key(r.numbers for r in runs)
    some = [r.name for r in runs if r.numbers["headline_metric"] == HEADLINE]
    if key == HEADLINE_FALLBACK and some:  # (none logged it: a math task or older runs; the report says so)
        warnings.append(f"{HEADLINE} logged by only some runs ({', '.join(some)}); the headline is the pooled "
                        f"{HEADLINE_FALLBACK} for every run")
    knobs = {a: arm_knobs(r.config for r in runs_by_arm[a]) for a in arms}
    for a in arms:
        if knobs[a] is None:
            warnings.append(f"{a}: its runs differ in adv_scale/loss_agg; left out of the paired comparisons")
        seeds = [r.seed for r in runs_by_arm[a]]
        dup = sorted({str(s) for s in seeds if seeds.count(s) > 1})
        if dup:
            warnings.append(f"{a}: several runs with seed {', '.join(dup)}; their mean is paired")
    max_train = max(len(train_series(r.frame, "train/reward")) if "train/reward" in r.frame.columns else 0
                    for r in runs)
    ctx = _Ctx(runs=runs, arms=arms, styles=_arm_styles(arms, knobs), nseeds={a: len(runs_by_arm[a]) for a in arms},
               frames={a: [r.frame for r in runs_by_arm[a]] for a in arms}, runs_by_arm=runs_by_arm,
               has_eval=has_eval, smooth=auto_smooth(max_train) if smooth is None else smooth, formats=tuple(fmts),
               max_steps=max(len(r.frame) for r in runs), knobs=knobs, headline_key=key, max_train_steps=max_train)

    warnings.extend(provenance_warnings(ctx))

    # ---- numbers --------------------------------------------------------------------------------
    named = sorted(named_evals)
    final = _final_metrics(ctx, named)
    head = _headline(ctx)
    paired = _paired(ctx)
    growth = _growth(ctx, "len_incorrect_growth")
    growth_c = _growth(ctx, "len_correct_growth")
    diff = _difficulty(ctx)

    # ---- figures --------------------------------------------------------------------------------
    import matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    figures: dict[str, Path] = {}
    figs: dict[str, Any] = {}
    embed = "png" if "png" in fmts else "svg" if "svg" in fmts else None

    def keep(stem: str, fig: Any) -> None:
        figs[stem] = fig
        files.extend(_save(fig, out_dir, stem, ctx.formats))
        if embed:
            figures[stem] = out_dir / f"{stem}.{embed}"

    with matplotlib.rc_context(_RC):
        keep("length_growth", _fig_length_growth(ctx, paired))
        if any("train/len_mean" in f.columns and "train/reward" in f.columns for fs in ctx.frames.values() for f in fs):
            keep("token_efficiency", _fig_token_efficiency(ctx))
        else:
            warnings.append("train/len_mean or train/reward not logged; token-efficiency figure skipped")
        if diff:
            keep("difficulty_bias", _fig_difficulty(ctx, diff))
        else:
            warnings.append("no difficulty/k{k}/... metrics logged; difficulty-bias figure skipped")
        if metric_keys:
            keep("metrics", _fig_metrics(ctx, metric_keys))

    # ---- report ---------------------------------------------------------------------------------
    md = _report(ctx, paths, files, figures, warnings, final, named, head, paired, growth, growth_c, diff)
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
                "knobs": list(knobs[a]) if knobs[a] else None,
                "final": {k: clean(v) for k, v in final[a].items()},
                "headline": {w: clean(head[a][w]) for w in ("early", "late", "growth")}
                | {"per_run": head[a]["per_run"]},
                "len_incorrect_growth": clean(growth[a]),
                "len_correct_growth": clean(growth_c[a]),
            }
            for a in arms
        },
        "headline_key": key,
        "paired": [{"metric": p["metric"], "comparison": p["contrast"].name, "kind": p["contrast"].kind,
                    "detail": p["contrast"].detail, **p["result"].as_dict()} for p in paired],
        "smooth": ctx.smooth,
        "provenance": [{"runs": [r.name for r in rs], **rec} for rec, rs in _provenance_groups(ctx)],
        "difficulty": diff,
        "has_eval": has_eval,
    }
    return PlotResult(files=files, report=report, warnings=warnings, out=out_dir, summary=summary, figures=figs)
