"""Splitting a mini-batch into micro-batches by a token budget, and sizing that budget for a device.

Gradients are accumulated with the mini-batch's global normalizers, so the split changes memory and speed,
never the gradient. A micro-batch holds at most ``budget`` tokens counted as the padded rectangle
``rows * (longest prompt + longest response)``; rows sorted by length fill it greedily
(:func:`plan_micro_batches`; a mini-batch that fits is returned unchanged). Off CUDA the budget is
:data:`CPU_DEFAULT_TOKENS`; on CUDA :func:`auto_budget` sizes it from the free memory and a per-token
activation estimate (:func:`activation_bytes_per_token`; not yet checked against a GPU). The derivation:
docs/design/training.md.
"""

from __future__ import annotations

from typing import Any, Sequence

#: The budget on a non-CUDA device when none is given: one micro-batch for every built-in configuration.
CPU_DEFAULT_TOKENS = 65536
#: Fraction of the free memory (after the fixed reserves) that activations may use on CUDA.
CUDA_MARGIN = 0.75
#: Fixed reserve on CUDA, bytes: workspaces, the attention mask, allocator rounding.
CUDA_RESERVE_BYTES = 2 * 2**30
MIN_BUDGET = 256


def padded_tokens(prompt_lens: Sequence[int], response_lens: Sequence[int], rows: Sequence[int]) -> int:
    """``len(rows) * (longest prompt + longest response)`` over ``rows``: what one forward over them computes."""
    if not len(rows):
        return 0
    return len(rows) * (max(prompt_lens[i] for i in rows) + max(1, max(response_lens[i] for i in rows)))


def plan_micro_batches(mb, prompt_lens: Sequence[int], response_lens: Sequence[int], budget: int) -> list:
    """Split the rows ``mb`` (a 1-D index tensor into the step's batch) into micro-batches of at most
    ``budget`` padded tokens each (docs/design/training.md). Returns a list of index tensors; ``[mb]`` itself
    when everything fits."""
    import torch

    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    rows = mb.tolist()
    if padded_tokens(prompt_lens, response_lens, rows) <= budget:
        return [mb]
    order = sorted(rows, key=lambda i: (prompt_lens[i] + response_lens[i], response_lens[i]))
    groups: list[list[int]] = []
    cur: list[int] = []
    mp = mr = 0
    for i in order:
        p, r = max(mp, prompt_lens[i]), max(mr, max(1, response_lens[i]))
        if cur and (len(cur) + 1) * (p + r) > budget:
            groups.append(cur)
            cur, p, r = [], prompt_lens[i], max(1, response_lens[i])
        cur.append(i)
        mp, mr = p, r
    groups.append(cur)
    pos = {row: k for k, row in enumerate(rows)}
    return [torch.tensor(sorted(g, key=pos.__getitem__), dtype=mb.dtype) for g in groups]


# ----------------------------------------------------------------------------------------------------
def activation_bytes_per_token(model_config: Any, dtype_bytes: int, gradient_checkpointing: bool = False) -> int:
    """Bytes of activations and logits kept per token in a training forward/backward (docs/design/training.md)."""
    h = int(model_config.hidden_size)
    f = int(getattr(model_config, "intermediate_size", None) or 4 * h)
    L = int(model_config.num_hidden_layers)
    V = int(model_config.vocab_size)
    b = int(dtype_bytes)
    layer = (8 + 9 * b) * h + 4 * b * f
    layers = (L * b * h + layer) if gradient_checkpointing else L * layer
    final_norm = (4 + 2 * b) * h
    logits = (16 + b) * V
    return layers + final_norm + logits


def auto_budget(model, *, gradient_checkpointing: bool = False, free_bytes: int | None = None,
                reserve_states: bool = True) -> tuple[int, dict[str, float]]:
    """The token budget for ``model`` on its CUDA device, and the figures it came from (for the log).

    ``free_bytes``: the memory available to the trainer now (default: the device's free memory plus the
    blocks torch's caching allocator holds unused). ``reserve_states``: subtract gradients and AdamW
    moments not yet allocated (3 x the parameter bytes).
    """
    import torch

    p = next(model.parameters())
    if free_bytes is None:
        free, _total = torch.cuda.mem_get_info(p.device)
        free_bytes = free + torch.cuda.memory_reserved(p.device) - torch.cuda.memory_allocated(p.device)
    param_bytes = sum(x.numel() * x.element_size() for x in model.parameters() if x.requires_grad)
    states = 3 * param_bytes if reserve_states else 0
    per_token = activation_bytes_per_token(model.config, p.element_size(), gradient_checkpointing)
    usable = (free_bytes - states - CUDA_RESERVE_BYTES) * CUDA_MARGIN
    budget = max(MIN_BUDGET, int(usable // per_token) // 256 * 256)
    return budget, {"free_gib": free_bytes / 2**30, "states_gib": states / 2**30,
                    "bytes_per_token": per_token, "budget": budget}
