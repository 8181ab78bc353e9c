"""The figures (:mod:`drgrpo_cli.report.figures`) and their curves, bands and y-limits
(:mod:`drgrpo_cli.report.curves`)."""

from __future__ import annotations

import json

import pytest

from drgrpo_cli.report.plot import plot
from tests.report_helpers import axes_by_title, fake_sweep_10, png_size, small_sweep, write_fake_sweep


sweep = pytest.fixture(scope="module", name="sweep")(small_sweep)  # the plot of the small sweep (made once)
fake10 = pytest.fixture(scope="module", name="fake10")(fake_sweep_10)  # the 10-seed 2x2 sweep's plot (made once)


def test_sweep_files_and_figures(sweep):
    root, res = sweep
    out = root / "figures"
    assert res.out == out and res.report == out / "report.md"
    names = sorted(p.name for p in res.files)
    for stem in ("length_growth", "token_efficiency", "difficulty_bias", "metrics"):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
        assert (out / f"{stem}.svg").stat().st_size > 1000
        assert png_size(out / f"{stem}.png")[0] >= 1200
    assert "report.md" in names and "report.html" in names
    assert all(p.parent == out for p in res.files)  # nothing outside <out>
    assert res.warnings == []
    html = (out / "report.html").read_text()
    assert "<table>" in html and 'src="length_growth.png"' in html


def test_token_efficiency_reward_against_tokens_with_clipped_seed_bands(fake10):
    import numpy as np

    fig = fake10.figures["token_efficiency"]
    axes = axes_by_title(fig)
    assert list(axes) == ["train reward vs tokens generated", "train: reward vs response length", "eval (greedy)"]
    ax = axes["train reward vs tokens generated"]
    assert len(ax.collections) == 4  # one band per arm
    for coll in ax.collections:  # the bootstrap band of the mean reward over seeds, clipped to [0, 1]
        v = np.concatenate([p.vertices for p in coll.get_paths()])
        assert v[:, 1].min() >= 0 and v[:, 1].max() <= 1 and v[:, 0].min() >= 0
    # tokens generated: cumulative len_mean x 16 prompts x 8 responses (config), in thousands; ~150 steps of
    # ~(dl + cl) / 2 = 11-23 tokens -> GRPO ends past Dr. GRPO, and every x is increasing along a mean line
    ends = {}
    for line in ax.get_lines():
        x = line.get_xdata()
        if line.get_linewidth() > 2 and len(x) > 1:
            assert np.all(np.diff(x) > 0)
            ends[line.get_color()] = x[-1]
    assert len(ends) == 4 and max(ends.values()) > min(ends.values())
    # the length panels' end points carry the seed band in both directions
    assert any(type(c).__name__ == "LineCollection" for c in axes["train: reward vs response length"].collections)


def test_fake_sweep_figure_panels_bands_and_ylim(fake10):
    import numpy as np

    fig = fake10.figures["length_growth"]
    axes = axes_by_title(fig)
    assert list(axes) == ["train reward", "wrong-answer length, failure state", "correct-answer length, clean prompts",
                          "eval wrong-answer length, failure state\n(sampled, T = 1)",
                          "eval accuracy\n(sampled, T = 1)"]
    head = axes["wrong-answer length, failure state"]
    lo, hi = head.get_ylim()
    # robust y-limits: set by the arm means and bands (~14..42), not by the one-seed spike of 400 tokens
    assert 0 <= lo < 16 and 40 < hi < 60, (lo, hi)
    # the spiking seed's (smoothed) line is drawn and leaves the axes rather than setting them
    assert max(np.nanmax(line.get_ydata()) for line in head.get_lines()) > hi
    # every band within its metric's range: rates in [0, 1], lengths >= 0
    for title, ax in axes.items():
        ys = np.concatenate([p.vertices[:, 1] for coll in ax.collections for p in coll.get_paths()])
        assert ys.min() >= 0
        if "reward" in title or "accuracy" in title:
            assert ys.max() <= 1
            assert ax.get_ylim()[0] >= 0 and ax.get_ylim()[1] <= 1
    # GRPO (dark red) and Dr. GRPO (dark blue) solid, the one-switch arms dashed
    legend = {t.get_text().split(" [")[0]: h for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert legend["GRPO"].get_linestyle() == "-" and legend["Dr. GRPO"].get_linestyle() == "-"
    assert legend["std-only fix"].get_linestyle() == "--" and legend["length-only fix"].get_linestyle() == "--"
    assert legend["GRPO"].get_color() != legend["Dr. GRPO"].get_color()


def test_band_clipping_and_robust_ylim_units():
    import numpy as np
    import pandas as pd

    from drgrpo_cli.report.curves import bootstrap_band, curve, robust_ylim, valid_range

    assert valid_range("train/reward") == (0.0, 1.0) and valid_range("eval_sampled/accuracy") == (0.0, 1.0)
    assert valid_range("train/derailed/len_incorrect") == (0.0, None) and valid_range("train/len_mean") == (0.0, None)
    assert valid_range("train/loss") == (None, None)
    # values outside the valid range (a bad log) still give a band inside it
    idx = pd.Index([1, 2, 3], name="step")
    frames = [pd.DataFrame({"train/reward": [1.0, 1.0, 1.0], "train/len_incorrect": [0.0, 0.0, 0.0]}, index=idx),
              pd.DataFrame({"train/reward": [1.6, 1.4, 1.9], "train/len_incorrect": [-9.0, -8.0, 0.0]}, index=idx)]
    c = curve(frames, "train/reward", 1)
    assert (c.df["hi"] <= 1).all() and (c.df["lo"] <= 1).all() and c.df["hi"].max() == 1
    c = curve(frames, "train/len_incorrect", 1)
    assert (c.df["lo"] >= 0).all() and (c.df["hi"] >= 0).all()
    # bootstrap: deterministic, inside [min, max] of the seeds, NaN with one seed
    x = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, np.nan, np.nan, np.nan]])
    lo, hi = bootstrap_band(x)
    lo2, hi2 = bootstrap_band(x)
    assert (lo == lo2)[:1].all() and 1.0 <= lo[0] < 2.5 < hi[0] <= 4.0 and np.isnan(lo[1])
    # y-limits from the means and bands: a spike in one seed's line does not count
    spike = pd.DataFrame({"mean": [15.0, 16.0, 15.0], "lo": [14.0, 15.0, 14.0], "hi": [16.0, 17.0, 16.0]})
    a, b = robust_ylim([spike], "train/len_incorrect")
    assert 0 <= a < 14 and 17 < b < 25
    assert robust_ylim([spike.assign(mean=[0.4] * 3, lo=[0.3] * 3, hi=[0.5] * 3)], "train/reward") == pytest.approx(
        (0.2, 0.6))  # rates: a span of at least 0.4


@pytest.mark.parametrize("budget, shown", [(44, True), (200, False)])
def test_length_panels_show_the_budget_only_when_curves_reach_it(tmp_path, budget, shown):
    root = write_fake_sweep(tmp_path / "sweep", seeds=3, steps=60)
    for cfg_path in root.glob("*/config.json"):
        cfg = json.loads(cfg_path.read_text())
        cfg_path.write_text(json.dumps({**cfg, "max_tokens": budget}))
    res = plot([root], formats=("png",))
    head = axes_by_title(res.figures["length_growth"])["wrong-answer length, failure state"]
    budget_lines = [ln for ln in head.get_lines() if list(ln.get_ydata()) == [budget, budget]]
    assert bool(budget_lines) is shown
    if shown:
        assert head.get_ylim()[1] >= budget and any(f"budget {budget}" in t.get_text() for t in head.texts)


def test_swapped_and_renamed_labels_do_not_decide_comparisons_or_colours(tmp_path):
    """Labels only name arms: with "GRPO" and "Dr. GRPO" swapped (and the one-switch arms renamed), the
    figure's numbers line, the colours and the report's comparisons follow the knobs."""
    from drgrpo_cli.report.figures import KNOB_STYLES
    from drgrpo_cli.report.stats import knobs_with

    labels = {"GRPO": "Dr. GRPO", "Dr. GRPO": "GRPO", "std-only fix": "a", "length-only fix": "b"}
    root = write_fake_sweep(tmp_path / "sw", seeds=3, steps=20, eval_every=10, labels=labels)
    res = plot([root], formats=("png",), smooth=1)
    fig = res.figures["length_growth"]
    sub = fig.subfigs[0]._suptitle.get_text()
    # the GRPO-like arm (now labelled "Dr. GRPO") grows more: the comparison is by knobs, signed the same way
    assert sub.startswith("GRPO − Dr. GRPO, paired over 3 seeds — failure-state wrong-answer growth: +")
    assert "larger under Dr. GRPO in 3/3 seeds" in sub
    legend = {t.get_text().split(" [")[0]: h for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}

    def style(h):
        return h.get_color(), h.get_linestyle()

    assert style(legend["Dr. GRPO"]) == KNOB_STYLES[knobs_with(adv_scale="group", loss_agg="seq_mean")]
    assert style(legend["GRPO"]) == KNOB_STYLES[knobs_with(adv_scale="none", loss_agg="max_tokens")]
    assert style(legend["a"]) == KNOB_STYLES[knobs_with(adv_scale="none", loss_agg="seq_mean")]
    assert style(legend["b"]) == KNOB_STYLES[knobs_with(adv_scale="group", loss_agg="max_tokens")]
    md = res.report.read_text()
    assert "- **GRPO − Dr. GRPO**: Dr. GRPO (group, seq_mean) − GRPO (none, max_tokens)" in md
    assert "| failure-state wrong-answer length growth | **GRPO − Dr. GRPO** | 3 | +" in md
    assert "| Dr. GRPO | group, seq_mean | 3 |" in md and "| GRPO | none, max_tokens | 3 |" in md
    kinds = {(p["metric"], p["kind"]) for p in res.summary["paired"]}
    assert {("headline_growth", k) for k in ("grpo_vs_drgrpo", "length_norm", "std_norm")} <= kinds
