"""The ``drgrpo ablate`` command: a plain function with typer ``Annotated`` options.

The lead registers it on the app (``app.command("ablate")(ablate_cli)``). Only typer and the standard
library are imported at module level; the runner (rich, multiprocessing, and torch in the workers) is
imported when the command runs, so ``drgrpo --help`` stays fast.

Exit codes: 0 all runs finished (or nothing to do); 1 some run failed (the others still ran; the failures
are listed), or the sweep's own process failed (one line; its runs were stopped and recorded first);
2 bad input (grid file, option, conflicting grid.json, a sweep folder another sweep is using), one line on
stderr, nothing run; 128 + signum after SIGTERM (143) or Ctrl-C (130): the running runs checkpointed and
stopped, and the same command again continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from drgrpo_cli.cli.options import fail

GRID_HELP = ("Grid TOML file, or the name of a bundled grid: bias-2x2 (default), loss-modes, length-normalizers, "
             "difficulty, qwen-math-1.5b-2x2. See ablations/README.md for the format.")


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``, ``"0-9"`` -> ``[0, ..., 9]``, ``"0-2,7"`` -> ``[0, 1, 2, 7]``; raises ValueError
    with one line (also for a seed given twice: runs sharing a seed are one run)."""
    bad = ValueError(f"--seeds takes comma-separated integers or ranges like 0,1,2 or 0-9, got {text!r}")
    seeds: list[int] = []
    for part in (p for p in text.replace(" ", "").split(",") if p):
        lo, sep, hi = part.partition("-")
        if not (lo.isdigit() and (not sep or hi.isdigit())):
            raise bad
        seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    if not seeds:
        raise bad
    if len(seeds) != len(set(seeds)):
        raise ValueError(f"--seeds lists a seed twice: {text!r}")
    return seeds


def ablate_cli(
    grid: Annotated[Optional[Path], typer.Argument(help=GRID_HELP, show_default=False)] = None,
    seeds: Annotated[Optional[str], typer.Option(
        "--seeds", metavar="LIST", help="Seeds as a comma-separated list or ranges, e.g. 0,1,2 or 0-9 (replaces the grid's seeds).")] = None,
    set_: Annotated[Optional[List[str]], typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Set a config field for every run (applied to the grid's base table); repeatable.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Sweep directory.", show_default="results/<grid name>")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", "-j", min=1,
        help="Runs at a time.", show_default="min(#runs, #CPUs); 1 if a run uses CUDA")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", metavar="local|ray",
        help="local: one worker process per run on this machine; ray: one Ray task per run.")] = "local",
    address: Annotated[Optional[str], typer.Option(
        "--address", help="Ray cluster address ('auto' = the running cluster).",
        show_default="start a local Ray")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the runs, their directories, states and actions; run and write nothing.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Rerun every run from scratch (finished ones too) and replace grid.json.")] = False,
    status: Annotated[Optional[Path], typer.Option(
        "--status", metavar="DIR", help="Show the runs, the per-arm summary and the paired comparisons of the "
                                        "arms (over seeds) of an existing sweep directory, and exit.",
        show_default=False)] = None,
) -> None:
    """Run a grid of GRPO / Dr. GRPO ablations in parallel, resumably, with a live table and a summary.

    Finished runs are skipped; partial and failed runs resume from their last checkpoint, so the same command again continues a stopped sweep. Output: one run directory per arm and seed (ARM__seedN), grid.json, summary.csv (per arm) and paired.csv (arms compared seed by seed) in the sweep directory. Exit code 1 if a run failed, 2 for bad input.
    """  # noqa: E501 - one line per paragraph: typer's rich help keeps line breaks
    from drgrpo_cli.config import ConfigError  # noqa: PLC0415 - keep --help fast
    from drgrpo_cli.errors import one_line  # noqa: PLC0415
    from drgrpo_cli.sweep.ablate import ablate, ablate_status  # noqa: PLC0415
    from drgrpo_cli.sweep.grid import GridError  # noqa: PLC0415
    from drgrpo_cli.sweep.plan import AblateError  # noqa: PLC0415

    try:
        if status is not None:
            if grid is not None or seeds or set_ or dry_run or force:
                raise fail("--status takes only a sweep directory (no grid, --seeds, --set, --dry-run or --force)")
            ablate_status(status)
            return
        try:
            seed_list = parse_seeds(seeds) if seeds is not None else None
        except ValueError as e:
            raise fail(str(e)) from None
        result = ablate(grid, seeds=seed_list, sets=tuple(set_ or ()), out=out, workers=workers, backend=backend,
                        address=address, dry_run=dry_run, force=force)
    except typer.Exit:
        raise
    except (GridError, ConfigError, AblateError) as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt as e:
        code = getattr(e, "exit_code", 130)  # interrupt.Interrupted: 128 + signum
        typer.echo(f"interrupted{': ' + str(e) if str(e) else ''}: the runs are resumable, run the same command "
                   f"again to continue", err=True)
        raise typer.Exit(code) from None
    except Exception as e:  # noqa: BLE001 - never a bare "Aborted." or a traceback: one line, exit 1
        raise fail(f"the sweep stopped: {one_line(e)}; the runs were stopped and recorded, run the same command "
                    f"again to continue", 1) from None
    if result.exit_code:
        raise typer.Exit(result.exit_code)
