"""One step's rollouts: prompts, one sampled response each, the task's rewards; and DAPO's dynamic sampling.

A step draws ``prompts_per_step`` problems and ``G`` rollout prompts each, samples one response per rollout
prompt and scores it (:func:`rollout`). With ``dynamic_sampling`` (DAPO, arXiv 2503.14476) a group whose
correctness does not vary (all right or all wrong, truncated responses left out under ``mask_truncated``:
zero advantage, no signal) is dropped and new rounds are
drawn until ``prompts_per_step`` groups with a signal are kept or ``dynamic_sampling_max_rounds`` rounds were
drawn; then the step trains on the groups it has (verl stops with an error instead). Correctness, not the
shaped reward, decides (verl's ``filter_groups.metric=acc``), so the overlong penalty alone never keeps a
group. Everything sampled is logged (``train/*`` describes the policy); only the kept groups are trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from drgrpo_cli.batch import Batch


@dataclass
class Prompts:
    """Rollout prompts, flat over N: text, task tag, gold answer, token ids."""

    texts: list[str] = field(default_factory=list)
    tags: list[str | None] = field(default_factory=list)
    golds: list[str] = field(default_factory=list)
    ids: list[list[int]] = field(default_factory=list)


def rollout(run: Any) -> tuple[Batch, float]:
    """This step's prompts (``prompts_per_step`` problems, G rollout prompts each), one sampled response to
    each, and its reward: one Batch; and the seconds spent generating."""
    cfg, task = run.cfg, run.task
    prompts = Prompts()
    for p in task.sample(cfg.prompts_per_step, run.rng):
        for rp in task.rollout_prompts(p, cfg.group_size, run.rng):
            prompts.texts.append(rp.prompt)
            prompts.tags.append(rp.tag)
            prompts.golds.append(p.answer)
    prompts.ids = [run.encode(t) for t in prompts.texts]
    t0 = time.time()
    samples = run.backend.generate(prompts.ids, max_new_tokens=cfg.max_tokens, temperature=cfg.temperature,
                                   top_p=cfg.top_p)
    gen_s = time.time() - t0
    return scored(run, prompts, samples), gen_s


def scored(run: Any, prompts: Prompts, samples) -> Batch:
    """The decoded responses and the task's reward of each: one Batch."""
    texts = [run.decode(s.ids) for s in samples]
    rewards = [run.task.reward(t, g, s.truncated) for t, g, s in zip(texts, prompts.golds, samples)]
    return Batch(prompts.ids, [s.ids for s in samples], texts, rewards, [s.truncated for s in samples], prompts.tags,
                 prompts.texts)


def merged(batches: list[Batch]) -> Batch:
    """The batches one after another."""
    return Batch(*[sum((getattr(b, f.name) for b in batches), []) for f in fields(Batch)])


def rows_of(batch: Batch, rows: list[int]) -> Batch:
    """The rows ``rows`` of ``batch``, in that order."""
    return Batch(*[[getattr(batch, f.name)[i] for i in rows] for f in fields(Batch)])


def varied_groups(rewards: list[float], group_size: int, truncated: list[bool] | None = None) -> list[int]:
    """The groups (indices) whose correctness (reward > 0.5) is not the same for every response; with
    ``truncated`` (``mask_truncated``: those rows are out of the loss), over the other responses only."""
    out = []
    for g in range(len(rewards) // group_size):
        rows = range(g * group_size, (g + 1) * group_size)
        ok = {rewards[i] > 0.5 for i in rows if truncated is None or not truncated[i]}
        if len(ok) > 1:
            out.append(g)
    return out


@dataclass
class Collected:
    """A step's rollouts: everything sampled (``seen``, logged), what is trained on (``train``), the seconds
    spent generating, and for dynamic sampling the rounds drawn, the groups seen, those with a signal among
    them, and those kept (None without it)."""

    seen: Batch
    train: Batch
    gen_s: float = 0.0
    rounds: int | None = None
    groups_seen: int | None = None
    groups_varied: int | None = None
    groups_kept: int | None = None


def collect(run: Any) -> Collected:
    """One round of :func:`rollout`; with ``dynamic_sampling``, rounds until enough groups with a signal."""
    cfg, G = run.cfg, run.cfg.group_size
    first, gen_s = rollout(run)
    if not cfg.dynamic_sampling:
        return Collected(first, first, gen_s)

    def signal(b: Batch) -> list[int]:
        return varied_groups(b.rewards, G, b.truncated if cfg.mask_truncated else None)

    seen, kept = [first], [(first, g) for g in signal(first)]
    while len(kept) < cfg.prompts_per_step and len(seen) < cfg.dynamic_sampling_max_rounds:
        b, s = rollout(run)
        seen.append(b)
        gen_s += s
        kept += [(b, g) for g in signal(b)]
    varied = len(kept)
    kept = kept[:cfg.prompts_per_step]  # arrival order, as verl trims
    train = merged([rows_of(b, list(range(g * G, (g + 1) * G))) for b, g in kept])
    return Collected(merged(seen), train, gen_s, len(seen), sum(len(b.rewards) // G for b in seen), varied,
                     len(kept))
