"""What a task is to the trainer: :class:`Problem`, :class:`RolloutPrompt`, :class:`EvalItem` and the
:class:`Task` protocol. Importable from :mod:`drgrpo_cli.tasks`; kept in a module of its own so the tasks
can import these types while the package's ``make_task`` imports the tasks."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple, Protocol


@dataclass(frozen=True)
class Problem:
    """One problem: ``question`` is its text before any prompt template (the built-in task's clean prompt,
    ``37+5=``), ``answer`` the gold answer the reward compares with, ``source`` where it came from
    (``builtin``, or the dataset's short name)."""

    question: str
    answer: str
    source: str


class RolloutPrompt(NamedTuple):
    """One rollout's prompt text and its tag (``derailed`` / ``clean`` for the built-in task, None for math)."""

    prompt: str
    tag: str | None


class EvalItem(NamedTuple):
    """One eval prompt: the problem (its ``answer`` is the gold), the prompt text, the tag."""

    problem: Problem
    prompt: str
    tag: str | None


class Task(Protocol):
    """What the trainer uses of a task.

    All randomness comes from the ``random.Random`` the trainer passes in (seeded and checkpointed), so a
    resumed run draws the same problems and prompts. Tags split the logged metrics (``train/<tag>/*``).
    """

    #: strings that end a response (kept in it); () when the model's own EOS ends it
    stop_strings: tuple[str, ...]

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        """The ``n`` problems of one training step."""
        ...

    def rollout_prompts(self, problem: Problem, group_size: int, rng: random.Random) -> list[RolloutPrompt]:
        """The ``group_size`` prompts of one problem's group."""
        ...

    def eval_sets(self) -> dict[str, list[EvalItem]]:
        """Named eval sets (``""``: one unnamed set), the same for every arm and seed; empty: no eval."""
        ...

    def reward(self, response: str, gold: str, truncated: bool) -> float:
        """The reward of a decoded response against the gold answer (0 when truncated)."""
        ...
