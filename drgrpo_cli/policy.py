"""Loading the policy: one code path for the built-in model, local folders and hub ids.

Choices and why: everything goes through ``AutoModelForCausalLM`` / ``AutoTokenizer`` (the built-in model
is saved in the same format), so what is tested on CPU here is what loads a Qwen checkpoint on a GPU.
``dtype="auto"`` means float32 on CPU and bfloat16 on CUDA. Tokenizers without a pad token get
``pad = eos``; padding is on the left for generation. A hub id that cannot be reached fails with one line
that suggests a local folder instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

from drgrpo_cli.errors import first_line


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message is one line."""


def torch_dtype(dtype: str, device: str):
    """The torch dtype for ``dtype`` on ``device`` (``auto``: :func:`drgrpo_cli.config.resolve_dtype`)."""
    import torch

    from drgrpo_cli.config import resolve_dtype

    return getattr(torch, resolve_dtype(dtype, device))


def quiet_transformers() -> None:
    """No per-load progress bars or advisory warnings from transformers in a CLI tool's output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    quiet_transformers()

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - any loader failure becomes one line
        raise ModelLoadError(_explain(path, e)) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(path: str, *, dtype: str = "auto", device: str = "cpu", gradient_checkpointing: bool = False):
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype, device))
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(_explain(path, e)) from None
    model.to(device)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    return model


def _explain(path: str, e: Exception) -> str:
    first = first_line(e)
    if Path(path).exists():
        return f"cannot load model from {path}: {first}"
    return (f"cannot load model {path!r}: it is not a local folder and the hub could not provide it ({first[:160]}); "
            f"download it elsewhere and pass its local folder to --model")
