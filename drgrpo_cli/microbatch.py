"""Splitting a mini-batch into micro-batches by a token budget, and sizing that budget for a device.

The trainer accumulates gradients over micro-batches with the mini-batch's *global* normalizers
(:func:`drgrpo_cli.objectives.aggregate_loss` with ``num_sequences`` / ``num_tokens``), so how a
mini-batch is split changes memory and speed, never the gradient (up to float rounding). This module
decides the split, as verl's ``use_dynamic_bsz`` / ``ppo_max_token_len_per_gpu`` does: by tokens, not
by a row count, since a 3000-token response costs a hundred times a 30-token one.

Choices and why:

* **What the budget counts.** A micro-batch holds at most ``budget`` tokens counted as the padded
  rectangle ``rows * (longest prompt + longest response)`` of its rows: the most that one forward over
  it computes (:func:`drgrpo_cli.packing.packed_logprobs` buckets rows by length inside the forward, and
  its buckets never exceed this rectangle). That rectangle is >= the rows' real prompt + response
  tokens, so "<= budget real tokens" holds too.
* **How rows are assigned** (:func:`plan_micro_batches`): sorted by total length (the key
  :func:`drgrpo_cli.packing.plan_chunks` uses), then filled greedily: a row joins the current
  micro-batch while the rectangle stays within the budget, else it starts the next one. For a sorted
  sequence this gives the fewest contiguous micro-batches, and rows of similar length share a
  micro-batch, so little is padded. A single row over the budget gets a micro-batch of its own (it
  cannot be split). When the whole mini-batch fits, it is returned unchanged (the same index tensor,
  rows in their original order), so a run that needs one micro-batch computes exactly what it computed
  before budgets existed. Otherwise each micro-batch lists its rows in mini-batch order.
* **The budget on CUDA** (:func:`auto_budget`), when ``max_tokens_per_micro_batch`` is 0/None: the
  free device memory at train start (after the policy, the reference model and a sleeping vLLM engine
  are loaded; plus the blocks torch's caching allocator holds but does not use), minus what the
  optimizer still has to allocate (gradients + AdamW's two moments: 3 x the parameter bytes), minus a
  fixed reserve (2 GiB: CUDA/cuBLAS workspaces, the attention mask, allocator rounding), times a margin
  of 0.75 (fragmentation of the caching allocator across micro-batches of different shapes, and the
  estimate's own error), divided by :func:`activation_bytes_per_token`. Rounded down to a multiple of
  256, at least 256.
* **The per-token estimate** (:func:`activation_bytes_per_token`), for a Llama/Qwen2-style decoder in
  Hugging Face transformers (sdpa attention, SwiGLU MLP, RMSNorm computed in float32), ``b`` bytes per
  element of the model dtype, hidden ``h``, FFN ``f``, ``L`` layers, vocabulary ``V``; what autograd keeps
  for the backward, per token:

  - each RMSNorm: its float32 input copy (4h) + the normalised value before and after the weight (2bh);
    two per layer;
  - attention: q, k, v as sdpa saves them (k and v counted at full width, as if repeated for grouped
    heads: an upper bound), its output and the o_proj input (5bh);
  - MLP: gate, act(gate), up and their product (4bf);
  - so per layer ``(8 + 9b) h + 4 b f`` bytes (b = 2: ``26 h + 8 f``); with gradient checkpointing only
    each layer's input is kept (``b h`` per layer) plus one layer recomputed at a time;
  - the logits: bf16 logits from the head (bV), their float32 copy (4V), log-softmax saved for the
    backward (4V), the detached entropy's log-softmax and exp (8V), and in the backward the gradient of
    the log-softmax input and output (8V, overlapping the entropy buffers): about ``(16 + b) V``. This is
    charged to every token although only response positions get logits (``logits_to_keep``):
    conservative for long prompts.

  For a Qwen2.5-1.5B shape in bf16 (h 1536, f 8960, 28 layers, V 151936): 2.98 MiB of layer activations
  and 2.61 MiB of logits per token, 5.6 MiB in all (2.8 MiB with gradient checkpointing). With the ~20-symbol
  vocabulary of the built-in model the logits term is negligible.
  **Not yet checked against a GPU**: the formula is derived from what the ops save, and the margin is a
  guess; ``benchmarks/gpu_check.py --paper-shape`` prints the budget beside the measured peak memory.
* **CPU**: a fixed generous budget, :data:`CPU_DEFAULT_TOKENS`, resolved at validation (so it is in
  ``config.json``): host memory is rarely the limit on CPU, and the built-in model's mini-batches (128
  rows of at most ~70 tokens at the defaults) stay one micro-batch, so the default runs are unchanged.
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
    ``budget`` padded tokens each (see the module notes). Returns a list of index tensors; ``[mb]`` itself
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
    """Bytes of activations and logits kept per token in a training forward/backward (module notes)."""
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
