"""Arms identified by every objective knob in ``drgrpo plot``: the length-normalizer grid, whose "ΔL" and
"GSPO" arms differ from the max_tokens and seq_mean arms only in a knob beyond adv_scale and loss_agg."""

from __future__ import annotations

import json
from pathlib import Path

from report_helpers import md_table, write_run

from drgrpo_cli.report.figures import KNOB_STYLES, OTHER_COLORS
from drgrpo_cli.report.plot import plot
from drgrpo_cli.report.stats import DRGRPO_KNOBS, knobs_with

#: label -> (run dir stem, loss_agg, other config keys, growth of the wrong-answer length in seeds 0 and 1);
#: every arm has adv_scale none.
SIX = {
    "seq_mean": ("seq", "seq_mean", {}, (60.0, 70.0)),
    "token_mean": ("tok", "token_mean", {}, (0.0, 5.0)),
    "max_tokens": ("max", "max_tokens", {}, (10.0, 20.0)),
    "prompt_mean": ("prompt", "prompt_mean", {}, (14.0, 18.0)),
    "ΔL": ("dl", "max_tokens", {"length_alpha": 1.0}, (30.0, 40.0)),
    "GSPO": ("gspo", "seq_mean", {"ratio_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4}, (50.0, 70.0)),
}


def write_six(root: Path, labels: dict[str, str] | None = None) -> Path:
    """The six arms x 2 seeds, with a grid.json naming them (``labels`` renames arms, knobs unchanged)."""
    arms = {}
    for label, (stem, agg, extra, growth) in SIX.items():
        for seed, g in enumerate(growth):
            d = f"{stem}__seed{seed}"
            write_run(root / d, adv_scale="none", loss_agg=agg, seed=seed, first=100.0, last=100.0 + g,
                      extra_config=extra)
            arms[d] = (labels or {}).get(label, label)
    (root / "grid.json").write_text(json.dumps({"arms": arms}))
    return root


def _paired(res, metric: str = "headline_growth") -> dict[str, dict]:
    return {p["comparison"]: p for p in res.summary["paired"] if p["metric"] == metric}


def test_six_arm_grid_compares_every_arm_with_drgrpo_by_knobs(tmp_path):
    res = plot([write_six(tmp_path / "sw")], formats=("png",), smooth=1)
    p = _paired(res)
    # no GRPO arm: the Dr. GRPO arm (none, max_tokens, defaults) is the reference; "arm − Dr. GRPO" per seed
    assert {k: v["diffs"] for k, v in p.items()} == {
        "GSPO − max_tokens": [40.0, 50.0], "prompt_mean − max_tokens": [4.0, -2.0],
        "seq_mean − max_tokens": [50.0, 50.0], "token_mean − max_tokens": [-10.0, -15.0],
        "ΔL − max_tokens": [20.0, 20.0]}
    assert {v["kind"] for v in p.values()} == {"vs_reference"}
    assert p["ΔL − max_tokens"]["detail"] == ("ΔL (none, max_tokens, length_alpha=1) − max_tokens (none, max_tokens); "
                                              "reference arm: max_tokens")
    assert p["GSPO − max_tokens"]["detail"].startswith("GSPO (none, seq_mean, ratio_level=sequence) − max_tokens")
    assert not any("not identifiable" in w or "differ in" in w for w in res.warnings)

    md = res.report.read_text()
    # knob text: today's "none, max_tokens" for arms at the defaults, the non-default knobs appended
    head = md_table(md, "Headline: wrong-answer length")
    assert "| arm | adv_scale, loss_agg, other knobs | seeds | early → late (tokens) | growth | growth 95% CI |" in md
    assert head["ΔL"][1:3] == ["none, max_tokens, length_alpha=1", "2"]
    assert head["GSPO"][1] == "none, seq_mean, ratio_level=sequence" and head["max_tokens"][1] == "none, max_tokens"
    # growth 95% CI of the arm over its seeds: ΔL 30, 40 -> 35 ± 12.7062 * 5 = [-28.5, +98.5]
    assert head["ΔL"][4:6] == ["+35.0", "[-28.5, +98.5]"]
    assert ("Which comparisons is decided by the arms' objective knobs (`adv_scale`/`loss_agg`, here also "
            "`length_alpha`/`ratio_level`), not their labels:") in md
    # signs and words: positive = more under the arm, negative = more under Dr. GRPO
    assert ("- ΔL − max_tokens, wrong-answer length growth (pooled): +20.0 tokens (95% CI [+20.0, +20.0], paired "
            "over 2 seeds); larger under ΔL in 2/2 seeds; the CI excludes 0.") in md
    assert "- token_mean − max_tokens, wrong-answer length growth (pooled): -12.5 tokens" in md
    assert "larger under max_tokens in 2/2 seeds" in md
    # colours: the Dr. GRPO cell is dark blue; ΔL is another arm, not Dr. GRPO's colour
    assert res.summary["arms"]["max_tokens"]["knobs"] == dict(DRGRPO_KNOBS._asdict())
    assert res.summary["arms"]["ΔL"]["knobs"]["length_alpha"] == 1.0
    legend = {t.get_text(): h for t, h in zip(res.figures["length_growth"].legends[0].get_texts(),
                                               res.figures["length_growth"].legends[0].legend_handles)}
    assert legend["max_tokens [none, max_tokens] (n=2)"].get_color() == KNOB_STYLES[DRGRPO_KNOBS][0]
    assert legend["ΔL [none, max_tokens, length_alpha=1] (n=2)"].get_color() in OTHER_COLORS
    assert (legend["seq_mean [none, seq_mean] (n=2)"].get_color()
            == KNOB_STYLES[knobs_with(adv_scale="none", loss_agg="seq_mean")][0])
    assert legend["GSPO [none, seq_mean, ratio_level=sequence] (n=2)"].get_color() in OTHER_COLORS


def test_swapped_labels_the_comparisons_follow_the_knobs(tmp_path):
    labels = {"ΔL": "max_tokens", "max_tokens": "ΔL", "GSPO": "seq_mean", "seq_mean": "GSPO"}
    res = plot([write_six(tmp_path / "sw", labels=labels)], formats=("png",), smooth=1)
    p = _paired(res)
    # the arm now labelled "ΔL" has Dr. GRPO's knobs: it is the reference
    assert {k: v["diffs"] for k, v in p.items()} == {
        "GSPO − ΔL": [50.0, 50.0], "max_tokens − ΔL": [20.0, 20.0], "prompt_mean − ΔL": [4.0, -2.0],
        "seq_mean − ΔL": [40.0, 50.0], "token_mean − ΔL": [-10.0, -15.0]}
    assert p["max_tokens − ΔL"]["detail"].startswith("max_tokens (none, max_tokens, length_alpha=1) − ΔL (none, "
                                                     "max_tokens)")
    head = md_table(res.report.read_text(), "Headline: wrong-answer length")
    assert head["ΔL"][1] == "none, max_tokens" and head["seq_mean"][1] == "none, seq_mean, ratio_level=sequence"


def test_old_configs_without_the_new_keys_are_the_default_knobs(tmp_path):
    """An old run (config.json without the new knobs) and a new one at the defaults are the same arm."""
    root = tmp_path / "sw"
    for seed in (0, 1):
        write_run(root / f"grpo-s{seed}", seed=seed, last=140.0 + 10 * seed)
        write_run(root / f"dr-s{seed}", adv_scale="none", loss_agg="max_tokens", seed=seed, last=110.0 + 10 * seed)
    for d in ("grpo-s0", "dr-s1"):  # as an older drgrpo wrote them
        cfg = json.loads((root / d / "config.json").read_text())
        for k in ("baseline", "length_alpha", "ratio_level", "policy_loss", "dynamic_sampling",
                  "overlong_buffer_frac", "overlong_penalty", "dynamic_sampling_max_rounds", "mask_truncated",
                  "kl_estimator", "kl_in"):
            del cfg[k]
        (root / d / "config.json").write_text(json.dumps(cfg))
    res = plot([root], formats=("png",), smooth=1)
    assert sorted(res.summary["arms"]) == ["Dr. GRPO", "GRPO"]  # labelled from their knobs, not split
    assert res.summary["arms"]["GRPO"]["runs"] == ["grpo-s0", "grpo-s1"]
    (d,) = [p for p in res.summary["paired"] if p["metric"] == "headline_growth"]
    assert d["kind"] == "grpo_vs_drgrpo" and d["diffs"] == [30.0, 30.0]
    md = res.report.read_text()
    assert "| GRPO | group, seq_mean | 2 |" in md and "other knobs" not in md
    assert "decided by the arms' `adv_scale`/`loss_agg`, not their labels:" in md
