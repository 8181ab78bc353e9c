"""Which runs ``drgrpo plot`` reads and which arm each belongs to.

A path is a run directory (holds ``config.json``) or a folder searched for them (3 levels). An arm's label
comes from the sweep's ``grid.json`` (as ``drgrpo ablate`` writes it), else the config's ``arm``, else its
knobs (``stats.knob_label``: "Dr. GRPO", "Dr. GRPO (length_alpha=1)"); runs labelled from their knobs whose
configs differ beyond the seed get the difference in the label (a TrainConfig field missing from an older
config counts as its default).
The seeds of an arm are its runs. Labels only name and order arms; comparisons go by knobs (stats.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from drgrpo_cli.config import TrainConfig
from drgrpo_cli.metrics import HEADLINE_FALLBACK
from drgrpo_cli.report.stats import KNOB_DEFAULTS, Knobs, knob_label, knob_value, knob_value_text, knobs_of
from drgrpo_cli.report.text import value_text
from drgrpo_cli.runlog import CONFIG, METRICS, PROVENANCE, read_jsonl, read_summary, run_state

__all__ = [
    "ARM_ORDER", "GRID_FILE", "PlotContext", "PlotError", "Run", "arm_order", "discover", "fill_named_eval",
    "find_run_dirs", "group_by_arm", "load_run", "metrics_frame", "read_frames", "read_grid_arms", "read_provenance",
    "split_mixed_arms",
]

#: Fixed arm order for the bundled labels; other labels follow, sorted by name.
ARM_ORDER = ("GRPO", "std-only fix", "length-only fix", "Dr. GRPO")
GRID_FILE = "grid.json"
SEARCH_DEPTH = 3
#: Config keys that may differ between the seeds of one arm without making it another arm (where and
#: how a run was executed, not what it trains).
SEED_KEYS = frozenset({"seed", "device", "threads", "checkpoint_every", "samples_per_step",
                       "gradient_checkpointing", "out", "output_dir", "run_dir", "name"})
#: ``eval/<name>/<metric>``: an eval of a named eval set.
NAMED_EVAL = re.compile(r"^eval/([^/]+)/(accuracy|len_mean|len_correct|len_incorrect)$")
#: TrainConfig's defaults: a key an older config.json lacks had the default's effect.
_FIELD_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


class PlotError(ValueError):
    """Nothing sensible to plot (bad path, no runs, bad option); the message is one line for the user."""


@dataclass
class Run:
    path: Path
    name: str  # relative to the searched folder (or the run dir's own name)
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    torn: bool
    state: str
    root: Path | None  # the searched folder it was found in, None when given directly
    arm: str = ""
    arm_source: str = ""  # "grid", "config" or "knobs"
    frame: Any = None  # pandas DataFrame indexed by step
    numbers: dict[str, Any] = field(default_factory=dict)  # metrics.run_numbers of its rows
    provenance: dict[str, Any] | None = None  # provenance.json (or summary.json's copy); None = not recorded

    @property
    def seed(self) -> Any:
        return self.config.get("seed")


@dataclass
class PlotContext:
    """The runs grouped into arms, and what every step of a plot reads (numbers, figures, report)."""

    runs: list[Run]  # arm by arm, each arm's runs in seed order
    arms: list[str]
    styles: dict[str, tuple[str, str]]  # arm -> (colour, line style)
    nseeds: dict[str, int]
    frames: dict[str, list[Any]]  # arm -> frames of its runs
    runs_by_arm: dict[str, list[Run]]
    has_eval: bool
    smooth: int
    formats: tuple[str, ...]
    max_steps: int
    knobs: dict[str, Knobs | None] = field(default_factory=dict)  # arm -> its objective knobs (stats.Knobs)
    headline_key: str = HEADLINE_FALLBACK
    max_train_steps: int = 0


# ------------------------------------------------------------------------------------------------------
# finding and reading runs
def find_run_dirs(root: Path) -> list[Path]:
    """The folders with a ``config.json`` below ``root`` (not below a run directory), in path order."""
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


def read_grid_arms(root: Path, warnings: list[str]) -> dict[str, str]:
    """``run dir name -> arm label`` from ``<root>/grid.json``; {} when absent or not understood.

    The shape ``drgrpo ablate`` writes: ``"arms": {dir: label}`` and ``"runs": [{"dir", "arm", ...}]``
    (a run's own ``arm`` wins)."""
    p = root / GRID_FILE
    if not p.is_file():
        return {}
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        warnings.append(f"{p}: not valid JSON; arms taken from the run configs")
        return {}
    mapping: dict[str, str] = {}
    if isinstance(obj, dict):
        arms, runs = obj.get("arms"), obj.get("runs")
        if isinstance(arms, dict):
            mapping.update((d, a) for d, a in arms.items() if isinstance(a, str))
        if isinstance(runs, list):
            mapping.update((r["dir"], r["arm"]) for r in runs
                           if isinstance(r, dict) and isinstance(r.get("dir"), str) and isinstance(r.get("arm"), str))
    if not mapping:
        warnings.append(f"{p}: no run -> arm mapping understood; arms taken from the run configs")
    return mapping


def _grid_arm(mapping: dict[str, str], run: Run) -> str | None:
    """The run's label in a ``read_grid_arms`` mapping (by its name, dir name or path), else None."""
    if not mapping:
        return None
    norm = {Path(k).as_posix().rstrip("/"): v for k, v in mapping.items()}
    for cand in (run.name, run.path.name, str(run.path)):
        if cand in norm:
            return norm[cand]
    base = {Path(k).name: v for k, v in mapping.items()}
    return base.get(run.path.name)


def load_run(path: Path, name: str, root: Path | None, warnings: list[str]) -> Run | None:
    """A run directory's config, metrics rows (a torn last line dropped) and provenance; None (and a
    warning) when its config or metrics cannot be read."""
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
    return Run(path=path, name=name, config=config, rows=rows, torn=torn, state=run_state(path), root=root,
               provenance=read_provenance(path))


def read_provenance(path: Path) -> dict[str, Any] | None:
    """The run's provenance record: ``provenance.json``, else the copy in ``summary.json``, else None."""
    try:
        prov = json.loads((path / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        prov = (read_summary(path) or {}).get("provenance")
    return prov if isinstance(prov, dict) else None


def _run_dirs_of(p: Path) -> list[tuple[Path, str, Path | None]]:
    """``(run dir, name, searched folder)`` for one given path: itself, or the runs found below it."""
    if not p.exists():
        raise PlotError(f"no such file or directory: {p}")
    if not p.is_dir():
        raise PlotError(f"not a directory: {p} (pass a sweep folder or run directories)")
    if (p / CONFIG).is_file():
        return [(p, p.name, None)]
    if not any(p.iterdir()):
        raise PlotError(f"empty directory: {p}")
    dirs = find_run_dirs(p)
    if not dirs:
        raise PlotError(f"no run directories (folders with {CONFIG}) in {p}")
    return [(d, d.relative_to(p).as_posix(), p) for d in dirs]


def _label(run: Run, mapping: dict[str, str]) -> bool:
    """Give the run its arm label (grid.json, else its config's ``arm``, else its knobs); False when a
    grid.json mapping exists but does not name the run."""
    lab = _grid_arm(mapping, run)
    if lab is not None:
        run.arm, run.arm_source = lab, "grid"
        return True
    if isinstance(run.config.get("arm"), str) and run.config["arm"]:
        run.arm, run.arm_source = run.config["arm"], "config"
    else:
        run.arm = knob_label(knobs_of(run.config))
        run.arm_source = "knobs"
    return not mapping


def discover(paths: Sequence[Path], warnings: list[str]) -> tuple[list[Run], list[Path]]:
    """All runs under ``paths``, labelled with their arms, and the folders that were searched (sweeps)."""
    if not paths:
        raise PlotError("no path given: pass a sweep folder or one or more run directories")
    runs: list[Run] = []
    sweeps: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        found = _run_dirs_of(p)
        searched = found[0][2] is not None
        if searched:
            sweeps.append(p)
        mapping = read_grid_arms(p, warnings) if searched else {}
        unmatched: list[str] = []
        for d, name, root in found:
            if d.resolve() in seen:
                continue
            seen.add(d.resolve())
            run = load_run(d, name, root, warnings)
            if run is None:
                continue
            if not _label(run, mapping):
                unmatched.append(name)
            runs.append(run)
        if unmatched:
            warnings.append(f"{p / GRID_FILE}: no arm for {', '.join(unmatched)}; taken from their configs")
    if not runs:
        raise PlotError("no readable runs in " + ", ".join(str(p) for p in paths))
    return runs, sweeps


# ------------------------------------------------------------------------------------------------------
# metrics frames (pandas, imported lazily)
def metrics_frame(rows: list[dict[str, Any]]) -> Any:
    """The rows as a float DataFrame indexed by step (a step logged twice keeps its last row)."""
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


def fill_named_eval(df: Any) -> list[str]:
    """Where ``eval/<m>`` is not logged but named sets ``eval/<name>/<m>`` are, use their row-wise mean."""
    named: dict[str, list[str]] = {}
    for c in df.columns:
        m = NAMED_EVAL.match(str(c))
        if m:
            named.setdefault(m.group(2), []).append(c)
    filled = []
    for metric, cols in named.items():
        key = f"eval/{metric}"
        if key not in df.columns or df[key].notna().sum() == 0:
            df[key] = df[cols].mean(axis=1, skipna=True)
            filled.append(key)
    return filled


def _state_warnings(r: Run, warnings: list[str]) -> None:
    if len(r.frame) and r.state == "partial":
        warnings.append(f"{r.name}: partial run (no finished summary.json); plotting its {len(r.frame)} logged steps")
    elif len(r.frame) and r.state == "failed":
        err = (read_summary(r.path) or {}).get("error")
        err = str(err).splitlines()[0][:120] if err else "no error message"
        warnings.append(f"{r.name}: failed run ({err}); plotting its {len(r.frame)} logged steps")
    if r.torn:
        warnings.append(f"{r.name}: torn last line of metrics.jsonl dropped (run killed mid-write?)")


def read_frames(runs: list[Run], warnings: list[str]) -> tuple[list[Run], list[str]]:
    """Each run's metrics frame (named eval sets averaged where ``eval/<m>`` is not logged); the runs that
    have rows, and the named eval sets with an accuracy. Warns about partial, failed, torn and empty runs."""
    named_evals: set[str] = set()
    filled_notes: set[str] = set()
    for r in runs:
        r.frame = metrics_frame(r.rows)
        _state_warnings(r, warnings)
        if len(r.frame):
            for c in r.frame.columns:
                m = NAMED_EVAL.match(str(c))
                if m and m.group(2) == "accuracy" and r.frame[c].notna().any():
                    named_evals.add(m.group(1))
            filled_notes.update(fill_named_eval(r.frame))
    for key in sorted(filled_notes):
        warnings.append(f"note: {key} not logged; using the mean over the named eval sets "
                        f"({key.replace('eval/', 'eval/<name>/')})")
    for r in runs:
        if len(r.frame) == 0:
            warnings.append(f"{r.name}: no metrics rows yet; skipped")
    runs = [r for r in runs if len(r.frame)]
    if not runs:
        raise PlotError("no metrics to plot: no run has any rows in metrics.jsonl")
    return runs, sorted(named_evals)


# ------------------------------------------------------------------------------------------------------
# arms
def split_mixed_arms(runs: list[Run]) -> None:
    """Runs labelled from their knobs whose configs differ beyond the seed get the difference in the label."""
    by_arm: dict[str, list[Run]] = {}
    for r in runs:
        if r.arm_source == "knobs":
            by_arm.setdefault(r.arm, []).append(r)
    for arm, group in by_arm.items():
        keys = sorted({k for r in group for k in r.config} - SEED_KEYS)
        differ = [k for k in keys if len({_config_text(r.config, k) for r in group}) > 1]
        if not differ:
            continue
        for r in group:
            r.arm = f"{arm} (" + ", ".join(f"{k}={_config_text(r.config, k)}" for k in differ) + ")"


def _config_text(config: dict[str, Any], key: str) -> str:
    """A config value as text (a TrainConfig field absent from an older config: its default); an objective
    knob as its knob value (1 and 1.0 alike)."""
    if key in KNOB_DEFAULTS:
        return knob_value_text(knob_value(key, config.get(key, KNOB_DEFAULTS[key])))
    return value_text(config[key] if key in config else _FIELD_DEFAULTS.get(key))


def _run_order(r: Run) -> tuple[Any, ...]:
    s = r.seed
    if isinstance(s, (int, float)) and not isinstance(s, bool):
        return (0, float(s), r.name)
    return (1, str(s), r.name)


def arm_order(labels: Iterable[str]) -> list[str]:
    """The bundled labels in :data:`ARM_ORDER`, then the others sorted by name."""
    labels = set(labels)
    known = [a for a in ARM_ORDER if a in labels]
    return known + sorted(labels - set(known))


def group_by_arm(runs: Sequence[Run]) -> tuple[list[str], dict[str, list[Run]]]:
    """The arms in :func:`arm_order` and each arm's runs in seed order."""
    arms = arm_order({r.arm for r in runs})
    return arms, {a: sorted((r for r in runs if r.arm == a), key=_run_order) for a in arms}
