"""The built-in base model: a tiny Llama with a character tokenizer, warmed up on the built-in task.

Saved in Hugging Face format, so the same loader (and vLLM) read it like a hub model. The build is
deterministic (fixed seeds, one thread) and cached under ``$DRGRPO_CACHE`` in a folder named after a hash of
the recipe, renamed into place under a file lock. Recipes: ``builtin`` (published results),
``builtin-small`` (tests) and ``builtin-difficulty`` (the difficulty task's). Why: docs/design/tasks.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from drgrpo_cli.tasks.builtin import EOS, PAD, VOCAB, WarmupRecipe
from drgrpo_cli.tasks.difficulty import DifficultyWarmup


@dataclass(frozen=True)
class BaseRecipe:
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    ffn: int = 384
    max_positions: int = 128
    steps: int = 700
    batch: int = 64
    lr: float = 3e-3
    warmup: WarmupRecipe | DifficultyWarmup = field(default_factory=WarmupRecipe)
    seed: int = 0
    threads: int = 1  # the tiny model trains fastest on one thread (and results do not depend on the machine's cores)

    def digest(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]


RECIPES: dict[str, BaseRecipe] = {
    "builtin": BaseRecipe(),
    "builtin-small": BaseRecipe(steps=120),
    # the difficulty task's base model (tasks.difficulty): the ``builtin`` model (which can add), trained on
    # for a while on the difficulty task's warm-up data
    "builtin-difficulty": BaseRecipe(steps=1000, lr=1e-3, warmup=DifficultyWarmup()),
}


def cache_root() -> Path:
    return Path(os.environ.get("DRGRPO_CACHE", Path.home() / ".cache" / "drgrpo"))


def base_dir(name: str = "builtin") -> Path:
    recipe = RECIPES[name]
    return cache_root() / f"{name}-{recipe.digest()}"


def is_builtin(model: str) -> bool:
    return model in RECIPES


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    hf.padding_side = "left"
    return hf


def build_model(recipe: BaseRecipe):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=recipe.hidden,
        intermediate_size=recipe.ffn,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=True,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=EOS,
        torch_dtype="float32",
    )
    torch.manual_seed(recipe.seed)
    return LlamaForCausalLM(cfg)


def _warmup_batch(rng: random.Random, recipe: BaseRecipe, chunks: int = 4):
    """``chunks`` sub-batches of warm-up text, sorted by length so each is padded only to its own width
    (the long hidden-operand responses would otherwise pad every row); right-padded token ids and a loss
    mask covering response tokens and the final ``<eos>``."""
    import torch

    char = {c: i for i, c in enumerate(VOCAB)}
    pairs = []
    for _ in range(recipe.batch):
        prompt, response = recipe.warmup.example(rng)
        pairs.append(([char[c] for c in prompt + response] + [EOS], [0] * len(prompt) + [1] * (len(response) + 1)))
    pairs.sort(key=lambda p: len(p[0]))
    size = -(-len(pairs) // chunks)
    out = []
    for part in (pairs[i: i + size] for i in range(0, len(pairs), size)):
        width = max(len(s) for s, _ in part)
        ids = torch.full((len(part), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(part), width))
        for i, (s, m) in enumerate(part):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(m)] = torch.tensor(m, dtype=torch.float)
        out.append((ids, mask))
    return out


def warm_up(model, recipe: BaseRecipe, progress=None) -> list[float]:
    """Supervised next-token training on warm-up text (one token-mean loss per batch); returns the loss curve."""
    import torch

    rng = random.Random(recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.05, 1 - s / recipe.steps))
    losses = []
    model.train()
    for step in range(recipe.steps):
        parts = _warmup_batch(rng, recipe)
        n_tok = sum(m[:, 1:].sum() for _, m in parts)
        opt.zero_grad(set_to_none=True)
        loss_val = 0.0
        for ids, mask in parts:
            logits = model(input_ids=ids, attention_mask=(mask > 0).long() | (ids != PAD).long()).logits[:, :-1]
            tgt, m = ids[:, 1:], mask[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), reduction="none")
            loss = (nll * m.reshape(-1)).sum() / n_tok
            loss.backward()
            loss_val += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss_val)
        if progress is not None:
            progress(step + 1, recipe.steps, loss_val)
    model.eval()
    return losses


def build_base(name: str = "builtin", *, rebuild: bool = False, progress=None) -> Path:
    """Return the cached base model folder for a named recipe, building it first if needed."""
    from filelock import FileLock

    if name not in RECIPES:
        raise ValueError(f"unknown built-in model {name!r}; choose one of {', '.join(RECIPES)}")
    target = base_dir(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists() and not rebuild:
            return target
        import torch

        from drgrpo_cli.policy import quiet_transformers

        quiet_transformers()
        recipe = RECIPES[name]
        threads = torch.get_num_threads()
        torch.set_num_threads(recipe.threads)
        t0 = time.time()
        try:
            model = build_model(recipe)
            init = getattr(recipe.warmup, "init", None)
            if init:  # start from another recipe's trained weights (built first if needed)
                from transformers import AutoModelForCausalLM

                model.load_state_dict(AutoModelForCausalLM.from_pretrained(build_base(init)).state_dict())
            losses = warm_up(model, recipe, progress)
        finally:
            torch.set_num_threads(threads)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        build_tokenizer().save_pretrained(tmp)
        (tmp / "drgrpo_base.json").write_text(json.dumps({
            "recipe": name, "digest": recipe.digest(), "recipe_fields": dataclasses.asdict(recipe),
            "final_loss": sum(losses[-20:]) / min(20, len(losses)), "build_seconds": round(time.time() - t0, 1),
        }, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    return target


def prebuild(models, console=None, *, rebuild: bool = False) -> None:
    """Build the missing built-in models among ``models`` now, with a progress bar (first use only).

    Called by ``drgrpo train`` and ``drgrpo ablate`` before training starts, so a first run shows the
    build instead of a bar stuck at step 0 (parallel workers would all wait on the build's lock).
    """
    for name in sorted(m for m in set(models) if m in RECIPES):
        if (base_dir(name) / "config.json").exists() and not rebuild:
            continue
        from rich.progress import Progress

        with Progress(console=console, transient=True) as p:
            t = p.add_task(f"building the {name} base model (about a minute)", total=RECIPES[name].steps)
            path = build_base(name, rebuild=rebuild, progress=lambda s, n, loss: p.update(t, completed=s))
        info = json.loads((path / "drgrpo_base.json").read_text())
        msg = f"built the {name} base model in {info['build_seconds']} s: {path}"
        console.print(msg) if console is not None else print(msg)


def check_base(name: str = "builtin", *, samples: int = 8, seed: int = 0, max_tokens: int = 64) -> dict:
    """Measure a built-in base model on training and held-out prompts of the built-in task, per state.

    Returns ``{"train|eval/clean|derailed": {"sampled_accuracy", "sampled_len_mean", "sampled_len_max", "greedy_accuracy",
    "greedy_len_mean"}}`` (lengths in response tokens, ``<eos>`` included; ``samples`` responses per prompt at
    temperature 1): the numbers behind the task's design criteria (docs/default-study.md).
    """
    import statistics

    import torch

    from drgrpo_cli.policy import load_model, load_tokenizer
    from drgrpo_cli.rollout.hf import HFBackend
    from drgrpo_cli.tasks.interface import EvalItem
    from drgrpo_cli.tasks.builtin import BuiltinTask, builtin_reward, state_prompt

    path = str(build_base(name))
    tok, model = load_tokenizer(path), load_model(path)
    backend = HFBackend(model, tok)
    task = BuiltinTask()
    # the prompts RL trains on (a fixed sample of training pairs, half with the operand hidden), and held-out ones
    train = [EvalItem(p, *state_prompt(p, i % 2 == 1)) for i, p in enumerate(task.sample(128, random.Random(seed)))]
    sets = {"train": train, "eval": task.eval_sets()[""]}
    out: dict[str, dict[str, float]] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for split, items in sets.items():
            for mode, k in (("sampled", samples), ("greedy", 1)):
                batch = [it for it in items for _ in range(k)]
                got = backend.generate([tok.encode(t, add_special_tokens=False) for _, t, _ in batch],
                                       max_new_tokens=max_tokens, greedy=mode == "greedy")
                for tag in ("clean", "derailed"):
                    rows = [(builtin_reward(tok.decode(s.ids, skip_special_tokens=True), p.answer, s.truncated),
                             len(s.ids)) for (p, _, t), s in zip(batch, got) if t == tag]
                    d = out.setdefault(f"{split}/{tag}", {})
                    d[f"{mode}_accuracy"] = statistics.fmean(r for r, _ in rows)
                    d[f"{mode}_len_mean"] = statistics.fmean(n for _, n in rows)
                    if mode == "sampled":
                        d["sampled_len_max"] = max(n for _, n in rows)
    return out


def design_criteria(recipe: BaseRecipe, stats: dict, budget: int = 64) -> list[tuple[str, bool, str]]:
    """The base-model side of the task's design criteria (docs/default-study.md), from :func:`check_base`."""
    w, der, clean = recipe.warmup, stats["train/derailed"], stats["train/clean"]
    top = w.hidden_max + 5  # dots, '#', at most three digits, <eos>
    return [
        ("D3", der["greedy_len_mean"] < der["sampled_len_mean"],
         f"failure state: greedy length {der['greedy_len_mean']:.1f} < sampled mean {der['sampled_len_mean']:.1f} "
         "(sharpening predicts shorter)"),
        ("D4", top >= 2.5 * der["sampled_len_mean"] and top < budget,
         f"support up to {top} tokens = {top / der['sampled_len_mean']:.1f}x the sampled mean (>= 2.5x), "
         f"below the {budget}-token budget"),
        ("D5", clean["sampled_accuracy"] >= 0.8,
         f"clean training prompts: sampled accuracy {clean['sampled_accuracy']:.3f} (>= 0.8)"),
    ]


def resolve_model_path(model: str) -> str:
    """A local folder for ``model``: a built-in name's cached folder, else the string as given (a local folder or
    a hub id, for :func:`drgrpo_cli.policy.load_model`).

    The first use of a built-in name *builds* it: this trains the base model (about a minute for ``builtin``)
    silently, waiting on the build's file lock when another process builds it. Callers that show progress call
    :func:`prebuild` first (``drgrpo train`` and ``drgrpo ablate`` do), so the build shows a progress bar.
    """
    if is_builtin(model):
        return str(build_base(model))
    return model
