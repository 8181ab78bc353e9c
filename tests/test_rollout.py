"""The HF rollout backend's sampling loop (drgrpo_cli.rollout.hf.sample_loop) on the built-in test model.

Checked: greedy decoding equals ``model.generate(do_sample=False)`` token for token on a batch of prompts of
different lengths (left padding is invisible); finished rows leave the batch (the model sees a shrinking batch)
and have nothing after ``<eos>``; the truncation flag marks rows that hit the budget; seeded sampling is
reproducible and torch's global RNG is its only randomness; top-p; stop strings (single- and multi-token).
"""

from __future__ import annotations

import random

import pytest
import torch

MAX_NEW = 48


@pytest.fixture(scope="module")
def backend(small_model):
    from drgrpo_cli.policy import load_model, load_tokenizer
    from drgrpo_cli.rollout.hf import HFBackend

    torch.set_num_threads(1)
    return HFBackend(load_model(str(small_model)), load_tokenizer(str(small_model)))


@pytest.fixture(scope="module")
def prompts(backend):
    """Task prompts (clean and hidden-operand), some extended by a few tokens of the model's own greedy
    continuation, so the batch has prompts of several lengths and rows that end at different steps."""
    from drgrpo_cli.tasks.builtin import BuiltinTask

    task = BuiltinTask()
    rng = random.Random(0)
    texts = [t for p in task.sample(12, rng) for t, _ in task.rollout_prompts(p, 2, rng)]
    base = [backend.tokenizer.encode(t, add_special_tokens=False) for t in texts]
    cont = backend.generate(base, max_new_tokens=4, greedy=True)
    out = []
    for p, s in zip(base, cont):
        k = rng.randrange(0, 4)
        body = [t for t in s.ids[:k] if t != backend.eos_id]
        out.append(p + body)
    assert len({len(p) for p in out}) >= 3
    return out


def _hf_generate(backend, prompts, max_new_tokens, **kw):
    """The old backend: left-padded batch through ``model.generate``; rows cut after the first <eos>."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), backend.pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        attn[i, width - len(p):] = 1
    with torch.inference_mode():
        out = backend.model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=max_new_tokens,
                                     eos_token_id=backend.eos_id, pad_token_id=backend.pad_id, **kw)
    rows = []
    for r in out[:, width:].tolist():
        cut = r.index(backend.eos_id) + 1 if backend.eos_id in r else None
        rows.append((r[:cut], cut is None) if cut else (r, True))
    return rows


def test_greedy_equals_hf_generate_token_for_token(backend, prompts):
    ours = backend.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
    ref = _hf_generate(backend, prompts, MAX_NEW, do_sample=False, temperature=None, top_p=None, top_k=None)
    assert [(s.ids, s.truncated) for s in ours] == ref
    assert len({len(s.ids) for s in ours}) > 2  # rows ended at different steps


def test_greedy_in_a_batch_equals_each_prompt_alone(backend, prompts):
    batch = backend.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
    alone = [backend.generate([p], max_new_tokens=MAX_NEW, greedy=True)[0] for p in prompts[:8]]
    assert batch[:8] == alone


def test_finished_rows_leave_the_batch(backend, prompts, monkeypatch):
    seen = []
    forward = backend.model.forward

    def spy(*a, **kw):
        seen.append(tuple(kw["input_ids"].shape))
        return forward(*a, **kw)

    monkeypatch.setattr(backend.model, "forward", spy)
    torch.manual_seed(0)
    out = backend.generate(prompts, max_new_tokens=MAX_NEW, temperature=1.0)
    monkeypatch.undo()
    eos = backend.eos_id
    for s in out:
        assert eos not in s.ids[:-1]  # nothing after <eos>
        assert s.truncated == (s.ids[-1] != eos)
        assert len(s.ids) == MAX_NEW or not s.truncated
    # prefill once, then one token per step for the rows still running
    assert seen[0] == (len(prompts), max(len(p) for p in prompts))
    sizes = [b for b, t in seen[1:]]
    assert all(t == 1 for _, t in seen[1:])
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < len(prompts)
    longest = max(len(s.ids) for s in out)
    assert len(seen) == longest  # no forward after the last token
    for step, b in enumerate(sizes, start=1):  # batch at step k = rows with more than k tokens
        assert b == sum(len(s.ids) > step for s in out)


def test_truncated_exactly_at_the_budget(backend, prompts):
    out = backend.generate(prompts, max_new_tokens=3, greedy=True)
    full = backend.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
    assert any(s.truncated for s in out) and any(not s.truncated for s in out)
    for s, f in zip(out, full):
        assert s.ids == f.ids[:3]
        assert s.truncated == (len(f.ids) > 3 or f.truncated)
        assert len(s.ids) == 3 or s.ids[-1] == backend.eos_id
    assert all(s == type(s)([], True) for s in backend.generate(prompts[:2], max_new_tokens=0))
    assert backend.generate([], max_new_tokens=8) == []


def test_sampling_is_reproducible_under_the_torch_seed(backend, prompts):
    group = prompts[:4] * 8
    torch.manual_seed(7)
    a = backend.generate(group, max_new_tokens=MAX_NEW, temperature=1.0)
    after = torch.get_rng_state()
    torch.manual_seed(7)
    b = backend.generate(group, max_new_tokens=MAX_NEW, temperature=1.0)
    assert a == b and torch.equal(after, torch.get_rng_state())
    assert len({tuple(s.ids) for s in a[::4]}) > 1, "identical prompts must give different samples"
    torch.manual_seed(8)
    assert backend.generate(group, max_new_tokens=MAX_NEW, temperature=1.0) != a
    backend.model.train()  # generate() samples in eval mode and gives the model back as it found it
    backend.generate(group[:2], max_new_tokens=4)
    assert backend.model.training
    backend.model.eval()
    backend.generate(group[:2], max_new_tokens=4)
    assert not backend.model.training


def test_top_p_and_temperature(backend, prompts):
    from drgrpo_cli.rollout.hf import next_tokens

    greedy = backend.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
    torch.manual_seed(0)
    assert backend.generate(prompts, max_new_tokens=MAX_NEW, top_p=1e-6) == greedy  # nucleus of one token
    torch.manual_seed(0)
    assert backend.generate(prompts, max_new_tokens=MAX_NEW, temperature=1e-4) == greedy
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).log_softmax(-1).repeat(4000, 1)  # p = .64 .24 .09 .03
    torch.manual_seed(0)
    drawn = next_tokens(logits, top_p=0.7)  # keeps {0, 1}: the smallest set reaching 0.7
    assert set(drawn.tolist()) == {0, 1}
    assert abs((drawn == 0).float().mean().item() - 0.64 / 0.88) < 0.03


@pytest.mark.parametrize("stop", ["#", ".#"])
def test_stop_strings_end_the_row_and_are_kept(backend, prompts, stop):
    from drgrpo_cli.rollout.hf import HFBackend

    plain = backend.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
    stopping = HFBackend(backend.model, backend.tokenizer, stop_strings=[stop])
    out = stopping.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
    decode = backend.tokenizer.decode
    hits = 0
    for s, f in zip(out, plain):
        text = decode(f.ids)
        if stop in text:  # cut right after the token completing the first occurrence
            k = next(k for k in range(1, len(f.ids) + 1) if stop in decode(f.ids[:k]))
            assert s.ids == f.ids[:k] and not s.truncated and decode(s.ids).endswith(stop)
            hits += 1
        else:
            assert s == f
    assert hits > 0
