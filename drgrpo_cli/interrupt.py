"""Graceful stops (preemption): SIGTERM and SIGINT finish the current step, save, and exit 128 + signum.

Schedulers (Slurm, Kubernetes) send SIGTERM and, after a grace period, SIGKILL; Ctrl-C sends SIGINT. Inside
a :class:`StopRequest` block the first such signal only sets a flag, read by the training loop after each
step (and by a sweep's loop every 0.2 s), so no write is cut half-way and the stop lands on a checkpoint.
A second Ctrl-C stops at once (``KeyboardInterrupt``: the run resumes from its last checkpoint); repeated
SIGTERMs change nothing (a scheduler that signals every process of a job, plus a sweep forwarding the
signal to its workers, sends several; SIGKILL is the hard stop). A signal that is ignored when the block
starts (a sweep worker ignores SIGINT: Ctrl-C is its parent's business) stays ignored, and nothing is
installed outside the main thread (Python allows handlers there only).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """A graceful stop by ``signum``; ``step`` is the last completed step (checkpointed), if any."""

    def __init__(self, signum: int, step: int | None = None):
        self.signum = signum
        self.step = step
        super().__init__(f"stopped by {signal_name(signum)}" + (f" after step {step}" if step is not None else ""))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequest:
    """Context manager: the first SIGTERM/SIGINT sets ``signum`` (truthy) instead of stopping the process."""

    def __init__(self, note: str | None = None):
        self.signum: int | None = None
        self.note = note  # printed on stderr when the first signal arrives
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                old = signal.getsignal(s)
                if old is not signal.SIG_IGN:
                    self._old[s] = signal.SIG_DFL if old is None else old
                    signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            if self.note:
                os.write(2, f"\n{signal_name(signum)}: {self.note}\n".encode())
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt

    def __bool__(self) -> bool:
        return self.signum is not None
