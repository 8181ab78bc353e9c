"""The policy update with the objective knobs, on a real (tiny) model: one optimizer step's gradient does not
depend on how many optimizer steps a generation feeds (TRL #5619) or on the micro-batch split; a masked row
counts nowhere (TRL #6369); DAPO's dynamic sampling keeps, trims and logs groups as documented."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from drgrpo_cli.config import LOSS_AGGS, TrainConfig
from drgrpo_cli.update import Rows, policy_update


class RecordingOpt:
    """An optimizer that records each step's gradient and never moves the weights, so every optimizer step of
    an update is taken at the same weights and can be compared with another update's."""

    def __init__(self, model):
        self.model, self.grads = model, []

    def zero_grad(self, set_to_none=True):
        self.model.zero_grad(set_to_none=True)

    def step(self):
        self.grads.append({k: p.grad.clone() for k, p in self.model.named_parameters() if p.grad is not None})


def _batch(N: int, V: int, seed: int = 1):
    rng = random.Random(seed)
    prompts = [[rng.randrange(3, V) for _ in range(rng.randint(3, 8))] for _ in range(N)]
    responses = [[rng.randrange(3, V) for _ in range(rng.choice([1, 3, 6, 11, 17]))] for _ in range(N)]
    return prompts, responses


def _update(model, rows: Rows, **cfg) -> list[dict]:
    c = TrainConfig(**{"max_grad_norm": 0.0, "max_tokens": 20, **cfg}).validate()
    opt = RecordingOpt(model)
    policy_update(model, None, opt, c, rows, budget=c.max_tokens_per_micro_batch, pad_id=0)
    return opt.grads


def _close(a: dict, b: dict, rel: float = 2e-5) -> bool:
    num = sum(((a[k] - b[k]) ** 2).sum() for k in b) ** 0.5
    return bool(num <= rel * sum((g ** 2).sum() for g in b.values()) ** 0.5) and set(a) == set(b)


@pytest.fixture(scope="module")
def model(small_model):
    from drgrpo_cli.policy import load_model

    torch.manual_seed(0)
    return load_model(str(small_model))


@pytest.mark.parametrize("objective", [{}, {"ratio_level": "sequence"}, {"policy_loss": "cispo"}])
@pytest.mark.parametrize("mode", LOSS_AGGS)
def test_an_optimizer_step_does_not_depend_on_steps_per_generation(model, monkeypatch, mode, objective):
    """Two mini-batches of one generation (two optimizer steps; each also split in two micro-batches) give
    the same gradient as two generations of one mini-batch each: every normalizer is the mini-batch's own,
    never the generation's, and never divided by the number of steps (TRL #5619: 0.5x / 4x)."""
    monkeypatch.setattr(torch, "randperm", lambda n: torch.arange(n))  # mini-batch k = group k, in order
    prompts, responses = _batch(8, model.config.vocab_size)
    adv = torch.tensor([0.9, -0.4, 1.3, -1.1, 0.2, -0.7, 0.5, -0.3])
    two = _update(model, Rows(prompts, responses, adv), loss_agg=mode, group_size=4, prompts_per_step=2,
                  mini_batches=2, micro_batches=2, **objective)
    assert len(two) == 2
    for k, rows in enumerate((slice(0, 4), slice(4, 8))):
        one = _update(model, Rows(prompts[rows], responses[rows], adv[rows]), loss_agg=mode, group_size=4,
                      prompts_per_step=1, **objective)
        assert len(one) == 1 and _close(two[k], one[0]), (mode, k)
    assert not _close(two[0], two[1])  # the two steps see different rows


@pytest.mark.parametrize("mode", LOSS_AGGS)
def test_a_masked_row_counts_nowhere(model, mode):
    """The last row of a batch masked out (``Rows.valid``, as ``mask_truncated`` does) gives the gradient of
    the batch without it, in every mode: out of the numerator and of every denominator (TRL #6369)."""
    prompts, responses = _batch(8, model.config.vocab_size, seed=2)
    adv = torch.tensor([0.9, -0.4, 1.3, -1.1, 0.2, -0.7, 0.5, -0.3])
    valid = torch.tensor([True] * 7 + [False])
    masked = _update(model, Rows(prompts, responses, adv, valid), loss_agg=mode, group_size=4, prompts_per_step=2)
    dropped = _update(model, Rows(prompts[:7], responses[:7], adv[:7]), loss_agg=mode, group_size=4,
                      prompts_per_step=2)
    assert _close(masked[0], dropped[0], rel=1e-6), mode
    kept = _update(model, Rows(prompts, responses, adv), loss_agg=mode, group_size=4, prompts_per_step=2)
    assert not _close(kept[0], dropped[0])  # the row did matter before it was masked


# ---- DAPO dynamic sampling, on scripted rewards ------------------------------------------------------------
class _Task:
    """Problems 0, 1, 2, ... in draw order; the reward of a response is scripted per problem."""

    stop_strings = ()

    def __init__(self, script: dict[int, list[float]]):
        self.script, self.next = script, 0

    def sample(self, n, rng):
        out = [SimpleNamespace(answer=str(self.next + i)) for i in range(n)]
        self.next += n
        return out

    def rollout_prompts(self, p, G, rng):
        return [SimpleNamespace(prompt=f"{p.answer}#{j}", tag=None) for j in range(G)]

    def reward(self, text, gold, truncated):
        pid, j = (int(x) for x in text.split("#"))
        return self.script.get(pid, [0.0] * 99)[j]


class _Backend:
    def __init__(self, truncated=()):
        self.truncated = set(truncated)

    def generate(self, ids, **kw):
        return [SimpleNamespace(ids=i, truncated=i in self.truncated) for i in ids]


def _run(script, truncated=(), **cfg):
    c = TrainConfig(**{"dynamic_sampling": True, "group_size": 2, "prompts_per_step": 3, **cfg})
    return SimpleNamespace(cfg=c, task=_Task(script), rng=random.Random(0), backend=_Backend(truncated),
                           encode=lambda t: t, decode=lambda ids: ids)


def test_dynamic_sampling_refills_trims_and_caps():
    from drgrpo_cli.sampling import collect

    # round 1: problems 0-2, only 1 varies; round 2: problems 3-5, 3 and 5 vary; round 3: 6-8, 6, 7 and 8 vary
    script = {1: [1, 0], 3: [0, 1], 5: [1, 0], 6: [1, 0], 7: [0, 1], 8: [1, 0], 0: [1, 1], 2: [0, 0], 4: [1, 1]}
    got = collect(_run(script))
    assert (got.rounds, got.groups_seen, got.groups_varied, got.groups_kept) == (2, 6, 3, 3)
    assert [t.split("#")[0] for t in got.train.texts] == ["1", "1", "3", "3", "5", "5"]  # arrival order
    assert got.train.rewards == [1, 0, 0, 1, 1, 0]
    assert len(got.seen.texts) == 12 and got.seen.texts[:2] == ["0#0", "0#1"]  # everything sampled is logged
    # at most 2 rounds: the step trains on the 1 + 2 groups it has
    capped = collect(_run({1: [1, 0], 3: [0, 1]}, dynamic_sampling_max_rounds=2))
    assert (capped.rounds, capped.groups_kept) == (2, 2)
    assert [t.split("#")[0] for t in capped.train.texts] == ["1", "1", "3", "3"]
    # nothing varies: no group to train on
    none = collect(_run({}, dynamic_sampling_max_rounds=3))
    assert (none.rounds, none.groups_kept, none.train.rewards) == (3, 0, [])
    # with mask_truncated a group varies only among its responses in the loss: problem 1's wrong answer is
    # truncated, so its group has no signal; problems 3, 5, 6 are kept
    masked = collect(_run(script, truncated={"1#1"}, mask_truncated=True))
    assert [t.split("#")[0] for t in masked.train.texts] == ["3", "3", "5", "5", "6", "6"]
    assert (masked.rounds, masked.groups_seen, masked.groups_varied) == (3, 9, 5)  # 3, 5 then 6, 7, 8
    assert collect(_run(script, truncated={"1#1"})).train.texts[:2] == ["1#0", "1#1"]  # without: kept
    # off: one round, trained as sampled
    off = collect(_run(script, dynamic_sampling=False))
    assert off.rounds is None and off.train is off.seen and len(off.train.texts) == 6


def test_fewer_rows_than_micro_batches_after_dynamic_sampling(model):
    """Dynamic sampling may keep one group where the config planned four: empty mini- and micro-batches are
    skipped, and the gradient is still the unsplit one."""
    prompts, responses = _batch(4, model.config.vocab_size, seed=4)
    adv = torch.tensor([0.9, -0.4, 1.3, -1.8])
    split = _update(model, Rows(prompts, responses, adv), group_size=4, prompts_per_step=4, mini_batches=1,
                    micro_batches=8)
    whole = _update(model, Rows(prompts, responses, adv), group_size=4, prompts_per_step=1)
    assert len(split) == 1 and _close(split[0], whole[0])
    assert len(_update(model, Rows(prompts, responses, adv), group_size=4, prompts_per_step=4, mini_batches=8)) == 4


def test_a_step_with_every_row_masked_does_not_update(tmp_path, small_model):
    """One token of budget: every response is truncated, so with mask_truncated nothing is in the loss; the step
    logs it and leaves the weights alone (no AdamW step on a zero gradient)."""
    import json

    from drgrpo_cli.trainer import train

    cfg = TrainConfig(model="builtin-small", steps=2, prompts_per_step=2, group_size=4, max_tokens=1,
                      mask_truncated=True, eval_every=0, checkpoint_every=0, threads=1, weight_decay=0.1)
    train(cfg, tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        assert r["train/masked_frac"] == 1.0 and r["train/truncated_frac"] == 1.0
        assert r["train/loss"] is None and r["train/adv_abs_mean"] == 0.0


def test_dynamic_sampling_run_logs_its_rounds(tmp_path, small_model):
    """A real run where most groups have no signal (every rollout in the failure state): the cap binds and
    the log says so."""
    import json

    from drgrpo_cli.trainer import train

    cfg = TrainConfig(model="builtin-small", steps=2, prompts_per_step=4, group_size=4, derail_prob=1.0,
                      dynamic_sampling=True, dynamic_sampling_max_rounds=2, eval_every=0, checkpoint_every=0,
                      max_tokens=24, threads=1)
    train(cfg, tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        assert 1 <= r["train/ds_rounds"] <= 2 and 0 <= r["train/ds_groups_kept"] <= 4
        assert r["train/ds_groups_kept"] == 4 or r["train/ds_rounds"] == 2
        assert 0 <= r["train/zero_std_frac"] <= 1
        assert r["train/gen_tokens"] > 0


# ---- reward shaping before the advantages (trainer._advantages) --------------------------------------------
def _shaping_run(model, ref, **cfg):
    c = TrainConfig(**{"group_size": 4, "prompts_per_step": 2, "max_tokens": 20, **cfg}).validate()
    return SimpleNamespace(cfg=c, model=model, ref=ref, budget=c.max_tokens_per_micro_batch,
                           tok=SimpleNamespace(pad_token_id=0))


def _shaping_batch(V: int):
    from drgrpo_cli.batch import Batch

    prompts, responses = _batch(8, V, seed=3)
    responses[5] = responses[5][:1] + [7] * 19  # 20 tokens: at the budget, truncated
    rewards = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    trunc = [False] * 5 + [True] + [False] * 2
    return Batch(prompts, responses, [""] * 8, rewards, trunc, [None] * 8, [""] * 8)


def test_kl_in_reward_is_subtracted_before_the_advantages(model):
    import copy

    from drgrpo_cli.objectives import compute_advantages, kl_penalty
    from drgrpo_cli.packing import packed_logprobs, response_mask
    from drgrpo_cli.trainer import _advantages
    from drgrpo_cli.update import sequence_kl

    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.02 * torch.randn_like(p))
    b = _shaping_batch(model.config.vocab_size)
    mask = response_mask(b.responses)
    with torch.no_grad():
        lp = packed_logprobs(model, b.prompts, b.responses, 1.0, pad_id=0, width=mask.shape[1])[0]
        lr = packed_logprobs(ref, b.prompts, b.responses, 1.0, pad_id=0, width=mask.shape[1])[0]
    for est, split in (("k1", {}), ("k2", {"mini_batches": 2, "micro_batches": 2}), ("k3", {})):
        run = _shaping_run(model, ref, beta=0.5, kl_in="reward", kl_estimator=est, **split)
        want_kl = (kl_penalty(lp, lr, est) * mask).sum(-1)  # [N] each response's summed estimate
        kl, tokens = sequence_kl(model, ref, run.cfg, Rows(b.prompts, b.responses, torch.zeros(8)), budget=65536,
                                 pad_id=0)
        assert tokens == int(mask.sum()) and torch.allclose(kl, want_kl, rtol=1e-5, atol=1e-7)
        assert bool((want_kl != 0).any())
        adv, _, valid, logged = _advantages(run, b)
        want = compute_advantages(torch.tensor(b.rewards) - 0.5 * want_kl, 4, "group")
        assert valid is None and torch.allclose(adv, want, rtol=1e-5, atol=1e-6), est
        assert logged["train/kl"] == pytest.approx(float(want_kl.sum()) / int(mask.sum()), rel=1e-5)
    same = sequence_kl(model, model, run.cfg, Rows(b.prompts, b.responses, torch.zeros(8)), budget=65536, pad_id=0)
    assert same[0].abs().max().item() == 0.0  # the policy against itself: exactly no KL


def test_overlong_penalty_length_weights_and_masking_shape_the_advantages(model):
    from drgrpo_cli.objectives import compute_advantages
    from drgrpo_cli.trainer import _advantages

    b = _shaping_batch(model.config.vocab_size)
    L = torch.tensor([float(len(r)) for r in b.responses])
    r = torch.tensor(b.rewards)
    # buffer round(0.25 * 20) = 5 tokens: penalty (15 - L) / 5 clipped to [-1, 0], times 0.5
    run = _shaping_run(model, None, overlong_buffer_frac=0.25, overlong_penalty=0.5, adv_scale="none")
    adv, _, _, logged = _advantages(run, b)
    pen = 0.5 * ((15 - L) / 5).clamp(-1, 0)
    assert pen[5].item() == -0.5 and bool((pen[L <= 15] == 0).all())
    assert torch.equal(adv, compute_advantages(r + pen, 4, "none"))
    assert logged["train/overlong_penalty"] == pytest.approx(pen.mean().item())
    # Delta-L on top of the advantages; the truncated row masked: advantage 0, out of the group's mean
    run = _shaping_run(model, None, adv_scale="none", length_alpha=1.0, mask_truncated=True)
    adv, _, valid, logged = _advantages(run, b)
    assert valid.tolist() == [True] * 5 + [False] + [True] * 2 and logged["train/masked_frac"] == 1 / 8
    # group 1 = rows 4-7, row 5 masked: valid rewards 1, 0, 0 -> mean 1/3
    base = torch.tensor([1 - 1 / 3, 0.0, -1 / 3, -1 / 3])
    inv = 1 / L[4:]
    w = inv / inv[[0, 2, 3]].mean()
    assert torch.allclose(adv[4:], base * torch.tensor([w[0], 0.0, w[2], w[3]]), rtol=1e-6)
    assert adv[5].item() == 0.0
