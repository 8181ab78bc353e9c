"""The rollout interface: prompts in (token ids), sampled responses out.

* ``generate(prompts, max_new_tokens, temperature, top_p, greedy) -> list[Sample]``: each sample holds the
  response ids (through ``<eos>`` or the token that completes a stop string, both kept) and whether it was
  truncated (hit the budget without finishing);
* ``sync(model)`` after every optimizer step: the HF backend samples from the training model itself, so it
  has nothing to do; vLLM pushes the new weights into its engine.
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
