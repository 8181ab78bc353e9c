"""The difficulty task (``--task builtin-difficulty``): buckets in the prompt, one bucket per group, tags for the
per-bucket metrics, warm-up answers right with each bucket's probability; and the ``builtin`` recipe is left
exactly as the published runs were made with."""

from __future__ import annotations

import json
import random

import pytest

from drgrpo_cli.config import ConfigError, TrainConfig
from drgrpo_cli.tasks.builtin_model import RECIPES
from drgrpo_cli.tasks.difficulty import BUCKETS, DifficultyTask, DifficultyWarmup, bucket_of, bucket_problem


def test_buckets_are_written_in_the_prompt():
    assert [bucket_problem(37, 5, b).question for b in BUCKETS] == ["37+5=", ".37+5=", "..37+5="]
    p = bucket_problem(37, 5, "hard")
    assert (p.answer, bucket_of(p)) == ("42", "hard")


def test_a_group_is_one_prompt_of_one_bucket_and_every_bucket_is_drawn():
    task = DifficultyTask()
    rng = random.Random(0)
    problems = task.sample(300, rng)
    counts = {b: sum(bucket_of(p) == b for p in problems) for b in BUCKETS}
    assert all(80 <= c <= 120 for c in counts.values()), counts  # uniform: 100 each in expectation
    group = task.rollout_prompts(problems[0], 8, rng)
    assert len(group) == 8 and len({g.prompt for g in group}) == 1 and {g.tag for g in group} == {bucket_of(problems[0])}
    assert task.reward("..#42", "42", False) == 1.0 and task.reward("..#42", "42", True) == 0.0
    evals = task.eval_sets()[""]
    assert {e.tag for e in evals} == set(BUCKETS) and all(e.prompt == e.problem.question for e in evals)
    train_pairs = {(p.question.lstrip("."), p.answer) for p in problems}
    assert not train_pairs & {(e.problem.question.lstrip("."), e.problem.answer) for e in evals}  # held out


def test_warmup_answers_are_right_with_each_buckets_probability():
    rng, w = random.Random(1), DifficultyWarmup()
    right = {b: [0, 0] for b in BUCKETS}
    for _ in range(6000):
        prompt, response = w.example(rng)
        bucket = {0: "easy", 1: "medium", 2: "hard"}[len(prompt) - len(prompt.lstrip("."))]
        a, b = (int(x) for x in prompt.strip(".=").split("+"))
        answer = int(response.split("#")[1])
        assert response.startswith("..#") and a + 1 <= answer <= a + 9  # a plausible sum either way
        right[bucket][0] += answer == a + b
        right[bucket][1] += 1
    for bucket, (_, p) in BUCKETS.items():
        k, n = right[bucket]
        assert abs(k / n - p) < 0.03, (bucket, k / n)


def test_the_published_recipes_are_unchanged():
    """The base models of the published runs: their recipe digests name their cache folders and weights."""
    assert RECIPES["builtin"].digest() == "afa1d158a9" and RECIPES["builtin-small"].digest() == "d2335ec4c5"
    assert RECIPES["builtin-difficulty"].warmup.init == "builtin"


def test_config_takes_the_task_and_runs_it(tmp_path, small_model):
    from drgrpo_cli.trainer import train

    assert TrainConfig(task="builtin-difficulty").validate().eval_samples == 4
    with pytest.raises(ConfigError, match="dataset"):
        TrainConfig(task="builtin-difficulty", dataset="x.jsonl").validate()
    cfg = TrainConfig(task="builtin-difficulty", model="builtin-small", steps=2, prompts_per_step=6, group_size=4,
                      max_tokens=16, eval_every=2, eval_max_prompts=12, checkpoint_every=0, threads=1)
    train(cfg, tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(f"train/{b}/accuracy" in rows[1] for b in BUCKETS)
    assert all(f"eval_sampled/{b}/accuracy" in rows[0] for b in BUCKETS)


def test_the_report_knows_the_buckets():
    from drgrpo_cli.report.figures import DIFFICULTY_TAGS

    assert DIFFICULTY_TAGS == tuple(BUCKETS)


def test_plot_draws_accuracy_by_bucket_for_a_difficulty_sweep(tmp_path):
    """Runs that log ``train/<bucket>/accuracy`` get the accuracy-by-bucket figure: one panel per bucket, one
    curve per arm (found by knobs), in the report; a run without buckets gets none."""
    from drgrpo_cli.report.plot import plot
    from tests.report_helpers import axes_by_title, write_run

    root = tmp_path / "sweep"
    for arm, adv in (("grpo", "group"), ("dr", "none")):
        for seed in (0, 1):
            d = write_run(root / f"{arm}__seed{seed}", adv_scale=adv, loss_agg="seq_mean", seed=seed)
            rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
            for r in rows:  # easy rises to 1, hard stays at 0.1, medium in between
                r.update({"train/easy/accuracy": min(1.0, 0.8 + 0.01 * r["step"]), "train/medium/accuracy": 0.5,
                          "train/hard/accuracy": 0.1})
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = plot([root], formats=("png",))
    assert (root / "figures" / "difficulty_learning.png").is_file()
    axes = axes_by_title(res.figures["difficulty_learning"])
    assert set(axes) >= {"train/easy/accuracy", "train/medium/accuracy", "train/hard/accuracy"}
    assert "Accuracy by difficulty bucket" in (root / "figures" / "report.md").read_text()
    plain = tmp_path / "plain"
    write_run(plain / "grpo__seed0", seed=0)
    assert "difficulty_learning" not in plot([plain], formats=("png",)).figures
