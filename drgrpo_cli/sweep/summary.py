"""A sweep's numbers: the per-arm summary (summary.csv) and the paired comparisons of its arms (paired.csv).

Only *finished* runs count, so every number is about the same training length. A run's numbers are
:func:`drgrpo_cli.metrics.run_numbers` (the trainer's summary.json and ``drgrpo plot`` use the same), then
the mean over seeds. Runs of different arms with the same seed are pairs: arms are compared per seed, then
over seeds (:mod:`drgrpo_cli.report.stats`); which comparisons comes from the arms' knobs (every
``config.OBJECTIVE_KNOBS``), not their labels. summary.csv always has the columns ``adv_scale`` and ``loss_agg``,
and a column for another objective knob only when some arm of the sweep has it off its default.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from drgrpo_cli.metrics import (HEADLINE_FALLBACK, PAIRED_METRICS, headline_key, mean, paired_metrics, paired_value,
                                run_numbers)
from drgrpo_cli.report.stats import (BIAS_KNOBS, KNOBS, Knobs, Paired, arm_knobs, by_seed, evaluate, extra_knobs,
                                     knob_value_text, plan_contrasts)
from drgrpo_cli.runlog import CONFIG, run_state, write_text_atomic
from drgrpo_cli.sweep.grid_json import read_grid_json
from drgrpo_cli.sweep.plan import read_rows, sweep_runs

SUMMARY_CSV = "summary.csv"
CSV_COLUMNS = ("arm", "runs_done", "runs_total", "runs_failed", "final_reward", "final_accuracy", "eval_accuracy",
               "len_incorrect_growth", "len_correct_growth", "headline_growth", "headline_metric", "adv_scale",
               "loss_agg")
_NUMBER_COLUMNS = ("final_reward", "final_accuracy", "eval_accuracy", "len_incorrect_growth", "len_correct_growth",
                   "headline_growth")
#: The per-run numbers an arm averages over its seeds (run_numbers keys, also summary.csv columns).
_MEAN_COLUMNS = ("final_reward", "final_accuracy", "eval_accuracy", "len_incorrect_growth", "len_correct_growth")
PAIRED_CSV = "paired.csv"
PAIRED_COLUMNS = ("metric", "key", "comparison", "kind", "n_seeds", "mean_diff", "ci_lo", "ci_hi", "same_sign",
                  "seeds", "per_seed", "detail")
#: The metrics compared between arms (names as in summary.csv): the headline growth, the final reward, and
#: the pooled wrong-answer length growth (secondary).


def _csv_number(x: float | None) -> str:
    return "" if x is None else format(x, ".6g")


def _nan_to_none(x: float) -> float | None:
    return None if x != x else x


def _ascii(text: str) -> str:
    """Plain hyphens for the CSV (easy to filter on in pandas); the tables keep the minus sign."""
    return text.replace("−", "-")


@dataclass
class ArmSummary:
    arm: str
    runs_total: int
    runs_done: int
    runs_failed: int
    final_reward: float | None
    final_accuracy: float | None
    eval_accuracy: float | None
    len_incorrect_growth: float | None
    len_correct_growth: float | None
    headline_growth: float | None = None  # growth of headline_metric (the same key for every arm of a sweep)
    headline_metric: str = HEADLINE_FALLBACK
    adv_scale: str = ""  # the arm's knobs ("" when its runs differ or none started)
    loss_agg: str = ""
    knobs: Knobs | None = None  # every objective knob (None when its runs differ or none started)
    dirs: list[str] = field(default_factory=list)
    per_seed: dict[str, dict[int, float | None]] = field(default_factory=dict)  # PAIRED_METRICS -> {seed: value}

    def csv_row(self, extra: Sequence[str] = ()) -> list[str]:
        """The row under :data:`CSV_COLUMNS` and the ``extra`` knob columns (:func:`extra_knob_columns`)."""
        knobs = dict(zip(KNOBS, self.knobs)) if self.knobs else {}
        return [self.arm, str(self.runs_done), str(self.runs_total), str(self.runs_failed),
                *(_csv_number(getattr(self, c)) if c in _NUMBER_COLUMNS else str(getattr(self, c))
                  for c in CSV_COLUMNS[4:]),
                *(knob_value_text(knobs[k]) if k in knobs else "" for k in extra)]


@dataclass
class PairedRow:
    """One paired comparison of one metric: ``result`` holds the per-seed values and their summary."""

    metric: str  # a PAIRED_METRICS name
    key: str  # the logged key it is computed from
    comparison: str
    kind: str  # grpo_vs_drgrpo | length_norm | std_norm | vs_reference
    detail: str
    result: Paired

    def csv_row(self) -> list[str]:
        r = self.result
        return [self.metric, self.key, _ascii(self.comparison), self.kind, str(r.n), _csv_number(_nan_to_none(r.mean)),
                _csv_number(_nan_to_none(r.lo)), _csv_number(_nan_to_none(r.hi)), str(r.same_sign) if r.n else "",
                ";".join(str(x) for x in r.seeds), ";".join(_csv_number(x) for x in r.diffs), _ascii(self.detail)]


def _run_configs(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Run dir -> its config: config.json where the run started, else the config grid.json planned."""
    out: dict[str, dict[str, Any]] = {}
    g = read_grid_json(sweep_dir) or {}
    for r in g.get("runs", []):
        if isinstance(r, dict) and isinstance(r.get("config"), dict) and isinstance(r.get("dir"), str):
            out[r["dir"]] = r["config"]
    for p in sweep_dir.iterdir() if sweep_dir.is_dir() else ():
        if (p / CONFIG).is_file():
            try:
                c = json.loads((p / CONFIG).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(c, dict):
                out[p.name] = c
    return out


def arm_summaries(sweep_dir: Path, runs: Iterable[tuple[str, str, int]] | None = None) -> list[ArmSummary]:
    """Per-arm summary of a sweep directory (see the module docstring), arms in grid order."""
    sweep_dir = Path(sweep_dir)
    runs = list(sweep_runs(sweep_dir) if runs is None else runs)
    configs = _run_configs(sweep_dir)
    by_arm: dict[str, list[tuple[str, str, int]]] = {}
    for d, arm, seed in runs:
        by_arm.setdefault(arm, []).append((d, run_state(sweep_dir / d), seed))
    nums = {d: run_numbers(read_rows(sweep_dir / d)) for ms in by_arm.values() for d, s, _ in ms if s == "finished"}
    key = headline_key(nums.values())  # one headline metric for the whole sweep
    out = []
    for arm, members in by_arm.items():
        done = [(seed, nums[d]) for d, s, seed in members if s == "finished"]
        values = {m: [(seed, paired_value(n, m, key)) for seed, n in done] for m in PAIRED_METRICS}
        knobs = arm_knobs([configs[d] for d, _, _ in members if d in configs])
        out.append(ArmSummary(
            arm=arm,
            runs_total=len(members),
            runs_done=len(done),
            runs_failed=sum(s == "failed" for _, s, _ in members),
            **{k: mean(n[k] for _, n in done) for k in _MEAN_COLUMNS},
            headline_growth=mean(v for _, v in values["headline_growth"]),
            headline_metric=key,
            adv_scale=knobs.adv_scale if knobs else "",
            loss_agg=knobs.loss_agg if knobs else "",
            knobs=knobs,
            dirs=[d for d, _, _ in members],
            per_seed={m: by_seed(v) for m, v in values.items()},
        ))
    return out


def paired_comparisons(arms: Sequence[ArmSummary]) -> list[PairedRow]:
    """The paired comparisons of a sweep's arms (:func:`drgrpo_cli.report.stats.plan_contrasts`, from their knobs),
    for each of PAIRED_METRICS (metric by metric), over the seeds every arm involved has finished."""
    contrasts = plan_contrasts({a.arm: a.knobs for a in arms})
    key = arms[0].headline_metric if arms else HEADLINE_FALLBACK
    keys = {"headline_growth": key, "final_reward": "train/reward", "len_incorrect_growth": HEADLINE_FALLBACK}
    rows = []
    for metric in paired_metrics(key):
        by_arm = {a.arm: a.per_seed.get(metric, {}) for a in arms}
        for c in contrasts:
            rows.append(PairedRow(metric=metric, key=keys[metric], comparison=c.name, kind=c.kind, detail=c.detail,
                                  result=evaluate(c, by_arm)))
    return rows


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def extra_knob_columns(arms: Sequence[ArmSummary]) -> list[str]:
    """The objective knobs beyond adv_scale and loss_agg that some arm has off their default (KNOBS order)."""
    off = {n for a in arms if a.knobs for n, _ in extra_knobs(a.knobs)}
    return [k for k in KNOBS if k in off and k not in BIAS_KNOBS]


def summary_csv_text(arms: Sequence[ArmSummary]) -> str:
    extra = extra_knob_columns(arms)
    return _csv_text((*CSV_COLUMNS, *extra), (a.csv_row(extra) for a in arms))


def paired_csv_text(rows: Sequence[PairedRow]) -> str:
    return _csv_text(PAIRED_COLUMNS, (r.csv_row() for r in rows))


def _write_if_changed(path: Path, text: str) -> Path:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def write_summary_csv(sweep_dir: Path, arms: Sequence[ArmSummary]) -> Path:
    """Write ``<sweep>/summary.csv`` (left untouched when its content would not change)."""
    return _write_if_changed(Path(sweep_dir) / SUMMARY_CSV, summary_csv_text(arms))


def write_paired_csv(sweep_dir: Path, rows: Sequence[PairedRow]) -> Path:
    """Write ``<sweep>/paired.csv`` (left untouched when its content would not change)."""
    return _write_if_changed(Path(sweep_dir) / PAIRED_CSV, paired_csv_text(rows))
