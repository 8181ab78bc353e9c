"""The math task (``--task math``): dataset problems through a prompt template, graded by math-verify.

The template gives the prompt, the stop strings and the answer extractor. Problems are drawn with the
trainer's checkpointed RNG (``n`` distinct ones per step while the dataset has them); each ``--eval-dataset``
is one eval set of its first ``eval_max_prompts`` problems. Every dataset is read when the task is built, so
a bad file fails before the first step with one line. :func:`detect_fields` finds the dataset
columns in the config. Why: docs/design/tasks.md.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

from drgrpo_cli.errors import first_line
from drgrpo_cli.tasks.datasets import dataset_fields, dataset_name, load_problems
from drgrpo_cli.tasks.interface import EvalItem, Problem, RolloutPrompt
from drgrpo_cli.tasks.templates import load_template


class MathTaskError(ValueError):
    """The math task cannot be set up; the message is one line."""


def detect_fields(dataset: str, eval_datasets: Sequence[str] = (), question_field: str | None = None,
                  answer_field: str | None = None, echo: Callable[[str], None] | None = None
                  ) -> tuple[str | None, str | None]:
    """The (question, answer) column names for a run's datasets: each given name, else the one detected from
    every dataset's first rows, or None where the datasets name it differently (each then uses its own).
    ``echo`` gets one line saying which were used."""
    specs = list(dict.fromkeys([dataset, *eval_datasets]))
    found = {spec: dataset_fields(spec, question_field, answer_field) for spec in specs}
    qs, ans = {q for q, _ in found.values()}, {a for _, a in found.values()}
    q, a = (next(iter(qs)) if len(qs) == 1 else None), (next(iter(ans)) if len(ans) == 1 else None)
    if echo is not None:
        how = "choose with --question-field / --answer-field"
        if len(qs) == 1 and len(ans) == 1:
            echo(f"dataset columns: question {q!r}, answer {a!r} (detected; {how})")
        else:
            per = "; ".join(f"{dataset_name(s)}: {fq!r}, {fa!r}" for s, (fq, fa) in found.items())
            echo(f"dataset columns (question, answer), detected per dataset: {per} ({how})")
    return q, a


class MathTask:
    """Dataset problems through a prompt template, graded by math-verify.

    ``dataset`` / ``eval_datasets``: file paths or ``datasets`` names; ``question_field`` / ``answer_field``:
    column names (None: detected per dataset); ``eval_max_prompts``: the first that many problems of each
    eval set (None: all).
    """

    def __init__(self, dataset: str | None, *, eval_datasets: Sequence[str] = (), template: str = "none",
                 question_field: str | None = None, answer_field: str | None = None,
                 eval_max_prompts: int | None = None):
        if not dataset:
            raise MathTaskError("task 'math' needs --dataset (a JSONL/Parquet/CSV file or a datasets name)")
        self.template = load_template(template)
        self.stop_strings: tuple[str, ...] = tuple(self.template.stop)
        self.name = dataset_name(dataset)
        self.train_problems: list[Problem] = load_problems(dataset, question_field, answer_field)
        self.eval_problems: dict[str, list[Problem]] = {}
        for spec in eval_datasets:
            base = name = dataset_name(spec)
            k = 1
            while name in self.eval_problems:
                k += 1
                name = f"{base}_{k}"
            self.eval_problems[name] = load_problems(spec, question_field, answer_field, limit=eval_max_prompts)
        self._prompts: dict[str, str] = {}
        try:
            from drgrpo_cli.tasks.math_reward import MathReward

            self._reward = MathReward(self.template.extractor)
        except ImportError as e:
            raise MathTaskError(first_line(e)) from None

    def prompt(self, problem: Problem) -> str:
        """The template applied to the problem's question."""
        text = self._prompts.get(problem.question)
        if text is None:
            text = self._prompts[problem.question] = self.template.apply(problem.question)
        return text

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        if n <= len(self.train_problems):
            return rng.sample(self.train_problems, n)
        return [rng.choice(self.train_problems) for _ in range(n)]

    def rollout_prompts(self, problem: Problem, group_size: int, rng: random.Random) -> list[RolloutPrompt]:
        return [RolloutPrompt(self.prompt(problem), None)] * group_size

    def eval_sets(self) -> dict[str, list[EvalItem]]:
        return {name: [EvalItem(p, self.prompt(p), None) for p in probs] for name, probs in self.eval_problems.items()}

    def reward(self, response: str, gold: str, truncated: bool) -> float:
        return self._reward(response, gold, truncated)
