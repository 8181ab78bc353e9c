"""The two normalization knobs of GRPO vs Dr. GRPO (arXiv 2503.20783), the PPO token loss, and diagnostics.

Pure torch, no I/O: tensors in, tensors out. Shapes are written in comments as ``[B, T]`` (responses x
tokens), ``[N]`` (flat rewards, ``N = num_prompts * G``), ``[P, G]`` (prompts x group), ``V`` (vocab).

Choices made here and why
-------------------------
Advantages (:func:`compute_advantages`), rewards flat with each prompt's ``G`` responses contiguous:

* ``"group"`` - GRPO: ``(r - mean_g) / (std_g + eps)``. Matches oat ``critic_type=grpo``, TRL
  ``scale_rewards="group"``, verl ``norm_adv_by_std_in_grpo=True``.
* ``"batch"`` - Lite PPO: ``(r - mean_g) / (std_batch + eps)``; ``std_batch`` is the std of *all* rewards
  of the call (same ``ddof``), not of the centred advantages. Matches TRL ``scale_rewards="batch"``.
* ``"none"``  - Dr. GRPO: ``r - mean_g``, exactly, never divided (TRL 0.22.0-0.22.2 shipped these two
  inverted; a test pins it). Matches oat ``critic_type=drgrpo``, TRL ``scale_rewards="none"``, verl
  ``norm_adv_by_std_in_grpo=False``.
* ``ddof=1`` (Bessel, as torch, oat, TRL and verl) and ``eps=1e-6`` (verl's; oat uses 1e-8, TRL 1e-4).
  Both are arguments because ddof 0 vs 1 rescales every advantage by sqrt(G/(G-1)) (1.07 at G=8).
* A group whose rewards are all equal gets advantages of exactly 0 (no rounding residue, no NaN even
  with ``eps=0``): it carries no learning signal under any scale.

Token-loss aggregation (:func:`aggregate_loss`), ``token_loss`` and ``mask`` ``[B, T]``:

* ``"seq_mean"``   - GRPO (paper Eq. 3): ``mean_i(sum_t l*m / |o_i|)``; TRL ``grpo``, verl
  ``seq-mean-token-mean``. The 1/|o_i| is the length bias: short responses get larger per-token weight.
  ``|o_i|`` is clamped to >= 1, so an empty response contributes 0, not NaN.
* ``"token_mean"`` - DAPO: ``sum l*m / sum m``; TRL ``dapo``, verl ``token-mean``.
* ``"max_tokens"`` - Dr. GRPO: ``mean_i(sum_t l*m / L_max)``, ``L_max`` one constant for the run (oat
  divides by ``generate_max_length``; TRL ``dr_grpo``; verl ``seq-mean-token-sum-norm`` with a constant).
* ``"seq_sum"``    - ``mean_i(sum_t l*m)``, no length normalizer; verl ``seq-mean-token-sum``.

Every denominator is a *global* count, never a property of the micro-batch: ``num_sequences`` (the
responses of the whole mini-batch) and ``num_tokens`` (its response tokens, for ``token_mean``). Summing
the per-micro-batch losses then equals the full-batch loss exactly in every mode, which is the bug TRL
(DAPO denominator, Liger / GA) and verl (per-micro-batch ``token-mean``, padded-length norm) shipped.
The defaults are the batch's own counts, correct when there is no accumulation. ``num_sequences``
counts every row, empty ones included, so it is a constant of the batch shape.

PPO loss (:func:`ppo_token_loss`): ``-min(rho*A, clip(rho, 1-eps, 1+eps_high)*A) + beta*k3`` per token,
``rho = exp(logp - old_logp)``; ``old_logp`` and ``ref_logp`` are detached here so passing an undetached
``old_logp`` cannot silently zero the gradient. ``k3 = exp(ref - logp) - (ref - logp) - 1`` (Schulman's
unbiased, non-negative estimator, as DeepSeekMath/TRL/verl), not clamped.

Difficulty bias (:func:`group_pass_stats`). For binary rewards, a group of ``G`` with ``k`` correct
(pass rate ``p = k/G``) has centred advantages ``1-p`` (k times) and ``-p`` (G-k times), so

* ``"none"``:  mean_i |A_i| = 2 p (1-p);
* ``"group"``: std_g = s = sqrt(G p (1-p) / (G - ddof)) and
  mean_i |A_i| = 2 p (1-p) / (s + eps) = 2 sqrt(p (1-p)) * sqrt((G - ddof) / G) * s / (s + eps);
  with the defaults (ddof=1, eps=1e-6) that is 2 sqrt(p (1-p) (G-1)/G) to within 3e-6 relative for G=8
  (s >= sqrt(1/G) on any mixed group), and exactly 0 at p in {0, 1}.

At G=8: 1/8 correct gives 0.21875 (none) vs 0.61872 (group); 4/8 gives 0.5 vs 0.93541. Mean |A| peaks at
p = 1/2 in both modes; what std scaling changes is the *relative* weight: each group is multiplied by
1/(s+eps), 2.83 for the 1/8 group vs 1.87 for the 4/8 group, so the 1/8 group's share relative to the
4/8 group rises from 0.4375 to 0.661. Std scaling up-weights near-all-right and near-all-wrong groups
relative to mixed ones (indeed every mixed group ends with the same sum of A^2, G - ddof, up to eps).

Log-prob helpers compute ``log_softmax`` once over ``V`` and derive everything from it.
"""

from __future__ import annotations

import torch
from torch import Tensor


# ------------------------------------------------------------------------------------------------
# advantages
# ------------------------------------------------------------------------------------------------
def _grouped(x: Tensor, group_size: int, name: str = "rewards") -> Tensor:
    """[N] -> [P, G]; raises ValueError unless x is 1-D with N a positive multiple of group_size."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if x.dim() != 1:
        raise ValueError(f"{name} must be flat [num_prompts*group_size], got shape {tuple(x.shape)}")
    if x.numel() == 0 or x.numel() % group_size:
        raise ValueError(f"{name} has {x.numel()} entries, not a positive multiple of group_size={group_size}")
    return x.view(-1, group_size)  # [P, G]


def compute_advantages(
    rewards: Tensor,  # [N], N = num_prompts * group_size, groups contiguous
    group_size: int,
    scale: str = "group",
    eps: float = 1e-6,
    ddof: int = 1,
) -> Tensor:  # [N], same dtype as rewards
    """Group-relative advantages: ``r - mean_g``, divided by the group's std, the batch's std, or nothing."""
    if scale not in ("group", "batch", "none"):  # config.ADV_SCALES (tested to agree)
        raise ValueError(f"scale must be one of group, batch, none, got {scale!r}")
    if ddof < 0:
        raise ValueError(f"ddof must be >= 0, got {ddof}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    r = _grouped(rewards, group_size)  # [P, G]
    flat_group = r.amax(-1, keepdim=True) == r.amin(-1, keepdim=True)  # [P, 1], no signal in the group
    centred = torch.where(flat_group, torch.zeros_like(r), r - r.mean(-1, keepdim=True))  # [P, G]
    if scale == "none":
        return centred.reshape(-1)  # [N]
    if scale == "group":
        if ddof >= group_size:
            raise ValueError(f"ddof={ddof} needs group_size > ddof for a group std")
        std = r.std(-1, correction=ddof, keepdim=True)  # [P, 1]
    else:  # batch
        if ddof >= rewards.numel():
            raise ValueError(f"ddof={ddof} needs more than {ddof} rewards for a batch std")
        std = rewards.std(correction=ddof)  # []
    adv = torch.where(flat_group, centred, centred / (std + eps))  # [P, G]; flat groups stay 0 even at eps=0
    return adv.reshape(-1)  # [N]


# ------------------------------------------------------------------------------------------------
# loss aggregation
# ------------------------------------------------------------------------------------------------
def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over mask (all of it, or along dim); an empty mask gives 0, not NaN."""
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1)  # []
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1)


def aggregate_loss(
    token_loss: Tensor,  # [B, T]
    mask: Tensor,  # [B, T] bool or float, 1 on response tokens
    mode: str,
    max_tokens: int | None = None,  # L_max, required by "max_tokens", ignored otherwise
    *,
    num_sequences: int | Tensor | None = None,  # global responses in the mini-batch; default B
    num_tokens: int | Tensor | None = None,  # global response tokens ("token_mean"); default mask.sum()
) -> Tensor:  # []
    """Reduce a per-token loss to the scalar to backpropagate; see the module docstring for the modes."""
    if mode not in ("seq_mean", "token_mean", "max_tokens", "seq_sum"):  # config.LOSS_AGGS (tested to agree)
        raise ValueError(f"loss aggregation mode must be one of seq_mean, token_mean, max_tokens, seq_sum, got {mode!r}")
    if mode == "max_tokens" and (max_tokens is None or max_tokens <= 0):
        raise ValueError(f"mode 'max_tokens' needs a positive max_tokens (L_max), got {max_tokens!r}")
    if token_loss.dim() != 2 or mask.shape != token_loss.shape:
        raise ValueError(f"token_loss and mask must both be [B, T], got {tuple(token_loss.shape)} "
                         f"and {tuple(mask.shape)}")
    for name, v in (("num_sequences", num_sequences), ("num_tokens", num_tokens)):
        if isinstance(v, (int, float)) and v <= 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    m = mask.to(token_loss.dtype)  # [B, T]
    masked = token_loss * m  # [B, T]
    if mode == "token_mean":
        denom = m.sum().clamp(min=1) if num_tokens is None else num_tokens
        return masked.sum() / denom  # []
    n_seq = token_loss.shape[0] if num_sequences is None else num_sequences
    per_seq = masked.sum(-1)  # [B]
    if mode == "seq_mean":
        per_seq = per_seq / m.sum(-1).clamp(min=1)  # [B], 1/|o_i|: the length bias
    elif mode == "max_tokens":
        per_seq = per_seq / max_tokens  # [B], one constant for the run
    return per_seq.sum() / n_seq  # []


# ------------------------------------------------------------------------------------------------
# PPO token loss
# ------------------------------------------------------------------------------------------------
def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 estimator of KL(pi || ref) per token: exp(ref - logp) - (ref - logp) - 1 >= 0; same shape."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def ppo_token_loss(
    logp: Tensor,  # [B, T] log pi_theta(o_t), with grad
    old_logp: Tensor,  # [B, T] log pi_old(o_t) (detached here)
    advantages: Tensor,  # [B] one per response (or [B, T])
    epsilon: float = 0.2,
    epsilon_high: float | None = None,  # None -> epsilon (symmetric)
    ref_logp: Tensor | None = None,  # [B, T] log pi_ref(o_t) (detached here), needed when beta > 0
    beta: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:  # [B, T] loss, {ratio, clipped, kl: [B, T]} detached
    """Per-token clipped surrogate ``-min(rho*A, clip(rho, 1-eps, 1+eps_high)*A) + beta*k3``."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp (the reference model's log-probs) for the KL term")
    eps_high = epsilon if epsilon_high is None else epsilon_high
    adv = advantages.unsqueeze(-1) if advantages.dim() == logp.dim() - 1 else advantages  # [B, 1] or [B, T]
    ratio = torch.exp(logp - old_logp.detach())  # [B, T]
    unclipped = ratio * adv  # [B, T]
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + eps_high) * adv  # [B, T]
    loss = -torch.minimum(unclipped, clipped)  # [B, T]
    if beta > 0:
        kl = k3_kl(logp, ref_logp.detach())  # [B, T]
        loss = loss + beta * kl
    else:
        kl = torch.zeros_like(logp)
    stats = {
        "ratio": ratio.detach(),
        "clipped": (clipped < unclipped).detach(),  # the min picked the clipped term and it differs
        "kl": kl.detach(),
    }
    return loss, stats


# ------------------------------------------------------------------------------------------------
# diagnostics
# ------------------------------------------------------------------------------------------------
def group_pass_stats(
    rewards: Tensor,  # [N], groups contiguous; reward > 0.5 counts as correct
    advantages: Tensor,  # [N], from compute_advantages
    group_size: int,
) -> dict[str, Tensor]:  # {"count": long [G+1], "abs_adv": [G+1], NaN where count == 0}
    """Per number of correct responses k in a group: how many groups, and their mean of mean_i |A_i|."""
    r = _grouped(rewards, group_size)  # [P, G]
    a = _grouped(advantages.detach(), group_size, "advantages")  # [P, G]
    if a.shape != r.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and advantages {tuple(advantages.shape)} differ")
    if not a.is_floating_point():
        a = a.to(torch.get_default_dtype())
    k = (r > 0.5).sum(-1)  # [P] long, correct responses per group
    count = torch.bincount(k, minlength=group_size + 1)  # [G+1]
    total = torch.zeros(group_size + 1, dtype=a.dtype, device=a.device).index_add_(0, k, a.abs().mean(-1))
    abs_adv = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))
    return {"count": count, "abs_adv": abs_adv}


# ------------------------------------------------------------------------------------------------
# log-prob helpers
# ------------------------------------------------------------------------------------------------
def gather_logprobs(logits: Tensor, ids: Tensor) -> Tensor:
    """log softmax(logits)[ids]: logits [..., V], ids [...] long -> [...]; caller aligns the shift."""
    logp = torch.log_softmax(logits, dim=-1)  # [..., V], the one V-sized buffer
    return logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # [...]


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy of softmax(logits) over the last dim: [B, T, V] -> [B, T], from one log_softmax."""
    logp = torch.log_softmax(logits, dim=-1)  # [B, T, V]
    # sum_v p*logp as a batched dot product: no third V-sized buffer for the product.
    return -torch.einsum("...v,...v->...", logp.exp(), logp)  # [B, T]
