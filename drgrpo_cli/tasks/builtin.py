"""The built-in task: two-digit plus one-digit addition where the environment hides the second operand of half
the rollouts (``37+?=``), a failure state no policy can learn its way out of, after which the model chooses
how long to go on: a model organism for the length bias of the per-response ``1/|o_i|`` (the README's "The
built-in task" has the reasoning, docs/default-study.md the criteria it meets).

Responses are ``..#42<eos>``: filler dots, ``#``, the answer. Reward is 1 when the integer after the last
``#`` equals a+b and the response ended with ``<eos>`` within the budget, else 0. Rollouts are tagged
``derailed`` (operand hidden) or ``clean``; pairs with ``(37*a + b) % 10 == 0`` are held out for eval. The
base model's warm-up data (:class:`WarmupRecipe`) is defined here too (docs/design/tasks.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from drgrpo_cli.tasks.interface import EvalItem, Problem, RolloutPrompt

DIGITS = "0123456789"
CHARS = DIGITS + "+=#.?"
SPECIALS = ("<pad>", "<eos>", "<unk>")
VOCAB = list(SPECIALS) + list(CHARS)
PAD, EOS, UNK = 0, 1, 2
HIDDEN = "?"  # stands for the hidden second operand
FILLER = "."
ANSWER_MARK = "#"
A_RANGE = (10, 99)  # first operand: two digits
B_RANGE = (1, 9)  # second operand: one digit (a carry half of the time)


def _held_out(a: int, b: int) -> bool:
    return (37 * a + b) % 10 == 0


def all_pairs(eval_split: bool) -> list[tuple[int, int]]:
    return [(a, b) for a in range(A_RANGE[0], A_RANGE[1] + 1) for b in range(B_RANGE[0], B_RANGE[1] + 1) if _held_out(a, b) == eval_split]


def split_pairs(eval_size: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(training pairs, eval pairs): every pair not held out, and ``eval_size`` held-out pairs drawn with a fixed
    seed (the same for every arm, seed and task that uses them)."""
    pairs = all_pairs(eval_split=True)
    return all_pairs(eval_split=False), random.Random(1234).sample(pairs, min(eval_size, len(pairs)))


def warmup_pair(rng: random.Random) -> tuple[int, int]:
    """A random operand pair that is not held out (the warm-up data never shows an eval pair)."""
    a, b = rng.randint(*A_RANGE), rng.randint(*B_RANGE)
    while _held_out(a, b):
        a, b = rng.randint(*A_RANGE), rng.randint(*B_RANGE)
    return a, b


def make_problem(a: int, b: int) -> Problem:
    return Problem(question=f"{a}+{b}=", answer=str(a + b), source="builtin")


def hide_operand(prompt: str) -> str:
    """``37+5=`` -> ``37+?=``: the failure state's prompt."""
    return prompt.split("+", 1)[0] + "+" + HIDDEN + "="


def state_prompt(problem: Problem, derailed: bool) -> tuple[str, str]:
    """(prompt text, tag) of ``problem`` in the failure state (operand hidden, ``derailed``) or not (``clean``)."""
    return (hide_operand(problem.question), "derailed") if derailed else (problem.question, "clean")


def parse_answer(response: str) -> str | None:
    """The digits after the last ``#`` of a response (eos already stripped), or None."""
    if ANSWER_MARK not in response:
        return None
    tail = response.rsplit(ANSWER_MARK, 1)[1]
    return tail if tail.isdigit() else None


def builtin_reward(response: str, gold: str, truncated: bool) -> float:
    if truncated:
        return 0.0
    return 1.0 if parse_answer(response) == gold else 0.0


class BuiltinTask:
    """Samples problems and hides operands; all randomness comes from the ``random.Random`` passed in."""

    name = "builtin"
    stop_strings: tuple[str, ...] = ()

    def __init__(self, derail_prob: float = 0.5, eval_size: int = 128):
        self.derail_prob = derail_prob
        self.train_pairs, self.eval_pairs = split_pairs(eval_size)

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        return [make_problem(*rng.choice(self.train_pairs)) for _ in range(n)]

    def rollout_prompts(self, problem: Problem, group_size: int, rng: random.Random) -> list[RolloutPrompt]:
        """The ``group_size`` prompt texts of one group, each tagged ``derailed`` (operand hidden) or ``clean``."""
        out = []
        for _ in range(group_size):
            out.append(RolloutPrompt(*state_prompt(problem, rng.random() < self.derail_prob)))
        return out

    def eval_sets(self) -> dict[str, list[EvalItem]]:
        """Held-out problems; every other one has its operand hidden, so eval measures both states."""
        items = []
        for i, (a, b) in enumerate(self.eval_pairs):
            p = make_problem(a, b)
            items.append(EvalItem(p, *state_prompt(p, i % 2 == 1 and self.derail_prob > 0)))
        return {"": items}

    def reward(self, response: str, gold: str, truncated: bool) -> float:
        return builtin_reward(response, gold, truncated)


# --- supervised warm-up data for the base model ---------------------------------------------------------


@dataclass(frozen=True)
class WarmupRecipe:
    """How the base model's warm-up data looks: this sets the base policy's behaviour in both states."""

    clean_filler: tuple[int, int] = (2, 2)  # filler length after a clean prompt (uniform; fixed: addition is learned
    # about twice as fast when the answer sits at a fixed offset from the operands)
    hidden_min: int = 2  # filler after a hidden operand: at least this many dots,
    hidden_stop_first: float = 0.6  # then stop at once with this probability (the short mode),
    hidden_stop: float = 0.1  # else stop after each further dot with this probability (the long tail),
    hidden_max: int = 40  # up to this many dots (a 45-token response at most, below the 64-token budget)
    derail_frac: float = 0.25  # share of hidden-operand examples in the warm-up (RL uses ``derail_prob``)

    def example(self, rng: random.Random) -> tuple[str, str]:
        return warmup_example(rng, self)


def hidden_filler(rng: random.Random, recipe: WarmupRecipe) -> int:
    """Filler length after a hidden operand: the short mode, or the geometric tail."""
    n = recipe.hidden_min
    if rng.random() < recipe.hidden_stop_first:
        return n
    n += 1
    while n < recipe.hidden_max and rng.random() >= recipe.hidden_stop:
        n += 1
    return n


def warmup_example(rng: random.Random, recipe: WarmupRecipe) -> tuple[str, str]:
    """One (prompt, response) pair of warm-up text; the response ends before ``<eos>``.

    With the operand hidden the answer is ``a + b`` for a fresh random ``b``: a guess, right 1/9 of the time.
    """
    a, b = warmup_pair(rng)
    if rng.random() < recipe.derail_frac:
        guess = a + rng.randint(*B_RANGE)
        return hide_operand(f"{a}+{b}="), FILLER * hidden_filler(rng, recipe) + ANSWER_MARK + str(guess)
    n = rng.randint(*recipe.clean_filler)
    return f"{a}+{b}=", FILLER * n + ANSWER_MARK + str(a + b)
