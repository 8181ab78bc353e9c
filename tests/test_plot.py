"""``drgrpo plot`` as a library: synthetic run directories with known numbers."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from drgrpo_cli.config import TrainConfig
from drgrpo_cli.metrics import last_value, length_growth, series, tail_mean, train_series
from drgrpo_cli.report.plot import PlotError, PlotResult, mean_ci, plot, t_quantile

G = 4
STEPS = 10
# mean |A| per group by k (k = 0..G): std-scaled arms and unscaled arms
ABS_STD = [0.0, 0.8, 1.0, 0.8, 0.0]
ABS_NOSTD = [0.0, 0.375, 0.5, 0.375, 0.0]
COUNTS = [1, 2, 3, 2, 1]


def write_run(
    d: Path,
    *,
    adv_scale: str = "group",
    loss_agg: str = "seq_mean",
    seed: int = 0,
    first: float = 100.0,
    last: float = 140.0,
    reward_last: float = 0.5,
    eval_acc: tuple[float, float] | None = (0.3, 0.6),
    finished: bool = True,
    steps: int = STEPS,
    lr: float = 1e-3,
    extra_config: dict | None = None,
) -> Path:
    """len_incorrect = ``first`` at step 1, ``last`` on the final 20% of steps, linear ramp in between."""
    d.mkdir(parents=True)
    TrainConfig(adv_scale=adv_scale, loss_agg=loss_agg, seed=seed, steps=steps, group_size=G, lr=lr).save(d / "config.json")
    if extra_config:
        cfg = json.loads((d / "config.json").read_text())
        cfg.update(extra_config)
        (d / "config.json").write_text(json.dumps(cfg))
    n_last = math.ceil(0.2 * steps)
    abs_adv = ABS_STD if adv_scale != "none" else ABS_NOSTD
    rows = []
    for s in range(1, steps + 1):
        if s > steps - n_last:
            li = last
        else:
            li = first + (last - first) * (s - 1) / max(1, steps - n_last)
        row = {
            "step": s,
            "train/reward": reward_last if s == steps else 0.1,
            "train/accuracy": reward_last if s == steps else 0.1,
            "train/len_mean": 50.0 + s,
            "train/len_correct": 40.0,
            "train/len_incorrect": li,
            "train/loss": 0.01 * s,
            "train/entropy": 1.0 - 0.05 * s,
            "train/grad_norm": None,
        }
        for k in range(G + 1):
            row[f"difficulty/k{k}/groups"] = COUNTS[k]
            row[f"difficulty/k{k}/abs_adv"] = abs_adv[k]
        if eval_acc is not None and s in (steps // 2, steps):
            acc = eval_acc[0] if s == steps // 2 else eval_acc[1]
            row.update({"eval/accuracy": acc, "eval/len_mean": 60.0, "eval/len_correct": 50.0,
                        "eval/len_incorrect": 70.0})
        rows.append(row)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        (d / "summary.json").write_text(json.dumps({"status": "finished"}))
    return d


def png_size(p: Path) -> tuple[int, int]:
    data = p.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PlotResult]:
    """GRPO growth 40/50, Dr. GRPO 10/20 (seeds 0/1) -> means 45 and 15, paired differences 30 and 30."""
    root = tmp_path_factory.mktemp("sweep")
    write_run(root / "grpo-s0", seed=0, last=140, reward_last=0.5)
    write_run(root / "grpo-s1", seed=1, last=150, reward_last=0.7)
    write_run(root / "drgrpo-s0", adv_scale="none", loss_agg="max_tokens", seed=0, last=110)
    write_run(root / "drgrpo-s1", adv_scale="none", loss_agg="max_tokens", seed=1, last=120)
    res = plot([root], smooth=2, metrics=["train/entropy"], formats=("png", "svg"))
    return root, res


# ---------------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------------
def test_series_adapter_inputs_and_windows():
    """plot's inputs (rows, DataFrame, Series, plain lists) go through metrics_math.series, then its windows."""
    import pandas as pd

    vals = [100, 100, 110, 120, 130, 140, 150, 160, 170, 180]
    assert length_growth(vals) == 75.0  # last 2 (175) - first 1 (100)
    rows = [{"step": s + 1, "train/len_incorrect": v} for s, v in enumerate(vals)][::-1]  # unsorted rows
    key = "train/len_incorrect"
    assert series(rows, key) == [float(v) for v in vals]
    df = pd.DataFrame(rows)
    assert series(df, key) == series(rows, key) == series(df.set_index("step")[key], key)
    assert series(df.set_index("step"), key) == series(rows, key)  # steps from the index
    assert length_growth(series(df, key)) == 75.0
    # the step-0 row (eval-only, written before training) is not a training step; a step logged twice keeps its
    # last row (a resumed run)
    logged = [{"step": 0, "eval/accuracy": 0.1}] + rows + [{"step": 10, key: 200.0}]
    assert series(logged, key)[0] is None and len(series(logged, key)) == 11
    assert train_series(logged, key) == [float(v) for v in vals[:-1]] + [200.0]
    assert train_series(pd.DataFrame(logged).set_index("step"), key) == train_series(logged, key)
    # final eval = the last eval point (not a window over eval points)
    assert last_value(series(logged, "eval/accuracy")) == 0.1
    assert last_value([0.2, 0.4, None, float("nan")]) == 0.4 and last_value([None]) is None
    # n = 30 -> windows of 3 and 6 steps (no float round-up to 4)
    assert length_growth(list(range(30))) == pytest.approx((24 + 25 + 26 + 27 + 28 + 29) / 6 - 1)
    # nulls inside a window are skipped; a window of only nulls -> None
    assert length_growth([10, 20, 30, 40, 50, 60, 70, 80, None, 100]) == 90.0
    assert length_growth([None, 1, 2, 3, 4, 5, 6, 7, 8, 9]) is None
    assert length_growth([5.0]) == 0.0
    assert length_growth([]) is None
    assert tail_mean(vals, 0.1) == 180.0
    with pytest.raises(KeyError):
        series(df, "train/nope")


def test_metrics_math_and_plot_import_light():
    import subprocess
    import sys

    code = ("import sys; from drgrpo_cli.metrics import length_growth, series; import drgrpo_cli.report.plot; "
            "assert length_growth(series([{'step': 1, 'x': 1}, {'step': 2, 'x': 2}, {'step': 3, 'x': 3}], 'x')) == 2; "
            "assert 'matplotlib' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_t_quantile_matches_tables():
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, rel=1e-7)
    assert t_quantile(0.975, 2) == pytest.approx(4.3026527, rel=1e-7)
    assert t_quantile(0.975, 10) == pytest.approx(2.2281389, rel=1e-7)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959966, rel=1e-5)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764451, rel=1e-7)
    s = mean_ci([40.0, 50.0])
    assert s["mean"] == 45.0 and s["lo"] == pytest.approx(45 - 12.7062047 * 5)
    assert math.isnan(mean_ci([1.0])["lo"])


# ---------------------------------------------------------------------------------------------------
# a full sweep
# ---------------------------------------------------------------------------------------------------
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


def test_sweep_growth_numbers_exact(sweep):
    _, res = sweep
    arms = res.summary["arms"]
    assert list(arms) == ["GRPO", "Dr. GRPO"]
    g = arms["GRPO"]["len_incorrect_growth"]
    assert g["values"] == [40.0, 50.0] and g["mean"] == 45.0
    assert g["lo"] == pytest.approx(45 - 12.7062047 * 5) and g["hi"] == pytest.approx(45 + 12.7062047 * 5)
    assert arms["Dr. GRPO"]["len_incorrect_growth"]["mean"] == 15.0
    # old-style runs (no train/derailed/len_incorrect): the headline falls back to the pooled length
    assert res.summary["headline_key"] == "train/len_incorrect"
    assert arms["GRPO"]["headline"]["growth"]["values"] == [40.0, 50.0]
    # paired by seed: 40 - 10 = 30 and 50 - 20 = 30 -> sd 0, CI [30, 30], 2/2
    (d,) = [p for p in res.summary["paired"] if p["metric"] == "headline_growth"]
    assert d["comparison"] == "GRPO − Dr. GRPO" and d["kind"] == "grpo_vs_drgrpo"
    assert d["diffs"] == [30.0, 30.0] and d["seeds"] == [0, 1] and d["mean"] == 30.0
    assert d["lo"] == d["hi"] == 30.0 and d["signs"] == "2/2" and d["excludes_zero"] is True
    # final reward: GRPO 0.5 / 0.7, Dr. GRPO 0.5 / 0.5 -> diffs 0, 0.2: mean 0.1, sd 0.1414, t_{.975,1} = 12.706
    (r,) = [p for p in res.summary["paired"] if p["metric"] == "final_reward"]
    assert r["diffs"] == pytest.approx([0.0, 0.2]) and r["mean"] == pytest.approx(0.1)
    assert r["lo"] == pytest.approx(0.1 - 12.7062047 * 0.1) and r["hi"] == pytest.approx(0.1 + 12.7062047 * 0.1)
    assert r["signs"] == "1/2" and r["excludes_zero"] is False
    assert "growth_diff_grpo_minus_drgrpo" not in res.summary  # no independent-arms (Welch) comparison any more
    md = res.report.read_text()
    assert "Welch" not in md
    assert "| GRPO | 2 | +45.0 | [-18.5, +108.5] | +40.0, +50.0 |" in md
    assert "| Dr. GRPO | 2 | +15.0 | [-48.5, +78.5] | +10.0, +20.0 |" in md
    assert "| GRPO | group, seq_mean | 2 | 100.0 → 145.0 | +45.0 | +40.0, +50.0 | 0.600 ± 0.141 |" in md
    assert ("| wrong-answer length growth (pooled) | **GRPO − Dr. GRPO** | 2 | +30.0 tokens | [+30.0, +30.0] | "
            "2/2 (larger under GRPO) | excludes 0 |") in md
    assert "| final reward | **GRPO − Dr. GRPO** | 2 | +0.100 | [-1.171, +1.371] | 1/2 (larger under GRPO) | includes 0 |" in md
    assert ("GRPO − Dr. GRPO, final reward: +0.100 (95% CI [-1.171, +1.371], paired over 2 seeds); larger under GRPO "
            "in 1/2 seeds; the CI includes 0, so these seeds do not separate the arms.") in md
    assert "Fallback: no run logged `train/derailed/len_incorrect`" in md


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


def test_sweep_difficulty_numbers(sweep):
    _, res = sweep
    d = res.summary["difficulty"]
    grpo, dr = d["GRPO"], d["Dr. GRPO"]
    assert grpo["k"] == [0, 1, 2, 3, 4] and grpo["G"] == [G] * 5
    assert grpo["mean_abs_adv"] == pytest.approx(ABS_STD)
    total = sum(c * a for c, a in zip(COUNTS, ABS_STD))
    assert grpo["share"] == pytest.approx([c * a / total for c, a in zip(COUNTS, ABS_STD)])
    assert grpo["edge_ratio"] == pytest.approx(0.8) and dr["edge_ratio"] == pytest.approx(0.75)
    md = res.report.read_text()
    assert "is 0.80× under GRPO, 0.75× under Dr. GRPO that of a mid-difficulty group (2/4 correct)" in md
    assert "up-weights these too-easy/too-hard groups 1.07×" in md
    assert "| GRPO | 1/4 | 40 (22.2%) | 0.800 | 0.80 | 25.8% |" in md


def test_deterministic_outputs(sweep, tmp_path):
    root, res = sweep
    res2 = plot([root], out=tmp_path / "again", smooth=2, metrics=["train/entropy"], formats=("png", "svg"))
    assert [p.name for p in res2.files] == [p.name for p in res.files]  # fixed names, fixed order
    assert res2.report.read_text() == res.report.read_text()  # no timestamps: same logs, same report


# ---------------------------------------------------------------------------------------------------
# arms, defaults, robustness
# ---------------------------------------------------------------------------------------------------
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


def test_single_seed_has_no_interval(tmp_path):
    write_run(tmp_path / "sw" / "g", seed=0, last=130)
    write_run(tmp_path / "sw" / "d", adv_scale="none", loss_agg="max_tokens", seed=0, last=105)
    res = plot([tmp_path / "sw"], formats=("png",))
    md = res.report.read_text()
    assert "| GRPO | 1 | +30.0 | — |" in md
    assert "| **GRPO − Dr. GRPO** | 1 | +25.0 tokens | — | 1/1 (larger under GRPO) | — |" in md
    assert "+25.0 tokens from 1 seed (seed 0); no interval with one seed." in md


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


def test_cli_wrapper(tmp_path):
    import typer
    from typer.testing import CliRunner

    from drgrpo_cli.cli.plot import plot_cli

    app = typer.Typer()
    app.command("plot")(plot_cli)
    app.command("other")(lambda: None)  # a multi-command app, as the real CLI
    runner = CliRunner()
    res = runner.invoke(app, ["plot", str(tmp_path / "nope")])
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0 and "error: no such file or directory" in res.stderr
    p = write_run(tmp_path / "sw" / "r", finished=False)
    res = runner.invoke(app, ["plot", str(tmp_path / "sw"), "-o", str(tmp_path / "o"), "-f", "png", "--smooth", "3"])
    assert res.exit_code == 0, res.output
    assert f"wrote {tmp_path / 'o' / 'length_growth.png'}" in res.stdout
    assert "warning:" in res.stderr and "partial run" in res.stderr
    assert (tmp_path / "o" / "report.md").is_file() and not (tmp_path / "o" / "length_growth.svg").exists()
    assert p.is_dir()


# ---------------------------------------------------------------------------------------------------
# the report agrees with summary.json (trainer) and summary.csv (ablate)
# ---------------------------------------------------------------------------------------------------
def _trainer_like_run(d: Path, *, adv_scale: str, loss_agg: str, seed: int, steps: int = 20) -> list[dict]:
    """Rows as the trainer writes them: an eval-only step-0 row, then one row per step, eval every 2 steps,
    values that change every step (so the step-0 row or a window over eval points would change the numbers)."""
    from drgrpo_cli.metrics import run_summary

    d.mkdir(parents=True)
    cfg = TrainConfig(adv_scale=adv_scale, loss_agg=loss_agg, seed=seed, steps=steps, group_size=G, eval_every=2)
    cfg.save(d / "config.json")
    k = 1 + seed + (adv_scale == "group")

    def ev(s: int) -> dict:
        return {"eval/accuracy": 0.1 + 0.031 * s * k, "eval/len_mean": 60.0 + s, "eval/len_correct": 50.0,
                "eval/len_incorrect": 70.0 + s}

    rows = [{"step": 0, **ev(0)}]
    for s in range(1, steps + 1):
        row = {"step": s, "train/reward": 0.013 * s * k + 0.007 * (s % 3), "train/accuracy": 0.011 * s * k,
               "train/len_mean": 50.0 + 1.7 * s * k, "train/len_correct": 40.0 + 0.37 * s,
               "train/len_incorrect": None if s == steps - 1 else 90.0 + 2.3 * s * k + (s % 4),
               "train/derailed/len_incorrect": None if s == 2 else 95.0 + 3.1 * s * k + (s % 3),
               "train/truncated_frac": 0.0}
        if s % 2 == 0:
            row.update(ev(s))
        rows.append(row)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run_summary(rows, cfg.arm, cfg.adv_scale, cfg.loss_agg, cfg.seed)
    (d / "summary.json").write_text(json.dumps({**summary, "status": "finished"}))
    return rows


def _md_table(md: str, section: str) -> dict[str, list[str]]:
    """The rows of the first table under ``## section``, by their first cell."""
    lines = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if ln.startswith("| ")]
    return {r[0]: r for r in rows[1:]}


def test_report_final_metrics_match_summary_json_and_csv(tmp_path):
    from drgrpo_cli.sweep.ablate import CSV_COLUMNS, read_rows, run_numbers, summarize, summary_csv_text

    root = tmp_path / "sw"
    runs = {"grpo-s0": ("group", "seq_mean", 0), "grpo-s1": ("group", "seq_mean", 1),
            "dr-s0": ("none", "max_tokens", 0), "dr-s1": ("none", "max_tokens", 1)}
    for name, (adv, agg, seed) in runs.items():
        rows = _trainer_like_run(root / name, adv_scale=adv, loss_agg=agg, seed=seed)
    # not vacuous: the old plot conventions (step-0 row inside the windows, last 10% of eval points) differ
    assert tail_mean(series(rows, "train/reward")) != run_numbers(read_rows(root / "dr-s1"))["final_reward"]
    assert tail_mean(series(rows, "eval/accuracy")) != run_numbers(read_rows(root / "dr-s1"))["eval_accuracy"]

    res = plot([root], formats=("png",))
    arms = summarize(root)
    csv_rows = {r.split(",")[0]: dict(zip(CSV_COLUMNS, r.split(","))) for r in summary_csv_text(arms).splitlines()[1:]}
    assert sorted(csv_rows) == sorted(res.summary["arms"]) == ["Dr. GRPO", "GRPO"]

    # per run: the plot's numbers are summary.json's and ablate.run_numbers'
    for a, s in res.summary["arms"].items():
        for name, growth in s["len_incorrect_growth"]["per_run"].items():
            sj = json.loads((root / name / "summary.json").read_text())
            nums = run_numbers(read_rows(root / name))
            assert growth == sj["growth"]["len_incorrect"] == nums["len_incorrect_growth"]
            # the headline (failure-state wrong-answer length growth) likewise
            head = s["headline"]["per_run"][name]
            assert head == nums["derailed_len_incorrect_growth"] is not None
            if "derailed/len_incorrect" in sj["growth"]:  # trainers that log the failure-state metrics
                assert head == sj["growth"]["derailed/len_incorrect"]
        finals = {k: s["final"][k]["values"] for k in ("train/reward", "train/accuracy", "eval/accuracy")}
        sjs = [json.loads((root / n / "summary.json").read_text())["final"] for n in s["runs"]]
        for k, v in finals.items():
            assert v == [f[k] for f in sjs], k

    # per arm: exactly summary.csv's numbers (ArmSummary), and the same text at the report's precision
    md = res.report.read_text()
    final_t, growth_t = _md_table(md, "Final metrics"), _md_table(md, "Pooled incorrect-length growth (secondary)")
    for a in arms:
        s, row = res.summary["arms"][a.arm], csv_rows[a.arm]
        assert s["final"]["train/reward"]["mean"] == a.final_reward
        assert s["final"]["train/accuracy"]["mean"] == a.final_accuracy
        assert s["final"]["eval/accuracy"]["mean"] == a.eval_accuracy
        assert s["len_incorrect_growth"]["mean"] == a.len_incorrect_growth
        assert s["len_correct_growth"]["mean"] == a.len_correct_growth
        f, g = final_t[a.arm], growth_t[a.arm]
        assert f[2].split(" ± ")[0] == f"{float(row['final_reward']):.3f}"  # reward
        assert f[3].split(" ± ")[0] == f"{float(row['final_accuracy']):.3f}"  # accuracy
        assert f[7].split(" ± ")[0] == f"{float(row['eval_accuracy']):.3f}"  # eval accuracy
        assert g[2] == f"{float(row['len_incorrect_growth']):+.1f}"
        assert g[5] == f"{float(row['len_correct_growth']):+.1f}"
        assert s["headline"]["growth"]["mean"] == a.headline_growth
        assert a.headline_metric == res.summary["headline_key"] == "train/derailed/len_incorrect"
    assert "**last eval point**" in md and "step ≥ 1" in md
    # the paired comparisons: the same numbers in the report and in ablate's paired.csv
    from drgrpo_cli.sweep.ablate import paired_comparisons

    ab = {(r.metric, r.comparison): r.result for r in paired_comparisons(arms)}
    assert len(ab) == len(res.summary["paired"]) == 3
    for p in res.summary["paired"]:
        r = ab[(p["metric"], p["comparison"])]
        assert (p["diffs"], p["mean"], p["lo"], p["hi"], p["signs"]) == (r.diffs, r.mean, r.lo, r.hi, r.signs)


# ---------------------------------------------------------------------------------------------------
# a 2x2 sweep with the failure-state metrics (10 seeds), and the figure a reader should understand
# ---------------------------------------------------------------------------------------------------
#: label -> (adv_scale, loss_agg, failure-state wrong-answer length at step 1, at the last step)
FAKE_ARMS = {
    "GRPO": ("group", "seq_mean", 16.0, 40.0),
    "std-only fix": ("none", "seq_mean", 16.0, 36.0),
    "length-only fix": ("group", "max_tokens", 16.0, 15.0),
    "Dr. GRPO": ("none", "max_tokens", 16.0, 15.0),
}
SPIKE = 400.0  # one seed of Dr. GRPO, one step


def write_fake_sweep(root: Path, *, seeds: int = 10, steps: int = 150, eval_every: int = 15, new_names: bool = True,
                     labels: dict[str, str] | None = None) -> Path:
    """A sweep folder as ``drgrpo ablate`` writes it (grid.json, ARM__seedN run dirs with config.json,
    metrics.jsonl with a step-0 eval row, summary.json): the built-in task's 2x2 where the failure-state
    wrong answers grow 16 -> 40 tokens under GRPO and stay ~15 under Dr. GRPO, rewards ~0.44 in every arm,
    a per-seed offset shared by all arms (what pairing removes), noise, and one spike (Dr. GRPO, seed 3,
    step 100). ``new_names=False`` writes the old metric names only (no train/derailed/len_incorrect,
    no eval_sampled/...). ``labels`` renames arms (knobs unchanged)."""
    import random

    root.mkdir(parents=True, exist_ok=True)
    grid = {"name": "fake-2x2", "source": "test", "seeds": list(range(seeds)), "base": {"task": "builtin"},
            "arms": {}, "runs": []}
    for arm, (adv, agg, start, end) in FAKE_ARMS.items():
        label = (labels or {}).get(arm, arm)
        for seed in range(seeds):
            d = root / f"{adv}-{agg}__seed{seed}"
            d.mkdir()
            cfg = {"adv_scale": adv, "loss_agg": agg, "seed": seed, "steps": steps, "task": "builtin",
                   "eval_every": eval_every, "group_size": 8, "lr": 2e-4}
            (d / "config.json").write_text(json.dumps(cfg))
            rng = random.Random(1000 * seed + len(arm))
            offset = random.Random(seed).gauss(0, 2.0)
            rows = []
            for s in range(steps + 1):
                row: dict = {"step": s}
                t = s / steps
                if s >= 1:
                    dl = start + (end - start) * t + offset + rng.gauss(0, 2.5)
                    if arm == "Dr. GRPO" and seed == 3 and s == 100:
                        dl = SPIKE
                    reward = min(1.0, max(0.0, 0.44 + rng.gauss(0, 0.05)))
                    cl = 6.0 + rng.gauss(0, 0.6)
                    row.update({"train/reward": reward, "train/accuracy": reward, "train/len_mean": 0.5 * (dl + cl),
                                "train/len_correct": cl, "train/len_incorrect": 0.8 * dl + 1.8,
                                "train/derailed/len": dl, "train/clean/len": cl})
                    if new_names:
                        row.update({"train/derailed/frac": 0.5, "train/derailed/accuracy": 0.0,
                                    "train/derailed/len_incorrect": dl, "train/derailed/len_correct": None,
                                    "train/clean/frac": 0.5, "train/clean/accuracy": 0.88,
                                    "train/clean/len_correct": cl, "train/clean/len_incorrect": 9.0})
                if s % eval_every == 0:
                    ev = start + (end - start) * t + offset + rng.gauss(0, 3.0)
                    row.update({"eval/accuracy": 0.45, "eval/len_mean": 15.0, "eval/len_correct": 6.0,
                                "eval/len_incorrect": 24.0})
                    if new_names:
                        row.update({"eval_sampled/accuracy": 0.43 + rng.gauss(0, 0.03),
                                    "eval_sampled/derailed/len_incorrect": ev,
                                    "eval_sampled/len_incorrect": 0.8 * ev + 1.8})
                rows.append(row)
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (d / "summary.json").write_text(json.dumps({"status": "finished", "steps": steps}))
            grid["arms"][d.name] = label
            grid["runs"].append({"dir": d.name, "arm": label, "seed": seed,
                                 "overrides": {"adv_scale": adv, "loss_agg": agg}, "config": cfg})
    (root / "grid.json").write_text(json.dumps(grid))
    return root


def _axes_by_title(fig) -> dict:
    return {ax.get_title(): ax for ax in fig.axes}


@pytest.fixture(scope="module")
def fake10(tmp_path_factory: pytest.TempPathFactory) -> PlotResult:
    root = write_fake_sweep(tmp_path_factory.mktemp("fake") / "sweep")
    return plot([root], formats=("png",))


def test_fake_sweep_headline_is_failure_state_and_paired(fake10):
    res = fake10
    assert res.summary["headline_key"] == "train/derailed/len_incorrect"
    assert res.summary["smooth"] == 10  # auto: 150 steps / 15
    paired = {(p["metric"], p["kind"]): p for p in res.summary["paired"]}
    g = paired[("headline_growth", "grpo_vs_drgrpo")]
    assert g["n"] == 10 and g["signs"] == "10/10" and g["lo"] > 15 and g["excludes_zero"]
    assert paired[("headline_growth", "length_norm")]["lo"] > 10  # the loss_agg switch carries the growth
    std = paired[("headline_growth", "std_norm")]
    assert abs(std["mean"]) < 5  # the adv_scale switch does little to it
    rew = paired[("final_reward", "grpo_vs_drgrpo")]
    assert rew["excludes_zero"] is False  # same reward in every arm
    assert ("len_incorrect_growth", "grpo_vs_drgrpo") in paired  # the pooled length, as secondary
    md = res.report.read_text()
    assert "## Headline: wrong-answer length in the failure state" in md
    assert "Fallback" not in md
    assert "GRPO − Dr. GRPO, failure-state wrong-answer length growth: +" in md
    assert "larger under GRPO in 10/10 seeds; the CI excludes 0." in md
    assert "GRPO − Dr. GRPO, final reward:" in md and "the CI includes 0, so these seeds do not separate the arms" in md
    # the figure says the same in its subtitle
    fig = res.figures["length_growth"]
    sub = fig.subfigs[0]._suptitle.get_text()
    assert sub.startswith("GRPO − Dr. GRPO, paired over 10 seeds — failure-state wrong-answer growth: +")
    assert "larger under GRPO in 10/10 seeds" in sub and "final reward" in sub and "CI includes 0" in sub


def test_fake_sweep_figure_panels_bands_and_ylim(fake10):
    import numpy as np

    fig = fake10.figures["length_growth"]
    axes = _axes_by_title(fig)
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


def test_arms_are_identified_by_knobs_not_labels(tmp_path):
    labels = {"GRPO": "baseline", "Dr. GRPO": "fixed", "std-only fix": "a", "length-only fix": "b"}
    root = write_fake_sweep(tmp_path / "sw", seeds=3, steps=20, eval_every=10, labels=labels)
    res = plot([root], formats=("png",), smooth=1)
    kinds = {(p["metric"], p["kind"]): p for p in res.summary["paired"]}
    g = kinds[("headline_growth", "grpo_vs_drgrpo")]
    assert g["comparison"] == "GRPO − Dr. GRPO" and g["detail"] == "baseline (group, seq_mean) − fixed (none, max_tokens)"
    assert g["n"] == 3 and g["mean"] > 0
    assert ("headline_growth", "length_norm") in kinds and ("headline_growth", "std_norm") in kinds
    assert res.summary["arms"]["baseline"]["knobs"] == ["group", "seq_mean"]
    # styles follow the knobs too
    legend = [t.get_text() for t in res.figures["length_growth"].legends[0].get_texts()]
    assert "baseline [group, seq_mean] (n=3)" in legend


def test_old_metric_names_fall_back_to_pooled_and_greedy(tmp_path):
    root = write_fake_sweep(tmp_path / "sw", seeds=3, steps=30, eval_every=10, new_names=False)
    res = plot([root], formats=("png",))
    assert res.summary["headline_key"] == "train/len_incorrect"
    assert not any("derailed" in w for w in res.warnings)  # all runs are old: said in the report, not a warning
    titles = list(_axes_by_title(res.figures["length_growth"]))
    assert titles == ["train reward", "wrong-answer length (all prompts)", "correct-answer length",
                      "eval wrong-answer length\n(greedy)", "eval accuracy\n(greedy)"]
    md = res.report.read_text()
    assert "## Headline: wrong-answer length\n" in md and "Fallback: no run logged `train/derailed/len_incorrect`" in md
    assert "(This is the headline metric here; its paired comparisons are above.)" in md
    assert not any(p["metric"] == "len_incorrect_growth" for p in res.summary["paired"])
    # headline numbers are the pooled growth, exactly as metrics_math computes them
    from drgrpo_cli.metrics import run_numbers

    name = res.summary["arms"]["GRPO"]["runs"][0]
    rows = [json.loads(x) for x in (root / name / "metrics.jsonl").read_text().splitlines()]
    assert res.summary["arms"]["GRPO"]["headline"]["per_run"][name] == run_numbers(rows)["len_incorrect_growth"]


def test_mixed_new_and_old_runs_use_the_pooled_headline_and_warn(tmp_path):
    root = tmp_path / "sw"
    write_fake_sweep(root / "new", seeds=2, steps=20, eval_every=10)
    write_fake_sweep(root / "old", seeds=1, steps=20, eval_every=10, new_names=False)
    (root / "new" / "grid.json").unlink()
    (root / "old" / "grid.json").unlink()
    res = plot([root / "new", root / "old"], out=tmp_path / "o", formats=("png",))
    assert res.summary["headline_key"] == "train/len_incorrect"
    assert any("logged by only some runs" in w for w in res.warnings)


def test_band_clipping_and_robust_ylim_units():
    import numpy as np
    import pandas as pd

    from drgrpo_cli.report.plot import _curve, bootstrap_band, robust_ylim, valid_range

    assert valid_range("train/reward") == (0.0, 1.0) and valid_range("eval_sampled/accuracy") == (0.0, 1.0)
    assert valid_range("train/derailed/len_incorrect") == (0.0, None) and valid_range("train/len_mean") == (0.0, None)
    assert valid_range("train/loss") == (None, None)
    # values outside the valid range (a bad log) still give a band inside it
    idx = pd.Index([1, 2, 3], name="step")
    frames = [pd.DataFrame({"train/reward": [1.0, 1.0, 1.0], "train/len_incorrect": [0.0, 0.0, 0.0]}, index=idx),
              pd.DataFrame({"train/reward": [1.6, 1.4, 1.9], "train/len_incorrect": [-9.0, -8.0, 0.0]}, index=idx)]
    c = _curve(frames, "train/reward", 1)
    assert (c.df["hi"] <= 1).all() and (c.df["lo"] <= 1).all() and c.df["hi"].max() == 1
    c = _curve(frames, "train/len_incorrect", 1)
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
    head = _axes_by_title(res.figures["length_growth"])["wrong-answer length, failure state"]
    budget_lines = [ln for ln in head.get_lines() if list(ln.get_ydata()) == [budget, budget]]
    assert bool(budget_lines) is shown
    if shown:
        assert head.get_ylim()[1] >= budget and any(f"budget {budget}" in t.get_text() for t in head.texts)
# ---------------------------------------------------------------------------------------------------
# provenance: one table row per distinct record, warnings when compared runs differ
# ---------------------------------------------------------------------------------------------------
PROV = {"drgrpo": "0.1.0", "commit": "a47fd12f624cb4af1f1134e2f58ec8e2041b511c", "dirty": False, "dirty_files": [],
        "libraries": {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.24.0", "numpy": "2.4.6",
                      "tokenizers": "0.23.3", "safetensors": "0.8.0", "vllm": None},
        "machine": {"device": "cpu", "cpu": "AMD EPYC", "threads": 1},
        "model_path": "/cache/builtin", "weights_sha256": "9a9c8b1e03b1" + "0" * 52, "argv": ["drgrpo", "ablate"]}


def write_prov(d: Path, *, where: str = "provenance.json", **changes) -> None:
    prov = json.loads(json.dumps(PROV))
    for k, v in changes.items():
        if k in prov["libraries"]:
            prov["libraries"][k] = v
        else:
            prov[k] = v
    if where == "summary.json":  # an older layout: only the copy in summary.json
        (d / "summary.json").write_text(json.dumps({"status": "finished", "provenance": prov}))
    else:
        (d / "provenance.json").write_text(json.dumps(prov))


def _prov_runs(root: Path, changes: dict[str, dict]) -> dict[str, Path]:
    runs = {}
    for arm, knobs in (("grpo", {}), ("drgrpo", dict(adv_scale="none", loss_agg="max_tokens"))):
        for seed in (0, 1):
            name = f"{arm}-s{seed}"
            runs[name] = write_run(root / name, seed=seed, steps=5, **knobs)
            if changes.get(name) != "none":
                write_prov(runs[name], **changes.get(name, {}))
    return runs


def _prov_warnings(res: PlotResult) -> list[str]:
    return [w for w in res.warnings if "differ in" in w or "provenance" in w]


def test_provenance_one_record_shared_by_all_runs_no_warning(tmp_path):
    _prov_runs(tmp_path / "sweep", {})
    res = plot([tmp_path / "sweep"], out=tmp_path / "out", formats=("svg",))
    assert _prov_warnings(res) == []
    table = _md_table(res.report.read_text(), "Provenance")
    assert list(table) == ["all 4 runs"]
    assert table["all 4 runs"][1:] == ["0.1.0 (a47fd12f62)", "python 3.11.7, torch 2.13.0+cpu, transformers 5.24.0, "
                                   "numpy 2.4.6, tokenizers 0.23.3, safetensors 0.8.0", "AMD EPYC", "1",
                                   "`9a9c8b1e03b1`"]
    assert res.summary["provenance"][0]["runs"] == ["grpo-s0", "grpo-s1", "drgrpo-s0", "drgrpo-s1"]


def test_provenance_differences_are_listed_and_warned(tmp_path):
    _prov_runs(tmp_path / "sweep", {
        "grpo-s1": {"torch": "2.14.0", "transformers": "5.25.0"},
        "drgrpo-s0": {"weights_sha256": "ffff" * 16},
        "drgrpo-s1": {"dirty": True, "dirty_files": ["drgrpo_cli/trainer.py"]},
    })
    res = plot([tmp_path / "sweep"], out=tmp_path / "out", formats=("svg",))
    w = _prov_warnings(res)
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
    table = _md_table(md, "Provenance")
    assert len(table) == 4  # four distinct records, one row each
    assert table["Dr. GRPO: seed 1"][1] == "0.1.0 (a47fd12f62+dirty)"
    assert "torch 2.14.0" in table["GRPO: seed 1"][2]


def test_provenance_not_recorded_and_docs_only_edits(tmp_path):
    # an old run without provenance.json; a run whose record is only in summary.json; a checkout whose
    # uncommitted changes are docs only (not code: no warning)
    _prov_runs(tmp_path / "sweep", {"grpo-s0": "none", "drgrpo-s1": {"dirty": True, "dirty_files": ["README.md"]}})
    write_prov(tmp_path / "sweep" / "grpo-s1", where="summary.json")
    (tmp_path / "sweep" / "grpo-s1" / "provenance.json").unlink()
    res = plot([tmp_path / "sweep"], out=tmp_path / "out", formats=("svg",))
    w = _prov_warnings(res)
    assert w == ["provenance not recorded for GRPO: seed 0 (made before drgrpo wrote provenance.json): whether they "
                 "share the other runs' libraries and base weights is unknown"]
    table = _md_table(res.report.read_text(), "Provenance")
    assert table["GRPO: seed 0"][1:] == ["not recorded"] * 5
    assert table["GRPO: seed 1; Dr. GRPO (all 2)"][1] == "0.1.0 (a47fd12f62)"
    # nothing recorded anywhere: the table says so, and there is nothing to compare
    for d in (tmp_path / "sweep").iterdir():
        (d / "provenance.json").unlink(missing_ok=True)
        (d / "summary.json").write_text(json.dumps({"status": "finished"}))
    res = plot([tmp_path / "sweep"], out=tmp_path / "out2", formats=("svg",))
    assert _prov_warnings(res) == []
    assert _md_table(res.report.read_text(), "Provenance") == {"all 4 runs": ["all 4 runs"] + ["not recorded"] * 5}


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
    from drgrpo_cli.report.plot import _seed_ranges

    assert _seed_ranges([2, 3, 4, 5, 6, 7, 8, 9]) == "2-9"
    assert _seed_ranges([0, 1, 3, 5, 6, 7]) == "0, 1, 3, 5-7"
    assert _seed_ranges(["a", "b"]) == "a, b" and _seed_ranges([1]) == "1"


def test_paired_comparisons_use_finished_runs_only_as_paired_csv(tmp_path):
    from drgrpo_cli.sweep.ablate import paired_comparisons, summarize

    root = write_fake_sweep(tmp_path / "sweep", seeds=3, steps=30)
    (root / "group-seq_mean__seed1" / "summary.json").unlink()  # GRPO seed 1 still running: a partial run
    res = plot([root], formats=("png",))
    got = {(p["metric"], p["kind"]): p for p in res.summary["paired"]}[("headline_growth", "grpo_vs_drgrpo")]
    assert got["n"] == 2  # seeds 0 and 2; the partial run is drawn but not compared
    csv = {(r.metric, r.kind): r for r in paired_comparisons(summarize(root))}[("headline_growth", "grpo_vs_drgrpo")]
    assert (csv.result.n, csv.result.mean) == (got["n"], pytest.approx(got["mean"]))
