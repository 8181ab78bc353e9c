"""drgrpo vs TRL's GRPOTrainer (Dr. GRPO loss) on one CPU thread: seconds per step, completion tokens/s, FLOP floor.

    python benchmarks/trl_vs_drgrpo.py [--steps 10] [--rounds 1] [--arms trl,trl-nockpt,drgrpo,trl-bf16]
                                       [--seed 0] [--profile-drgrpo N]

Needs ``pip install "trl==1.16.0"`` (and psutil, optional) beside drgrpo; torch stays as it is.

Same work in every arm: the built-in base model (fp32), the built-in task and reward, 16 prompts x G=8 = 128
completions per optimizer step, at most 64 new tokens, temperature 1, lr 2e-4, beta 0 (no reference model),
one optimizer step per generation (on-policy, ratio 1), ``torch.set_num_threads(1)``, no vLLM.

* (a) ``trl``: TRL ``GRPOTrainer`` with ``loss_type="dr_grpo"``, ``scale_rewards="none"``,
  ``per_device_train_batch_size=128``, ``num_generations=8``, ``gradient_accumulation_steps=1``,
  ``steps_per_generation=1``, ``num_iterations=1``, ``max_completion_length=64``, ``use_cpu=True``,
  ``report_to="none"``, ``save_strategy="no"``; TRL's defaults otherwise, so gradient checkpointing is ON
  (TRL's GRPOConfig default). One exception: ``bf16=False``. TRL defaults ``bf16=True`` (CPU autocast to
  bfloat16) while drgrpo trains in fp32 on CPU, so the like-for-like arms run fp32.
* (b) ``trl-nockpt``: the same with ``gradient_checkpointing=False``.
* (c) ``drgrpo``: ``drgrpo_cli.trainer.train`` with ``TrainConfig(adv_scale="none", loss_agg="max_tokens",
  threads=1, eval_every=0, checkpoint_every=0, lr=2e-4, backend="hf")`` (the drgrpo preset).
* (d) ``trl-bf16``: TRL's full defaults, ``bf16=True`` too (for reference: a different numeric format).

Differences that remain, and why they do not favour either side:

* Hidden operands. drgrpo hides the second operand of each rollout with probability 0.5 (``37+?=``, drawn
  per rollout, inside a group). TRL samples ``num_generations`` completions of one dataset prompt, so the
  dataset here hides it on every other prompt: half the rollouts are in the failure state in both, in
  expectation, but in TRL a whole group shares it. Same prompt length (5 tokens).
* Truncation. The reward wraps ``drgrpo_cli.tasks.builtin.builtin_reward``; ``truncated`` is read from TRL's
  ``completion_ids`` (which keep the ``<eos>``): a completion whose last id is not ``<eos>`` hit the
  64-token budget, exactly drgrpo's rule. Completion lengths count the ``<eos>`` in both.
* Optimizer: TRL uses AdamW betas (0.9, 0.999) and a linear LR decay to 0 over the run; drgrpo uses
  (0.9, 0.95) and a constant LR. Same cost per step; the trajectories (and so lengths) differ a little,
  which is why the comparison is per completion token, not per step only.
* TRL skips the old-log-prob forward here (``gradient_accumulation_steps % (steps_per_generation *
  num_iterations) == 0`` and no vLLM), as drgrpo does; neither loads a reference model (beta 0).

Timing: every arm runs in its own fresh Python process (no shared allocator/thread state). TRL: a
``TrainerCallback`` stamps ``on_step_begin`` / ``on_step_end``; drgrpo: its ``time/step_s`` metric and the
``on_step`` callback's stamps. "s/step" is the mean over steps 2..N (step 1 is warm-up); "loop s/step" is the
mean interval between consecutive step ends (it also counts each framework's per-step logging/bookkeeping);
"cpu s" is the same interval in process CPU time, which other processes on a busy machine inflate far less
than wall time. ``--rounds R`` interleaves the arms R times and keeps each arm's fastest round.
Completion tokens are counted from the rollouts themselves (TRL: inside the reward function).

Compute floor: FLOPs/step = 6 * n_params * (prompt + completion tokens, unpadded)          [update fwd+bwd]
                           + 2 * n_params * (prompt + completion tokens)                   [generation fwd]
                           + 8 * n_layers * d_model * sum_i L_i^2                          [attention]
(attention: QK^T and AV of a causal row of length L are 2 * L^2 * d FLOPs per layer and forward; x3 for the
update's forward+backward, x1 for generation)
with n_params the model's unique parameters (tied embedding counted once), divided by this core's
measured fp32 GEMM rate (512x512 @ 512x512 ``torch.mm`` on 1 thread). It is a bound no real step meets:
the model's GEMMs are far smaller than 512^3 and generation is up to 64 sequential batched decode steps.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = ("trl", "trl-nockpt", "drgrpo", "trl-bf16")
TRL_ARMS = {  # name: (gradient_checkpointing, bf16)
    "trl": (True, False),
    "trl-nockpt": (False, False),
    "trl-bf16": (True, True),  # TRL's full defaults: checkpointing on and bf16 autocast
}
PROMPTS_PER_STEP = 16
GROUP = 8
MAX_TOKENS = 64
LR = 2e-4


# ----------------------------------------------------------------------------------------------------
# helpers


def load_avg() -> str:
    try:
        a, b, c = os.getloadavg()
        return f"{a:.2f} {b:.2f} {c:.2f}"
    except OSError:
        return "n/a"


def matmul_gflops(n: int = 512, seconds: float = 1.5) -> float:
    """Best-of-5 fp32 GEMM rate of one thread, GFLOP/s, in process CPU time (steadier on a busy machine)."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    for _ in range(5):
        torch.mm(a, b, out=c)
    best = 0.0
    for _ in range(5):
        iters, t0 = 0, time.process_time()
        while True:
            torch.mm(a, b, out=c)
            iters += 1
            dt = time.process_time() - t0
            if dt > seconds / 5:
                break
        best = max(best, 2 * n ** 3 * iters / dt / 1e9)
    return best


def model_shape(path: str | None = None) -> dict:
    from transformers import AutoConfig, AutoModelForCausalLM

    from drgrpo_cli.tasks.builtin_model import build_base

    path = path or str(build_base("builtin"))
    model = AutoModelForCausalLM.from_pretrained(path)
    cfg = AutoConfig.from_pretrained(path)
    n = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return {"path": path, "n_params": n, "layers": cfg.num_hidden_layers, "d_model": cfg.hidden_size}


# ----------------------------------------------------------------------------------------------------
# arms (each runs in its own process)


def run_trl(path: str, steps: int, seed: int, checkpointing: bool, bf16: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from drgrpo_cli.policy import load_tokenizer, quiet_transformers
    from drgrpo_cli.tasks.builtin import BuiltinTask, builtin_reward, hide_operand

    quiet_transformers()
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    eos = tok.eos_token_id

    task = BuiltinTask(derail_prob=0.5)
    rng = random.Random(seed)
    n_rows = (steps + 1) * PROMPTS_PER_STEP
    problems = task.sample(n_rows, rng)
    # every other prompt with its operand hidden: half the rollouts in expectation, as drgrpo's per-rollout coin
    ds = Dataset.from_dict({
        "prompt": [hide_operand(p.question) if i % 2 else p.question for i, p in enumerate(problems)],
        "answer": [p.answer for p in problems],
    })

    log = {"gen_tokens": [], "prompt_tokens": [], "seq_lens": [], "rewards": [], "gen_s": [], "gen_cpu_s": []}

    def reward(prompts, completions, completion_ids, answer, **_):
        lens = [len(c) for c in completion_ids]
        p_lens = [len(tok.encode(p, add_special_tokens=False)) for p in prompts]
        log["gen_tokens"].append(sum(lens))
        log["prompt_tokens"].append(sum(p_lens))
        log["seq_lens"].append([a + b for a, b in zip(p_lens, lens)])
        out = [builtin_reward(c, a, truncated=not ids or ids[-1] != eos)
               for c, a, ids in zip(completions, answer, completion_ids)]
        log["rewards"].append(statistics.fmean(out))
        return out

    class Timer(TrainerCallback):
        def __init__(self):
            self.begin, self.end, self.cpu_end, self.threads = [], [], [], []

        def on_step_begin(self, args, state, control, **kw):
            self.begin.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            self.end.append(time.perf_counter())
            self.cpu_end.append(time.process_time())
            self.threads.append(torch.get_num_threads())

    timer = Timer()
    out_dir = tempfile.mkdtemp(prefix="trl-bench-")
    cfg = GRPOConfig(
        output_dir=out_dir,
        loss_type="dr_grpo",
        scale_rewards="none",
        beta=0.0,
        per_device_train_batch_size=PROMPTS_PER_STEP * GROUP,
        num_generations=GROUP,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        max_completion_length=MAX_TOKENS,
        gradient_checkpointing=checkpointing,
        bf16=bf16,
        use_cpu=True,
        use_vllm=False,
        report_to="none",
        save_strategy="no",
        learning_rate=LR,
        temperature=1.0,
        max_steps=steps,
        seed=seed,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=ds, processing_class=tok,
                          callbacks=[timer])
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    # generation + scoring time (an instance attribute wraps the method; TRL's code is unchanged)
    inner = trainer._generate_and_score_completions

    def timed(batch):
        t, c = time.perf_counter(), time.process_time()
        res = inner(batch)
        log["gen_s"].append(time.perf_counter() - t)
        log["gen_cpu_s"].append(time.process_time() - c)
        return res

    trainer._generate_and_score_completions = timed
    resolved = {k: getattr(trainer.args, k) for k in (
        "gradient_checkpointing", "bf16", "loss_type", "scale_rewards", "beta", "num_generations",
        "generation_batch_size", "steps_per_generation", "num_iterations", "max_completion_length",
        "learning_rate", "lr_scheduler_type", "adam_beta2", "max_grad_norm", "epsilon", "top_k", "top_p",
        "use_vllm", "mask_truncated_completions", "disable_dropout")}
    trainer.train()
    step_s = [e - b for b, e in zip(timer.begin, timer.end)]
    return {
        "step_s": step_s, "end_t": timer.end, "cpu_end": timer.cpu_end, "gen_s": log["gen_s"],
        "gen_cpu_s": log["gen_cpu_s"], "gen_tokens": log["gen_tokens"],
        "prompt_tokens": log["prompt_tokens"], "seq_lens": log["seq_lens"], "reward": log["rewards"],
        "threads": sorted(set(timer.threads)), "config": {k: str(v) for k, v in resolved.items()},
    }


def drgrpo_config(path: str, steps: int, seed: int):
    from drgrpo_cli.config import PRESETS, TrainConfig

    return TrainConfig(**PRESETS["drgrpo"], model=path, steps=steps, seed=seed, threads=1, eval_every=0, checkpoint_every=0,
                       lr=LR, backend="hf", group_size=GROUP, prompts_per_step=PROMPTS_PER_STEP,
                       max_tokens=MAX_TOKENS, temperature=1.0)


def run_drgrpo(path: str, steps: int, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from drgrpo_cli import rollout
    from drgrpo_cli.trainer import train

    gen_cpu = []
    inner = rollout.HFBackend.generate

    def timed(self, *a, **kw):  # CPU time of generation; the wall time is drgrpo's own time/gen_s
        c = time.process_time()
        res = inner(self, *a, **kw)
        gen_cpu.append(time.process_time() - c)
        return res

    rollout.HFBackend.generate = timed  # this process only; drgrpo's code is unchanged
    rows, ends, cpu_ends = [], [], []

    def on_step(row):
        ends.append(time.perf_counter())
        cpu_ends.append(time.process_time())
        rows.append(row)

    with tempfile.TemporaryDirectory() as d:
        train(drgrpo_config(path, steps, seed), Path(d) / "run", on_step=on_step, progress=False)
    # prompt lengths are not logged; the built-in prompts are "ab+c=" or "ab+?=" (5 tokens)
    n = PROMPTS_PER_STEP * GROUP
    return {
        "step_s": [r["time/step_s"] for r in rows], "end_t": ends, "cpu_end": cpu_ends, "gen_s": [r["time/gen_s"] for r in rows],
        "train_s": [r["time/train_s"] for r in rows], "gen_cpu_s": gen_cpu, "gen_tokens": [r["train/gen_tokens"] for r in rows],
        "prompt_tokens": [n * 5 for r in rows],
        "seq_lens": None, "len_mean": [r["train/len_mean"] for r in rows],
        "reward": [r["train/reward"] for r in rows], "threads": [torch.get_num_threads()],
    }


def profile_drgrpo(steps: int, seed: int, top: int = 35) -> None:
    import cProfile
    import pstats

    import torch

    torch.set_num_threads(1)
    from drgrpo_cli.policy import load_model, load_tokenizer
    from drgrpo_cli.tasks.builtin_model import resolve_model_path
    from drgrpo_cli.trainer import train

    path = resolve_model_path("builtin")  # import transformers' lazy modules before profiling
    load_tokenizer(path), load_model(path)
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as d:
        prof.enable()
        train(drgrpo_config(path, steps, seed), Path(d) / "run", progress=False)
        prof.disable()
    st = pstats.Stats(prof)
    st.sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top)


# ----------------------------------------------------------------------------------------------------
# report


def summarize(name: str, r: dict, shape: dict) -> dict:
    steady = slice(1, None) if len(r["step_s"]) > 1 else slice(None)
    step_s = statistics.fmean(r["step_s"][steady])
    ends = r["end_t"]
    loop_s = statistics.fmean(b - a for a, b in zip(ends[:-1], ends[1:])) if len(ends) > 1 else step_s
    cends = r["cpu_end"]
    cpu_s = statistics.fmean(b - a for a, b in zip(cends[:-1], cends[1:])) if len(cends) > 1 else float("nan")
    toks = statistics.fmean(r["gen_tokens"][steady])
    ptoks = statistics.fmean(r["prompt_tokens"][steady])
    n = PROMPTS_PER_STEP * GROUP
    gen_s = statistics.fmean(r["gen_s"][steady]) if r.get("gen_s") else float("nan")
    gen_cpu = statistics.fmean(r["gen_cpu_s"][steady]) if r.get("gen_cpu_s") else float("nan")
    if r.get("seq_lens"):
        seq = [sum(L * L for L in s) for s in r["seq_lens"][steady]]
        sq = statistics.fmean(seq)
    else:  # drgrpo logs no per-row lengths: approximate sum L^2 from the mean length
        sq = n * ((ptoks + toks) / n) ** 2
    tokens = ptoks + toks
    flops = 6 * shape["n_params"] * tokens + 2 * shape["n_params"] * tokens + 4 * 2 * shape["layers"] * shape["d_model"] * sq
    len1 = r["gen_tokens"][0] / n
    return {"name": name, "len1": len1, "step_s": step_s, "loop_s": loop_s, "cpu_s": cpu_s, "cpu_tok_s": toks / cpu_s, "first_s": r["step_s"][0], "tok_s": toks / step_s,
            "len": toks / n, "gen_s": gen_s, "gen_cpu_s": gen_cpu, "train_s": statistics.fmean(r["train_s"][steady]) if r.get("train_s") else None,
            "flops": flops, "reward": statistics.fmean(r["reward"]), "threads": r["threads"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the arms, interleaved, and keep each arm's best round")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile-drgrpo", type=int, default=0, metavar="N",
                    help="instead of the comparison, cProfile N drgrpo steps and print the top functions")
    ap.add_argument("--_arm", help=argparse.SUPPRESS)
    ap.add_argument("--_out", help=argparse.SUPPRESS)
    ap.add_argument("--_model", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._arm:  # child process: one arm, results as JSON
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        if args._arm == "drgrpo":
            res = run_drgrpo(args._model, args.steps, args.seed)
        else:
            ckpt, bf16 = TRL_ARMS[args._arm]
            res = run_trl(args._model, args.steps, args.seed, checkpointing=ckpt, bf16=bf16)
        Path(args._out).write_text(json.dumps(res))
        return
    if args.profile_drgrpo:
        profile_drgrpo(args.profile_drgrpo, args.seed)
        return

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    for a in arms:
        if a not in ARMS:
            ap.error(f"unknown arm {a!r}; choose from {', '.join(ARMS)}")
    import torch

    shape = model_shape()
    print(f"torch {torch.__version__}, 1 thread; load average before: {load_avg()} (on {os.cpu_count()} cores)")
    gf = matmul_gflops()
    print(f"fp32 GEMM 512x512x512, 1 thread: {gf:.1f} GFLOP/s")
    print(f"model: built-in Llama, {shape['n_params']:,} params ({shape['layers']} layers, d={shape['d_model']}); "
          f"{PROMPTS_PER_STEP} prompts x G={GROUP}, max {MAX_TOKENS} new tokens, {args.steps} steps, lr {LR}, "
          f"fp32 (trl-bf16: bf16 autocast)\nmodel folder: {shape['path']}")

    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        for rnd in range(args.rounds):
            for a in arms:
                out = Path(d) / f"{a}-{rnd}.json"
                cmd = [sys.executable, os.path.abspath(__file__), "--_arm", a, "--_out", str(out),
                       "--steps", str(args.steps), "--seed", str(args.seed), "--_model", shape["path"]]
                la = load_avg()
                t = time.time()
                subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
                res = json.loads(out.read_text())
                s = summarize(a, res, shape)
                s["load"] = la
                print(f"  round {rnd + 1} {a:<11} {s['step_s']:.3f} s/step, {s['tok_s']:,.0f} tok/s, "
                      f"len {s['len']:.1f}  (process {time.time() - t:.0f} s, load before {la})", flush=True)
                if a not in best or s["tok_s"] > best[a]["tok_s"]:
                    best[a] = s
                if a != "drgrpo" and rnd == 0:
                    best[a]["config"] = res["config"]
                elif a != "drgrpo":
                    best[a].setdefault("config", res["config"])

    print()
    print(f"load average after: {load_avg()}")
    hdr = (f"{'arm':<12}{'s/step':>8}{'loop s':>8}{'cpu s':>7}{'1st s':>7}{'gen s':>7}{'gen cpu':>8}{'compl tok/s':>13}{'mean len':>10}{'len@1':>7}"
           f"{'reward':>8}{'floor s':>9}{'floor/meas':>12}")
    print(hdr)
    print("-" * len(hdr))
    for a in arms:
        s = best[a]
        floor = s["flops"] / (gf * 1e9)
        print(f"{a:<12}{s['step_s']:>8.3f}{s['loop_s']:>8.3f}{s['cpu_s']:>7.3f}{s['first_s']:>7.2f}{s['gen_s']:>7.3f}{s['gen_cpu_s']:>8.3f}{s['tok_s']:>13,.0f}"
              f"{s['len']:>10.1f}{s['len1']:>7.1f}{s['reward']:>8.2f}{floor:>9.3f}{floor / s['step_s']:>11.1%}")
    if "drgrpo" in best:
        s = best["drgrpo"]
        print(f"drgrpo split: generation {s['gen_s']:.3f} s, update {s['train_s']:.3f} s, "
              f"other {s['step_s'] - s['gen_s'] - s['train_s']:.3f} s per step")
        for a in TRL_ARMS:
            if a in best:
                t = best[a]
                print(f"drgrpo / {a:<10}: {s['tok_s'] / t['tok_s']:.2f}x completion tokens/s, "
                      f"{t['step_s'] / s['step_s']:.2f}x s/step (TRL's over drgrpo's); on CPU time "
                      f"{s['cpu_tok_s'] / t['cpu_tok_s']:.2f}x tokens/s")
        print(f"floor (FLOPs {s['flops'] / 1e9:.2f} GFLOP/step at {gf:.1f} GFLOP/s): {s['flops'] / (gf * 1e9):.3f} s; "
              f"drgrpo's step is {s['step_s'] / (s['flops'] / (gf * 1e9)):.1f}x the floor "
              f"({s['cpu_s'] / (s['flops'] / (gf * 1e9)):.1f}x in CPU time)")
    for a in TRL_ARMS:
        if a in best and best[a].get("config"):
            print(f"{a} resolved config: " + ", ".join(f"{k}={v}" for k, v in best[a]["config"].items()))
    print("threads seen inside the arms: " + ", ".join(f"{a}={best[a]['threads']}" for a in arms))


if __name__ == "__main__":
    main()
