"""Length-bucketed scoring (drgrpo_cli.packing) against the fully padded layout and against each sequence alone.

Checked on the built-in test model in float32: per-token log-probs and entropies equal within 1e-5, gradients of
a weighted sum equal within 1e-5, rows come back in input order with exact zeros past each response's end, empty
responses, the ``width`` argument, and the chunk planner (every row once, never more padded tokens than one
padded batch).
"""

from __future__ import annotations

import random

import pytest
import torch

from drgrpo_cli.objectives import gather_logprobs, token_entropy
from drgrpo_cli.packing import packed_logprobs, pad_batch, plan_chunks, response_logits, response_mask

ONE_CHUNK = 10**9  # an overhead no split can beat: the whole batch fully padded, as the trainer had it


@pytest.fixture(scope="module")
def model(small_model):
    from drgrpo_cli.policy import load_model

    torch.set_num_threads(1)
    return load_model(str(small_model)).train()  # train mode, as in the update


def _batch(seed: int, n: int = 24, empty: int = 0):
    rng = random.Random(seed)
    prompts = [[rng.randrange(3, 18) for _ in range(rng.randint(4, 8))] for _ in range(n)]
    responses = [[rng.randrange(1, 18) for _ in range(rng.randint(1, 40))] for _ in range(n)]
    for i in rng.sample(range(n), empty):
        responses[i] = []
    return prompts, responses


def _alone(model, prompts, responses, temperature):
    """Each sequence on its own, no padding at all: the ground truth."""
    W = max(1, max(len(r) for r in responses))
    logp, ent = torch.zeros(len(prompts), W), torch.zeros(len(prompts), W)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        if not r:
            continue
        logits = model(input_ids=torch.tensor([p + r])).logits[0, len(p) - 1: -1].float() / temperature
        logp[i, : len(r)] = gather_logprobs(logits, torch.tensor(r))
        ent[i, : len(r)] = token_entropy(logits.detach())
    return logp, ent


@pytest.mark.parametrize("seed,temperature", [(0, 1.0), (1, 0.7), (2, 1.3)])
def test_logprobs_and_entropy_equal_the_padded_path(model, seed, temperature):
    prompts, responses = _batch(seed, empty=2)
    logp, ent, mask = packed_logprobs(model, prompts, responses, temperature, pad_id=0, with_entropy=True)
    assert len(plan_chunks([len(p) for p in prompts], [len(r) for r in responses], 64)) > 1  # really chunked
    assert logp.shape == ent.shape == mask.shape == (len(prompts), max(len(r) for r in responses))
    assert torch.equal(mask, response_mask(responses))

    ids, attn, pos, resp, pmask = pad_batch(prompts, responses, 0)  # the trainer's layout, one padded batch
    logits = response_logits(model, ids, attn, pos, resp.shape[1], temperature)
    torch.testing.assert_close(logp, gather_logprobs(logits, resp) * pmask, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, token_entropy(logits.detach()) * pmask, atol=1e-5, rtol=1e-5)

    ref_logp, ref_ent = _alone(model, prompts, responses, temperature)
    torch.testing.assert_close(logp, ref_logp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, ref_ent, atol=1e-5, rtol=1e-5)
    assert not ent.requires_grad and logp.requires_grad
    assert (logp[mask == 0] == 0).all() and (ent[mask == 0] == 0).all()  # exact zeros, whatever the chunking


def test_gradients_equal_the_padded_path(model):
    prompts, responses = _batch(3, empty=1)
    W = max(len(r) for r in responses)
    weights = torch.randn(len(prompts), W, generator=torch.Generator().manual_seed(0))

    def grads(overhead):
        model.zero_grad(set_to_none=True)
        logp, _, mask = packed_logprobs(model, prompts, responses, 0.9, pad_id=0, overhead=overhead)
        ((logp * weights * mask).sum() / mask.sum()).backward()
        return [p.grad.clone() for p in model.parameters()]

    chunked, padded = grads(None), grads(ONE_CHUNK)
    model.zero_grad(set_to_none=True)
    assert max(g.abs().max().item() for g in padded) > 1e-3
    for a, b in zip(chunked, padded):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_empty_responses_and_width(model):
    prompts, responses = _batch(4, n=6)
    responses[2] = []
    logp, ent, mask = packed_logprobs(model, prompts, responses, pad_id=0, width=50, with_entropy=True)
    assert logp.shape == (6, 50) and mask[2].sum() == 0 and (logp[2] == 0).all() and (ent[2] == 0).all()
    ref, _ = _alone(model, prompts, responses, 1.0)
    torch.testing.assert_close(logp[:, : ref.shape[1]], ref, atol=1e-5, rtol=1e-5)
    logp.sum().backward()  # gradients flow through a batch with an empty row
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=True)

    logp, ent, mask = packed_logprobs(model, prompts[:3], [[], [], []], pad_id=0, with_entropy=True)
    assert logp.shape == (3, 1) and mask.sum() == 0 and (logp == 0).all()
    with pytest.raises(ValueError, match="longer than width"):
        packed_logprobs(model, prompts, responses, pad_id=0, width=3)


def test_chunk_plan_covers_every_row_once_and_never_pads_more():
    rng = random.Random(5)
    P = [rng.randint(4, 12) for _ in range(100)]
    R = [rng.choice([0, rng.randint(1, 200)]) for _ in range(100)]
    for overhead in (0, 64, 4096, ONE_CHUNK):
        chunks = plan_chunks(P, R, overhead)
        assert sorted(i for c in chunks for i in c) == list(range(100))
        padded = sum(len(c) * (max(P[i] for i in c) + max(1, max(R[i] for i in c))) for c in chunks)
        assert padded <= 100 * (max(P) + max(R))
    assert len(plan_chunks(P, R, ONE_CHUNK)) == 1
    assert len(plan_chunks(P, R, 0)) > 10
