"""drgrpo train: the built-in task, the run-directory contract, determinism, resume, and CLI errors (the config
itself: tests/test_config.py)."""

from __future__ import annotations

import collections
import json
import math
import random
import statistics

import pytest
from typer.testing import CliRunner

from drgrpo_cli import runlog
from drgrpo_cli.cli.app import app
from drgrpo_cli.config import TrainConfig
from drgrpo_cli.tasks.builtin import (BuiltinTask, WarmupRecipe, builtin_reward, hidden_filler, make_problem, parse_answer,
                             warmup_example)
from drgrpo_cli.batch import Batch, rollout_metrics, tag_entropy
from drgrpo_cli.config import PRESETS
from tests.conftest import tiny_config

runner = CliRunner()

CONTRACT = ["step", "train/reward", "train/accuracy", "train/len_mean", "train/len_correct", "train/len_incorrect",
            "train/truncated_frac", "train/loss", "train/grad_norm", "train/entropy", "train/clip_frac",
            "train/adv_abs_mean", "time/step_s", "time/gen_tok_per_s", "train/derailed/len_incorrect",
            "train/derailed/len_correct", "train/clean/len_correct", "train/derailed/entropy", "train/clean/entropy"]


def _strip_time(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


# ---- resume compatibility ---------------------------------------------------------------------------------
def test_resume_accepts_a_config_saved_before_auto_was_resolved(tmp_path):
    from drgrpo_cli.rundir import prepare as _prepare_dir

    out = tmp_path / "run"
    out.mkdir()
    old = TrainConfig().to_dict()  # as an older drgrpo saved it: dtype/backend "auto", no vllm_* keys
    for k in ("vllm_gpu_memory_utilization", "vllm_enable_sleep", "vllm_max_model_len"):
        old.pop(k)
    old.update(loss_max_tokens=64, epsilon_high=0.2, eval_samples=4, question_field="problem", answer_field="answer")
    (out / "config.json").write_text(json.dumps(old))
    assert _prepare_dir(TrainConfig().validate(), out, resume=True, force=False) == ("resume", {})


# ---- built-in task -----------------------------------------------------------------------------------------
def test_builtin_reward_parses_final_answer_and_zeroes_truncation():
    assert parse_answer("....#82") == "82" and parse_answer("..#8x") is None and parse_answer("...") is None
    assert builtin_reward("..#82", "82", truncated=False) == 1.0
    assert builtin_reward("..#82", "82", truncated=True) == 0.0
    assert builtin_reward("#81", "82", truncated=False) == 0.0


def test_builtin_eval_split_is_held_out_and_half_derailed():
    t = BuiltinTask(0.5)
    assert not set(t.train_pairs) & set(t.eval_pairs)
    items = t.eval_sets()[""]
    tags = [tag for _, _, tag in items]
    assert tags.count("derailed") == len(tags) // 2
    for p, text, tag in items:  # the failure state hides the second operand; the gold answer stays a+b
        a, b = p.question[:-1].split("+")
        assert text == (f"{a}+?=" if tag == "derailed" else f"{a}+{b}=") and p.answer == str(int(a) + int(b))


def test_hidden_operand_rollouts_and_unlearnable_failure_state():
    t = BuiltinTask(0.5)
    groups = [t.rollout_prompts(make_problem(37, 5), 8, random.Random(s)) for s in range(50)]
    texts = {text: tag for g in groups for text, tag in g}
    assert texts == {"37+5=": "clean", "37+?=": "derailed"}
    # any fixed answer to 37+?= is right for exactly one of the nine hidden operands: 1/9 at best
    assert [builtin_reward("..#42", str(37 + b), False) for b in range(1, 10)].count(1.0) == 1


def test_warmup_filler_after_a_hidden_operand_has_a_short_mode_and_a_long_tail():
    rec = WarmupRecipe()
    rng = random.Random(0)
    ns = [hidden_filler(rng, rec) for _ in range(20000)]
    counts = collections.Counter(ns)
    assert min(ns) == 2 and max(ns) == 40
    assert counts.most_common(1)[0][0] == 2 and abs(counts[2] / len(ns) - 0.6) < 0.015
    # P(n = 2) = 0.6; otherwise 3 + a geometric tail with stop 0.1, capped at 40: mean = 2 + 0.4 * (1 + E[tail])
    tail = sum(0.9 ** k for k in range(1, 38))  # E[min(Geom, 37)] for the continues after the third dot
    assert abs(statistics.fmean(ns) - (2 + 0.4 * (1 + tail))) < 0.15
    prompt, response = warmup_example(random.Random(3), rec)
    assert prompt.endswith("=") and "#" in response


def test_rollout_metrics_split_by_tag_and_correctness():
    b = Batch(prompts=[[1]] * 4, responses=[[5] * 3, [5] * 10, [5] * 20, [5] * 4], texts=[""] * 4,
              rewards=[1.0, 0.0, 0.0, 1.0], truncated=[False] * 4, tags=["clean", "derailed", "derailed", "derailed"],
              prompt_texts=[""] * 4)
    m = rollout_metrics(b, "train")
    assert m["train/len_incorrect"] == 15 and m["train/len_correct"] == 3.5
    assert m["train/derailed/len_incorrect"] == 15 and m["train/derailed/len_correct"] == 4
    assert m["train/derailed/accuracy"] == 1 / 3 and m["train/derailed/frac"] == 0.75
    assert m["train/clean/len_correct"] == 3 and math.isnan(m["train/clean/len_incorrect"])
    ent = tag_entropy(b.tags, [3.0, 10.0, 5.0, 1.0], [3, 10, 20, 4])
    assert ent == {"clean": 1.0, "derailed": 16.0 / 34}


# ---- runs --------------------------------------------------------------------------------------------------
def test_cli_dapo_full_run_records_its_knobs_and_logs_them(tmp_path, small_model):
    """``--preset dapo-full`` on the CLI: config.json holds every knob it set (and the rest at their defaults),
    each step logs dynamic sampling, the overlong penalty and the masked share; bad values exit 2, one line."""
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--model", "builtin-small", "--preset", "dapo-full", "--steps", "2",
                              "--prompts-per-step", "4", "--group-size", "4", "--max-tokens", "24",
                              "--eval-every", "0", "--threads", "1", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert {k: cfg[k] for k in PRESETS["dapo-full"]} == PRESETS["dapo-full"]
    assert (cfg["ratio_level"], cfg["policy_loss"], cfg["kl_estimator"], cfg["kl_in"], cfg["length_alpha"],
            cfg["baseline"]) == ("token", "ppo", "k3", "loss", 0.0, "group")
    rows, _ = runlog.read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["train/ds_rounds"] >= 1 and 0 <= r["train/ds_groups_kept"] <= 4
        assert -1 <= r["train/overlong_penalty"] <= 0 and 0 <= r["train/masked_frac"] <= 1
    for bad in (["--kl-estimator", "k4"], ["--baseline", "rloo"], ["--length-alpha", "-1"],
                ["--preset", "gspo", "--ratio-level", "token"], ["--overlong-buffer-frac", "1.5"]):
        res = runner.invoke(app, ["train", "--out", str(tmp_path / "bad"), *bad])
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, (bad, res.output)
        assert not (tmp_path / "bad").exists()


def test_cli_smoke_run_writes_the_log_contract(tmp_path, small_model):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--model", "builtin-small", "--no-std", "--fixed-len", "--steps", "3",
                              "--prompts-per-step", "4", "--group-size", "4", "--max-tokens", "24",
                              "--eval-every", "2", "--threads", "1", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["adv_scale"], cfg["loss_agg"], cfg["loss_max_tokens"]) == ("none", "max_tokens", 24)
    # config.json holds what ran: dtype and backend resolved, never "auto"
    assert (cfg["dtype"], cfg["backend"]) == ("float32", "hf") and "auto" not in cfg.values()
    rows, torn = runlog.read_jsonl(out / "metrics.jsonl")
    assert not torn
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert "eval/accuracy" in rows[0] and "eval/accuracy" in rows[2] and "eval/accuracy" in rows[3]
    assert "eval/accuracy" not in rows[1]
    # sampled eval beside greedy: eval_samples resolves to 4 on the built-in task
    assert cfg["eval_samples"] == 4 and "eval_sampled/derailed/len_incorrect" in rows[2]
    assert 0 <= rows[0]["eval_sampled/accuracy"] <= 1
    for r in rows[1:]:
        for k in CONTRACT:
            assert k in r, k
        # correct/incorrect lengths are the means over the right responses (null when there are none)
        assert r["train/len_correct"] is None or r["train/len_correct"] >= 1
        assert 0 <= r["train/accuracy"] <= 1 and r["train/reward"] == r["train/accuracy"]
        assert sum(r[f"difficulty/k{k}/groups"] for k in range(5)) == 4
    samples, _ = runlog.read_jsonl(out / "samples.jsonl")
    assert samples and {"step", "prompt", "response", "reward", "length", "truncated"} <= set(samples[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 3
    assert not (out / "checkpoint").exists()


def test_sampled_eval_never_changes_the_training_stream(tmp_path, small_model):
    from drgrpo_cli.trainer import train

    for k in (0, 3):
        train(tiny_config(steps=3, seed=2, eval_samples=k), tmp_path / f"k{k}", progress=False)
    rows = {k: runlog.read_jsonl(tmp_path / f"k{k}" / "metrics.jsonl")[0] for k in (0, 3)}
    train_only = {k: [{key: v for key, v in r.items() if key.startswith("train/")}
                      for r in rs] for k, rs in rows.items()}
    assert train_only[0] == train_only[3]
    assert not any("eval_sampled/accuracy" in r for r in rows[0])
    assert all("eval_sampled/accuracy" in r for r in rows[3] if "eval/accuracy" in r)


def test_same_seed_same_metrics_and_resume_equals_uninterrupted(tmp_path, small_model):
    from drgrpo_cli.trainer import train

    cfg = tiny_config(steps=4, seed=5, checkpoint_every=2)
    train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    a, _ = runlog.read_jsonl(tmp_path / "a" / "metrics.jsonl")
    b, _ = runlog.read_jsonl(tmp_path / "b" / "metrics.jsonl")
    assert _strip_time(a) == _strip_time(b)

    class Stop(KeyboardInterrupt):
        pass

    def stop_at_3(row):
        if row["step"] == 3:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "c", progress=False, on_step=stop_at_3)
    assert runlog.run_state(tmp_path / "c") == "partial"
    partial, _ = runlog.read_jsonl(tmp_path / "c" / "metrics.jsonl")
    assert [r["step"] for r in partial] == [0, 1, 2, 3]  # step 3 was written after the step-2 checkpoint
    train(cfg, tmp_path / "c", resume=True, progress=False)
    c, _ = runlog.read_jsonl(tmp_path / "c" / "metrics.jsonl")
    assert [r["step"] for r in c] == [0, 1, 2, 3, 4]  # no duplicated rows
    assert _strip_time(c) == _strip_time(a)
    # a finished run is returned untouched on resume
    before = (tmp_path / "c" / "metrics.jsonl").read_bytes()
    train(cfg, tmp_path / "c", resume=True, progress=False)
    assert (tmp_path / "c" / "metrics.jsonl").read_bytes() == before


def test_different_seeds_differ(tmp_path, small_model):
    from drgrpo_cli.trainer import train

    train(tiny_config(steps=1, seed=0, eval_every=0), tmp_path / "a", progress=False)
    train(tiny_config(steps=1, seed=1, eval_every=0), tmp_path / "b", progress=False)
    a, _ = runlog.read_jsonl(tmp_path / "a" / "samples.jsonl")
    b, _ = runlog.read_jsonl(tmp_path / "b" / "samples.jsonl")
    assert [s["prompt"] for s in a] != [s["prompt"] for s in b]


def test_loss_modes_and_ppo_knobs_run(tmp_path, small_model):
    from drgrpo_cli.trainer import train

    for i, kw in enumerate([dict(loss_agg="token_mean", adv_scale="batch", beta=0.05),
                            dict(loss_agg="seq_sum", ppo_epochs=2, mini_batches=2, micro_batches=2, epsilon_high=0.28)]):
        s = train(tiny_config(steps=2, eval_every=0, **kw), tmp_path / str(i), progress=False)
        assert s["status"] == "finished"
        rows, _ = runlog.read_jsonl(tmp_path / str(i) / "metrics.jsonl")
        assert all(math.isfinite(r["train/loss"]) for r in rows)
        if kw.get("beta"):
            assert all(r["train/kl"] >= 0 for r in rows)


# ---- errors: one line, non-zero, nothing overwritten ----------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["--std", "--preset", "drgrpo"], "conflicting"),
    (["--adv-scale", "bogus"], "adv_scale must be one of"),
    (["--group-size", "1"], "group_size"),
    (["--fixed-len", "--loss-agg", "seq_sum"], "conflicting"),
    (["--preset", "nope"], "unknown preset"),
    (["--preset", "dapo", "--epsilon-high", "0.3"], "conflicting"),
])
def test_bad_options_are_one_line_errors(args, needle, tmp_path):
    res = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_existing_run_is_not_overwritten_without_force(tmp_path, small_model):
    out = tmp_path / "run"
    args = ["train", "--model", "builtin-small", "--steps", "1", "--prompts-per-step", "2", "--group-size", "2",
            "--max-tokens", "16", "--eval-every", "0", "--quiet", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "metrics.jsonl").read_bytes()
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--resume" in res.stderr and "--force" in res.stderr
    assert (out / "metrics.jsonl").read_bytes() == before
    res = runner.invoke(app, args + ["--force"])
    assert res.exit_code == 0


def test_non_run_folder_is_never_deleted(tmp_path):
    (tmp_path / "precious.txt").write_text("x")
    res = runner.invoke(app, ["train", "--out", str(tmp_path), "--force"])
    assert res.exit_code == 2 and (tmp_path / "precious.txt").exists()


def test_help_is_complete():
    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for flag in ["--std", "--no-std", "--fixed-len", "--seq-len", "--adv-scale", "--loss-agg", "--preset", "--steps",
                 "--seed", "--out", "--group-size", "--prompts-per-step", "--max-tokens", "--lr", "--epsilon",
                 "--epsilon-high", "--beta", "--ppo-epochs", "--mini-batches", "--micro-batches", "--temperature",
                 "--eval-every", "--model", "--task", "--resume", "--force", "--quiet", "--dtype", "--backend",
                 "--vllm-gpu-memory-utilization", "--vllm-sleep", "--no-vllm-sleep", "--vllm-max-model-len"]:
        assert flag in res.output, flag


def test_every_objective_knob_is_a_train_flag():
    """Every objective knob, every field a preset sets and their companions can be set from ``drgrpo train``,
    and each preset's help names it."""
    from drgrpo_cli.config import OBJECTIVE_KNOBS, PRESETS, SWITCHED

    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0
    for name in {*OBJECTIVE_KNOBS, *SWITCHED, "dynamic_sampling_max_rounds", "overlong_penalty", "beta"}:
        assert "--" + name.replace("_", "-") in res.output, name
    text = "".join(res.output.replace("│", "").split())  # the help, wrapped in a box, without spaces
    for preset, knobs in PRESETS.items():
        assert f"{preset}:" + ",".join(f"{k}={v}" for k, v in knobs.items()) in text, preset


def test_provenance_is_recorded_and_a_changed_library_set_refuses_resume(tmp_path, small_model):
    from importlib import metadata

    from drgrpo_cli.provenance import weights_sha256
    from drgrpo_cli.trainer import train

    class Stop(KeyboardInterrupt):
        pass

    def stop_at_2(row):
        if row["step"] == 2:
            raise Stop

    cfg = tiny_config(steps=3, checkpoint_every=1)
    out = tmp_path / "run"
    with pytest.raises(Stop):
        train(cfg, out, progress=False, on_step=stop_at_2)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["libraries"]["torch"] == metadata.version("torch")
    assert prov["libraries"]["transformers"] == metadata.version("transformers")
    assert prov["machine"]["threads"] == 1 and prov["weights_sha256"] == weights_sha256(str(small_model))
    assert len(prov["weights_sha256"]) == 64 and prov["drgrpo"]
    prov["libraries"]["torch"] = "0.0.1"
    (out / "provenance.json").write_text(json.dumps(prov))
    before = (out / "metrics.jsonl").read_bytes()
    res = runner.invoke(app, ["train", "--model", "builtin-small", "--steps", "3", "--prompts-per-step", "4",
                              "--group-size", "4", "--max-tokens", "24", "--eval-every", "2", "--eval-max-prompts",
                              "16", "--checkpoint-every", "1", "--threads", "1", "--quiet", "--out", str(out), "--resume"])
    assert res.exit_code == 2 and "torch 0.0.1 -> " in res.output and "--force" in res.output
    assert (out / "metrics.jsonl").read_bytes() == before  # nothing touched
    prov["libraries"]["torch"] = metadata.version("torch")
    (out / "provenance.json").write_text(json.dumps(prov))
    summary = train(cfg, out, resume=True, progress=False)
    assert summary["status"] == "finished" and summary["provenance"]["libraries"] == prov["libraries"]


def test_a_base_model_built_inside_train_does_not_change_the_run(tmp_path, monkeypatch):
    """The first run on an empty cache builds the base model inside train(); its numbers equal a cached run's."""
    from drgrpo_cli.trainer import train

    monkeypatch.setenv("DRGRPO_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(steps=2, seed=4)
    train(cfg, tmp_path / "first", progress=False)  # builds builtin-small into the empty cache
    train(cfg, tmp_path / "cached", progress=False)
    rows = [_strip_time(runlog.read_jsonl(tmp_path / d / "metrics.jsonl")[0]) for d in ("first", "cached")]
    assert rows[0] == rows[1]


def test_resume_refusal_counts_vllm_only_for_vllm_runs(tmp_path):
    from drgrpo_cli.provenance import library_versions, resume_refusal

    libs = {**library_versions(), "vllm": "0.0.1"}
    (tmp_path / "provenance.json").write_text(json.dumps({"libraries": libs}))
    for backend, refused in (("hf", False), ("vllm", True)):
        (tmp_path / "config.json").write_text(json.dumps({"backend": backend}))
        why = resume_refusal(tmp_path)
        assert (why is not None) is refused
        if refused:
            assert "vllm 0.0.1 -> " in why and "--force" in why
