"""The report text, ``report.md``, and the same as a standalone ``report.html``.

Sections in order: warnings, the headline (per arm), the paired comparisons, the claims for Dr. GRPO over
GRPO (:mod:`drgrpo_cli.report.claims_text`; only with both arms), runs, configuration,
provenance, final metrics, pooled length growth (secondary), difficulty bias, figures. The numbers are
:mod:`drgrpo_cli.report.numbers`' (never smoothed); the text says where each comes from.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any, Sequence

from drgrpo_cli.metrics import HEADLINE, mean
from drgrpo_cli.report.claims_text import claims_section
from drgrpo_cli.report.figures import FIGURE_TITLES
from drgrpo_cli.report.numbers import FINAL_METRICS, ReportNumbers, metric_words
from drgrpo_cli.report.provenance_table import provenance_table
from drgrpo_cli.report.runs import PlotContext
from drgrpo_cli.report.stats import KNOBS, Contrast, describe, extra_knobs, knob_text
from drgrpo_cli.report.text import markdown_table, number_text, or_nan, value_text

__all__ = ["markdown_to_html", "report_markdown"]

_PAIRED_HEADER = ["metric", "comparison", "seeds", "mean difference", "95% CI", "same sign as the mean", "CI"]


def _mean_sd(s: dict[str, Any], decimals: int) -> str:
    """``mean ± sd`` of a mean_ci dict (sd only with >= 2 values), "—" without values."""
    if s["n"] == 0:
        return "—"
    if s["n"] >= 2:
        return f"{number_text(s['mean'], decimals)} ± {number_text(s['sd'], decimals)}"
    return number_text(s["mean"], decimals)


def _interval(s: dict[str, Any], decimals: int = 1, signed: bool = True) -> str:
    if math.isnan(or_nan(s.get("lo"))):
        return "—"
    return f"[{number_text(s['lo'], decimals, signed)}, {number_text(s['hi'], decimals, signed)}]"


def report_markdown(ctx: PlotContext, inputs: Sequence[Path], files: Sequence[Path], embedded: dict[str, Path],
                    warnings: list[str], nums: ReportNumbers) -> str:
    """The whole report: ``embedded`` are the figure files it shows (stem -> file), else it lists ``files``."""
    lines = _intro(ctx, inputs, warnings)
    lines += _headline_section(ctx, nums)
    lines += _paired_section(ctx, nums)
    lines += claims_section(nums.claims)
    lines += _runs_section(ctx)
    lines += ["## Configuration", ""] + _config_table(ctx) + [""]
    lines += ["## Provenance", ""] + provenance_table(ctx) + [""]
    lines += _final_section(ctx, nums)
    lines += _pooled_section(ctx, nums)
    lines += _difficulty_section(ctx, nums.difficulty)
    lines += _figures_section(ctx, files, embedded)
    return "\n".join(lines)


def _intro(ctx: PlotContext, inputs: Sequence[Path], warnings: list[str]) -> list[str]:
    from drgrpo_cli import __version__

    lines = ["# drgrpo plot report", ""]
    lines.append(f"Inputs: {', '.join(f'`{p}`' for p in inputs)} — {len(ctx.runs)} runs, {len(ctx.arms)} arms "
                 f"({', '.join(f'{a}: {ctx.nseeds[a]}' for a in ctx.arms)} seeds). drgrpo {__version__}.")
    lines.append("")
    lines.append("The numbers below are never smoothed and are those of `summary.json` / `summary.csv`: training "
                 "windows over steps ≥ 1 (not the step-0 eval-only row), final eval = the last eval point. Figures: "
                 "thin lines = seeds, thick = mean over seeds, band = bootstrap 95% CI of that mean (clipped to the "
                 "metric's range)" + (f"; train curves are a centred rolling mean over {ctx.smooth} steps"
                                      if ctx.smooth > 1 else "") + ".")
    lines.append("")
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    return lines


def _headline_section(ctx: PlotContext, nums: ReportNumbers) -> list[str]:
    key = ctx.headline_key
    if key == HEADLINE:
        lines = ["## Headline: wrong-answer length in the failure state", "",
                 f"Per run: the mean of `{key}` (length of the wrong answers to the unanswerable, *derailed* prompts, "
                 "where a longer answer cannot be a better one) over the first 10% (early) and the last 20% (late) "
                 "of training steps; growth = late − early. Per arm: the mean over seeds. Final reward: the mean of "
                 "`train/reward` over the last 10% of steps.", ""]
    else:
        some = any(r.numbers.get("headline_metric") == HEADLINE for r in ctx.runs)
        why = ("not every run logged `train/derailed/len_incorrect`" if some
               else "no run logged `train/derailed/len_incorrect` (a math task, or runs from an older drgrpo)")
        lines = ["## Headline: wrong-answer length", "",
                 f"Fallback: {why}, so the headline is the **pooled** wrong-answer length `{key}` (all prompts, "
                 "failure state or not). Per run: its mean over the first 10% (early) and the last 20% (late) of "
                 "training steps; growth = late − early. Per arm: the mean over seeds. Final reward: the mean of "
                 "`train/reward` over the last 10% of steps.", ""]
    lines[-2] += (" Growth 95% CI: the Student-t interval of the arm's mean growth over its seeds (none below two "
                  "seeds); when it excludes 0, the arm's own growth is more than seed-to-seed noise.")
    rows = []
    for arm in ctx.arms:
        h = nums.head[arm]
        k = ctx.knobs.get(arm)
        per = ", ".join(number_text(v, 1, True) for v in h["per_run"].values())
        rows.append([arm, knob_text(k) if k else "mixed", h["growth"]["n"],
                     f"{number_text(h['early']['mean'])} → {number_text(h['late']['mean'])}",
                     number_text(h["growth"]["mean"], 1, True), _interval(h["growth"]), per or "—",
                     _mean_sd(h["final_reward"], 3)])
    return lines + markdown_table(["arm", _knob_header(ctx), "seeds", "early → late (tokens)", "growth",
                                   "growth 95% CI", "growth per seed", "final reward (± std)"], rows) + [""]


def _extra_knob_names(ctx: PlotContext) -> list[str]:
    """The knobs beyond adv_scale and loss_agg that some arm has off their defaults (in KNOBS order)."""
    off = {n for k in ctx.knobs.values() if k for n, _ in extra_knobs(k)}
    return [n for n in KNOBS if n in off]


def _knob_header(ctx: PlotContext) -> str:
    return "adv_scale, loss_agg" + (", other knobs" if _extra_knob_names(ctx) else "")


def _paired_rows(ctx: PlotContext, paired: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[list[Any]]:
    rows = []
    for p in paired:
        if p["metric"] not in metrics:
            continue
        c, r = p["contrast"], p["result"]
        words, unit, nd = metric_words(ctx, p["metric"])
        ci = f"[{number_text(r.lo, nd, True)}, {number_text(r.hi, nd, True)}]" if r.n >= 2 else "—"
        verdict = "—" if r.excludes_zero is None else "excludes 0" if r.excludes_zero else "includes 0"
        side = c.plus if r.n and r.mean > 0 else c.minus if r.n and r.mean < 0 else ""
        sign = f"{r.signs} ({side})" if r.n and side else r.signs or "—"
        rows.append([words, f"**{c.name}**", r.n, number_text(r.mean, nd, True) + (f" {unit}" if unit and r.n else ""),
                     ci, sign, verdict])
    return rows


def _paired_section(ctx: PlotContext, nums: ReportNumbers) -> list[str]:
    lines = ["## Paired comparisons", ""]
    paired = nums.paired
    if not paired:
        return lines + ["Only one arm (or arms whose runs mix knob values): nothing to compare.", ""]
    lines += ["Runs with the same seed share prompts, environment draws and the torch seed, so arms are compared "
              "seed by seed: per seed the difference (for a 2x2 main effect, the mean of the two differences along "
              "that switch), then over the seeds that every arm involved has: the mean, its 95% Student-t CI, and "
              "in how many seeds the difference has the sign of the mean. Which comparisons is decided by the arms' "
              f"{_knob_words(ctx)}, not their labels:", ""]
    seen: list[Contrast] = []
    for p in paired:
        if p["contrast"] not in seen:
            seen.append(p["contrast"])
    lines += [f"- **{c.name}**: {c.detail}" for c in seen] + [""]
    lines += markdown_table(_PAIRED_HEADER, _paired_rows(ctx, paired, ("headline_growth", "final_reward"))) + [""]
    for p in paired:
        if p["metric"] in ("headline_growth", "final_reward"):
            words, unit, nd = metric_words(ctx, p["metric"])
            lines.append("- " + describe(p["contrast"], p["result"], words, unit, nd))
    return lines + [""]


def _knob_words(ctx: PlotContext) -> str:
    extra = _extra_knob_names(ctx)
    if not extra:
        return "`adv_scale`/`loss_agg`"
    return "objective knobs (`adv_scale`/`loss_agg`, here also " + "/".join(f"`{n}`" for n in extra) + ")"


def _runs_section(ctx: PlotContext) -> list[str]:
    rows = []
    for arm in ctx.arms:
        for r in ctx.runs_by_arm[arm]:
            f = r.frame
            n_eval = int(f["eval/accuracy"].notna().sum()) if "eval/accuracy" in f.columns else 0
            notes = ["torn last line dropped"] if r.torn else []
            rows.append([r.name, arm, value_text(r.seed), r.state, len(f),
                         int(f.index.max()) if len(f) else "—", n_eval, "; ".join(notes)])
    return ["## Runs", ""] + markdown_table(["run", "arm", "seed", "state", "steps logged", "last step",
                                             "eval points", "notes"], rows) + [""]


def _config_table(ctx: PlotContext) -> list[str]:
    keys_first = ("adv_scale", "loss_agg")
    all_keys = sorted({k for r in ctx.runs for k in r.config})
    all_keys = [k for k in keys_first if k in all_keys] + [k for k in all_keys if k not in keys_first]
    per_arm: dict[str, dict[str, str]] = {}
    for arm in ctx.arms:
        d = {}
        for k in all_keys:
            vals = sorted({value_text(r.config[k]) for r in ctx.runs_by_arm[arm] if k in r.config},
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
    return lines + [""] + markdown_table(header, rows)


def _final_section(ctx: PlotContext, nums: ReportNumbers) -> list[str]:
    lines = ["## Final metrics", "",
             "Per run, as in its `summary.json` (`final`) and the sweep's `summary.csv`: train metrics are the mean "
             "over the last 10% of its training steps (step ≥ 1; the step-0 row is the eval-only row logged before "
             "training), eval metrics are its **last eval point**; then mean ± std over seeds (std only with ≥ 2 "
             "seeds).", ""]
    named = nums.named_evals
    header = ["arm", "seeds"] + [lab for _, lab, _ in FINAL_METRICS] + [f"eval {n} accuracy" for n in named]
    decimals = [nd for _, _, nd in FINAL_METRICS] + [3] * len(named)
    keys = [k for k, _, _ in FINAL_METRICS] + [f"eval/{n}/accuracy" for n in named]
    rows = [[arm, ctx.nseeds[arm]] + [_mean_sd(nums.final[arm][k], nd) for k, nd in zip(keys, decimals)]
            for arm in ctx.arms]
    return lines + markdown_table(header, rows) + [""]


def _pooled_section(ctx: PlotContext, nums: ReportNumbers) -> list[str]:
    key = ctx.headline_key
    lines = ["## Pooled incorrect-length growth (secondary)", "",
             "Per run: mean of `train/len_incorrect` (all prompts) over the last 20% of training steps (step ≥ 1) "
             "minus the mean over the first 10% (tokens), as `growth` in `summary.json`; then the mean over seeds "
             "with its 95% t-interval (per arm; the arms are compared paired above"
             + (" and below" if key == HEADLINE else "") + "). The same for correct responses alongside.", ""]
    rows = []
    for arm in ctx.arms:
        s, sc = nums.growth[arm], nums.growth_correct[arm]
        per = ", ".join(number_text(v, 1, True) for v in s["per_run"].values())
        rows.append([arm, s["n"], number_text(s["mean"], 1, True), _interval(s), per or "—",
                     number_text(sc["mean"], 1, True), _interval(sc)])
    lines += markdown_table(["arm", "seeds", "incorrect-length growth", "95% CI", "per seed", "correct-length growth",
                             "95% CI (correct)"], rows) + [""]
    if key == HEADLINE and nums.paired:
        lines += markdown_table(_PAIRED_HEADER, _paired_rows(ctx, nums.paired, ("len_incorrect_growth",))) + [""]
    elif key != HEADLINE:
        lines += ["(This is the headline metric here; its paired comparisons are above.)", ""]
    return lines


def _difficulty_section(ctx: PlotContext, diff: dict[str, Any]) -> list[str]:
    lines = ["## Difficulty bias", ""]
    if not diff:
        return lines + ["No `difficulty/k{k}/groups` / `difficulty/k{k}/abs_adv` metrics were logged.", ""]
    lines += ["Per arm, pooled over all steps and seeds: `groups` = groups with k of G correct, `mean |A|` = "
              "the mean over those groups of their mean |advantage| (the gradient weight a group gets), "
              "`rel.` = that relative to k = G/2, `share` = its part of the sum over all groups of mean |A|.", ""]
    rows = []
    for arm in ctx.arms:
        if arm not in diff:
            continue
        d = diff[arm]
        for i in range(len(d["k"])):
            rows.append([arm, f"{d['k'][i]}/{d['G'][i]}", f"{d['groups'][i]:.0f} ({100 * d['groups_share'][i]:.1f}%)",
                         number_text(d["mean_abs_adv"][i], 3), number_text(d["relative"][i], 2),
                         number_text(100 * d["share"][i], 1) + "%"])
    lines += markdown_table(["arm", "k/G", "groups", "mean |A|", "rel.", "share"], rows) + [""]
    return lines + [_difficulty_paragraph(diff, ctx), ""]


def _difficulty_paragraph(diff: dict[str, Any], ctx: PlotContext) -> str:
    arms = [a for a in ctx.arms if a in diff and not math.isnan(or_nan(diff[a]["edge_ratio"]))]
    if not arms:
        return ("Not enough pass-rate bins were logged (needs groups with k = 1 or G − 1 and k = G/2 correct) "
                "to compare near-all-wrong/right groups with mid-difficulty ones.")
    gs = sorted({g for a in arms for g in diff[a]["G"]})
    g = gs[0] if len(gs) == 1 else None
    edge = f"1/{g} or {g - 1}/{g}" if g else "1/G or (G−1)/G"
    mid = f"{g // 2}/{g}" if g else "G/2"
    parts = [f"{number_text(diff[a]['edge_ratio'], 2)}× under {a}" for a in arms]
    text = (f"The mean |advantage| of a near-all-wrong or near-all-right group ({edge} correct) is "
            + ", ".join(parts) + f" that of a mid-difficulty group ({mid} correct).")
    shares = [f"{number_text(100 * diff[a]['edge_share'], 1)}% under {a}" for a in arms]
    text += " Those groups carry " + ", ".join(shares) + " of the total weight (sum over groups of mean |A|)."
    std = [diff[a]["edge_ratio"] for a in arms if diff[a]["std_scaled"] is True]
    nostd = [diff[a]["edge_ratio"] for a in arms if diff[a]["std_scaled"] is False]
    if std and nostd:
        rs, rn = or_nan(mean(std)), or_nan(mean(nostd))
        names_s = ", ".join(a for a in arms if diff[a]["std_scaled"] is True)
        names_n = ", ".join(a for a in arms if diff[a]["std_scaled"] is False)
        if rs > rn:
            text += (f" Dividing by the group std ({names_s}) up-weights these too-easy/too-hard groups "
                     f"{number_text(rs / rn, 2)}× relative to mid-difficulty groups compared with no std scaling "
                     f"(`--no-std`: {names_n}), which keeps the plain mean-centred weighting (2p(1−p) for 0/1 rewards): the difficulty bias.")
        else:
            text += (f" Here the std-scaled arms ({names_s}) do not up-weight these groups relative to the "
                     f"unscaled ones ({names_n}) (ratio {number_text(rs / rn, 2)}×), contrary to the expected difficulty bias.")
    elif std:
        text += " All arms here scale by the std; add a `--no-std` arm to compare."
    elif nostd:
        text += " No arm here scales by the std; add a GRPO arm to see the difficulty bias."
    text += (" (This is the advantage weight per group; the per-token weight additionally depends on the loss "
             "aggregation `loss_agg`.)")
    return text


def _figures_section(ctx: PlotContext, files: Sequence[Path], embedded: dict[str, Path]) -> list[str]:
    lines = ["## Figures", ""]
    for stem, p in embedded.items():
        title = FIGURE_TITLES.get(stem, stem)
        lines += [f"### {title}", "", f"![{title}]({p.name})", ""]
    if not embedded:
        lines += ["Figures (not embeddable here): " + ", ".join(f"`{p.name}`" for p in files) + ".", ""]
    if not ctx.has_eval:
        lines += ["(No run logged eval rows, so the eval panels are left out.)", ""]
    return lines


# ------------------------------------------------------------------------------------------------------
# HTML
def _inline(s: str) -> str:
    s = html.escape(s, quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    return s


def _table_html(block: list[str]) -> list[str]:
    def cells(row: str) -> list[str]:
        parts = re.split(r"(?<!\\)\|", row.strip()[1:-1])
        return [_inline(c.strip().replace("\\|", "|")) for c in parts]

    out = ["<table>", "<tr>" + "".join(f"<th>{c}</th>" for c in cells(block[0])) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in cells(row)) + "</tr>" for row in block[2:]]
    return out + ["</table>"]


def markdown_to_html(md: str, title: str = "drgrpo plot report") -> str:
    """The small Markdown subset :func:`report_markdown` writes (headings, paragraphs, lists, tables, images,
    ``code``, **bold**) as a standalone HTML page. Not a general Markdown converter."""
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
        block = []
        prefix = "|" if line.startswith("|") else "- " if line.startswith("- ") else None
        while prefix and i < len(lines) and lines[i].startswith(prefix):
            block.append(lines[i])
            i += 1
        if prefix == "|":
            out += _table_html(block)
            continue
        if prefix == "- ":
            out += ["<ul>"] + [f"<li>{_inline(b[2:])}</li>" for b in block] + ["</ul>"]
            continue
        para, i = [line], i + 1  # the first line always ends up somewhere: '#x' or a stray '![' is text
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
