"""Rollout backends (``base``: the interface; ``hf``: the training model's own sampling loop; ``vllm``:
a colocated vLLM engine, imported only when asked for)."""

from __future__ import annotations

from typing import Sequence

from drgrpo_cli.rollout.base import RolloutBackend, Sample
from drgrpo_cli.rollout.hf import HFBackend

__all__ = ["RolloutBackend", "Sample", "HFBackend", "make_backend"]


def make_backend(name: str, model, tokenizer, *, stop_strings: Sequence[str] = (), model_path: str | None = None,
                 config=None) -> RolloutBackend:
    """The rollout backend ``name``; ``auto`` is decided by :func:`drgrpo_cli.config.resolve_backend` (vLLM on
    CUDA when it is installed and usable, else HF), the function ``TrainConfig.validate()`` uses too."""
    if name == "auto":
        from drgrpo_cli.config import resolve_backend

        name = resolve_backend(name, str(getattr(config, "device", None) or "cpu"))
    if name == "hf":
        return HFBackend(model, tokenizer, stop_strings)
    if name == "vllm":
        from drgrpo_cli.rollout.vllm import VLLMBackend

        return VLLMBackend(model_path, tokenizer, config=config, stop_strings=stop_strings, model=model)
    raise ValueError(f"unknown backend {name!r}")
