"""Scoring responses for the update: per-token log-probs (and entropy) without padding every row to the batch's
longest sequence.

:func:`packed_logprobs` gives the numbers of one fully padded batch (within float rounding), in the same
``[N, W]`` right-padded response layout: rows are sorted by length and cut (:func:`plan_chunks`, an exact
dynamic programme over padded tokens plus a per-forward overhead) into chunks, each an ordinary padded
batch, so every causal LM and attention implementation works. Log-probs and entropies past each
response's end are exactly 0. Measurements and the alternatives tried: docs/design/training.md.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from drgrpo_cli.objectives import gather_logprobs, token_entropy


def pad_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int):
    """Left-padded prompts followed by right-padded responses.

    Returns ids, attention mask, position ids ``[N, P+R]``, response ids and mask ``[N, R]`` (``R >= 1``).
    Positions count real tokens only, so each row sees exactly what it would see unpadded.
    """
    n = len(prompts)
    P = max(len(p) for p in prompts)
    R = max(1, max(len(r) for r in responses))
    ids = torch.full((n, P + R), pad_id, dtype=torch.long)
    attn = torch.zeros((n, P + R), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, P - len(p): P] = torch.tensor(list(p), dtype=torch.long)
        attn[i, P - len(p): P] = 1
        if len(r):
            ids[i, P: P + len(r)] = torch.tensor(list(r), dtype=torch.long)
            attn[i, P: P + len(r)] = 1
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    return ids, attn, pos, ids[:, P:], attn[:, P:].float()


def response_logits(model, ids: Tensor, attn: Tensor, pos: Tensor, R: int, temperature: float) -> Tensor:
    """Logits ``[N, R, V]`` (float32) predicting each response token of a :func:`pad_batch` layout, divided by
    the sampling temperature."""
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=R + 1, use_cache=False)
    logits = out.logits[:, :-1].float()  # [N, R, V]
    return logits / temperature if temperature != 1.0 else logits


def response_mask(responses: Sequence[Sequence[int]], width: int | None = None) -> Tensor:
    """``[N, W]`` float mask of the response tokens, ``W = max(1, longest response)`` unless given."""
    W = width if width is not None else max(1, max((len(r) for r in responses), default=0))
    lens = torch.tensor([len(r) for r in responses], dtype=torch.long)
    return (torch.arange(W)[None, :] < lens[:, None]).float()


def default_overhead(device) -> int:
    """Per-forward cost in padded tokens for :func:`plan_chunks` (docs/design/training.md)."""
    return 4096 if torch.device(device).type == "cuda" else 64


def plan_chunks(prompt_lens: Sequence[int], response_lens: Sequence[int], overhead: int) -> list[list[int]]:
    """Row indices cut into forward passes: contiguous runs of the rows sorted by total length, chosen to
    minimise ``sum(len(chunk) * (max prompt + max response)) + overhead * len(chunks)`` exactly (O(N^2))."""
    n = len(prompt_lens)
    order = sorted(range(n), key=lambda i: (prompt_lens[i] + response_lens[i], response_lens[i]))
    P = [prompt_lens[i] for i in order]
    R = [max(1, response_lens[i]) for i in order]
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j sorted rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        mp = mr = 0
        for i in range(j - 1, -1, -1):  # chunk = sorted rows i..j-1
            mp, mr = max(mp, P[i]), max(mr, R[i])
            c = best[i] + (j - i) * (mp + mr) + overhead
            if c < best[j]:
                best[j], cut[j] = c, i
    chunks, j = [], n
    while j > 0:
        chunks.append(order[cut[j]: j])
        j = cut[j]
    return chunks[::-1]


def packed_logprobs(model, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                    temperature: float = 1.0, *, pad_id: int, width: int | None = None, with_entropy: bool = False,
                    overhead: int | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
    """Per-token log-probs of each response given its prompt, computed in length buckets.

    Returns ``(logp, entropy, mask)``, each ``[N, W]`` on the model's device, rows in the input order,
    responses left-aligned and right-padded (``W = width`` if given, else ``max(1, longest response)``):

    * ``logp`` - ``log softmax(logits / temperature)`` at each response token; differentiable (gradients reach
      the model); exactly 0 past each response's end;
    * ``entropy`` - ``token_entropy`` of the same logits, detached; 0 past the end; ``None`` unless
      ``with_entropy``;
    * ``mask`` - float, 1 on response tokens.

    Equal, up to float rounding, to ``gather_logprobs(response_logits(model, *pack(...)), resp)`` (and
    ``token_entropy`` of those logits) on the response tokens. An empty response gives a row of zeros.
    ``overhead``: see :func:`plan_chunks` (default :func:`default_overhead` of the model's device); a huge
    value gives one chunk, i.e. the fully padded batch.
    """
    n = len(prompts)
    if n != len(responses):
        raise ValueError(f"{n} prompts but {len(responses)} responses")
    device = next(model.parameters()).device
    W = width if width is not None else max(1, max((len(r) for r in responses), default=0))
    if any(len(r) > W for r in responses):
        raise ValueError(f"a response is longer than width={W}")
    mask = response_mask(responses, W).to(device)
    if n == 0:
        return mask.clone(), (mask.clone() if with_entropy else None), mask
    chunks = plan_chunks([len(p) for p in prompts], [len(r) for r in responses],
                         default_overhead(device) if overhead is None else overhead)
    logps, ents = [], []
    for rows in chunks:
        ids, attn, pos, resp, _ = (x.to(device) for x in pad_batch([prompts[i] for i in rows],
                                                                    [responses[i] for i in rows], pad_id))
        logits = response_logits(model, ids, attn, pos, resp.shape[1], temperature)  # [c, Rc, V]
        logps.append(torch.nn.functional.pad(gather_logprobs(logits, resp), (0, W - resp.shape[1])))
        if with_entropy:
            with torch.no_grad():
                ents.append(torch.nn.functional.pad(token_entropy(logits.detach()), (0, W - resp.shape[1])))
    order = [i for rows in chunks for i in rows]
    inv = torch.empty(n, dtype=torch.long)
    inv[torch.tensor(order, dtype=torch.long)] = torch.arange(n)
    inv = inv.to(device)
    keep = mask.bool()
    logp = torch.cat(logps)[inv].masked_fill(~keep, 0.0)
    entropy = torch.cat(ents)[inv].masked_fill(~keep, 0.0) if with_entropy else None
    return logp, entropy, mask
