"""Exact-number tests for drgrpo_cli.objectives: advantages, aggregation, PPO loss, biases, accumulation."""

from __future__ import annotations

import math

import pytest
import torch

from drgrpo_cli.objectives import (
    aggregate_loss,
    compute_advantages,
    gather_logprobs,
    group_pass_stats,
    masked_mean,
    ppo_token_loss,
    token_entropy,
)

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


# ------------------------------------------------------------------------------------------------
# compute_advantages
# ------------------------------------------------------------------------------------------------
# Three groups of 4: one correct of four, all equal, and a spread-out group.
R = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.5]
CENTRED = [0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0, -0.5, 0.0, 0.5, 0.0]


def test_advantages_none_is_centred_only():
    adv = compute_advantages(t(R), 4, scale="none")
    assert torch.equal(adv, t(CENTRED))


@pytest.mark.parametrize("ddof", [0, 1])
def test_advantages_group_hand_values(ddof):
    s3, s2, s6 = math.sqrt(3), math.sqrt(2), math.sqrt(6)
    if ddof == 1:  # g1: var 0.75/3 = 1/4; g3: var 0.5/3 = 1/6
        want = [1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0, -s6 / 2, 0, s6 / 2, 0]
    else:  # g1: var 0.75/4 = 3/16; g3: var 0.5/4 = 1/8
        want = [s3, -1 / s3, -1 / s3, -1 / s3, 0, 0, 0, 0, -s2, 0, s2, 0]
    adv = compute_advantages(t(R), 4, scale="group", eps=0.0, ddof=ddof)
    assert torch.allclose(adv, t(want), atol=1e-12, rtol=0)
    # with eps: exactly centred / (std + eps)
    std1, std3 = (0.5, 1 / s6) if ddof == 1 else (s3 / 4, 1 / (2 * s2))
    adv = compute_advantages(t(R), 4, scale="group", eps=1e-6, ddof=ddof)
    den = t([std1] * 4 + [1.0] * 4 + [std3] * 4) + 1e-6
    assert torch.allclose(adv, t(CENTRED) / den, atol=1e-12, rtol=0)


@pytest.mark.parametrize("ddof", [0, 1])
def test_advantages_batch_uses_whole_batch_std(ddof):
    # all 12 rewards: sum 7, sum of squares 6.5 -> sum of squared deviations 6.5 - 49/12 = 29/12
    std_batch = math.sqrt((29 / 12) / (12 - ddof))
    assert math.isclose(std_batch, torch.tensor(R, dtype=D).std(correction=ddof).item(), rel_tol=1e-12)
    adv = compute_advantages(t(R), 4, scale="batch", eps=0.0, ddof=ddof)
    assert torch.allclose(adv, t(CENTRED) / std_batch, atol=1e-12, rtol=0)
    adv = compute_advantages(t(R), 4, scale="batch", eps=1e-6, ddof=ddof)
    assert torch.allclose(adv, t(CENTRED) / (std_batch + 1e-6), atol=1e-12, rtol=0)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_advantages_all_equal_group_is_zero_no_nan(scale, eps):
    r = t([0.3, 0.3, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0])  # 0.3 is not exact in binary: mean rounds
    adv = compute_advantages(r, 4, scale=scale, eps=eps)
    assert torch.equal(adv, torch.zeros(8, dtype=D))


def test_advantages_keep_dtype_and_shape():
    adv = compute_advantages(t(R, torch.float32), 4)
    assert adv.dtype == torch.float32 and adv.shape == (12,)


def test_advantages_reject_bad_input():
    with pytest.raises(ValueError, match="multiple of group_size"):
        compute_advantages(t(R[:10]), 4)
    with pytest.raises(ValueError, match="scale must be one of"):
        compute_advantages(t(R), 4, scale="std")
    with pytest.raises(ValueError, match="flat"):
        compute_advantages(t(R).view(3, 4), 4)
    with pytest.raises(ValueError, match="ddof"):
        compute_advantages(t([1.0, 0.0]), 1, scale="group", ddof=1)


def test_trl_022_inverted_scale_cannot_happen():
    # TRL 0.22.0-0.22.2: the default did not scale and "none" divided by std.
    r = t([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    g = r.view(-1, 8)
    centred = (g - g.mean(-1, keepdim=True)).reshape(-1)
    std = g.std(-1, keepdim=True).expand(-1, 8).reshape(-1)
    assert torch.equal(compute_advantages(r, 8, scale="none"), centred)
    assert torch.equal(compute_advantages(r, 8, scale="group"), centred / (std + 1e-6))
    assert not torch.allclose(compute_advantages(r, 8, scale="group"), centred)
    # default is "group": it divides
    assert torch.equal(compute_advantages(r, 8), compute_advantages(r, 8, scale="group"))


# ------------------------------------------------------------------------------------------------
# aggregate_loss
# ------------------------------------------------------------------------------------------------
LOSS = torch.arange(1, 16, dtype=D).view(3, 5)
MASK = t([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])  # lengths 5, 3, 1; sums 15, 21, 11


@pytest.mark.parametrize(
    "mode, want",
    [
        ("seq_mean", (15 / 5 + 21 / 3 + 11 / 1) / 3),  # 7
        ("token_mean", 47 / 9),
        ("max_tokens", 47 / (8 * 3)),
        ("seq_sum", 47 / 3),
    ],
)
def test_aggregate_hand_values(mode, want):
    got = aggregate_loss(LOSS, MASK, mode, max_tokens=8)
    assert got.shape == () and math.isclose(got.item(), want, rel_tol=1e-12)
    got_bool = aggregate_loss(LOSS, MASK.bool(), mode, 8)
    assert torch.equal(got, got_bool)


def test_aggregate_global_denominators():
    assert math.isclose(aggregate_loss(LOSS, MASK, "seq_mean", num_sequences=6).item(), 21 / 6)
    assert math.isclose(aggregate_loss(LOSS, MASK, "seq_sum", num_sequences=6).item(), 47 / 6)
    assert math.isclose(aggregate_loss(LOSS, MASK, "max_tokens", 8, num_sequences=6).item(), 47 / 48)
    assert math.isclose(aggregate_loss(LOSS, MASK, "token_mean", num_tokens=20).item(), 47 / 20)


def test_aggregate_empty_response_no_nan():
    mask = MASK.clone()
    mask[2] = 0  # lengths 5, 3, 0
    got = aggregate_loss(LOSS, mask, "seq_mean")
    assert math.isclose(got.item(), (3 + 7 + 0) / 3, rel_tol=1e-12)
    assert torch.isfinite(aggregate_loss(LOSS, torch.zeros_like(MASK), "token_mean"))


def test_aggregate_rejects_bad_mode_and_missing_max_tokens():
    with pytest.raises(ValueError, match="must be one of"):
        aggregate_loss(LOSS, MASK, "sum")
    with pytest.raises(ValueError, match="max_tokens"):
        aggregate_loss(LOSS, MASK, "max_tokens")
    with pytest.raises(ValueError, match="max_tokens"):
        aggregate_loss(LOSS, MASK, "max_tokens", 0)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        aggregate_loss(LOSS, MASK[:, :4], "seq_mean")


@pytest.mark.parametrize("mode", ["seq_mean", "token_mean", "max_tokens", "seq_sum"])
def test_length_bias_gradient(mode):
    # one short (2 tokens) and one long (6 tokens) response
    loss = torch.ones(2, 6, dtype=D, requires_grad=True)
    mask = t([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    aggregate_loss(loss, mask, mode, max_tokens=10).backward()
    g_short, g_long = loss.grad[0, 0].item(), loss.grad[1, 0].item()
    assert torch.all(loss.grad[0, 2:] == 0)  # padding gets no gradient
    want = {"seq_mean": (1 / 4, 1 / 12), "token_mean": (1 / 8, 1 / 8),
            "max_tokens": (1 / 20, 1 / 20), "seq_sum": (1 / 2, 1 / 2)}[mode]
    assert math.isclose(g_short, want[0], rel_tol=1e-12) and math.isclose(g_long, want[1], rel_tol=1e-12)
    if mode == "seq_mean":  # |o_long| / |o_short| = 3 times the per-token weight
        assert math.isclose(g_short / g_long, 6 / 2, rel_tol=1e-12)
    else:
        assert g_short == g_long


# ------------------------------------------------------------------------------------------------
# std (difficulty) bias
# ------------------------------------------------------------------------------------------------
def test_std_bias_group_pass_stats_exact():
    G = 8
    r = t([1] + [0] * 7 + [1] * 4 + [0] * 4 + [0] * 8 + [1] * 8 + [0, 1] + [0] * 6)  # k = 1, 4, 0, 8, 1
    stats = {s: group_pass_stats(r, compute_advantages(r, G, scale=s), G) for s in ("group", "none")}
    want_count = torch.tensor([1, 2, 0, 0, 1, 0, 0, 0, 1])
    for st in stats.values():
        assert torch.equal(st["count"], want_count) and st["count"].dtype == torch.long
        assert torch.isnan(st["abs_adv"][[2, 3, 5, 6, 7]]).all()
        assert st["abs_adv"][0] == 0 and st["abs_adv"][8] == 0
    none, group = stats["none"]["abs_adv"], stats["group"]["abs_adv"]

    def p_terms(k):
        p = k / G
        s = math.sqrt(G * p * (1 - p) / (G - 1))  # ddof=1 group std
        return 2 * p * (1 - p), 2 * p * (1 - p) / (s + 1e-6)

    for k in (1, 4):
        want_none, want_group = p_terms(k)
        assert math.isclose(none[k].item(), want_none, rel_tol=1e-12)
        assert math.isclose(group[k].item(), want_group, rel_tol=1e-12)
    # closed forms: none 2p(1-p); group ~ 2 sqrt(p(1-p)(G-1)/G)
    assert math.isclose(none[1].item(), 0.21875, rel_tol=1e-12) and none[4].item() == 0.5
    assert math.isclose(group[1].item(), 2 * math.sqrt(7 / 64 * 7 / 8), rel_tol=1e-5)  # 0.61872
    assert math.isclose(group[4].item(), 2 * math.sqrt(1 / 4 * 7 / 8), rel_tol=1e-5)  # 0.93541
    # std scaling up-weights the near-all-wrong group relative to the mixed one ...
    assert group[1] / group[4] > none[1] / none[4]
    assert math.isclose((group[1] / group[4]).item(), math.sqrt(7 / 16), rel_tol=1e-5)  # 0.661
    assert math.isclose((none[1] / none[4]).item(), 7 / 16, rel_tol=1e-12)  # 0.4375
    # ... because the multiplier 1/(std+eps) is larger where the std is smaller
    assert group[1] / none[1] > group[4] / none[4]


def test_group_scaling_equalises_sum_of_squares():
    G = 8
    r = t([1] + [0] * 7 + [1] * 4 + [0] * 4 + [1] * 6 + [0] * 2)
    sq_group = compute_advantages(r, G, "group", eps=0.0).view(-1, G).pow(2).sum(-1)
    sq_none = compute_advantages(r, G, "none").view(-1, G).pow(2).sum(-1)
    assert torch.allclose(sq_group, t([7.0, 7.0, 7.0]), atol=1e-12)  # G - ddof for every mixed group
    assert torch.allclose(sq_none, t([8 * 7 / 64, 8 / 4, 8 * 12 / 64]), atol=1e-12)  # G p (1-p)


# ------------------------------------------------------------------------------------------------
# PPO token loss
# ------------------------------------------------------------------------------------------------
def test_ppo_ratio_one_is_minus_advantage():
    logp = torch.randn(3, 4, dtype=D)
    adv = t([1.5, -0.5, 0.0])
    loss, st = ppo_token_loss(logp, logp.clone(), adv)
    assert torch.allclose(loss, -adv[:, None].expand(3, 4), atol=0, rtol=0)
    assert torch.equal(st["ratio"], torch.ones(3, 4, dtype=D))
    assert not st["clipped"].any() and st["clipped"].dtype == torch.bool
    assert torch.equal(st["kl"], torch.zeros(3, 4, dtype=D))


def test_ppo_clipping_asymmetric_hand_values():
    # rows: A = +1 and A = -1; ratios per column; epsilon 0.2 low, 0.28 high
    ratios = t([[1.5, 1.25, 0.5, 0.85, 0.75], [1.5, 1.25, 0.5, 0.85, 0.75]])
    logp = ratios.log().requires_grad_(True)
    adv = t([1.0, -1.0])
    loss, st = ppo_token_loss(logp, torch.zeros_like(logp), adv, epsilon=0.2, epsilon_high=0.28)
    want = t([[-1.28, -1.25, -0.5, -0.85, -0.75],  # A>0: only rho > 1.28 clips (1.25 would clip at 0.2)
              [1.5, 1.25, 0.8, 0.85, 0.8]])  # A<0: only rho < 0.8 clips
    assert torch.allclose(loss, want, atol=1e-12, rtol=0)
    want_clip = torch.tensor([[True, False, False, False, False], [False, False, True, False, True]])
    assert torch.equal(st["clipped"], want_clip)
    loss.sum().backward()
    assert torch.all(logp.grad[want_clip] == 0)  # clipped tokens carry no gradient
    assert torch.all(logp.grad[~want_clip] != 0)
    # symmetric default: epsilon_high=None -> 0.2, so 1.25 now clips for A > 0
    loss_sym, st_sym = ppo_token_loss(ratios.log(), torch.zeros_like(ratios), adv, epsilon=0.2)
    assert math.isclose(loss_sym[0, 1].item(), -1.2, rel_tol=1e-12) and st_sym["clipped"][0, 1]


def test_ppo_k3_kl():
    logp = torch.full((1, 2), math.log(0.5), dtype=D)
    ref = torch.full((1, 2), math.log(0.25), dtype=D)
    loss, st = ppo_token_loss(logp, logp.clone(), t([0.0]), ref_logp=ref, beta=0.1)
    k3 = 0.5 - math.log(0.5) - 1  # exp(d) - d - 1 with d = log(0.25/0.5) = log 0.5; = ln 2 - 0.5
    assert torch.allclose(st["kl"], torch.full((1, 2), k3, dtype=D), atol=1e-15, rtol=0)
    assert torch.allclose(loss, torch.full((1, 2), 0.1 * k3, dtype=D), atol=1e-15, rtol=0)
    _, st0 = ppo_token_loss(logp, logp.clone(), t([0.0]), ref_logp=logp.clone(), beta=0.1)
    assert torch.equal(st0["kl"], torch.zeros(1, 2, dtype=D))


def test_ppo_beta_without_ref_raises():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ref_logp"):
        ppo_token_loss(x, x, torch.zeros(1), beta=0.1)


def test_ppo_old_logp_is_detached():
    logp = torch.randn(2, 3, dtype=D, requires_grad=True)
    loss, _ = ppo_token_loss(logp, logp, t([1.0, -1.0]))  # undetached old_logp must not zero the grad
    loss.sum().backward()
    assert torch.allclose(logp.grad, t([[-1.0] * 3, [1.0] * 3]))


def test_masked_mean():
    x = t([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = t([[1, 1, 0], [0, 0, 1]])
    assert masked_mean(x, m).item() == 3.0
    assert torch.equal(masked_mean(x, m, dim=-1), t([1.5, 6.0]))
    assert masked_mean(x, torch.zeros_like(m)).item() == 0.0


# ------------------------------------------------------------------------------------------------
# gradient accumulation: the normalizer must not depend on the micro-batch split
# ------------------------------------------------------------------------------------------------
def _setup_batch(beta):
    gen = torch.Generator().manual_seed(0)
    B, T, Dm, V, G = 8, 7, 5, 11, 4
    x = torch.randn(B, T, Dm, generator=gen, dtype=D)
    ids = torch.randint(0, V, (B, T), generator=gen)
    w0 = torch.randn(Dm, V, generator=gen, dtype=D)
    lengths = torch.tensor([7, 1, 3, 5, 2, 7, 4, 0])  # ragged, one empty response
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(D)
    with torch.no_grad():
        old_logp = gather_logprobs(x @ (w0 + 0.3 * torch.randn(Dm, V, generator=gen, dtype=D)), ids)
        ref_logp = gather_logprobs(x @ (w0 + 0.3 * torch.randn(Dm, V, generator=gen, dtype=D)), ids)
    rewards = t([1, 0, 0, 1, 0, 0, 0, 1])
    adv = compute_advantages(rewards, G, "group")
    return x, ids, w0, mask, old_logp, ref_logp, adv, beta


def _loss(w, x, ids, mask, old_logp, ref_logp, adv, beta, mode, **kw):
    logp = gather_logprobs(x @ w, ids)  # [b, T]
    tok, st = ppo_token_loss(logp, old_logp, adv, 0.2, 0.28, ref_logp if beta else None, beta)
    return aggregate_loss(tok, mask, mode, 10, **kw), st


@pytest.mark.parametrize("mode", ["seq_mean", "token_mean", "max_tokens", "seq_sum"])
@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_gradient_accumulation_equivalence(mode, beta):
    x, ids, w0, mask, old_logp, ref_logp, adv, beta = _setup_batch(beta)
    B = x.shape[0]
    w = w0.clone().requires_grad_(True)
    full, st = _loss(w, x, ids, mask, old_logp, ref_logp, adv, beta, mode)
    assert st["clipped"].any() and not st["clipped"].all()  # the clip is exercised
    (g_full,) = torch.autograd.grad(full, w)
    n_tok = mask.sum()
    for k in (2, 4):
        w = w0.clone().requires_grad_(True)
        total = 0.0
        for idx in torch.arange(B).chunk(k):
            part, _ = _loss(w, x[idx], ids[idx], mask[idx], old_logp[idx], ref_logp[idx], adv[idx], beta,
                            mode, num_sequences=B, num_tokens=n_tok)
            part.backward()
            total = total + part.detach()
        assert torch.allclose(total, full.detach(), rtol=1e-12, atol=1e-14)
        assert torch.allclose(w.grad, g_full, rtol=1e-10, atol=1e-14)


def test_naive_per_micro_batch_token_mean_is_wrong():
    # verl legacy: mean over each micro-batch's tokens, times 1/k. Differs when micro-batches are ragged.
    x, ids, w0, mask, old_logp, ref_logp, adv, beta = _setup_batch(0.0)
    w = w0.clone()
    full, _ = _loss(w, x, ids, mask, old_logp, ref_logp, adv, beta, "token_mean")
    naive = sum(_loss(w, x[i], ids[i], mask[i], old_logp[i], ref_logp[i], adv[i], beta, "token_mean")[0] / 2
                for i in torch.arange(8).chunk(2))
    assert not torch.allclose(naive, full)


# ------------------------------------------------------------------------------------------------
# log-prob helpers
# ------------------------------------------------------------------------------------------------
def test_gather_logprobs_and_entropy():
    logits = torch.randn(2, 3, 6, dtype=D) * 3
    ids = torch.randint(0, 6, (2, 3))
    lp = gather_logprobs(logits, ids)
    assert lp.shape == (2, 3)
    p = torch.softmax(logits, -1)
    assert torch.allclose(lp, p.gather(-1, ids[..., None]).squeeze(-1).log(), atol=1e-12)
    ent = token_entropy(logits)
    assert ent.shape == (2, 3)
    assert torch.allclose(ent, -(p * p.log()).sum(-1), atol=1e-12)
    # uniform -> log V; one-hot-ish huge logits -> 0, finite (stable)
    assert torch.allclose(token_entropy(torch.zeros(1, 1, 6, dtype=D)), t([[math.log(6)]]))
    big = torch.tensor([[[1e4, 0.0, -1e4]]], dtype=D)
    assert torch.isfinite(token_entropy(big)).all() and token_entropy(big).item() < 1e-12
    # entropy is differentiable
    lg = logits.clone().requires_grad_(True)
    token_entropy(lg).sum().backward()
    assert torch.isfinite(lg.grad).all()


def test_the_math_accepts_exactly_the_configs_modes():
    """objectives.py imports nothing from the package; its mode names must still be the config's."""
    from drgrpo_cli.config import ADV_SCALES, BASELINES, KL_ESTIMATORS, LOSS_AGGS, POLICY_LOSSES, RATIO_LEVELS
    from drgrpo_cli.objectives import kl_penalty, loss_normalizers

    r = torch.tensor([1.0, 0.0, 1.0, 1.0])
    for scale in ADV_SCALES:
        for baseline in BASELINES:
            assert compute_advantages(r, 4, scale, baseline=baseline).shape == (4,)
    loss, mask = torch.ones(2, 3), torch.ones(2, 3)
    norms = loss_normalizers(mask, torch.tensor([0, 0]))
    for mode in LOSS_AGGS:
        assert torch.isfinite(aggregate_loss(loss, mask, mode, max_tokens=4, group_tokens=norms["group_tokens"],
                                             num_prompts=norms["num_prompts"]))
    for est in KL_ESTIMATORS:
        assert kl_penalty(torch.zeros(2), torch.zeros(2), est).tolist() == [0.0, 0.0]
    for level in RATIO_LEVELS:
        for pl in POLICY_LOSSES:
            tl, _ = ppo_token_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2), ratio_level=level,
                                   policy_loss=pl, mask=mask)
            assert tl.shape == (2, 3)
    with pytest.raises(ValueError):
        kl_penalty(torch.zeros(2), torch.zeros(2), "k4")
    for bad in ("std", "Group"):
        with pytest.raises(ValueError):
            compute_advantages(r, 4, bad)
    with pytest.raises(ValueError):
        aggregate_loss(loss, mask, "sum", max_tokens=4)
