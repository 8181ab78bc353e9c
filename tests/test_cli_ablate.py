"""The ``drgrpo ablate`` command (drgrpo_cli.cli.ablate): light to import, one-line errors, exit codes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drgrpo_cli.sweep.ablate import ablate
from sweep_helpers import FAILING, REPO, fake_train, quiet, write

def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    code = ("import typer, sys\nfrom drgrpo_cli.cli.ablate import ablate_cli\n"
            "app = typer.Typer()\napp.command('ablate')(ablate_cli)\n@app.command()\ndef other(): pass\n"
            "app(prog_name='drgrpo')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "150"}
    return subprocess.run([sys.executable, "-c", code, "ablate", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_cli_module_imports_are_light():
    code = ("import sys, time; t = time.time(); import drgrpo_cli.cli.ablate; "
            "heavy = [m for m in ('torch', 'drgrpo_cli.sweep.ablate', 'drgrpo_cli.sweep.plan', 'drgrpo_cli.sweep.workers', "
            "'drgrpo_cli.sweep.view', 'drgrpo_cli.sweep.summary', 'drgrpo_cli.sweep.grid', 'ray', "
            "'multiprocessing.managers') if m in sys.modules]; "
            "assert not heavy, heavy")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_cli_help_dry_run_and_errors(tmp_path):
    res = _cli("--help")
    assert res.returncode == 0 and "--seeds" in res.stdout and "--status" in res.stdout and "--set" in res.stdout
    res = _cli("--dry-run", "--set", "steps=3", "--seeds", "0,1", "-o", str(tmp_path / "s"))
    assert res.returncode == 0, res.stderr
    assert "dr-grpo__seed1" in res.stdout and not (tmp_path / "s").exists()
    for args, fragment in ((["--set", "stepz=3", "--dry-run"], "unknown config key"),
                           (["--seeds", "a", "--dry-run"], "--seeds"),
                           (["--seeds", "0-2,2", "--dry-run"], "lists a seed twice"),
                           (["--seeds", "5-3", "--dry-run"], "ranges like"),
                           (["nope.toml", "--dry-run"], "no such grid file"),
                           (["--backend", "slurm", "--dry-run"], "backend"),
                           (["--status", str(tmp_path / "none")], "no such sweep directory"),
                           (["--status", str(tmp_path), "--force"], "--status takes only")):
        res = _cli(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], (args, res.stderr)
    bad = tmp_path / "bad.toml"
    bad.write_text("[axes]\nadv_scale = [\n")
    res = _cli(str(bad), "--dry-run")
    assert res.returncode == 2 and f"{bad}:2:" in res.stderr


def test_cli_status_and_failed_exit_code(tmp_path):
    p = write(tmp_path, FAILING.replace('sigkill = {adv_scale="none", loss_agg="seq_mean", lr=0.25}\n', "")
              .replace('osexit = {adv_scale="group", loss_agg="max_tokens", lr=0.375}\n', ""))
    out = tmp_path / "sweep"
    ablate(p, out=out, train_fn=fake_train, console=quiet())
    res = _cli("--status", str(out))
    assert res.returncode == 0, res.stderr
    assert "nan__seed0" in res.stdout and "failed" in res.stdout and "NaN loss" in res.stdout


def test_seeds_take_lists_and_ranges():
    from drgrpo_cli.cli.ablate import parse_seeds

    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("0-9") == list(range(10))
    assert parse_seeds("0-2, 7") == [0, 1, 2, 7] and parse_seeds("3") == [3]
    for bad in ("", "a", "2-", "-1", "5-3", "1.5"):
        with pytest.raises(ValueError, match="ranges like"):
            parse_seeds(bad)
