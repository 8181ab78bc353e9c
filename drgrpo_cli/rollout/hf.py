"""The HF rollout backend: samples from the training model itself with its own loop (:func:`sample_loop`).

It prefills the left-padded prompts once with a KV cache and drops each row from the batch, cache included,
as soon as it finishes; it samples the plain (temperature, top-p) distribution, as vLLM does, with torch's
global RNG (seeded and checkpointed by the trainer). Stop strings are matched on the decoded text (vLLM's
rule). Why: docs/design/tasks.md.
"""

from __future__ import annotations

from typing import Sequence

from drgrpo_cli.rollout.interface import Sample


def next_tokens(logits, *, temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False):
    """One token per row from last-position logits ``[B, V]``: argmax, or a draw from softmax(logits / T)
    restricted to the top-p nucleus (``transformers``' TopPLogitsWarper rule: drop the tokens whose
    ascending cumulative probability is <= 1 - top_p, always keep the most likely one)."""
    import torch

    if greedy:
        return logits.argmax(-1)
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        drop = sorted_logits.softmax(-1).cumsum(-1) <= (1 - top_p)
        drop[..., -1:] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


def sample_loop(model, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
                temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False, stopped=None) -> list[Sample]:
    """Decode every prompt with a KV cache, dropping rows from the batch as they finish.

    ``stopped(rows)`` (optional) gets the response ids of the rows that emitted a token other than
    ``<eos>`` this step and returns, per row, whether it now ends with a stop string. A row ends after its
    ``<eos>`` or stop token (kept in the response); a row still running after ``max_new_tokens`` tokens
    is truncated. Works with any ``transformers`` causal LM whose cache supports ``batch_select_indices``
    (``DynamicCache``, the default); positions count real tokens only, so left padding is invisible.
    """
    import torch
    from transformers.modeling_outputs import CausalLMOutputWithPast

    n = len(prompts)
    if n == 0:
        return []
    # newer transformers (5.24 here) call the KV cache argument and output ``cache``, older ``past_key_values``
    cache_arg = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
            attn[i, width - len(p):] = 1
    ids, attn = ids.to(device), attn.to(device)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)  # [B, P] as in training: pads get 0 (they are masked out)
    next_pos = attn.sum(-1, keepdim=True)  # [B, 1] position of each row's next token
    out: list[list[int]] = [[] for _ in range(n)]
    done = [False] * n
    alive = list(range(n))  # batch row -> prompt index
    cache = None
    for step in range(max_new_tokens):
        o = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1,
                  **{cache_arg: cache})
        cache = o.get(cache_arg)
        tok = next_tokens(o.logits[:, -1], temperature=temperature, top_p=top_p, greedy=greedy)  # [B]
        running = []
        for j, t in enumerate(tok.tolist()):
            out[alive[j]].append(t)
            if t == eos_id:
                done[alive[j]] = True
            else:
                running.append(j)
        if stopped is not None and running:
            hit = stopped([out[alive[j]] for j in running])
            for j in (j for j, h in zip(running, hit) if h):
                done[alive[j]] = True
            running = [j for j, h in zip(running, hit) if not h]
        if not running or step == max_new_tokens - 1:
            break
        if len(running) < len(alive):
            keep = torch.tensor(running, dtype=torch.long, device=device)
            cache.batch_select_indices(keep)
            attn, tok, next_pos = attn[keep], tok[keep], next_pos[keep]
            alive = [alive[j] for j in running]
        attn = torch.cat([attn, attn.new_ones((len(alive), 1))], dim=-1)
        ids, pos = tok[:, None], next_pos
        next_pos = next_pos + 1
    return [Sample(r, not d) for r, d in zip(out, done)]


class StopStringMatcher:
    """``stopped(rows)`` for :func:`sample_loop`: does the text of each row's last tokens contain a stop
    string? Checked after every token, so a hit is always completed by the newest token. The window is
    one token longer than the longest stop string in characters (every token decodes to >= 1 character,
    and the extra token absorbs a tokenizer that strips the first token's leading space)."""

    def __init__(self, tokenizer, stop_strings: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = [s for s in stop_strings if s]
        self.window = max((len(s) for s in self.stops), default=0) + 1

    def __call__(self, rows: list[list[int]]) -> list[bool]:
        texts = self.tokenizer.batch_decode([r[-self.window:] for r in rows])
        return [any(s in t for s in self.stops) for t in texts]


class HFBackend:
    """Samples from the training model itself (no weight copies) with :func:`sample_loop`."""

    name = "hf"

    def __init__(self, model, tokenizer, stop_strings: Sequence[str] = ()):
        self.model = model
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_strings = list(stop_strings)
        self.stopped = StopStringMatcher(tokenizer, self.stop_strings) if any(self.stop_strings) else None

    def sync(self, model) -> None:
        self.model = model

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, greedy=False):
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                return sample_loop(self.model, prompts, max_new_tokens=max_new_tokens, eos_id=self.eos_id,
                                   pad_id=self.pad_id, temperature=temperature, top_p=top_p, greedy=greedy,
                                   stopped=self.stopped)
        finally:
            if was_training:
                self.model.train()
