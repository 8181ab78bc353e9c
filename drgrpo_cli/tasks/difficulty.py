"""The difficulty task: the built-in addition in three buckets the base model solves about 90%, 50% and 10% of
the time, a model organism for GRPO's *difficulty* bias (dividing a group's advantages by its reward std
weighs near-always and near-never solved prompts up relative to the others).

A prompt's bucket is written in front of it with the task's own characters: ``37+5=`` (easy), ``.37+5=``
(medium), ``..37+5=`` (hard). The base model ``builtin-difficulty`` is warmed up on answers that are right with
the bucket's probability and otherwise a plausible wrong sum ``a + b'`` (``b' != b``), so the correct answer
is always in its distribution and RL can raise each bucket's accuracy; responses keep one length (``..#42``),
so no length effect enters. Every group is one prompt of one bucket; rollouts are tagged with the bucket, so
``train/<bucket>/accuracy`` is logged per step. No operand is hidden. Design: docs/difficulty-study.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from drgrpo_cli.tasks.builtin import ANSWER_MARK, B_RANGE, FILLER, builtin_reward, split_pairs, warmup_pair
from drgrpo_cli.tasks.interface import EvalItem, Problem, RolloutPrompt

#: bucket -> (prompt prefix, probability that a warm-up answer is right)
BUCKETS: dict[str, tuple[str, float]] = {"easy": ("", 0.9), "medium": (FILLER, 0.5), "hard": (FILLER * 2, 0.1)}


def bucket_problem(a: int, b: int, bucket: str) -> Problem:
    return Problem(question=f"{BUCKETS[bucket][0]}{a}+{b}=", answer=str(a + b), source=f"builtin-difficulty/{bucket}")


def bucket_of(problem: Problem) -> str:
    return problem.source.rsplit("/", 1)[1]


@dataclass(frozen=True)
class DifficultyWarmup:
    """Warm-up data of ``builtin-difficulty``, trained on top of the ``init`` recipe's model (which can add): a
    bucket drawn uniformly; a right answer with the bucket's probability, else ``a + b'`` for a uniformly
    drawn ``b' != b``; two filler dots before the answer."""

    p_easy: float = 0.9
    p_medium: float = 0.5
    p_hard: float = 0.1
    init: str = "builtin"
    filler: int = 2

    def example(self, rng: random.Random) -> tuple[str, str]:
        a, b = warmup_pair(rng)
        bucket = rng.choice(list(BUCKETS))
        p_right = {"easy": self.p_easy, "medium": self.p_medium, "hard": self.p_hard}[bucket]
        if rng.random() < p_right:
            answer = a + b
        else:
            answer = a + rng.choice([x for x in range(B_RANGE[0], B_RANGE[1] + 1) if x != b])
        return bucket_problem(a, b, bucket).question, FILLER * self.filler + ANSWER_MARK + str(answer)


class DifficultyTask:
    """Problems drawn from the training pairs with a uniformly drawn bucket; all randomness from the
    ``random.Random`` passed in. Eval: every held-out pair in each bucket (sampled eval shows the accuracy)."""

    name = "builtin-difficulty"
    stop_strings: tuple[str, ...] = ()

    def __init__(self, eval_size: int = 128):
        self.train_pairs, self.eval_pairs = split_pairs(eval_size)

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        out = []
        for _ in range(n):
            a, b = rng.choice(self.train_pairs)
            out.append(bucket_problem(a, b, rng.choice(list(BUCKETS))))
        return out

    def rollout_prompts(self, problem: Problem, group_size: int, rng: random.Random) -> list[RolloutPrompt]:
        return [RolloutPrompt(problem.question, bucket_of(problem)) for _ in range(group_size)]

    def eval_sets(self) -> dict[str, list[EvalItem]]:
        items = []
        for i, (a, b) in enumerate(self.eval_pairs):
            bucket = list(BUCKETS)[i % len(BUCKETS)]
            p = bucket_problem(a, b, bucket)
            items.append(EvalItem(p, p.question, bucket))
        return {"": items}

    def reward(self, response: str, gold: str, truncated: bool) -> float:
        return builtin_reward(response, gold, truncated)
