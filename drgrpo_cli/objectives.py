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
* ``"mean"``  - MaxRL: ``(r - b) / (mean_g + eps)``, for rewards >= 0 (a group with a signal and a mean <= 0 is
  an error). ``baseline="loo"`` (RLOO) replaces ``mean_g`` in the numerator by the mean of the other rows,
  with any scale. ``valid`` leaves masked rows out of every statistic (their advantage is exactly 0).
* :func:`length_weights` (Delta-L) and :func:`overlong_penalty` (DAPO) shape advantages and rewards.
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
* ``"prompt_mean"`` - ``mean_p(sum over the group's tokens / the group's tokens)``; SkyRL ``prompt_mean``.

Every denominator is a *global* count, never a property of the micro-batch: ``num_sequences`` (the
responses of the whole mini-batch), ``num_tokens`` (its response tokens, for ``token_mean``), and for
``prompt_mean`` each row's group tokens and the number of groups (:func:`loss_normalizers` counts them all,
over valid rows only). Summing
the per-micro-batch losses then equals the full-batch loss exactly in every mode, which is the bug TRL
(DAPO denominator, Liger / GA) and verl (per-micro-batch ``token-mean``, padded-length norm) shipped.
The defaults are the batch's own counts, correct when there is no accumulation. ``num_sequences``
counts every row, empty ones included, so it is a constant of the batch shape.

PPO loss (:func:`ppo_token_loss`; also GSPO's sequence ratio and CISPO, and the estimators of
:func:`kl_penalty`): ``-min(rho*A, clip(rho, 1-eps, 1+eps_high)*A) + beta*k3`` per token,
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
    *,
    baseline: str = "group",
    valid: Tensor | None = None,  # [N] bool: the rows that count (None: all); the others get 0
) -> Tensor:  # [N], same dtype as rewards
    """Group-relative advantages ``(r - b) / d``: the baseline ``b`` is the group mean (``"group"``) or the
    mean of the other valid rows (``"loo"``); ``d`` is the group's std, the batch's std, the group's mean
    reward (``"mean"``) or 1 (``"none"``). Every statistic is over the valid rows only."""
    if scale not in ("group", "batch", "none", "mean"):  # config.ADV_SCALES (tested to agree)
        raise ValueError(f"scale must be one of group, batch, none, mean, got {scale!r}")
    if baseline not in ("group", "loo"):  # config.BASELINES
        raise ValueError(f"baseline must be one of group, loo, got {baseline!r}")
    if ddof < 0:
        raise ValueError(f"ddof must be >= 0, got {ddof}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    r = _grouped(rewards, group_size)  # [P, G]
    v = torch.ones_like(r, dtype=torch.bool) if valid is None else _grouped(valid, group_size, "valid").bool()
    n = v.sum(-1, keepdim=True)  # [P, 1] valid rows per group
    inf = torch.full_like(r, float("inf"))
    flat = torch.where(v, r, inf).amin(-1, keepdim=True) >= torch.where(v, r, -inf).amax(-1, keepdim=True)  # [P, 1]
    total = torch.where(v, r, torch.zeros_like(r)).sum(-1, keepdim=True)  # [P, 1]
    every = valid is None or bool(v.all())  # then torch's own mean and std: the exact numbers of before
    mean = r.mean(-1, keepdim=True) if every else total / n.clamp(min=1)  # [P, 1]
    if baseline == "group":
        centred = r - mean  # [P, G]
    else:  # leave-one-out: the mean of the other valid rows of the group
        centred = r - (total - r) / (n - 1).clamp(min=1)  # [P, G]
    dead = flat | ~v  # no signal: a group whose valid rewards are all equal (or <2 valid rows), or a masked row
    centred = torch.where(dead, torch.zeros_like(r), centred)  # [P, G]; exactly 0, no float residue
    if scale == "none":
        return centred.reshape(-1)  # [N]
    if scale == "group":
        if ddof >= group_size:
            raise ValueError(f"ddof={ddof} needs group_size > ddof for a group std")
        if every:
            denom = r.std(-1, correction=ddof, keepdim=True) + eps  # [P, 1]
        else:
            dev = torch.where(v, r - mean, torch.zeros_like(r))
            denom = ((dev * dev).sum(-1, keepdim=True) / (n - ddof).clamp(min=1)).sqrt() + eps  # [P, 1]
    elif scale == "batch":
        kept = rewards[v.reshape(-1)]
        if ddof >= kept.numel():
            if bool(dead.all()):  # e.g. every row masked: no signal to scale
                return centred.reshape(-1)  # [N], all exactly 0
            raise ValueError(f"ddof={ddof} needs more than {ddof} rewards for a batch std")
        denom = kept.std(correction=ddof) + eps  # []
    else:  # mean (MaxRL): relative to the group's success rate; defined for rewards >= 0
        if bool(((mean <= 0) & ~flat).any()):
            raise ValueError("scale 'mean' needs a positive mean reward in every group with a signal")
        denom = mean + eps  # [P, 1]
    adv = torch.where(dead, centred, centred / denom)  # [P, G]; dead rows stay exactly 0 even at eps=0
    return adv.reshape(-1)  # [N]


def length_weights(
    lengths: Tensor,  # [N] response lengths in tokens
    group_size: int,
    alpha: float,
    valid: Tensor | None = None,  # [N] bool (None: all)
) -> Tensor:  # [N] float: L_i^-alpha / mean over the group's valid rows of L_j^-alpha
    """Delta-L's per-response weights (arXiv 2509.07558): ``A'_i = A_i * w_i``; all ones at alpha = 0.
    Lengths are clamped to >= 1; a masked row gets weight 0."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    L = lengths if lengths.is_floating_point() else lengths.to(torch.get_default_dtype())  # a float dtype is kept
    L = _grouped(L, group_size, "lengths").clamp(min=1)  # [P, G]
    v = torch.ones_like(L, dtype=torch.bool) if valid is None else _grouped(valid, group_size, "valid").bool()
    if alpha == 0:
        return v.to(L.dtype).reshape(-1)
    x = torch.where(v, L.pow(-alpha), torch.zeros_like(L))  # [P, G]
    mean = x.sum(-1, keepdim=True) / v.sum(-1, keepdim=True).clamp(min=1)  # [P, 1]
    return torch.where(v, x / mean.clamp(min=torch.finfo(L.dtype).tiny), torch.zeros_like(L)).reshape(-1)


def overlong_penalty(
    lengths: Tensor,  # [N] response lengths in tokens
    max_tokens: int,  # L_max
    buffer: int,  # L_cache: the penalty ramps over the last `buffer` tokens before L_max
    factor: float = 1.0,
) -> Tensor:  # [N] float, in [-factor, 0]
    """DAPO's soft overlong penalty (arXiv 2503.14476, Eq. 13): 0 up to ``L_max - L_cache``, then
    ``(L_max - L_cache - L) / L_cache`` down to -1 at ``L_max``, -1 beyond; times ``factor``."""
    if buffer < 1 or buffer > max_tokens:
        raise ValueError(f"buffer must be in [1, max_tokens={max_tokens}], got {buffer}")
    L = lengths if lengths.is_floating_point() else lengths.to(torch.get_default_dtype())  # a float dtype is kept
    return factor * ((max_tokens - buffer - L) / buffer).clamp(min=-1.0, max=0.0)


# ------------------------------------------------------------------------------------------------
# loss aggregation
# ------------------------------------------------------------------------------------------------
def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over mask (all of it, or along dim); an empty mask gives 0, not NaN."""
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1)  # []
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1)


def loss_normalizers(
    mask: Tensor,  # [B, T] response-token mask of a whole mini-batch
    groups: Tensor,  # [B] long, the prompt (group) of each row
    valid: Tensor | None = None,  # [B] bool: rows in the loss (None: all)
) -> dict:  # {num_sequences: int, num_tokens: int, group_tokens: [B] float64, num_prompts: int}
    """The denominators of :func:`aggregate_loss` for one mini-batch, counted over its valid rows only (a
    masked row counts nowhere: not as a sequence, a token, or a prompt). Slice ``group_tokens`` with the rows
    of each micro-batch; the counts stay those of the mini-batch, so the split never changes the gradient."""
    v = torch.ones(mask.shape[0], dtype=torch.bool, device=mask.device) if valid is None else valid.bool()
    tokens = mask.to(torch.float64).sum(-1) * v  # [B]
    _, inv = torch.unique(groups, return_inverse=True)  # [B] dense group index
    per_group = torch.zeros(int(inv.max()) + 1 if len(inv) else 0, dtype=torch.float64, device=mask.device)
    per_group.index_add_(0, inv, tokens)
    has_valid = torch.zeros_like(per_group).index_add_(0, inv, v.to(torch.float64)) > 0
    return {"num_sequences": max(1, int(v.sum())), "num_tokens": max(1, int(tokens.sum())),
            "group_tokens": per_group[inv], "num_prompts": max(1, int(has_valid.sum()))}


def aggregate_loss(
    token_loss: Tensor,  # [B, T]
    mask: Tensor,  # [B, T] bool or float, 1 on response tokens
    mode: str,
    max_tokens: int | None = None,  # L_max, required by "max_tokens", ignored otherwise
    *,
    num_sequences: int | Tensor | None = None,  # global responses in the mini-batch; default B
    num_tokens: int | Tensor | None = None,  # global response tokens ("token_mean"); default mask.sum()
    group_tokens: Tensor | None = None,  # [B] tokens of each row's group ("prompt_mean", required)
    num_prompts: int | Tensor | None = None,  # groups in the mini-batch ("prompt_mean", required)
) -> Tensor:  # []
    """Reduce a per-token loss to the scalar to backpropagate; see the module docstring for the modes."""
    if mode not in ("seq_mean", "token_mean", "max_tokens", "seq_sum", "prompt_mean"):  # config.LOSS_AGGS
        raise ValueError("loss aggregation mode must be one of seq_mean, token_mean, max_tokens, seq_sum, "
                         f"prompt_mean, got {mode!r}")
    if mode == "max_tokens" and (max_tokens is None or max_tokens <= 0):
        raise ValueError(f"mode 'max_tokens' needs a positive max_tokens (L_max), got {max_tokens!r}")
    if mode == "prompt_mean" and (group_tokens is None or num_prompts is None):
        raise ValueError("mode 'prompt_mean' needs group_tokens and num_prompts (see loss_normalizers)")
    if token_loss.dim() != 2 or mask.shape != token_loss.shape:
        raise ValueError(f"token_loss and mask must both be [B, T], got {tuple(token_loss.shape)} "
                         f"and {tuple(mask.shape)}")
    for name, v in (("num_sequences", num_sequences), ("num_tokens", num_tokens), ("num_prompts", num_prompts)):
        if isinstance(v, (int, float)) and v <= 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    m = mask.to(token_loss.dtype)  # [B, T]
    masked = token_loss * m  # [B, T]
    if mode == "token_mean":
        denom = m.sum().clamp(min=1) if num_tokens is None else num_tokens
        return masked.sum() / denom  # []
    per_seq = masked.sum(-1)  # [B]
    if mode == "prompt_mean":  # (1/P) sum_p [sum_{i in p} sum_t l / sum_{i in p} |o_i|]
        per_seq = per_seq / group_tokens.to(per_seq.dtype).clamp(min=1)  # [B]
        return per_seq.sum() / num_prompts  # []
    n_seq = token_loss.shape[0] if num_sequences is None else num_sequences
    if mode == "seq_mean":
        per_seq = per_seq / m.sum(-1).clamp(min=1)  # [B], 1/|o_i|: the length bias
    elif mode == "max_tokens":
        per_seq = per_seq / max_tokens  # [B], one constant for the run
    return per_seq.sum() / n_seq  # []


# ------------------------------------------------------------------------------------------------
# PPO token loss
# ------------------------------------------------------------------------------------------------
def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token estimate of KL(pi || ref) from samples of pi, same shape: ``k1 = log(pi/ref)`` (unbiased, can be
    negative), ``k2 = log(pi/ref)^2 / 2`` (biased, >= 0), ``k3 = ref/pi - log(ref/pi) - 1`` (unbiased, >= 0)."""
    d = ref_logp - logp  # log(ref/pi)
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d * d
    if estimator == "k3":
        return torch.exp(d) - d - 1
    raise ValueError(f"estimator must be one of k1, k2, k3, got {estimator!r}")


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 estimator of KL(pi || ref) per token: exp(ref - logp) - (ref - logp) - 1 >= 0; same shape."""
    return kl_penalty(logp, ref_logp, "k3")


def ppo_token_loss(
    logp: Tensor,  # [B, T] log pi_theta(o_t), with grad
    old_logp: Tensor,  # [B, T] log pi_old(o_t) (detached here)
    advantages: Tensor,  # [B] one per response (or [B, T])
    epsilon: float = 0.2,
    epsilon_high: float | None = None,  # None -> epsilon (symmetric)
    ref_logp: Tensor | None = None,  # [B, T] log pi_ref(o_t) (detached here), needed when beta > 0
    beta: float = 0.0,
    *,
    ratio_level: str = "token",  # token: rho_t | sequence: s_i = exp(mean_t log rho_t) (GSPO)
    policy_loss: str = "ppo",  # ppo: clipped surrogate | cispo: -sg(min(rho, 1+eps_high)) * A * logp
    mask: Tensor | None = None,  # [B, T] response tokens; required by ratio_level "sequence"
    kl_estimator: str = "k3",
) -> tuple[Tensor, dict[str, Tensor]]:  # [B, T] loss, {ratio, clipped, kl: [B, T]} detached
    """Per-token policy loss plus ``beta * kl``: PPO's ``-min(rho*A, clip(rho, 1-eps, 1+eps_high)*A)`` or CISPO's
    ``-sg(min(rho, 1+eps_high))*A*log pi``, with ``rho`` per token or GSPO's one ratio per response."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp (the reference model's log-probs) for the KL term")
    if ratio_level not in ("token", "sequence"):
        raise ValueError(f"ratio_level must be token or sequence, got {ratio_level!r}")
    if policy_loss not in ("ppo", "cispo"):
        raise ValueError(f"policy_loss must be ppo or cispo, got {policy_loss!r}")
    if ratio_level == "sequence" and mask is None:
        raise ValueError("ratio_level 'sequence' needs the response mask")
    eps_high = epsilon if epsilon_high is None else epsilon_high
    adv = advantages.unsqueeze(-1) if advantages.dim() == logp.dim() - 1 else advantages  # [B, 1] or [B, T]
    log_ratio = logp - old_logp.detach()  # [B, T]
    if ratio_level == "sequence":  # GSPO: one ratio per response, the geometric mean of its token ratios
        m = mask.to(logp.dtype)
        log_ratio = ((log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1)).expand_as(logp)
    ratio = torch.exp(log_ratio)  # [B, T]
    if policy_loss == "cispo":
        weight = torch.clamp(ratio, max=1 + eps_high).detach()  # [B, T], no gradient through the ratio
        loss = -weight * adv * logp  # [B, T]
        clipped_mask = ratio > 1 + eps_high
    else:
        unclipped = ratio * adv  # [B, T]
        clipped = torch.clamp(ratio, 1 - epsilon, 1 + eps_high) * adv  # [B, T]
        loss = -torch.minimum(unclipped, clipped)  # [B, T]
        clipped_mask = clipped < unclipped  # the min picked the clipped term and it differs
    if beta > 0:
        kl = kl_penalty(logp, ref_logp.detach(), kl_estimator)  # [B, T]
        loss = loss + beta * kl
    else:
        kl = torch.zeros_like(logp)
    stats = {"ratio": ratio.detach(), "clipped": clipped_mask.detach(), "kl": kl.detach()}
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
