"""Tasks: the problems a run trains on, their prompts and their reward (``builtin``: the built-in
arithmetic task; ``builtin-difficulty``: the same in three difficulty buckets; ``math``: dataset problems graded by math-verify). :func:`make_task` is the one place a
TrainConfig is unpacked into a task's arguments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drgrpo_cli.tasks.interface import EvalItem, Problem, RolloutPrompt, Task

if TYPE_CHECKING:
    from drgrpo_cli.config import TrainConfig

__all__ = ["EvalItem", "Problem", "RolloutPrompt", "Task", "make_task"]


def make_task(cfg: TrainConfig) -> Task:
    """The task ``cfg.task`` names, built from the config's fields (reads every dataset now: a bad file fails
    before the first step)."""
    if cfg.task == "builtin":
        from drgrpo_cli.tasks.builtin import BuiltinTask

        return BuiltinTask(cfg.derail_prob, eval_size=cfg.eval_max_prompts)
    if cfg.task == "builtin-difficulty":
        from drgrpo_cli.tasks.difficulty import DifficultyTask

        return DifficultyTask(eval_size=cfg.eval_max_prompts)
    if cfg.task == "math":
        from drgrpo_cli.tasks.math import MathTask

        return MathTask(cfg.dataset, eval_datasets=cfg.eval_datasets, template=cfg.template,
                        question_field=cfg.question_field, answer_field=cfg.answer_field,
                        eval_max_prompts=cfg.eval_max_prompts)
    raise ValueError(f"unknown task {cfg.task!r}")
