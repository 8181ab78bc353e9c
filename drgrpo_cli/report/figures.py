"""The figures of ``drgrpo plot``: length growth (the headline), token efficiency, difficulty bias, and the
requested metrics, as ``matplotlib.figure.Figure`` objects (no pyplot; matplotlib loads lazily).

Colours follow the arms' knobs (all objective knobs, :mod:`drgrpo_cli.report.stats`), not their labels:
GRPO dark red, Dr. GRPO dark blue, the one-switch arms dashed in the lighter shade of the arm they share
``loss_agg`` with (the switch that drives length), each with the other knobs at their defaults; other knobs
get other colours. Legends name each arm's knobs (``stats.knob_text``). File names are fixed and the files
carry no dates, so the same logs give the same files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from drgrpo_cli.metrics import GROWTH_FIRST, GROWTH_LAST, HEADLINE, HEADLINE_FALLBACK, window_size
from drgrpo_cli.report.curves import Curve, curve, robust_ylim
from drgrpo_cli.report.numbers import ReportNumbers
from drgrpo_cli.report.runs import PlotContext
from drgrpo_cli.report.stats import DRGRPO_KNOBS, GRPO_KNOBS, Knobs, knob_text, knobs_with
from drgrpo_cli.report.text import number_text

__all__ = ["FIGURE_TITLES", "KNOB_STYLES", "PANELS", "arm_styles", "headline_title", "write_figures"]

#: Styles by knobs (the 2x2 cells, other knobs at their defaults): (colour, line style).
KNOB_STYLES: dict[Knobs, tuple[str, str]] = {
    GRPO_KNOBS: ("#c0392b", "-"),  # dark red
    DRGRPO_KNOBS: ("#1f4e9c", "-"),  # dark blue
    knobs_with(adv_scale="none", loss_agg="seq_mean"): ("#f08a7e", "--"),  # std-only fix: light red, dashed
    knobs_with(adv_scale="group", loss_agg="max_tokens"): ("#7fa8e0", "--"),  # length-only fix: light blue, dashed
}
OTHER_COLORS = ("#7b3fa0", "#2a9d5c", "#d4a017", "#17becf", "#7f7f7f", "#e377c2", "#8c564b", "#637939")
#: Figure file stem -> its title in the report.
FIGURE_TITLES = {"length_growth": "Length growth", "token_efficiency": "Token efficiency",
                 "difficulty_bias": "Difficulty bias", "difficulty_learning": "Accuracy by difficulty bucket",
                 "metrics": "Requested metrics"}
#: The difficulty task's buckets (tasks.difficulty.BUCKETS; a test checks they agree), as run tags.
DIFFICULTY_TAGS = ("easy", "medium", "hard")
DPI = 150
RC = {
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


def arm_styles(arms: Sequence[str], knobs: dict[str, Knobs | None]) -> dict[str, tuple[str, str]]:
    """arm -> (colour, line style), by knobs (see KNOB_STYLES); arms sharing knobs after the first, and
    arms of other knobs, get the other colours, solid."""
    styles: dict[str, tuple[str, str]] = {}
    taken: set[Knobs] = set()
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


# ------------------------------------------------------------------------------------------------------
# pieces
def _save(fig: Any, out: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    written = []
    for fmt in formats:
        p = out / f"{stem}.{fmt}"
        meta: dict[str, Any] = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt, {})
        fig.savefig(p, format=fmt, dpi=DPI, metadata=meta, facecolor="white")
        written.append(p)
    return written


def _draw_curve(ax: Any, c: Curve, style: tuple[str, str], sparse: bool, seeds: bool = True) -> Any:
    """Thin per-seed lines, the clipped bootstrap band, and the thick mean line on top."""
    color, ls = style
    df, runs = c.df, c.runs
    x = df.index.to_numpy()
    if seeds and runs.shape[1] > 1:
        alpha = 0.3 if runs.shape[1] <= 5 else 0.18
        for col in runs.columns:
            s = runs[col].dropna()
            ax.plot(s.index.to_numpy(), s.to_numpy(), color=color, alpha=alpha, linewidth=0.7, zorder=1)
    if df["lo"].notna().any():
        ax.fill_between(x, df["lo"].to_numpy(), df["hi"].to_numpy(), color=color, alpha=0.18, linewidth=0, zorder=2)
    (line,) = ax.plot(x, df["mean"].to_numpy(), color=color, linestyle=ls, linewidth=2.8, zorder=3,
                      marker="o" if sparse else None, markersize=5 if sparse else None)
    return line


def _no_data(ax: Any, text: str = "not logged") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.5")


def _set_ylim(ax: Any, curves: Sequence[Any], key: str) -> None:
    lim = robust_ylim(curves, key)
    if lim is not None and lim[1] > lim[0]:
        ax.set_ylim(*lim)


def _band_note(ctx: PlotContext, windows: bool = False) -> str:
    sm = f"; train curves: centred rolling mean over {ctx.smooth} steps" if ctx.smooth > 1 else ""
    win = "; grey: the early (first 10%) and late (last 20%) steps of the growth numbers" if windows else ""
    return f"thin: one seed · thick: mean over seeds · band: bootstrap 95% CI of the mean{sm}{win}"


def _legend(fig: Any, ctx: PlotContext, arms: Sequence[str] | None = None, extra: Sequence[Any] = (),
            title: str | None = None) -> None:
    from matplotlib.lines import Line2D

    arms = ctx.arms if arms is None else arms
    handles = []
    for a in arms:
        color, ls = ctx.styles[a]
        k = ctx.knobs.get(a)
        knob = f" [{knob_text(k)}]" if k else ""
        handles.append(Line2D([], [], color=color, linestyle=ls, linewidth=3, label=f"{a}{knob} (n={ctx.nseeds[a]})"))
    handles += list(extra)
    leg = fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False,
                     title=title, title_fontsize=11)
    if title:
        leg.get_title().set_color("0.35")


def _pick_key(ctx: PlotContext, keys: Sequence[str]) -> tuple[int, str] | None:
    """The first of ``keys`` any run logged (a finite value), with its index."""
    for i, k in enumerate(keys):
        if any(k in f.columns and f[k].notna().any() for fs in ctx.frames.values() for f in fs):
            return i, k
    return None


def headline_title(ctx: PlotContext, paired: Sequence[dict[str, Any]]) -> str:
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
    text = (f"{c.name}, paired over {r.n} seed{'s' if r.n != 1 else ''} — {what}: "
            f"{number_text(r.mean, 1, True)} tokens")
    if r.n >= 2:
        text += f" [95% CI {number_text(r.lo, 1, True)}, {number_text(r.hi, 1, True)}]"
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
        text += f" · final reward: {number_text(rr.mean, 3, True)}"
        if rr.n >= 2:
            text += (f" [{number_text(rr.lo, 3, True)}, {number_text(rr.hi, 3, True)}]"
                     + ("" if rr.excludes_zero else ", CI includes 0"))
    return text


# ------------------------------------------------------------------------------------------------------
# the figures
def _length_panels(ctx: PlotContext) -> list[tuple[Panel, str, str, bool]]:
    """(panel, key drawn, its title, whether any run logged it); eval panels left out without eval."""
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
    return panels


def _fig_length_growth(ctx: PlotContext, paired: Sequence[dict[str, Any]]) -> Any:
    from matplotlib.figure import Figure

    panels = _length_panels(ctx)
    fig = Figure(figsize=(4.4 * len(panels) + 0.4, 6.4), layout="constrained")
    fig.suptitle("Length bias: " + ("wrong-answer length in the failure state over training"
                                    if ctx.headline_key == HEADLINE else "wrong-answer length over training"),
                 fontsize=17, fontweight="bold")
    sub = fig.subfigures(1, 1)
    sub.suptitle(headline_title(ctx, paired), fontsize=13)
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
                c = curve(ctx.frames[arm], key, ctx.smooth)
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


def _budget_line(ax: Any, ctx: PlotContext, key: str) -> None:
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


def _cumulative_tokens(ctx: PlotContext, arm: str) -> Any:
    """Per run (columns) and training step: the tokens generated so far, in thousands (the cumulative sum of
    ``train/len_mean`` x responses per step, ``prompts_per_step`` x ``group_size`` of its config); None if none."""
    import pandas as pd

    cols = []
    for r in ctx.runs_by_arm[arm]:
        if "train/len_mean" not in r.frame.columns:
            continue
        s = r.frame["train/len_mean"][r.frame.index >= 1].dropna()
        per_step = int(r.config.get("prompts_per_step", 1) or 1) * int(r.config.get("group_size", 1) or 1)
        if len(s):
            cols.append(s.cumsum() * per_step / 1000.0)
    return pd.concat(cols, axis=1, keys=range(len(cols)), sort=True) if cols else None


def _tokens_panel(ax: Any, ctx: PlotContext) -> None:
    """Train reward (smoothed; band = bootstrap 95% CI over seeds, clipped to [0, 1]) against the tokens
    generated so far (mean over seeds), thin lines = seeds; as the Dr. GRPO paper's token-efficiency plot."""
    import pandas as pd

    ax.set_title("train reward vs tokens generated", fontweight="bold")
    ax.set_xlabel("tokens generated so far (thousands, mean over seeds)")
    ax.set_ylabel("train reward")
    curves = []
    for arm in ctx.arms:
        tok, c = _cumulative_tokens(ctx, arm), curve(ctx.frames[arm], "train/reward", ctx.smooth)
        if tok is None or c is None:
            continue
        col, ls = ctx.styles[arm]
        for i in range(min(tok.shape[1], c.runs.shape[1])):  # thin: one seed, on its own token count
            j = pd.concat([tok[i].rename("x"), c.runs[i].rename("y")], axis=1, join="inner").dropna()
            ax.plot(j["x"].to_numpy(), j["y"].to_numpy(), color=col, alpha=0.18, linewidth=0.7, zorder=1)
        j = pd.concat([tok.mean(axis=1).rename("x"), c.df], axis=1, join="inner").dropna(subset=["x", "mean"])
        if j.empty:
            continue
        x = j["x"].to_numpy()
        if j["lo"].notna().any():
            ax.fill_between(x, j["lo"].to_numpy(), j["hi"].to_numpy(), color=col, alpha=0.18, linewidth=0, zorder=2)
        ax.plot(x, j["mean"].to_numpy(), color=col, linestyle=ls, linewidth=2.8, zorder=3)
        ax.plot(x[-1:], j["mean"].to_numpy()[-1:], color=col, marker="*", markersize=18, markeredgecolor="black",
                markeredgewidth=0.6, linestyle="", zorder=4)
        curves.append(c)
    if not curves:
        _no_data(ax)
        return
    ax.set_xlim(left=0)
    _set_ylim(ax, curves, "train/reward")


def _fig_token_efficiency(ctx: PlotContext) -> Any:
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    specs = [("train: reward vs response length", "train/len_mean", "train/reward", "train reward")]
    if ctx.has_eval:
        specs.append(("eval (greedy)", "eval/len_mean", "eval/accuracy", "eval accuracy"))
    fig = Figure(figsize=(8 * (len(specs) + 1), 6.4), layout="constrained")
    fig.suptitle("Token efficiency: reward against tokens generated and against response length", fontsize=15)
    marks = [Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle="", markersize=9, label="start"),
             Line2D([], [], color="0.3", marker="*", linestyle="", markersize=14, label="end (bars: 95% CI)")]
    _legend(fig, ctx, extra=marks, title=_band_note(ctx) + " · length panels: mean path over seeds")
    axes = fig.subplots(1, len(specs) + 1, squeeze=False)[0]
    _tokens_panel(axes[0], ctx)
    for ax, (title, xk, yk, yl) in zip(axes[1:], specs):
        ax.set_title(title, fontweight="bold")
        ax.set_xlabel("mean response length (tokens)")
        ax.set_ylabel(yl)
        drawn = False
        for arm in ctx.arms:
            cx, cy = curve(ctx.frames[arm], xk, ctx.smooth), curve(ctx.frames[arm], yk, ctx.smooth)
            if cx is None or cy is None:
                continue
            j = pd.concat([cx.df.add_prefix("x_"), cy.df.add_prefix("y_")], axis=1, join="inner")
            j = j.dropna(subset=["x_mean", "y_mean"])
            if j.empty:
                continue
            xs, ys = j["x_mean"].to_numpy(), j["y_mean"].to_numpy()
            col, ls = ctx.styles[arm]
            ax.plot(xs, ys, color=col, linestyle=ls, alpha=0.9, marker="." if len(xs) < 40 else None)
            ax.plot(xs[:1], ys[:1], color=col, marker="o", markerfacecolor="white", markersize=10, markeredgewidth=2,
                    linestyle="")
            e = j.iloc[-1]  # the end point's seed band in both directions (bootstrap CI, clipped)
            if not (math.isnan(e["x_lo"]) or math.isnan(e["y_lo"])):
                ax.errorbar(xs[-1:], ys[-1:], xerr=[[max(0.0, xs[-1] - e["x_lo"])], [max(0.0, e["x_hi"] - xs[-1])]],
                            yerr=[[max(0.0, ys[-1] - e["y_lo"])], [max(0.0, e["y_hi"] - ys[-1])]], color=col,
                            linewidth=1.5, capsize=4)  # (a clipped band can end at the mean)
            ax.plot(xs[-1:], ys[-1:], color=col, marker="*", markersize=18, markeredgecolor="black",
                    markeredgewidth=0.6, linestyle="")
            drawn = True
        if not drawn:
            _no_data(ax)
    return fig


def _fig_difficulty(ctx: PlotContext, diff: dict[str, Any]) -> Any:
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


def _fig_metrics(ctx: PlotContext, keys: Sequence[str], title: str = "Requested metrics") -> Any:
    from matplotlib.figure import Figure

    ncol = min(3, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig = Figure(figsize=(16, 1.4 + 4.4 * nrow), layout="constrained")
    fig.suptitle(title, fontsize=15)
    _legend(fig, ctx, title=_band_note(ctx))
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        ax.set_title(key)
        ax.set_xlabel("policy step")
        curves = []
        for arm in ctx.arms:
            c = curve(ctx.frames[arm], key, ctx.smooth)
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


def write_figures(ctx: PlotContext, nums: ReportNumbers, metric_keys: Sequence[str], out_dir: Path,
                  warnings: list[str]) -> tuple[list[Path], dict[str, Path], dict[str, Any]]:
    """Draw and save the figures into ``out_dir`` (one file per format); a figure whose metrics no run
    logged is skipped with a warning. Returns (files written, stem -> the file the report embeds (png,
    else svg; none for pdf only), stem -> Figure)."""
    import matplotlib

    files: list[Path] = []
    embedded: dict[str, Path] = {}
    figs: dict[str, Any] = {}
    embed = "png" if "png" in ctx.formats else "svg" if "svg" in ctx.formats else None

    def keep(stem: str, fig: Any) -> None:
        figs[stem] = fig
        files.extend(_save(fig, out_dir, stem, ctx.formats))
        if embed:
            embedded[stem] = out_dir / f"{stem}.{embed}"

    with matplotlib.rc_context(RC):
        keep("length_growth", _fig_length_growth(ctx, nums.paired))
        if any("train/len_mean" in f.columns and "train/reward" in f.columns for fs in ctx.frames.values() for f in fs):
            keep("token_efficiency", _fig_token_efficiency(ctx))
        else:
            warnings.append("train/len_mean or train/reward not logged; token-efficiency figure skipped")
        if nums.difficulty:
            keep("difficulty_bias", _fig_difficulty(ctx, nums.difficulty))
        else:
            warnings.append("no difficulty/k{k}/... metrics logged; difficulty-bias figure skipped")
        logged = {c for fs in ctx.frames.values() for f in fs for c in f.columns}
        buckets = [f"train/{t}/accuracy" for t in DIFFICULTY_TAGS if f"train/{t}/accuracy" in logged]
        if len(buckets) > 1:  # the difficulty task: how fast each bucket is learned, per arm
            keep("difficulty_learning", _fig_metrics(ctx, buckets, "Accuracy by difficulty bucket (train rollouts, "
                                                              "sampled at the run's temperature)"))
        if metric_keys:
            keep("metrics", _fig_metrics(ctx, metric_keys))
    return files, embedded, figs
