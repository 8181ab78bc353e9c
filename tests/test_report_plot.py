"""``drgrpo plot`` as a library (:func:`drgrpo_cli.report.plot.plot`) and its CLI wrapper: files, determinism,
import cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from drgrpo_cli.report.plot import plot
from tests.report_helpers import small_sweep, write_run


sweep = pytest.fixture(scope="module", name="sweep")(small_sweep)  # the plot of the small sweep (made once)


def test_metrics_and_plot_import_light():
    import subprocess
    import sys

    code = ("import sys; from drgrpo_cli.metrics import length_growth, series; import drgrpo_cli.report.plot; "
            "assert length_growth(series([{'step': 1, 'x': 1}, {'step': 2, 'x': 2}, {'step': 3, 'x': 3}], 'x')) == 2; "
            "assert 'matplotlib' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_deterministic_outputs(sweep, tmp_path):
    root, res = sweep
    res2 = plot([root], out=tmp_path / "again", smooth=2, metrics=["train/entropy"], formats=("png", "svg"))
    assert [p.name for p in res2.files] == [p.name for p in res.files]  # fixed names, fixed order
    assert res2.report.read_text() == res.report.read_text()  # no timestamps: same logs, same report


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
