"""``drgrpo plot`` as a library: :func:`plot` reads run directories and writes figures and a report.

It writes into one output folder (default ``<sweep>/figures/`` for one sweep folder, else
``./drgrpo-plot/``) and nowhere else: ``length_growth``, ``token_efficiency``, ``difficulty_bias``,
``metrics`` (only with ``metrics=[...]``) as PNG/SVG/PDF, and ``report.md``/``report.html``. Nothing to
plot, a bad option or an unknown ``metrics`` key raise :class:`PlotError` (one line) before anything is
written; torn, partial and failed runs plot what exists and warn. Importing this module loads neither
matplotlib nor pandas (the CLI's ``--help`` stays fast). Design notes: docs/design/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from drgrpo_cli.metrics import HEADLINE, HEADLINE_FALLBACK, headline_key, run_numbers, train_series
from drgrpo_cli.report import DEFAULT_MULTI_OUT, FORMATS
from drgrpo_cli.report.curves import auto_smooth
from drgrpo_cli.report.figures import arm_styles, write_figures
from drgrpo_cli.report.markdown import markdown_to_html, report_markdown
from drgrpo_cli.report.numbers import report_numbers, summary_dict
from drgrpo_cli.report.provenance_table import provenance_warnings
from drgrpo_cli.report.runs import PlotContext, PlotError, Run, discover, group_by_arm, read_frames, split_mixed_arms
from drgrpo_cli.report.stats import arm_knobs, differing_knobs
from drgrpo_cli.runlog import write_text_atomic

__all__ = ["DEFAULT_MULTI_OUT", "FORMATS", "PlotError", "PlotResult", "plot"]

SWEEP_OUT = "figures"


@dataclass
class PlotResult:
    files: list[Path]  # every file written, figures first, report.md / report.html last
    report: Path  # report.md
    warnings: list[str]
    out: Path  # the output folder
    summary: dict[str, Any] = field(default_factory=dict)  # the report's numbers, machine-readable
    figures: dict[str, Any] = field(default_factory=dict)  # stem -> matplotlib Figure (for inspection)


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
    per-step train curves (>= 1, 1 = off; None = :func:`~drgrpo_cli.report.curves.auto_smooth` of the
    longest run). ``formats``: any of ``png``, ``svg``, ``pdf``. Raises :class:`PlotError` (one line)
    before writing anything when there is nothing sensible to plot. ``PlotResult.figures`` holds the
    Figure objects (for inspection).
    """
    fmts = _check_formats(smooth, formats)
    metric_keys = list(dict.fromkeys(str(m) for m in (metrics or [])))
    paths = [Path(p) for p in (paths or [])]
    warnings: list[str] = []
    runs, sweeps = discover(paths, warnings)
    out_dir = Path(out) if out is not None else _default_out(paths, sweeps)
    if out_dir.exists() and not out_dir.is_dir():
        raise PlotError(f"--out exists and is not a directory: {out_dir}")
    runs, named_evals = read_frames(runs, warnings)
    split_mixed_arms(runs)
    _check_metric_keys(metric_keys, runs)
    ctx = _context(runs, warnings, smooth, fmts)
    warnings.extend(provenance_warnings(ctx))
    nums = report_numbers(ctx, named_evals)

    out_dir.mkdir(parents=True, exist_ok=True)  # nothing is written before this line
    files, embedded, figs = write_figures(ctx, nums, metric_keys, out_dir, warnings)
    md = report_markdown(ctx, paths, files, embedded, warnings, nums)
    report, report_html = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(report, md + "\n")
    write_text_atomic(report_html, markdown_to_html(md))
    files += [report, report_html]
    return PlotResult(files=files, report=report, warnings=warnings, out=out_dir, summary=summary_dict(ctx, nums),
                      figures=figs)


def _check_formats(smooth: int | None, formats: Sequence[str]) -> tuple[str, ...]:
    """The formats, lower case, without dots or repeats; PlotError for a bad ``smooth`` or format."""
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
    return tuple(fmts)


def _default_out(paths: Sequence[Path], sweeps: Sequence[Path]) -> Path:
    if len(paths) == 1 and len(sweeps) == 1:
        return Path(sweeps[0]) / SWEEP_OUT
    return DEFAULT_MULTI_OUT


def _check_metric_keys(metric_keys: Sequence[str], runs: Sequence[Run]) -> None:
    """PlotError naming the requested keys no run logged, with close matches."""
    missing = [k for k in metric_keys if not any(k in r.frame.columns and r.frame[k].notna().any() for r in runs)]
    if not missing:
        return
    import difflib

    avail = sorted({str(c) for r in runs for c in r.frame.columns})
    hints = []
    for k in missing:
        close = difflib.get_close_matches(k, avail, n=3)
        hints.append(f"{k!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    raise PlotError(f"unknown metric key {'; '.join(hints)}; no run logged it")


def _context(runs: list[Run], warnings: list[str], smooth: int | None, fmts: tuple[str, ...]) -> PlotContext:
    """Group the runs into arms, compute each run's numbers (:func:`~drgrpo_cli.metrics.run_numbers`), pick
    the headline key and the arms' knobs; warn about runs without eval, a headline logged by only some
    runs, arms of mixed knobs and seeds given twice."""
    arms, runs_by_arm = group_by_arm(runs)
    runs = [r for a in arms for r in runs_by_arm[a]]
    has_eval = _eval_warnings(runs, warnings)
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
            differ = ", ".join(differing_knobs(r.config for r in runs_by_arm[a]))
            warnings.append(f"{a}: its runs differ in {differ}; left out of the paired comparisons")
        seeds = [r.seed for r in runs_by_arm[a]]
        dup = sorted({str(s) for s in seeds if seeds.count(s) > 1})
        if dup:
            warnings.append(f"{a}: several runs with seed {', '.join(dup)}; their mean is paired")
    max_train = max(len(train_series(r.frame, "train/reward")) if "train/reward" in r.frame.columns else 0
                    for r in runs)
    return PlotContext(runs=runs, arms=arms, styles=arm_styles(arms, knobs), nseeds={a: len(runs_by_arm[a]) for a in arms},
                       frames={a: [r.frame for r in runs_by_arm[a]] for a in arms}, runs_by_arm=runs_by_arm,
                       has_eval=has_eval, smooth=auto_smooth(max_train) if smooth is None else smooth, formats=fmts,
                       max_steps=max(len(r.frame) for r in runs), knobs=knobs, headline_key=key,
                       max_train_steps=max_train)


def _eval_warnings(runs: Sequence[Run], warnings: list[str]) -> bool:
    """Whether any run logged eval rows; warns when none did, else about each run that did not."""
    has_eval_run = {r.name: "eval/accuracy" in r.frame.columns and bool(r.frame["eval/accuracy"].notna().any())
                    for r in runs}
    has_eval = any(has_eval_run.values())
    if not has_eval:
        warnings.append("no run has eval rows (eval_every=0, or stopped before the first eval); eval panels skipped")
    else:
        for r in runs:
            if not has_eval_run[r.name]:
                warnings.append(f"{r.name}: no eval rows; left out of the eval panels")
    return has_eval
