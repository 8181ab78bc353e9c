"""Option types shared by the commands, in one place (typer ``Annotated`` aliases).

Import-light on purpose: typer and the standard library only, so ``drgrpo --help`` stays well under 1 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Out = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (created).",
                                             show_default="results/<arm>__seed<seed>")]
Force = Annotated[bool, typer.Option("--force", help="Delete an existing run in --out and start over.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; print only the final summary line.")]


def fail(msg: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise (2 = bad input, 1 = a run failed)."""
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)
