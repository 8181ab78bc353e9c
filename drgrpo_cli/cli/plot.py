"""The ``drgrpo plot`` command as a plain function; the lead registers it on the app, e.g.::

    from drgrpo_cli.cli.plot import plot_cli
    app.command("plot")(plot_cli)

Importing this module costs typer + the standard library only (the report library loads inside the
command), so ``drgrpo --help`` / ``drgrpo plot --help`` stay fast.
Exit codes: 0 = written (warnings go to stderr), 2 = :class:`~drgrpo_cli.report.plot.PlotError` (one line on
stderr) or a usage error from typer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from drgrpo_cli.cli.options import fail
from drgrpo_cli.report import DEFAULT_MULTI_OUT, FORMATS


def plot_cli(
    paths: Annotated[
        List[Path],
        typer.Argument(
            help="A sweep folder (run directories below it, optional grid.json mapping runs to arms) "
            "or one or more run directories (folders with config.json + metrics.jsonl).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help=f"Folder for the figures and report.md/report.html (created; only files in it are written). "
            f"Default: <sweep>/figures/ for one sweep folder, else ./{DEFAULT_MULTI_OUT}/.",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        List[str],
        typer.Option(
            "--metric",
            "-m",
            help="Extra metric key to plot over steps in metrics.<fmt>, as logged in metrics.jsonl "
            "(e.g. train/entropy, train/grad_norm, eval/<name>/accuracy). Repeatable.",
            show_default=False,
        ),
    ] = [],  # noqa: B006 - typer needs a list default for a repeatable option
    smooth: Annotated[
        Optional[int],
        typer.Option(
            "--smooth",
            "-s",
            min=1,
            help="Centred rolling mean over this many steps, per run before averaging seeds (per-step train "
            "curves in the figures only; eval points and report numbers are never smoothed). 1 = off.",
            show_default="about 1/15 of the run's steps, at most 10",
        ),
    ] = None,
    format: Annotated[  # noqa: A002 - the option is --format
        List[str],
        typer.Option(
            "--format",
            "-f",
            help=f"Figure format, repeatable: {', '.join(FORMATS)}.",
        ),
    ] = ["png", "svg"],  # noqa: B006
) -> None:
    """Plot runs: the length-bias figure (failure-state wrong-answer length per arm, seeds and mean with a bootstrap band), token efficiency, difficulty bias, and a report.md with the arms compared paired by seed."""  # noqa: E501
    from rich.console import Console
    from rich.markup import escape

    from drgrpo_cli.report.plot import PlotError, plot

    console = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        result = plot(list(paths), out=out, metrics=list(metric or []), smooth=smooth, formats=tuple(format))
    except PlotError as e:
        raise fail(str(e)) from None
    for w in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}")
    for p in result.files:
        console.print(f"wrote {escape(str(p))}")
    console.print(f"[bold]report:[/bold] {escape(str(result.report))}")
