"""What a sweep shows (drgrpo_cli.sweep.view): the live board and the --status tables.
"""

from __future__ import annotations

import io

from drgrpo_cli.sweep.ablate import ablate
from sweep_helpers import SMALL, fake_train, typer_app, write, write_hand_sweep

def test_status_prints_the_paired_table(tmp_path):
    from typer.testing import CliRunner

    from drgrpo_cli.cli.ablate import ablate_cli

    out = write_hand_sweep(tmp_path / "sweep")
    app = typer_app(ablate_cli)
    res = CliRunner().invoke(app, ["ablate", "--status", str(out)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "per arm (finished runs, mean over seeds)" in text and "Δlen wrong fail" in text
    assert "paired over seeds (finished runs)" in text
    assert text.index("per arm") < text.index("paired over seeds")
    lines = [ln for ln in text.splitlines() if "GRPO − Dr. GRPO" in ln]
    assert len(lines) == 3  # headline, final reward, pooled
    assert "Δlen wrong (fail)" in lines[0] and "+19.0" in lines[0] and "[+10.0, +28.0]" in lines[0]
    assert "3/3" in lines[0] and "excludes 0" in lines[0]
    std = [ln for ln in text.splitlines() if "std norm." in ln][0]
    assert "+1.5" in std and "2/3" in std and "includes 0" in std
    assert not (out / "paired.csv").exists()  # --status reads only


def test_live_view_renders(tmp_path):
    from rich.console import Console

    buf = io.StringIO()
    con = Console(file=buf, width=160, force_terminal=True)
    p = write(tmp_path, SMALL)
    r = ablate(p, out=tmp_path / "sweep", train_fn=fake_train, console=con, live=True, workers=2)
    assert r.exit_code == 0
    text = buf.getvalue()
    assert "grpo__seed0" in text and "finished" in text and "4/4" in text
