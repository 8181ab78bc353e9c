"""Shared fixtures. The built-in model cache defaults to ``<repo>/.cache/drgrpo`` so tests and CI reuse one
quick test model (``builtin-small``, ~25 s to build once) instead of touching the user's cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DRGRPO_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "drgrpo"))


@pytest.fixture(scope="session")
def small_model() -> Path:
    from drgrpo_cli.tasks.builtin_model import build_base

    return build_base("builtin-small")


def tiny_config(**kw):
    """A 2-3 step config on the quick test model: seconds, not minutes."""
    from drgrpo_cli.config import TrainConfig

    base = dict(model="builtin-small", steps=3, prompts_per_step=4, group_size=4, max_tokens=24, eval_every=2,
                eval_max_prompts=16, checkpoint_every=1, threads=1)
    base.update(kw)
    return TrainConfig(**base)
