"""One step's policy update: PPO epochs over mini-batches, gradients accumulated over micro-batches.

Log-probs come from ``logits / temperature``, the distribution the rollouts were sampled from. With one
epoch and one mini-batch (the paper's recipe) the sampling policy is the one updated, so the old log-probs
are ``logp.detach()`` and no second forward is spent; otherwise they (and the reference model's, when
``beta`` > 0) are computed once, before any update. Each micro-batch's loss is normalised by its
mini-batch's counts over its valid rows (:func:`drgrpo_cli.objectives.loss_normalizers`; ``mask_truncated``
leaves truncated rows out of every count), so the split (:mod:`drgrpo_cli.microbatch`) never changes the
gradient. A NaN/Inf loss or gradient norm is caught before ``opt.step()``: skipped (``skip_nonfinite``) or
raised as NonFiniteUpdate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

# module attributes, looked up at call time: tests and benchmarks/gpu_check.py patch these functions
from drgrpo_cli import microbatch, objectives, packing


class NonFiniteUpdate(ArithmeticError):
    """A NaN/Inf ``train/loss`` or ``train/grad_norm`` before ``opt.step()``: the update never reached the weights."""

    def __init__(self, key: str, value: float):
        super().__init__(f"non-finite {key} ({value})")
        self.key, self.value = key, value


@dataclass
class Rows:
    """The rows an update trains on: prompt and response ids, their advantages ``[N]``, and which rows are in
    the loss ``[N]`` bool (None: all; ``mask_truncated`` leaves truncated responses out). Rows come in
    contiguous groups of ``group_size``."""

    prompts: Sequence[Sequence[int]]
    responses: Sequence[Sequence[int]]
    adv: Tensor
    valid: Tensor | None = None


@dataclass
class UpdateStats:
    """What the update logs: loss and gradient norm per optimizer step; entropy, clip share and KL per
    micro-batch (each over its mini-batch's tokens); micro-batches run; updates skipped; the response mask
    ``[N, R]``; and each response's entropy sum over the first epoch ``[N]`` (for the per-tag entropy)."""

    mask: Tensor
    row_entropy: Tensor
    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    clip: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    micro: int = 0
    skipped: int = 0


@dataclass
class _Ctx:
    """One update's fixed inputs, so the helpers below take one argument for them."""

    cfg: Any  # the run's TrainConfig
    model: Any
    ref: Any  # the frozen reference model (beta > 0), else None
    rows: Rows
    budget: int | None  # micro-batch token budget (None: a count split)
    pad_id: int
    mask: Tensor  # [N, R] on the device
    valid: Tensor | None = None  # [N] bool on the device: the rows in the loss (policy_update)
    groups: Tensor | None = None  # [N] on the device: each row's group (policy_update)

    def split(self, mb: Tensor) -> list[Tensor]:
        """The micro-batches (row-index tensors) of the mini-batch ``mb``; none for an empty one (dynamic sampling
        may keep fewer rows than there are mini- or micro-batches)."""
        if not len(mb):
            return []
        if self.cfg.micro_batches > 1:  # equal row counts (validate: it divides; fewer rows after dynamic sampling)
            return [m for m in mb.tensor_split(self.cfg.micro_batches) if len(m)]
        return microbatch.plan_micro_batches(mb, [len(p) for p in self.rows.prompts],
                                             [len(r) for r in self.rows.responses], self.budget)

    def all_micro_batches(self):
        """Every micro-batch of the batch in its original order, mini-batch by mini-batch: the split the update
        uses, so a forward over them fits wherever the update fits."""
        for part in torch.arange(self.mask.shape[0]).tensor_split(self.cfg.mini_batches):
            yield from self.split(part)

    def score(self, m, rows: Tensor, with_entropy: bool = False):
        """(logp, entropy, mask) ``[len(rows), R]`` of the batch rows ``rows`` under model ``m``."""
        idx = rows.tolist()
        prompts, responses = [self.rows.prompts[i] for i in idx], [self.rows.responses[i] for i in idx]
        return packing.packed_logprobs(m, prompts, responses, self.cfg.temperature, pad_id=self.pad_id,
                                       width=self.mask.shape[1], with_entropy=with_entropy)


def policy_update(model, ref, opt, cfg, rows: Rows, *, budget: int | None, pad_id: int) -> UpdateStats:
    """Train ``model`` on one step's rows (``cfg.ppo_epochs`` passes of ``cfg.mini_batches`` optimizer steps);
    raises NonFiniteUpdate (unless ``cfg.skip_nonfinite``)."""
    model.train()
    dev = cfg.device
    mask = packing.response_mask(rows.responses).to(dev)  # [N, R]
    N = mask.shape[0]
    valid = (torch.ones(N, dtype=torch.bool) if rows.valid is None else rows.valid.bool()).to(dev)  # [N]
    ctx = _Ctx(cfg, model, ref, rows, budget, pad_id, mask, valid, torch.arange(N, device=dev) // cfg.group_size)
    old_logp, ref_logp = _fixed_logprobs(ctx)
    stats = UpdateStats(mask=mask, row_entropy=torch.zeros(N))
    adv_d = rows.adv.to(dev)
    for epoch in range(cfg.ppo_epochs):
        order = torch.randperm(N) if cfg.mini_batches > 1 else torch.arange(N)
        for mb in order.tensor_split(cfg.mini_batches):
            if not len(mb):  # fewer rows than mini-batches (dynamic sampling kept few groups)
                continue
            _optimizer_step(ctx, opt, mb, adv_d, old_logp, ref_logp, stats, first_epoch=epoch == 0)
    return stats


def sequence_kl(model, ref, cfg, rows: Rows, *, budget: int | None, pad_id: int) -> tuple[Tensor, int]:
    """Each response's summed KL estimate ``sum_t k(pi, ref)`` ``[N]`` (``cfg.kl_estimator``; no gradient) under the
    policy that sampled it, and the response tokens: the penalty of ``kl_in = "reward"`` (as verl's
    ``use_kl_in_reward``: ``r - beta * sum_t kl_t`` before the advantages)."""
    mask = packing.response_mask(rows.responses).to(cfg.device)  # [N, R]
    ctx = _Ctx(cfg, model, ref, rows, budget, pad_id, mask)
    out = torch.zeros(mask.shape[0], device=cfg.device)
    with torch.no_grad():
        for sl in ctx.all_micro_batches():
            k = objectives.kl_penalty(ctx.score(model, sl)[0], ctx.score(ref, sl)[0], cfg.kl_estimator)  # [n, R]
            out[sl.to(cfg.device)] = (k * mask[sl.to(cfg.device)]).sum(-1)
    return out, int(mask.sum().item())


def _fixed_logprobs(ctx: _Ctx) -> tuple[Tensor | None, Tensor | None]:
    """Old (off-policy) and reference log-probs ``[N, R]``, computed once before any update, over the batch
    in its original order (None where not needed: on-policy old log-probs are ``logp.detach()``)."""
    cfg, dev = ctx.cfg, ctx.cfg.device
    on_policy = cfg.ppo_epochs == 1 and cfg.mini_batches == 1
    if on_policy and ctx.ref is None:
        return None, None
    N, R = ctx.mask.shape
    with torch.no_grad():
        old_logp = None if on_policy else torch.zeros(N, R, device=dev)
        ref_logp = None if ctx.ref is None else torch.zeros(N, R, device=dev)
        for sl in ctx.all_micro_batches():
            if old_logp is not None:
                old_logp[sl.to(dev)] = ctx.score(ctx.model, sl)[0]
            if ref_logp is not None:
                ref_logp[sl.to(dev)] = ctx.score(ctx.ref, sl)[0]
    return old_logp, ref_logp


def _optimizer_step(ctx: _Ctx, opt, mb: Tensor, adv_d: Tensor, old_logp: Tensor | None, ref_logp: Tensor | None,
                    stats: UpdateStats, *, first_epoch: bool) -> None:
    """One optimizer step over the mini-batch ``mb``: gradients accumulated over its micro-batches with the
    mini-batch's counts (over its valid rows), clipped, checked for NaN/Inf, applied."""
    cfg, model, mask, valid = ctx.cfg, ctx.model, ctx.mask, ctx.valid
    opt.zero_grad(set_to_none=True)
    mb_d = mb.to(mask.device)
    mb_tokens = int(mask[mb_d].sum().item())
    norms = objectives.loss_normalizers(mask[mb_d], ctx.groups[mb_d], valid[mb_d])
    group_tokens = torch.zeros(mask.shape[0], dtype=norms["group_tokens"].dtype, device=mask.device)  # [N]
    group_tokens[mb_d] = norms["group_tokens"]  # each row of mb: its group's tokens within mb
    beta_loss = cfg.beta if cfg.kl_in == "loss" else 0.0  # kl_in reward: the KL went into the rewards
    mb_loss = 0.0
    for micro in ctx.split(mb):
        stats.micro += 1
        logp, ent, _ = ctx.score(model, micro, with_entropy=True)  # [n, R]; 0 past each response
        old = logp.detach() if old_logp is None else old_logp[micro]
        tl, st = objectives.ppo_token_loss(
            logp, old, adv_d[micro], cfg.epsilon, cfg.epsilon_high,
            ref_logp=None if ref_logp is None or not beta_loss else ref_logp[micro], beta=beta_loss,
            ratio_level=cfg.ratio_level, policy_loss=cfg.policy_loss, mask=mask[micro], kl_estimator=cfg.kl_estimator)
        loss_mask = mask[micro] * valid[micro].unsqueeze(-1)  # [n, R]: a masked row contributes nothing
        loss = objectives.aggregate_loss(tl, loss_mask, cfg.loss_agg, cfg.loss_max_tokens,
                                         num_sequences=norms["num_sequences"], num_tokens=norms["num_tokens"],
                                         group_tokens=group_tokens[micro], num_prompts=norms["num_prompts"])
        loss.backward()
        mb_loss += loss.item()
        with torch.no_grad():
            m = mask[micro]
            stats.entropy.append(ent.sum().item() / max(1, mb_tokens))
            if first_epoch:
                stats.row_entropy[micro] = ent.sum(-1).float().cpu()
            stats.clip.append((st["clipped"].float() * m).sum().item() / max(1, mb_tokens))
            stats.kl.append((st["kl"] * m).sum().item() / max(1, mb_tokens))
    gn = float(torch.nn.utils.clip_grad_norm_(
        model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")))
    bad = [(k, v) for k, v in (("train/loss", mb_loss), ("train/grad_norm", gn)) if not math.isfinite(v)]
    if bad and cfg.skip_nonfinite:  # this update never reaches the weights
        opt.zero_grad(set_to_none=True)
        stats.skipped += 1
        return
    if bad:
        raise NonFiniteUpdate(*bad[0])
    opt.step()
    stats.loss.append(mb_loss)
    stats.grad_norm.append(gn)
