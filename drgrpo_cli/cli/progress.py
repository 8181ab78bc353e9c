"""What ``drgrpo train`` shows while a run trains: a rich progress bar with live reward and lengths, the note
printed at the first SIGTERM/Ctrl-C, and information lines on stderr; nothing with ``--quiet``.

It is the ``progress`` object :func:`drgrpo_cli.trainer.train` reports to (rich is imported only when the
bar starts).
"""

from __future__ import annotations

import math
import sys
from typing import Any

STOP_NOTE = "finishing this step, then saving a checkpoint (Ctrl-C again to stop at once)"


class TrainProgress:
    """The training bar of one run; every method does nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.stop_note = STOP_NOTE if enabled else None
        self.p: Any = None

    def echo(self, line: str) -> None:
        if self.enabled:
            print(line, file=sys.stderr)

    def start(self, total: int, done: int) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self.t = self.p.add_task("train", total=total, info="")
        self.p.start()
        self.p.update(self.t, completed=done)

    def update(self, step: int, row: dict[str, Any]) -> None:
        if self.p is None:
            return

        def f(key: str) -> str:
            v = row.get(key)
            return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:5.1f}"

        info = (f"reward {row['train/reward']:.2f}  len ✓{f('train/len_correct')} ✗{f('train/len_incorrect')}"
                f"  {row['time/step_s']:.2f}s/step")
        if row.get("eval/accuracy") is not None:
            info += f"  eval {row['eval/accuracy']:.2f}"
        self.p.update(self.t, completed=step, info=info)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
            self.p = None
