"""Hand-computed numbers for the objectives that followed Dr. GRPO (drgrpo_cli.objectives): prompt_mean, Delta-L
length weights, MaxRL's mean scale, the RLOO baseline, masked rows, constant groups, the std switch, masked-row
denominators, GSPO, CISPO, the KL estimators and DAPO's overlong penalty. The arithmetic is in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from drgrpo_cli.config import apply_switches
from drgrpo_cli.objectives import (
    aggregate_loss,
    compute_advantages,
    kl_penalty,
    length_weights,
    loss_normalizers,
    overlong_penalty,
    ppo_token_loss,
)

D = torch.float64
JUNK = 1e3  # on padding and masked positions: any leak into a result would show


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-15)


def lengths_mask(lengths, T):
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).to(D)  # [B, T]


def agg(loss, mask, mode, norms, max_tokens=4):
    """aggregate_loss with every global count of loss_normalizers, as the update passes them."""
    return aggregate_loss(loss, mask, mode, max_tokens, num_sequences=norms["num_sequences"],
                          num_tokens=norms["num_tokens"], group_tokens=norms["group_tokens"],
                          num_prompts=norms["num_prompts"]).item()


# ------------------------------------------------------------------------------------------------
# 1. prompt_mean
# ------------------------------------------------------------------------------------------------
# Two groups (rows 0-1 and 2-3) of unequal token counts; every row's loss is a constant on its tokens.
#   row 0: 1 token  of 2 -> sum 2     group 0: 4 tokens, sum 5
#   row 1: 3 tokens of 1 -> sum 3
#   row 2: 2 tokens of 3 -> sum 6     group 1: 6 tokens, sum 10
#   row 3: 4 tokens of 1 -> sum 4
PM_LENGTHS = [1, 3, 2, 4]
PM_MASK = lengths_mask(PM_LENGTHS, 4)
PM_LOSS = torch.where(PM_MASK.bool(), t([2.0, 1.0, 3.0, 1.0])[:, None].expand(4, 4), t(JUNK))
PM_GROUPS = torch.tensor([0, 0, 1, 1])


def test_prompt_mean_hand_value_differs_from_token_and_seq_mean():
    norms = loss_normalizers(PM_MASK, PM_GROUPS)
    assert norms["group_tokens"].tolist() == [4.0, 4.0, 6.0, 6.0]
    assert (norms["num_prompts"], norms["num_sequences"], norms["num_tokens"]) == (2, 4, 10)
    prompt_mean = agg(PM_LOSS, PM_MASK, "prompt_mean", norms)
    assert prompt_mean == approx((5 / 4 + 10 / 6) / 2)  # = 35/24 = 1.4583
    token_mean = agg(PM_LOSS, PM_MASK, "token_mean", norms)
    assert token_mean == approx(15 / 10)  # all 10 tokens, one denominator
    seq_mean = agg(PM_LOSS, PM_MASK, "seq_mean", norms)
    assert seq_mean == approx((2 / 1 + 3 / 3 + 6 / 2 + 4 / 4) / 4)  # = 7/4
    assert len({round(v, 9) for v in (prompt_mean, token_mean, seq_mean)}) == 3


def test_prompt_mean_masked_row_leaves_its_group_count_and_the_prompt_count():
    valid = torch.tensor([True, False, True, True])  # row 1 masked: group 0 is row 0 alone
    norms = loss_normalizers(PM_MASK, PM_GROUPS, valid)
    assert norms["group_tokens"].tolist() == [1.0, 1.0, 6.0, 6.0]  # group 0: 1 token, not 4
    assert (norms["num_prompts"], norms["num_sequences"], norms["num_tokens"]) == (2, 3, 7)
    loss_mask = PM_MASK * valid[:, None]  # the update zeroes a masked row's tokens
    assert agg(PM_LOSS, loss_mask, "prompt_mean", norms) == approx((2 / 1 + 10 / 6) / 2)  # = 11/6
    # group 0 entirely masked: one prompt left, P = 1
    valid = torch.tensor([False, False, True, True])
    norms = loss_normalizers(PM_MASK, PM_GROUPS, valid)
    assert norms["num_prompts"] == 1 and norms["group_tokens"].tolist() == [0.0, 0.0, 6.0, 6.0]
    assert agg(PM_LOSS, PM_MASK * valid[:, None], "prompt_mean", norms) == approx(10 / 6)


# ------------------------------------------------------------------------------------------------
# 2. Delta-L length weights
# ------------------------------------------------------------------------------------------------
def test_length_weights_hand_values():
    L = t([1.0, 2.0, 4.0])
    # alpha 1: L^-1 = 1, 1/2, 1/4; mean 7/12 -> w = 12/7, 6/7, 3/7 (sum G = 3)
    assert length_weights(L, 3, 1.0).tolist() == approx([12 / 7, 6 / 7, 3 / 7])
    # alpha 0.75: L^-a = 1, 2^-0.75 = 0.594604, 2^-1.5 = 0.353553; mean m = 0.649386
    a, b = 2 ** -0.75, 2 ** -1.5
    m = (1 + a + b) / 3
    assert length_weights(L, 3, 0.75).tolist() == approx([1 / m, a / m, b / m])  # 1.539917, 0.915640, 0.544443
    assert length_weights(L, 3, 0.75).sum().item() == approx(3.0)
    # alpha 0: exactly ones (and exactly the valid indicator with a mask)
    assert torch.equal(length_weights(t([1.0, 2.0, 4.0, 7.0, 3.0, 9.0]), 3, 0.0), torch.ones(6, dtype=D))
    valid = torch.tensor([True, False, True])
    assert torch.equal(length_weights(L, 3, 0.0, valid), t([1.0, 0.0, 1.0]))


def test_length_inputs_keep_a_float_dtype():
    # integer token counts give the default dtype; float64 lengths are not rounded through float32
    assert length_weights(torch.tensor([1, 2, 4]), 3, 1.0).dtype == torch.get_default_dtype()
    assert overlong_penalty(torch.tensor([17, 18]), 20, 4).dtype == torch.get_default_dtype()
    assert length_weights(t([1.0, 2.0, 4.0]), 3, 1.0).dtype == D and overlong_penalty(t([17.0]), 20, 4).dtype == D
    assert length_weights(torch.tensor([1, 2, 4]), 3, 1.0).tolist() == pytest.approx([12 / 7, 6 / 7, 3 / 7], rel=1e-6)


def test_length_weights_masked_row_is_zero_and_out_of_the_mean():
    # row 2 masked (its length 100 must not count): the valid lengths 1, 2, 4 as above
    w = length_weights(t([1.0, 2.0, 100.0, 4.0]), 4, 1.0, torch.tensor([True, True, False, True]))
    assert w[2].item() == 0.0
    assert w.tolist() == approx([12 / 7, 6 / 7, 0.0, 3 / 7])


def test_length_weighted_advantages_with_max_tokens_aggregation():
    # rewards 1, 0, 0 with lengths 1, 2, 4, scale none: A = 2/3, -1/3, -1/3; alpha 1: w = 12/7, 6/7, 3/7
    # A' = A w = 8/7, -2/7, -1/7
    adv = compute_advantages(t([1.0, 0.0, 0.0]), 3, "none")
    a_prime = adv * length_weights(t([1.0, 2.0, 4.0]), 3, 1.0)
    assert a_prime.tolist() == approx([8 / 7, -2 / 7, -1 / 7])
    mask = lengths_mask([1, 2, 4], 4)
    # toy loss l_it = -A'_i * (t + 1): row sums -A'_i * (1, 1+2, 1+2+3+4) = -8/7, 6/7, 10/7 -> total 8/7
    x = torch.arange(1, 5, dtype=D)[None, :].expand(3, 4)
    loss = -a_prime[:, None] * x
    got = aggregate_loss(loss, mask, "max_tokens", 8).item()
    want = (-8 / 7 * 1 + 2 / 7 * 3 + 1 / 7 * 10) / (3 * 8)  # sum_i sum_t l / (B * L_max) = 1/21
    assert got == approx(want) and want == approx(1 / 21)
    # Delta-L's point at alpha 1: w_i * L_i is one constant (12/7), so a loss constant on each response,
    # -A'_i, sums to -12/7 * sum_i A_i = 0: every response's total weight is equal
    assert aggregate_loss(-a_prime[:, None].expand(3, 4), mask, "max_tokens", 8).item() == pytest.approx(0, abs=1e-15)


# ------------------------------------------------------------------------------------------------
# 3. adv_scale "mean" (MaxRL)
# ------------------------------------------------------------------------------------------------
def test_mean_scale_hand_values():
    r = t([1.0, 0.0, 0.0, 0.0])  # mean 1/4; centred 3/4, -1/4; / (1/4) = 3, -1
    assert torch.equal(compute_advantages(r, 4, "mean", eps=0.0), t([3.0, -1.0, -1.0, -1.0]))
    assert compute_advantages(r, 4, "mean").tolist() == approx([0.75 / (0.25 + 1e-6)] + [-0.25 / (0.25 + 1e-6)] * 3)
    # a masked row: mean 1/3 over rows 0-2 -> (1 - 1/3) / (1/3) = 2, (0 - 1/3) / (1/3) = -1, row 3 exactly 0
    adv = compute_advantages(t([1.0, 0.0, 0.0, 5.0]), 4, "mean", eps=0.0, valid=torch.tensor([1, 1, 1, 0]).bool())
    assert adv.tolist() == approx([2.0, -1.0, -1.0, 0.0]) and adv[3].item() == 0.0


@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_mean_scale_flat_groups_are_exactly_zero(eps):
    r = t([0.0] * 4 + [1.0] * 4 + [0.3] * 4 + [1.0, 0.0, 1.0, 0.0])  # a flat mean-0 group does not raise
    adv = compute_advantages(r, 4, "mean", eps=eps)
    assert torch.equal(adv[:12], torch.zeros(12, dtype=D))
    assert adv[12:].tolist() == approx([0.5 / (0.5 + eps), -0.5 / (0.5 + eps)] * 2)


@pytest.mark.parametrize("rewards", [[-1.0, 1.0], [-1.0, 0.0], [0.0, 0.0, -1.0, 1.0]])
def test_mean_scale_rejects_a_signal_group_without_a_positive_mean(rewards):
    with pytest.raises(ValueError, match="positive mean"):
        compute_advantages(t(rewards), 2, "mean")


# ------------------------------------------------------------------------------------------------
# 4. baseline "loo" (RLOO)
# ------------------------------------------------------------------------------------------------
def test_loo_baseline_hand_values():
    # group [1, 0, 0, 0]: row 0 minus the others' mean 0 = 1; rows 1-3: 0 - 1/3 = -1/3
    # = G/(G-1) (r - mean) = 4/3 * (3/4, -1/4)
    # group [0.5, 1, 0, 0.5]: mean 1/2 -> 4/3 * (0, 1/2, -1/2, 0) = 0, 2/3, -2/3, 0
    r = t([1.0, 0.0, 0.0, 0.0, 0.5, 1.0, 0.0, 0.5])
    adv = compute_advantages(r, 4, "none", baseline="loo")
    assert adv.tolist() == approx([1.0, -1 / 3, -1 / 3, -1 / 3, 0.0, 2 / 3, -2 / 3, 0.0])
    assert adv.tolist() == approx((4 / 3 * compute_advantages(r, 4, "none")).tolist())
    # scale group divides by the group's Bessel std of the rewards: 1/2 and sqrt(1/6)
    adv = compute_advantages(r, 4, "group", eps=0.0, baseline="loo")
    s6 = math.sqrt(6)
    assert adv.tolist() == approx([2.0, -2 / 3, -2 / 3, -2 / 3, 0.0, 2 / 3 * s6, -2 / 3 * s6, 0.0])


def test_loo_baseline_with_a_masked_row_uses_the_valid_others_only():
    # [1, 0, 0, X], X masked: row 0 - mean(0, 0) = 1; rows 1, 2: 0 - mean(1, 0) = -1/2; row 3 exactly 0
    # = 3/2 * (r - 1/3) over the 3 valid rows
    valid = torch.tensor([True, True, True, False])
    for x in (0.0, 1.0, 7.0):
        adv = compute_advantages(t([1.0, 0.0, 0.0, x]), 4, "none", baseline="loo", valid=valid)
        assert adv.tolist() == approx([1.0, -0.5, -0.5, 0.0]) and adv[3].item() == 0.0


# ------------------------------------------------------------------------------------------------
# 5. masked rows out of every group statistic (NeMo-RL PR #3467 bug class)
# ------------------------------------------------------------------------------------------------
VALID5 = torch.tensor([True, True, True, False, True, True, True, True])


def _r5(x):  # group 0 [1, 0, 0, X] with X masked; group 1 [1, 1, 0, 0] all valid
    return t([1.0, 0.0, 0.0, x, 1.0, 1.0, 0.0, 0.0])


def test_masked_row_group_std_hand_values():
    # group 0 over rows 0-2: mean 1/3, deviations 2/3, -1/3, -1/3, squares 4/9 + 1/9 + 1/9 = 2/3,
    # ddof 1: var (2/3) / 2 = 1/3, std 1/sqrt(3) -> A = 2/sqrt(3), -1/sqrt(3), -1/sqrt(3) (1.1547, -0.5774)
    # group 1: mean 1/2, squares 4 * 1/4 = 1, var 1/3 -> A = +-(1/2) sqrt(3)
    s3 = math.sqrt(3)
    adv = compute_advantages(_r5(0.0), 4, "group", eps=0.0, valid=VALID5)
    assert adv.tolist() == approx([2 / s3, -1 / s3, -1 / s3, 0.0, s3 / 2, s3 / 2, -s3 / 2, -s3 / 2])
    assert adv[3].item() == 0.0
    adv = compute_advantages(_r5(0.0), 4, "group", valid=VALID5)  # eps 1e-6 on the std
    den = [1 / s3 + 1e-6] * 3 + [1.0] + [1 / s3 + 1e-6] * 4
    assert adv.tolist() == approx([c / d for c, d in zip([2 / 3, -1 / 3, -1 / 3, 0, 0.5, 0.5, -0.5, -0.5], den)])
    # none: centred on 1/3, not on the 4-row mean
    assert compute_advantages(_r5(0.0), 4, "none", valid=VALID5).tolist() == approx(
        [2 / 3, -1 / 3, -1 / 3, 0.0, 0.5, 0.5, -0.5, -0.5])


@pytest.mark.parametrize("scale", ["group", "batch", "none", "mean"])
@pytest.mark.parametrize("baseline", ["group", "loo"])
def test_masked_row_reward_does_not_matter(scale, baseline):
    want = compute_advantages(_r5(0.0), 4, scale, baseline=baseline, valid=VALID5)
    assert want[3].item() == 0.0
    for x in (1.0, -3.0, 100.0, float("nan")):
        assert torch.equal(compute_advantages(_r5(x), 4, scale, baseline=baseline, valid=VALID5), want)


# ------------------------------------------------------------------------------------------------
# 6. constant-reward groups exactly zero despite float noise (NeMo-RL #4158)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["group", "batch", "none", "mean"])
@pytest.mark.parametrize("baseline", ["group", "loo"])
@pytest.mark.parametrize("eps", [0.0, 1e-6])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_constant_groups_are_exactly_zero(scale, baseline, eps, dtype):
    # 0.1, 1/3 and 0.7 are not binary fractions: sum/8 rounds, and r - mean would be ~1e-17, not 0
    flat = [0.1] * 8 + [1 / 3] * 8 + [0.7] * 8
    for r in (flat, flat + [1.0, 0.0] * 4):  # alone and beside a mixed group
        adv = compute_advantages(t(r, dtype), 8, scale, eps=eps, baseline=baseline)
        assert not torch.isnan(adv).any()
        assert (adv[:24] == 0).all()  # exactly, not approximately
    adv = compute_advantages(t([0.1] * 8, dtype), 8, scale, eps=eps, baseline=baseline)  # batch std 0
    assert (adv == 0).all()
    # flat over the valid rows only: the masked 0.9 does not give the group a signal
    adv = compute_advantages(t([0.1, 0.1, 0.1, 0.9], dtype), 4, scale, eps=eps, baseline=baseline,
                             valid=torch.tensor([True, True, True, False]))
    assert (adv == 0).all()


# ------------------------------------------------------------------------------------------------
# 7. the std switch (TRL 0.22 shipped it inverted)
# ------------------------------------------------------------------------------------------------
def test_std_switch_maps_to_the_advantages_by_hand():
    r = t([1.0, 0.0, 0.0, 0.0])
    none = compute_advantages(r, 4, apply_switches({}, std=False)["adv_scale"])
    assert torch.equal(none, t([0.75, -0.25, -0.25, -0.25]))  # exactly r - mean
    group = compute_advantages(r, 4, apply_switches({}, std=True)["adv_scale"])
    # Bessel std: squares 9/16 + 3/16 = 3/4, / 3 = 1/4 -> std 1/2
    assert group.tolist() == approx([0.75 / (0.5 + 1e-6)] + [-0.25 / (0.5 + 1e-6)] * 3)


# ------------------------------------------------------------------------------------------------
# 8. masked (truncated) rows out of every denominator (TRL #6369)
# ------------------------------------------------------------------------------------------------
# 4 rows, groups of 2, lengths 2, 3, 4, 1, row 2 masked; a constant loss per row 1, 2, 50, 3.
#   valid row sums: 1*2 = 2, 2*3 = 6, 3*1 = 3 -> 11 over 2 + 3 + 1 = 6 tokens and 3 sequences
TR_MASK = lengths_mask([2, 3, 4, 1], 4)
TR_LOSS = torch.where(TR_MASK.bool(), t([1.0, 2.0, 50.0, 3.0])[:, None].expand(4, 4), t(JUNK))
TR_GROUPS = torch.tensor([0, 0, 1, 1])
TR_VALID = torch.tensor([True, True, False, True])


def test_masked_row_normalizers():
    norms = loss_normalizers(TR_MASK, TR_GROUPS, TR_VALID)
    assert (norms["num_sequences"], norms["num_tokens"], norms["num_prompts"]) == (3, 6, 2)
    assert norms["group_tokens"].tolist() == [5.0, 5.0, 1.0, 1.0]  # group 1: row 3's 1 token, not 5
    # a group with no valid row is no prompt
    norms = loss_normalizers(TR_MASK, TR_GROUPS, torch.tensor([True, True, False, False]))
    assert (norms["num_sequences"], norms["num_tokens"], norms["num_prompts"]) == (2, 5, 1)
    # nothing valid: counts clamp to 1, and the loss is 0, not NaN
    none = torch.zeros(4, dtype=torch.bool)
    norms = loss_normalizers(TR_MASK, TR_GROUPS, none)
    assert (norms["num_sequences"], norms["num_tokens"], norms["num_prompts"]) == (1, 1, 1)
    for mode in ("token_mean", "seq_mean", "max_tokens", "seq_sum", "prompt_mean"):
        assert agg(TR_LOSS, TR_MASK * none[:, None], mode, norms) == 0.0


@pytest.mark.parametrize("mode, want", [
    ("token_mean", 11 / 6),
    ("seq_mean", (2 / 2 + 6 / 3 + 3 / 1) / 3),  # = 2
    ("max_tokens", 11 / (3 * 4)),  # L_max 4
    ("seq_sum", 11 / 3),
    ("prompt_mean", ((2 + 6) / 5 + 3 / 1) / 2),  # = 2.3
])
def test_masked_row_out_of_numerator_and_denominator(mode, want):
    norms = loss_normalizers(TR_MASK, TR_GROUPS, TR_VALID)
    loss_mask = TR_MASK * TR_VALID[:, None]  # as the update passes it
    assert agg(TR_LOSS, loss_mask, mode, norms) == approx(want)
    if mode in ("seq_mean", "seq_sum", "max_tokens"):  # the batch's own row count (4) would be the TRL bug
        assert aggregate_loss(TR_LOSS, loss_mask, mode, 4).item() == approx(want * 3 / 4)


# ------------------------------------------------------------------------------------------------
# 9. GSPO: one ratio per response
# ------------------------------------------------------------------------------------------------
# log-ratios: row 0 (2 tokens) 0.2, -0.1 and 5.0 on padding; row 1 (3 tokens) 0.3, 0.0, -0.6
GS_OLD = t([[-1.0, -2.0, 2.0], [-0.5, -1.5, -3.0]])
GS_LOGP = t([[-0.8, -2.1, 7.0], [-0.2, -1.5, -3.6]])
GS_MASK = lengths_mask([2, 3], 3)
S0, S1 = math.exp(0.05), math.exp(-0.1)  # exp of the masked mean: 1.051271, 0.904837
# A = +1, -1; clip 1 - 0.03 = 0.97, 1 + 0.06 = 1.06:
#   row 0: -min(1.051271, clip -> 1.051271) = -1.051271 (inside the range)
#   row 1: -min(-0.904837, -0.97) = 0.97 (clipped)
L0, L1 = -S0, 0.97
GS_SUMS = 2 * L0 + 3 * L1  # = 0.807458 over 5 tokens


def _gspo(logp, adv, **kw):
    return ppo_token_loss(logp, GS_OLD, adv, 0.03, 0.06, ratio_level="sequence", mask=GS_MASK, **kw)


def test_gspo_sequence_ratio_and_constant_token_loss():
    loss, st = _gspo(GS_LOGP, t([1.0, -1.0]))
    assert st["ratio"][0, :2].tolist() == approx([S0, S0]) and st["ratio"][1].tolist() == approx([S1] * 3)
    assert loss[0, 0].item() == approx(L0) and loss[1, 0].item() == approx(L1)
    assert torch.equal(loss[0, :2], loss[0, :1].expand(2)) and torch.equal(loss[1], loss[1, :1].expand(3))
    assert st["clipped"][1].all() and not st["clipped"][0].any()


@pytest.mark.parametrize("mode, want", [
    ("seq_mean", (L0 + L1) / 2),  # mean_i -min(s_i A_i, clip(s_i) A_i) = -0.040636
    ("token_mean", GS_SUMS / 5),  # rows weighted by |o_i| = 2, 3: 0.161492
    ("max_tokens", GS_SUMS / (2 * 4)),
    ("seq_sum", GS_SUMS / 2),
    ("prompt_mean", GS_SUMS / 5),  # one prompt: the token mean
])
def test_gspo_with_each_aggregation(mode, want):
    loss, _ = _gspo(GS_LOGP, t([1.0, -1.0]))
    norms = loss_normalizers(GS_MASK, torch.tensor([0, 0]))
    assert agg(loss, GS_MASK, mode, norms) == approx(want)


def test_gspo_gradient_at_ratio_one_is_grpos():
    # at s = 1: d s_i / d logp_it = 1/|o_i|, and the row's loss sums |o_i| equal tokens, so
    # seq_mean: d/d logp_it = -A_i / (B |o_i|) = -1.5/4, 0.5/6   token_mean: -A_i / N_tok = -1.5/5, 0.5/5
    # both exactly GRPO's token-ratio gradient; token_mean / seq_mean = B |o_i| / N_tok (the length weighting)
    adv = t([1.5, -0.5])
    norms = loss_normalizers(GS_MASK, torch.tensor([0, 0]))
    want = {"seq_mean": [[-0.375, -0.375, 0.0], [1 / 12] * 3], "token_mean": [[-0.3, -0.3, 0.0], [0.1] * 3]}
    grads = {}
    for mode in ("seq_mean", "token_mean"):
        for level in ("sequence", "token"):
            logp = GS_OLD.clone().requires_grad_(True)
            loss, _ = ppo_token_loss(logp, GS_OLD, adv, 0.03, 0.06, ratio_level=level, mask=GS_MASK)
            aggregate_loss(loss, GS_MASK, mode, 4, num_sequences=norms["num_sequences"],
                           num_tokens=norms["num_tokens"]).backward()
            grads[mode, level] = logp.grad
            assert torch.flatten(logp.grad).tolist() == approx(sum(want[mode], []))
        assert torch.allclose(grads[mode, "sequence"], grads[mode, "token"], rtol=1e-12, atol=0)
    ratio = grads["token_mean", "sequence"][:, 0] / grads["seq_mean", "sequence"][:, 0]
    assert ratio.tolist() == approx([2 * 2 / 5, 2 * 3 / 5])


# ------------------------------------------------------------------------------------------------
# 10. CISPO: REINFORCE weighted by the capped, stop-gradient ratio
# ------------------------------------------------------------------------------------------------
def test_cispo_values_gradient_and_one_sided_cap():
    # ratios 1.5 (above 1 + 0.28), 0.5 (below 1 - 0.2: NOT clipped), 1.1; weights w = 1.28, 0.5, 1.1
    # rows A = +2 and A = -1; loss = -w A logp, d/d logp = -w A (nothing through the ratio)
    p = t([0.6, 0.3, 0.9])
    logp = p.log().expand(2, 3).clone().requires_grad_(True)
    old = (p.log() - t([1.5, 0.5, 1.1]).log()).expand(2, 3)
    adv = t([2.0, -1.0])
    loss, st = ppo_token_loss(logp, old, adv, epsilon=0.2, epsilon_high=0.28, policy_loss="cispo")
    w = [1.28, 0.5, 1.1]
    want = [[-wi * 2 * math.log(pi) for wi, pi in zip(w, [0.6, 0.3, 0.9])],  # 1.307714, 1.203973, 0.231796
            [wi * math.log(pi) for wi, pi in zip(w, [0.6, 0.3, 0.9])]]
    assert torch.flatten(loss).tolist() == approx(sum(want, []))
    assert st["clipped"].tolist() == [[True, False, False]] * 2  # only the cap from above counts
    loss.sum().backward()
    assert torch.flatten(logp.grad).tolist() == approx([-2.56, -1.0, -2.2, 1.28, 0.5, 1.1])
    # PPO on the same tokens: the A < 0 token at ratio 0.5 is clipped (no gradient), CISPO's is not
    logp2 = p.log().expand(2, 3).clone().requires_grad_(True)
    ppo, _ = ppo_token_loss(logp2, old, adv, epsilon=0.2, epsilon_high=0.28)
    ppo.sum().backward()
    assert logp2.grad[1, 1].item() == 0.0 and logp.grad[1, 1].item() == approx(0.5)


# ------------------------------------------------------------------------------------------------
# 11. KL estimators
# ------------------------------------------------------------------------------------------------
# logp = log 0.5 on both tokens; ref = log 0.25 (d = ref - logp = log 1/2) and log 1 (d = log 2)
LN2 = math.log(2)
KL_WANT = {
    "k1": ([LN2, -LN2], [1.0, 1.0]),  # -d; negative where ref > logp; d/d logp = 1
    "k2": ([LN2 ** 2 / 2] * 2, [LN2, -LN2]),  # d^2 / 2 = 0.240227; d/d logp = -d
    "k3": ([LN2 - 0.5, 1 - LN2], [0.5, -1.0]),  # e^d - d - 1 = 0.193147, 0.306853; d/d logp = 1 - e^d
}


@pytest.mark.parametrize("est", ["k1", "k2", "k3"])
def test_kl_estimators_hand_values(est):
    logp = t([[math.log(0.5)] * 2]).requires_grad_(True)
    ref = t([[math.log(0.25), 0.0]])
    k = kl_penalty(logp, ref, est)
    values, grads = KL_WANT[est]
    assert k[0].tolist() == approx(values)
    k.sum().backward()
    assert logp.grad[0].tolist() == approx(grads)
    # in the PPO loss at ratio 1: -A + beta * k for the chosen estimator
    loss, st = ppo_token_loss(logp.detach(), logp.detach(), t([0.5]), ref_logp=ref, beta=0.1, kl_estimator=est)
    assert st["kl"][0].tolist() == approx(values)
    assert loss[0].tolist() == approx([-0.5 + 0.1 * v for v in values])


# ------------------------------------------------------------------------------------------------
# 12. DAPO's soft overlong penalty
# ------------------------------------------------------------------------------------------------
def test_overlong_penalty_hand_values():
    # L_max 20, buffer 4: 0 up to 16, then (16 - L) / 4: 17 -> -1/4, 18 -> -1/2, 20 -> -1; beyond: -1
    L = torch.tensor([10, 16, 17, 18, 20, 25])
    assert torch.equal(overlong_penalty(L, 20, 4), torch.tensor([0.0, 0.0, -0.25, -0.5, -1.0, -1.0]))
    assert torch.equal(overlong_penalty(L, 20, 4, 0.5), torch.tensor([0.0, 0.0, -0.125, -0.25, -0.5, -0.5]))
    assert torch.equal(overlong_penalty(torch.tensor([0, 1, 2]), 2, 2), torch.tensor([0.0, -0.5, -1.0]))  # buffer = L_max
    for bad in (0, -1, 21):
        with pytest.raises(ValueError, match="buffer"):
            overlong_penalty(L, 20, bad)


def test_batch_scale_with_every_row_masked_is_zero_not_an_error():
    """``adv_scale = "batch"`` with ``mask_truncated`` when a step truncates everything: no rewards left for a batch
    std, and no signal to scale either, so exactly 0 (a live row with too few rewards is still an error)."""
    r = torch.tensor([1.0, 0.0, 1.0, 0.0])
    none = torch.zeros(4, dtype=torch.bool)
    assert compute_advantages(r, 2, "batch", valid=none).tolist() == [0.0] * 4
    one = torch.tensor([True, False, False, False])
    assert compute_advantages(r, 2, "batch", valid=one).tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="batch std"):
        compute_advantages(r, 2, "batch", ddof=2, valid=torch.tensor([True, True, False, False]))
