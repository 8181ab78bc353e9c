"""Which runs ``drgrpo plot`` reads and which arm each belongs to (:mod:`drgrpo_cli.report.runs`): run
directories, grid.json, configs, partial/torn/empty runs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drgrpo_cli.config import TrainConfig
from drgrpo_cli.report.plot import PlotError, plot
from tests.report_helpers import png_size, write_run


def test_run_dirs_default_out_and_arm_sources(tmp_path, monkeypatch):
    a = write_run(tmp_path / "runs" / "a", extra_config={"arm": "my arm"}, eval_acc=None)
    b = write_run(tmp_path / "runs" / "b", adv_scale="none", loss_agg="seq_mean", eval_acc=None)
    monkeypatch.chdir(tmp_path)
    res = plot([a, b], formats=("png",))
    assert res.out == Path("drgrpo-plot") and (tmp_path / "drgrpo-plot" / "report.md").is_file()
    assert list(res.summary["arms"]) == ["std-only fix", "my arm"]  # fixed order first, then others
    assert any("eval panels skipped" in w for w in res.warnings)
    assert res.summary["has_eval"] is False
    assert png_size(tmp_path / "drgrpo-plot" / "length_growth.png")[0] >= 1200
    assert not (a / "figures").exists()


def test_grid_json_labels_and_mixed_configs(tmp_path):
    root = tmp_path / "sw"
    write_run(root / "r1", seed=0)
    write_run(root / "r2", seed=1)
    write_run(root / "r3", seed=0, lr=0.01)
    # the shape `drgrpo ablate` writes: arms = run dir -> label, runs = [{dir, arm, seed, overrides, config}]
    grid = {"name": "t", "seeds": [0, 1], "base": {}, "arms": {"r1": "baseline", "r2": "baseline"},
            "runs": [{"dir": "r1", "arm": "baseline", "seed": 0, "overrides": {}, "config": {"seed": 0}},
                     {"dir": "r2", "arm": "baseline", "seed": 1, "overrides": {}, "config": {"seed": 1}}]}
    (root / "grid.json").write_text(json.dumps(grid))
    res = plot([root], out=tmp_path / "o", formats=("png",))
    arms = res.summary["arms"]
    assert arms["baseline"]["runs"] == ["r1", "r2"]
    assert arms["GRPO"]["runs"] == ["r3"]  # not in grid.json -> from its knobs
    assert any("no arm for r3" in w for w in res.warnings)
    # runs-only shape
    (root / "grid.json").write_text(json.dumps({"runs": [{"dir": "r1", "arm": "A"}, {"dir": "r2", "arm": "B"},
                                                         {"dir": "r3", "arm": "A"}]}))
    res = plot([root], out=tmp_path / "o1", formats=("png",))
    assert res.summary["arms"]["A"]["runs"] == ["r1", "r3"] and res.summary["arms"]["B"]["runs"] == ["r2"]
    # without grid.json, GRPO runs with different lr are not pooled as seeds
    (root / "grid.json").unlink()
    res = plot([root], out=tmp_path / "o2", formats=("png",))
    assert sorted(res.summary["arms"]) == ["GRPO (lr=0.001)", "GRPO (lr=0.01)"]
    assert res.summary["arms"]["GRPO (lr=0.001)"]["n"] == 2


def test_partial_torn_and_missing_eval(tmp_path):
    root = tmp_path / "sw"
    write_run(root / "done", seed=0)
    p = write_run(root / "partial", seed=1, finished=False)
    with open(p / "metrics.jsonl", "a") as f:
        f.write('{"step": 11, "train/rew')
    write_run(root / "noeval", seed=2, eval_acc=None)
    e = root / "empty"
    e.mkdir()
    TrainConfig(seed=3).save(e / "config.json")
    res = plot([root], formats=("png",))
    w = "\n".join(res.warnings)
    assert "partial: torn last line" in w
    assert "partial: partial run" in w and "10 logged steps" in w
    assert "noeval: no eval rows; left out of the eval panels" in w
    assert "empty: no metrics rows yet; skipped" in w
    assert res.summary["arms"]["GRPO"]["n"] == 3
    assert res.summary["has_eval"] is True
    md = res.report.read_text()
    assert "## Warnings" in md and "torn last line dropped" in md
    assert png_size(root / "figures" / "length_growth.png")[0] >= 1200


def test_errors_are_one_line_and_write_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(PlotError, match="no such file or directory"):
        plot([tmp_path / "nope"], out=out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlotError, match="empty directory"):
        plot([tmp_path / "empty"], out=out)
    (tmp_path / "noruns" / "x").mkdir(parents=True)
    (tmp_path / "noruns" / "notes.txt").write_text("hi")
    with pytest.raises(PlotError, match="no run directories"):
        plot([tmp_path / "noruns"], out=out)
    with pytest.raises(PlotError, match="no path given"):
        plot([], out=out)
    r = tmp_path / "sw" / "r"
    r.mkdir(parents=True)
    TrainConfig().save(r / "config.json")  # a run without metrics
    with pytest.raises(PlotError, match="no metrics to plot"):
        plot([tmp_path / "sw"], out=out)
    write_run(tmp_path / "sw2" / "r")
    with pytest.raises(PlotError, match="did you mean train/entropy"):
        plot([tmp_path / "sw2"], out=out, metrics=["train/entropyy"])
    with pytest.raises(PlotError, match="smooth"):
        plot([tmp_path / "sw2"], out=out, smooth=0)
    with pytest.raises(PlotError, match="unknown format"):
        plot([tmp_path / "sw2"], out=out, formats=("jpg",))
    assert not out.exists()
    for msg in ("no such file", "empty directory"):
        try:
            plot([tmp_path / ("nope" if msg == "no such file" else "empty")])
        except PlotError as e:
            assert "\n" not in str(e)
