"""The report text (:mod:`drgrpo_cli.report.markdown`) and its provenance section
(:mod:`drgrpo_cli.report.provenance_table`)."""

from __future__ import annotations

import json

import pytest

from drgrpo_cli.report.plot import plot
from tests.report_helpers import md_table, prov_runs, prov_warnings, small_sweep, write_prov


sweep = pytest.fixture(scope="module", name="sweep")(small_sweep)  # the plot of the small sweep (made once)


def test_sweep_final_metrics_and_config(sweep):
    _, res = sweep
    md = res.report.read_text()
    # reward: last 10% of 10 steps = the final step, 0.5 / 0.7 -> 0.600 ± 0.141; eval: the final eval point
    assert "| GRPO | 2 | 0.600 ± 0.141 | 0.600 ± 0.141 | 60.0 ± 0.0 | 40.0 ± 0.0 | 145.0 ± 7.1 | 0.600 ± 0.000 |" in md
    assert "| **adv_scale** |  | `group` | `none` |" in md
    assert "| **loss_agg** |  | `seq_mean` | `max_tokens` |" in md
    assert "| seed | `0, 1` |  |  |" in md
    assert "| lr | `0.001` |  |  |" in md
    for section in ("## Headline: wrong-answer length", "## Paired comparisons", "## Runs", "## Configuration",
                    "## Final metrics", "## Pooled incorrect-length growth (secondary)", "## Difficulty bias",
                    "## Figures"):
        assert section in md
    assert md.index("## Headline") < md.index("## Paired comparisons") < md.index("## Pooled incorrect-length")
    assert "![Length growth](length_growth.png)" in md


# ---------------------------------------------------------------------------------------------------
# provenance: one table row per distinct record, warnings when compared runs differ
# ---------------------------------------------------------------------------------------------------


def test_provenance_one_record_shared_by_all_runs_no_warning(tmp_path):
    prov_runs(tmp_path / "sweep", {})
    res = plot([tmp_path / "sweep"], out=tmp_path / "out", formats=("svg",))
    assert prov_warnings(res) == []
    table = md_table(res.report.read_text(), "Provenance")
    assert list(table) == ["all 4 runs"]
    assert table["all 4 runs"][1:] == ["0.1.0 (a47fd12f62)", "python 3.11.7, torch 2.13.0+cpu, transformers 5.24.0, "
                                   "numpy 2.4.6, tokenizers 0.23.3, safetensors 0.8.0", "AMD EPYC", "1",
                                   "`9a9c8b1e03b1`"]
    assert res.summary["provenance"][0]["runs"] == ["grpo-s0", "grpo-s1", "drgrpo-s0", "drgrpo-s1"]


def test_provenance_differences_are_listed_and_warned(tmp_path):
    prov_runs(tmp_path / "sweep", {
        "grpo-s1": {"torch": "2.14.0", "transformers": "5.25.0"},
        "drgrpo-s0": {"weights_sha256": "ffff" * 16},
        "drgrpo-s1": {"dirty": True, "dirty_files": ["drgrpo_cli/trainer.py"]},
    })
    res = plot([tmp_path / "sweep"], out=tmp_path / "out", formats=("svg",))
    w = prov_warnings(res)
    assert len(w) == 3, w
    assert w[0].startswith("the compared runs differ in library versions: torch 2.13.0+cpu, transformers 5.24.0 "
                           "(GRPO: seed 0; Dr. GRPO (all 2)); torch 2.14.0, transformers 5.25.0 (GRPO: seed 1); "
                           "same seed no longer means the same random stream")
    assert w[1].startswith("the compared runs differ in base weights (sha256): 9a9c8b1e03b1 (GRPO (all 2); Dr. GRPO: "
                           "seed 1); ffffffffffff (Dr. GRPO: seed 0)")
    assert w[2].startswith("the compared runs differ in drgrpo commit: a47fd12f62 (GRPO (all 2); Dr. GRPO: seed 0); "
                           "a47fd12f62+dirty (Dr. GRPO: seed 1)")
    md = res.report.read_text()
    assert "## Warnings" in md and w[0] in md
    table = md_table(md, "Provenance")
    assert len(table) == 4  # four distinct records, one row each
    assert table["Dr. GRPO: seed 1"][1] == "0.1.0 (a47fd12f62+dirty)"
    assert "torch 2.14.0" in table["GRPO: seed 1"][2]


def test_provenance_not_recorded_and_docs_only_edits(tmp_path):
    # an old run without provenance.json; a run whose record is only in summary.json; a checkout whose
    # uncommitted changes are docs only (not code: no warning)
    prov_runs(tmp_path / "sweep", {"grpo-s0": "none", "drgrpo-s1": {"dirty": True, "dirty_files": ["README.md"]}})
    write_prov(tmp_path / "sweep" / "grpo-s1", where="summary.json")
    (tmp_path / "sweep" / "grpo-s1" / "provenance.json").unlink()
    res = plot([tmp_path / "sweep"], out=tmp_path / "out", formats=("svg",))
    w = prov_warnings(res)
    assert w == ["provenance not recorded for GRPO: seed 0 (made before drgrpo wrote provenance.json): whether they "
                 "share the other runs' libraries and base weights is unknown"]
    table = md_table(res.report.read_text(), "Provenance")
    assert table["GRPO: seed 0"][1:] == ["not recorded"] * 5
    assert table["GRPO: seed 1; Dr. GRPO (all 2)"][1] == "0.1.0 (a47fd12f62)"
    # nothing recorded anywhere: the table says so, and there is nothing to compare
    for d in (tmp_path / "sweep").iterdir():
        (d / "provenance.json").unlink(missing_ok=True)
        (d / "summary.json").write_text(json.dumps({"status": "finished"}))
    res = plot([tmp_path / "sweep"], out=tmp_path / "out2", formats=("svg",))
    assert prov_warnings(res) == []
    assert md_table(res.report.read_text(), "Provenance") == {"all 4 runs": ["all 4 runs"] + ["not recorded"] * 5}


def test_code_dirty_reads_the_recorded_files():
    from drgrpo_cli.provenance import code_dirty, git_state

    assert code_dirty({"dirty": False}) is False and code_dirty({"dirty": None}) is None
    assert code_dirty({"dirty": True}) is True  # an older record: cannot tell which files
    assert code_dirty({"dirty": True, "dirty_files": ["README.md", "docs/x.md", "tests/t.py"]}) is False
    assert code_dirty({"dirty": True, "dirty_files": ["README.md", "drgrpo_cli/objectives.py"]}) is True
    state = git_state()
    assert set(state) == {"commit", "dirty", "dirty_files"}
    assert state["dirty"] is None or state["dirty"] == bool(state["dirty_files"])


def test_seed_ranges_are_compact():
    from drgrpo_cli.report.provenance_table import seed_ranges

    assert seed_ranges([2, 3, 4, 5, 6, 7, 8, 9]) == "2-9"
    assert seed_ranges([0, 1, 3, 5, 6, 7]) == "0, 1, 3, 5-7"
    assert seed_ranges(["a", "b"]) == "a, b" and seed_ranges([1]) == "1"


def test_markdown_to_html_writes_the_report_subset_and_ends_on_odd_lines():
    from drgrpo_cli.report.markdown import markdown_to_html

    page = markdown_to_html("# Title\n\nsome **bold** and `code`\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n"
                            "![fig](f.png)\n#not-a-heading\n![ stray text\n")
    body = page.split("<body>\n", 1)[1]
    assert body.startswith("<h1>Title</h1>\n<p>some <strong>bold</strong> and <code>code</code></p>\n<ul>\n<li>a</li>")
    assert '<img src="f.png" alt="fig"' in body
    # lines that look like the start of a heading or an image but are not: kept as text, the loop ends
    assert "<p>#not-a-heading</p>" in body and "<p>![ stray text</p>" in body
