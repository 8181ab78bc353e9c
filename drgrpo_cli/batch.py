"""One step's rollouts (:class:`Batch`, flat over prompts x G responses) and the metrics the trainer logs
from them: reward, accuracy and lengths split by correctness and by task tag (the built-in task's
``derailed``/``clean`` states), and each tag's mean token entropy. An empty selection is NaN (``null`` in
metrics.jsonl), never a made-up 0.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass
class Batch:
    """One step's rollouts, flat over ``N = prompts * G`` responses."""

    prompts: list[list[int]]
    responses: list[list[int]]
    texts: list[str]
    rewards: list[float]
    truncated: list[bool]
    tags: list[str | None]
    prompt_texts: list[str]


def mean_or_nan(xs) -> float:
    """The mean, NaN for no values (a row's ``null``; :func:`drgrpo_cli.metrics.mean` skips those)."""
    xs = list(xs)
    return float(statistics.fmean(xs)) if xs else float("nan")


def rollout_metrics(batch: Batch, prefix: str) -> dict[str, float]:
    """Reward, accuracy and lengths, split by correctness and by task tag."""
    lens = [len(r) for r in batch.responses]
    ok = [r > 0.5 for r in batch.rewards]
    m = {
        f"{prefix}/reward": mean_or_nan(batch.rewards),
        f"{prefix}/accuracy": mean_or_nan(float(o) for o in ok),
        f"{prefix}/len_mean": mean_or_nan(lens),
        f"{prefix}/len_correct": mean_or_nan(l for l, o in zip(lens, ok) if o),
        f"{prefix}/len_incorrect": mean_or_nan(l for l, o in zip(lens, ok) if not o),
        f"{prefix}/truncated_frac": mean_or_nan(float(t) for t in batch.truncated),
    }
    for tag in sorted({t for t in batch.tags if t}):
        idx = [i for i, t in enumerate(batch.tags) if t == tag]
        m[f"{prefix}/{tag}/frac"] = len(idx) / len(batch.tags)
        m[f"{prefix}/{tag}/accuracy"] = mean_or_nan(float(ok[i]) for i in idx)
        m[f"{prefix}/{tag}/len"] = mean_or_nan(lens[i] for i in idx)
        m[f"{prefix}/{tag}/len_correct"] = mean_or_nan(lens[i] for i in idx if ok[i])
        m[f"{prefix}/{tag}/len_incorrect"] = mean_or_nan(lens[i] for i in idx if not ok[i])
    return m


def tag_entropy(tags: list[str | None], ent_sum, tokens) -> dict[str, float]:
    """Mean token entropy of each tag's responses: ``ent_sum`` and ``tokens`` are per-response ``[N]`` sums."""
    out = {}
    for tag in sorted({t for t in tags if t}):
        idx = [i for i, t in enumerate(tags) if t == tag]
        n = float(sum(float(tokens[i]) for i in idx))
        out[tag] = sum(float(ent_sum[i]) for i in idx) / n if n else float("nan")
    return out
