"""The ``drgrpo`` command line: thin wrappers over library functions (``train`` in :mod:`drgrpo_cli.cli.train`,
``ablate``, ``plot``), and ``base``.

Nothing heavy is imported at module level (torch, transformers, pandas and matplotlib load inside the
commands), so ``drgrpo --help`` answers in well under a second. Exit codes, each failure one line on stderr:
2 for what is wrong before work starts (a bad value, a run folder that exists or is in use, a model that
cannot be loaded); 1 for a run that fails once it started (out of memory and a full disk included: not the
input's fault; also out of memory or a full disk before it started), with how to resume; 128 + signum after
a graceful stop (SIGTERM 143, Ctrl-C 130: the step finished and was checkpointed).
"""

from __future__ import annotations

from typing import Annotated

import typer

from drgrpo_cli import __version__
from drgrpo_cli.cli.ablate import ablate_cli
from drgrpo_cli.cli.options import fail
from drgrpo_cli.cli.plot import plot_cli
from drgrpo_cli.cli.train import train_cli

app = typer.Typer(
    name="drgrpo",
    help="GRPO vs Dr. GRPO normalization-bias ablations: train, ablate, plot. "
         "Defaults run offline on a CPU (a built-in task and a tiny model built on first use).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

app.command("train")(train_cli)


@app.command("base")
def base_cli(
    model: Annotated[str, typer.Option("--model", help="builtin, builtin-small or builtin-difficulty.")] = "builtin",
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build again even if cached.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Also measure the base policy per state (accuracy, "
        "sampled and greedy lengths on held-out prompts) against the task's design criteria.")] = False,
) -> None:
    """Build (or show) the cached built-in base model: a tiny Llama warmed up on the built-in task."""
    import json

    from drgrpo_cli.tasks.builtin_model import RECIPES, base_dir, check_base, design_criteria, prebuild

    if model not in RECIPES:
        raise fail(f"unknown built-in model {model!r}; choose one of {', '.join(RECIPES)}")
    prebuild([model], rebuild=rebuild)
    info = json.loads((base_dir(model) / "drgrpo_base.json").read_text())
    typer.echo(f"{base_dir(model)}  (built in {info['build_seconds']} s, final warm-up loss {info['final_loss']:.3f})")
    if check:
        stats = check_base(model)
        for tag, d in stats.items():
            typer.echo(f"  {tag:14s}  sampled: accuracy {d['sampled_accuracy']:.3f}, length {d['sampled_len_mean']:.1f} "
                       f"(max {d['sampled_len_max']})   greedy: accuracy {d['greedy_accuracy']:.3f}, "
                       f"length {d['greedy_len_mean']:.1f}")
        for name, ok, text in design_criteria(RECIPES[model], stats):
            typer.echo(f"  {name} {'ok  ' if ok else 'MISS'} {text}")


app.command("ablate")(ablate_cli)
app.command("plot")(plot_cli)


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
