"""Token-budget micro-batches: the split, the config field, the memory estimate, and that the gradient does not
depend on the split (main venv, CPU; the CUDA sizing is exercised with a stubbed free-memory figure)."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from drgrpo_cli import runlog
from drgrpo_cli.cli.app import app
from drgrpo_cli.config import LOSS_AGGS, ConfigError, TrainConfig
from drgrpo_cli.microbatch import (CPU_DEFAULT_TOKENS, activation_bytes_per_token, auto_budget, padded_tokens,
                                   plan_micro_batches)
from tests.conftest import tiny_config

runner = CliRunner()


def _lens(n, seed=0):
    rng = random.Random(seed)
    prompts = [rng.randint(3, 40) for _ in range(n)]
    return prompts, [rng.choice([0, 1, 2, 5, 30, 200, rng.randint(1, 300)]) for _ in range(n)]


# ---- the split -------------------------------------------------------------------------------------------
def test_a_mini_batch_that_fits_is_returned_unchanged():
    import torch

    mb = torch.tensor([5, 1, 7, 0])
    p, r = _lens(8)
    out = plan_micro_batches(mb, p, r, padded_tokens(p, r, mb.tolist()))
    assert len(out) == 1 and out[0] is mb  # the same tensor, rows in their order: nothing changes for such runs


@pytest.mark.parametrize("budget", [1, 40, 300, 700, 2000, 5000])
def test_split_covers_every_row_once_within_the_budget_greedily_in_length_order(budget):
    import torch

    p, r = _lens(64, seed=budget)
    mb = torch.randperm(64, generator=torch.Generator().manual_seed(budget))[:48]
    groups = [g.tolist() for g in plan_micro_batches(mb, p, r, budget)]
    assert sorted(i for g in groups for i in g) == sorted(mb.tolist())
    pos = {row: k for k, row in enumerate(mb.tolist())}
    for g in groups:
        assert g == sorted(g, key=pos.__getitem__)  # mini-batch order inside a micro-batch
        assert len(g) == 1 or padded_tokens(p, r, g) <= budget  # only a lone row may exceed it
        assert sum(p[i] + r[i] for i in g) <= max(budget, padded_tokens(p, r, g))  # real tokens <= padded
    # greedy in length order: the groups are contiguous runs of the rows sorted by total length, and the
    # shortest row of the next group would not have fitted in this one
    key = lambda i: (p[i] + r[i], r[i])  # noqa: E731
    ordered = sorted(groups, key=lambda g: min(map(key, g)))
    for a, b in zip(ordered, ordered[1:]):
        assert max(map(key, a)) <= min(map(key, b))
        assert padded_tokens(p, r, a + [min(b, key=key)]) > budget


def test_a_row_over_the_budget_gets_its_own_micro_batch():
    import torch

    p, r = [5, 5, 5], [10, 500, 10]
    groups = [g.tolist() for g in plan_micro_batches(torch.arange(3), p, r, 100)]
    assert groups == [[0, 2], [1]]
    assert [g.tolist() for g in plan_micro_batches(torch.arange(3), p, r, 1)] == [[0], [2], [1]]
    with pytest.raises(ValueError):
        plan_micro_batches(torch.arange(3), p, r, 0)


# ---- the config field ------------------------------------------------------------------------------------
def test_budget_resolves_at_validation_where_it_can():
    assert TrainConfig().validate().max_tokens_per_micro_batch == CPU_DEFAULT_TOKENS  # saved in config.json
    assert TrainConfig(max_tokens_per_micro_batch=0).validate().max_tokens_per_micro_batch == CPU_DEFAULT_TOKENS
    assert TrainConfig(max_tokens_per_micro_batch=4096).validate().max_tokens_per_micro_batch == 4096
    assert TrainConfig(device="cuda").validate().max_tokens_per_micro_batch is None  # sized at train start
    assert TrainConfig(device="cuda", max_tokens_per_micro_batch=0).validate().max_tokens_per_micro_batch is None
    assert TrainConfig(device="cuda:1", max_tokens_per_micro_batch=9000).validate().max_tokens_per_micro_batch == 9000
    assert TrainConfig(micro_batches=4).validate().max_tokens_per_micro_batch is None  # a count split
    assert TrainConfig(micro_batches=4, max_tokens_per_micro_batch=0).validate().micro_batches == 4
    for cfg in (TrainConfig(), TrainConfig(device="cuda"), TrainConfig(micro_batches=4)):
        assert cfg.validate().validate() == cfg.validate()  # idempotent: resume compares validated configs
    with pytest.raises(ConfigError, match="set one of them"):
        TrainConfig(micro_batches=4, max_tokens_per_micro_batch=1000).validate()
    with pytest.raises(ConfigError, match=">= 0"):
        TrainConfig(max_tokens_per_micro_batch=-1).validate()


def test_the_default_runs_keep_one_micro_batch_per_mini_batch():
    from drgrpo_cli.tasks.builtin import BuiltinTask

    cfg = TrainConfig().validate()
    longest_prompt = max(len(text) for _, text, _ in BuiltinTask(0.5).eval_sets()[""])  # one token per character
    rows = cfg.prompts_per_step * cfg.group_size // cfg.mini_batches
    assert rows * (longest_prompt + cfg.max_tokens) <= cfg.max_tokens_per_micro_batch


def test_cli_option_and_its_conflict(tmp_path):
    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert "--max-tokens-per-micro-batch" in res.output
    res = runner.invoke(app, ["train", "--micro-batches", "4", "--max-tokens-per-micro-batch", "512",
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "set one of them" in res.stderr and len(res.stderr.strip().splitlines()) == 1


# ---- the memory estimate ---------------------------------------------------------------------------------
def test_bytes_per_token_for_a_qwen25_15b_shape():
    from types import SimpleNamespace

    qwen = SimpleNamespace(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, vocab_size=151936)
    # 28 layers x (26 h + 8 f) + final norm 8 h + logits 18 V (bf16), as the microbatch module notes derive
    assert activation_bytes_per_token(qwen, 2) == 28 * (26 * 1536 + 8 * 8960) + 8 * 1536 + 18 * 151936 == 5_872_384
    assert activation_bytes_per_token(qwen, 2, gradient_checkpointing=True) == 2_944_768
    assert activation_bytes_per_token(qwen, 4) > activation_bytes_per_token(qwen, 2)


def test_auto_budget_arithmetic(small_model):
    from drgrpo_cli.policy import load_model
    from drgrpo_cli.microbatch import CUDA_MARGIN, CUDA_RESERVE_BYTES, MIN_BUDGET

    model = load_model(str(small_model))
    params = sum(p.numel() * 4 for p in model.parameters())
    per_token = activation_bytes_per_token(model.config, 4)
    free = 8 * 2**30
    budget, info = auto_budget(model, free_bytes=free)
    assert info["bytes_per_token"] == per_token and budget % 256 == 0
    assert budget == int((free - 3 * params - CUDA_RESERVE_BYTES) * CUDA_MARGIN // per_token) // 256 * 256
    assert auto_budget(model, free_bytes=2**30)[0] == MIN_BUDGET  # nothing left: the floor, never 0


# ---- the gradient does not depend on the split -----------------------------------------------------------
def _grads(model, prompts, responses, adv, old, mode, budget, objective=("token", "ppo"), valid=None):
    """Accumulated gradient of one mini-batch split by ``budget``, as the trainer's update loop does it
    (groups of 3 rows; ``valid``: the rows in the loss)."""
    import torch

    from drgrpo_cli.objectives import aggregate_loss, loss_normalizers, ppo_token_loss
    from drgrpo_cli.packing import packed_logprobs, response_mask
    from drgrpo_cli.tasks.builtin import PAD

    model.zero_grad(set_to_none=True)
    mask = response_mask(responses)
    N, R = mask.shape
    valid = torch.ones(N, dtype=torch.bool) if valid is None else valid
    norms = loss_normalizers(mask, torch.arange(N) // 3, valid)
    loss_mask = mask * valid.unsqueeze(-1)
    groups = plan_micro_batches(torch.arange(N), [len(p) for p in prompts], [len(r) for r in responses], budget)
    for g in groups:
        rows = g.tolist()
        logp, _, _ = packed_logprobs(model, [prompts[i] for i in rows], [responses[i] for i in rows], 1.0,
                                     pad_id=PAD, width=R)
        tl, _ = ppo_token_loss(logp, old[g], adv[g], 0.2, 0.28, ratio_level=objective[0], policy_loss=objective[1],
                               mask=mask[g])
        aggregate_loss(tl, loss_mask[g], mode, 40, num_sequences=norms["num_sequences"],
                       num_tokens=norms["num_tokens"], group_tokens=norms["group_tokens"][g],
                       num_prompts=norms["num_prompts"]).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}, len(groups)


@pytest.mark.parametrize("objective", [("token", "ppo"), ("sequence", "ppo"), ("token", "cispo")])
@pytest.mark.parametrize("mode", LOSS_AGGS)
def test_packed_gradient_is_the_same_for_every_budget(small_model, mode, objective):
    """1, 3 and N (one row each) micro-batches give the full-batch gradient, to float32 rounding, for every
    aggregation with token ratios, GSPO's sequence ratio and CISPO, and with one row masked out of the loss.

    Not bit-exact: the rows go through differently padded forwards and the per-micro-batch gradients are
    summed in another order. Measured on this model (float32, CPU): relative error of the whole gradient
    <= 2.4e-6, of the worst single tensor <= 4.7e-6. Asserted: 1e-5 and 5e-5 (a per-micro-batch normalizer
    is off by far more: tests/test_objectives.py::test_naive_per_micro_batch_token_mean_is_wrong).
    """
    import torch

    from drgrpo_cli.policy import load_model
    from drgrpo_cli.packing import packed_logprobs, response_mask
    from drgrpo_cli.tasks.builtin import PAD

    torch.manual_seed(0)
    model = load_model(str(small_model))
    V = model.config.vocab_size
    rng = random.Random(1)
    N = 12
    prompts = [[rng.randrange(3, V) for _ in range(rng.randint(3, 8))] for _ in range(N)]
    responses = [[rng.randrange(3, V) for _ in range(rng.choice([0, 1, 4, 9, 17, 30]))] for _ in range(N)]
    mask = response_mask(responses)
    with torch.no_grad():
        logp, _, _ = packed_logprobs(model, prompts, responses, 1.0, pad_id=PAD, width=mask.shape[1])
    old = (logp + 0.15 * torch.randn(logp.shape)) * mask  # ratios away from 1: the clip is exercised
    adv = torch.randn(N)
    valid = torch.ones(N, dtype=torch.bool)
    valid[4] = False  # a masked (say truncated) row: out of every count, whatever the split
    full, n_full = _grads(model, prompts, responses, adv, old, mode, 1 << 20, objective, valid)
    p, r = [len(x) for x in prompts], [len(x) for x in responses]
    three = next(b for b in range(1, 1 << 12) if len(plan_micro_batches(torch.arange(N), p, r, b)) == 3)
    assert n_full == 1
    for budget, expect in ((three, 3), (1, N)):
        got, n = _grads(model, prompts, responses, adv, old, mode, budget, objective, valid)
        assert n == expect
        err = sum(((got[k] - g) ** 2).sum() for k, g in full.items()) ** 0.5
        assert err <= 1e-5 * sum((g ** 2).sum() for g in full.values()) ** 0.5, (budget, err)
        for k, g in full.items():
            assert (got[k] - g).norm() <= 5e-5 * g.norm() + 1e-12, (k, budget)
    assert any(g.abs().max() > 0 for g in full.values())


# ---- the CUDA path, on CPU with a stubbed free-memory figure ---------------------------------------------
def test_a_budget_sized_at_train_start_is_logged(tmp_path, small_model, monkeypatch):
    from drgrpo_cli import config as config_mod
    from drgrpo_cli import microbatch
    from drgrpo_cli.trainer import train

    monkeypatch.setattr(config_mod, "_micro_batch_budget", lambda cfg: None)  # as on CUDA: unknown at validation
    monkeypatch.setattr(microbatch, "auto_budget", lambda model, **kw: (64, {}))
    summary = train(tiny_config(steps=2, eval_every=0), tmp_path / "run", progress=False)
    rows, _ = runlog.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["max_tokens_per_micro_batch"] is None
    assert rows[0]["train/micro_batch_tokens"] == 64 and "train/micro_batch_tokens" not in rows[1]
    assert all(r["train/micro_batches"] > 1 for r in rows)  # 16 rows of up to ~30 tokens do not fit in 64
    assert summary["micro_batch_tokens"] == 64


def test_the_paper_grid_leaves_the_split_to_the_token_budget():
    from drgrpo_cli.sweep.grid import load_grid

    for r in load_grid("qwen-math-1.5b-2x2").runs:
        c = r.config.validate()
        assert (c.device, c.micro_batches, c.max_tokens_per_micro_batch) == ("cuda", 1, None)  # sized at start
        assert c.gradient_checkpointing and c.mini_batches == 8


def test_a_resumed_run_may_change_the_split(tmp_path, small_model):
    """The budget only trades memory for speed, so it may change on resume (an OOM's remedy); the change is
    recorded and the resumed run's numbers match an uninterrupted run's to float rounding."""
    from drgrpo_cli.trainer import train

    class Stop(KeyboardInterrupt):
        pass

    def stop_at_2(row):
        if row["step"] == 2:
            raise Stop

    cfg = tiny_config(steps=3, eval_every=0, checkpoint_every=1)
    train(cfg, tmp_path / "a", progress=False)
    try:
        train(cfg, tmp_path / "b", progress=False, on_step=stop_at_2)
    except Stop:
        pass
    train(tiny_config(steps=3, eval_every=0, checkpoint_every=1, max_tokens_per_micro_batch=64), tmp_path / "b",
          resume=True, progress=False)
    prov = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert prov["resumed_with"] == [{"from_step": 3, "changed": {"max_tokens_per_micro_batch": [65536, 64]}}]
    a, _ = runlog.read_jsonl(tmp_path / "a" / "metrics.jsonl")
    b, _ = runlog.read_jsonl(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3]  # step 3 ran after the resume, in micro-batches of <= 64 tokens
    for ra, rb in zip(a, b):
        assert ra["train/gen_tokens"] == rb["train/gen_tokens"]
        for key in ("train/loss", "train/grad_norm", "train/reward"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (ra["step"], key)
