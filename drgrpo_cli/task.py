"""The built-in task: two-digit addition with environment-made wrong turns, a model organism for the length bias.

Why this design (see ``shared/reference/length-bias.md`` and the README):
within one prompt's group the advantages sum to zero, so the per-response ``1/|o_i|`` term can only
lengthen wrong answers if responses pass through a state that *predicts failure* and the model sets the
length *after* it. Plain "reason then answer" arithmetic has no such state and shows no GRPO/Dr. GRPO
difference. So the environment derails a share of the rollouts (``derail_prob``, default 0.5): it appends
a visible wrong-turn marker ``?`` to the prompt. The base model was warmed up on data where, after ``?``,
it thinks for longer (more ``.`` filler) and then writes a near-miss answer (the sum off by 1-9), so derailed
rollouts are almost always wrong at first (a few % right by sampling luck), and their length is the model's
own choice. Recovering - writing the true sum after ``?`` - is possible (the model can add) but must be
discovered by RL.

Format (character-level; ``prompt | response``)::

    37+45=   | ....#82<eos>        clean: short filler, then the answer
    37+45=?  | ...............#79<eos>  derailed: longer filler, usually a near miss

Reward is 1 when the integer after ``#`` equals a+b and the response ended with ``<eos>`` within the
budget, else 0 (truncated = 0, as in the paper). The derail marker belongs to the prompt: the policy is
never trained on it, and it does not count towards the response length.

The problems are split by a fixed hash: pairs with ``(37*a + b) % 10 == 0`` are held out for eval.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DIGITS = "0123456789"
CHARS = DIGITS + "+=#.?"
SPECIALS = ("<pad>", "<eos>", "<unk>")
VOCAB = list(SPECIALS) + list(CHARS)
PAD, EOS, UNK = 0, 1, 2
DERAIL = "?"
FILLER = "."
ANSWER = "#"
A_RANGE = (10, 99)  # first operand: two digits
B_RANGE = (1, 9)  # second operand: one digit (a carry half of the time)


@dataclass(frozen=True)
class Problem:
    """One prompt: the text the model sees (before any derail marker) and the gold answer."""

    prompt: str
    answer: str
    source: str = "builtin"


def _held_out(a: int, b: int) -> bool:
    return (37 * a + b) % 10 == 0


def all_pairs(eval_split: bool) -> list[tuple[int, int]]:
    return [(a, b) for a in range(A_RANGE[0], A_RANGE[1] + 1) for b in range(B_RANGE[0], B_RANGE[1] + 1) if _held_out(a, b) == eval_split]


def make_problem(a: int, b: int) -> Problem:
    return Problem(prompt=f"{a}+{b}=", answer=str(a + b))


def parse_answer(response: str) -> str | None:
    """The digits after the last ``#`` of a response (eos already stripped), or None."""
    if ANSWER not in response:
        return None
    tail = response.rsplit(ANSWER, 1)[1]
    return tail if tail.isdigit() else None


def builtin_reward(response: str, gold: str, truncated: bool) -> float:
    if truncated:
        return 0.0
    return 1.0 if parse_answer(response) == gold else 0.0


class BuiltinTask:
    """Samples problems and derails rollouts; all randomness comes from the ``random.Random`` passed in."""

    name = "builtin"
    stop_strings: tuple[str, ...] = ()

    def __init__(self, derail_prob: float = 0.5, eval_size: int = 128):
        self.derail_prob = derail_prob
        self.train_pairs = all_pairs(eval_split=False)
        pairs = all_pairs(eval_split=True)
        self.eval_pairs = random.Random(1234).sample(pairs, min(eval_size, len(pairs)))

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        return [make_problem(*rng.choice(self.train_pairs)) for _ in range(n)]

    def rollout_prompts(self, problem: Problem, group_size: int, rng: random.Random) -> list[tuple[str, str]]:
        """The ``group_size`` prompt texts of one group, each tagged ``derailed`` or ``clean``."""
        out = []
        for _ in range(group_size):
            derailed = rng.random() < self.derail_prob
            out.append((problem.prompt + DERAIL, "derailed") if derailed else (problem.prompt, "clean"))
        return out

    def eval_sets(self) -> dict[str, list[tuple[Problem, str, str]]]:
        """Held-out problems; every other one is derailed, so eval measures both modes (greedy)."""
        items = []
        for i, (a, b) in enumerate(self.eval_pairs):
            p = make_problem(a, b)
            derailed = i % 2 == 1 and self.derail_prob > 0
            items.append((p, p.prompt + DERAIL, "derailed") if derailed else (p, p.prompt, "clean"))
        return {"": items}

    def reward(self, response: str, gold: str, truncated: bool) -> float:
        return builtin_reward(response, gold, truncated)


# --- supervised warm-up data for the base model ---------------------------------------------------------


@dataclass(frozen=True)
class WarmupRecipe:
    """How the base model's warm-up data looks: this sets the base policy's behaviour in both modes."""

    clean_filler: tuple[int, int] = (0, 3)  # uniform filler length after a clean prompt
    derailed_filler: tuple[int, int] = (4, 24)  # ... after a derail marker: longer, and room to grow
    derailed_correct: float = 0.0  # P(correct answer | derailed) in the warm-up data: 0.15 let GRPO recover too
    derail_frac: float = 0.5


def warmup_example(rng: random.Random, recipe: WarmupRecipe) -> tuple[str, str]:
    """One (prompt, response) pair of warm-up text; the response ends before ``<eos>``."""
    a, b = rng.randint(*A_RANGE), rng.randint(*B_RANGE)
    while _held_out(a, b):
        a, b = rng.randint(*A_RANGE), rng.randint(*B_RANGE)
    s = a + b
    if rng.random() < recipe.derail_frac:
        n = rng.randint(*recipe.derailed_filler)
        ans = s
        if rng.random() >= recipe.derailed_correct:
            ans = s + rng.randint(1, 9) * rng.choice((-1, 1))
        return f"{a}+{b}={DERAIL}", FILLER * n + ANSWER + str(ans)
    n = rng.randint(*recipe.clean_filler)
    return f"{a}+{b}=", FILLER * n + ANSWER + str(s)
