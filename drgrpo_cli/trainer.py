"""The training loop: sample prompts -> G responses each -> rewards -> advantages -> loss -> optimizer step.

No CLI and no plotting here; ``drgrpo train`` and ``drgrpo ablate`` both call :func:`train`.

Choices and why:

* The two bias knobs go straight into :mod:`drgrpo_cli.objectives` (``compute_advantages`` with
  ``cfg.adv_scale``, ``aggregate_loss`` with ``cfg.loss_agg``); nothing else in the loop depends on them.
* Log-probs are taken from ``logits / temperature``, the distribution the rollouts were sampled from.
  Only the response positions are projected to the vocabulary (``logits_to_keep``).
* With one PPO epoch and one mini-batch (the default, and the paper's recipe) the policy that sampled is
  the one being updated, so ``old_logp = logp.detach()`` (ratio exactly 1) and no second forward is
  spent; otherwise old log-probs are recomputed once, before any update, by the training model (also when
  a vLLM engine sampled: its numerics differ slightly from the trainer's).
* Gradient accumulation passes the mini-batch's global counts to ``aggregate_loss``, so every loss mode
  gives the same gradient however the mini-batch is split: into ``micro_batches`` equal row counts when
  that is > 1, else by the token budget ``max_tokens_per_micro_batch`` (:mod:`drgrpo_cli.microbatch`;
  on CUDA without a budget it is sized from the free memory once, at start, and logged as
  ``train/micro_batch_tokens`` in the process's first metrics row, ``train/micro_batches`` in every row,
  and ``micro_batch_tokens`` in ``summary.json``). Old and reference log-probs are computed once per
  step, before any update, over the batch in its original order (with the same splitting rule).
* Resume: ``checkpoint/state.pt`` holds model, optimizer, torch and Python RNG states and the step; on
  resume the metric and sample rows written after the checkpoint are dropped and recomputed (all of them,
  step-0 eval included, when there is no checkpoint yet: the run restarts), so a resumed run's metrics
  equal an uninterrupted run's (up to the wall-clock ``time/*`` fields). The checkpoint is written to a
  temporary name, fsynced and renamed: a crash or a full disk mid-save leaves the previous one.
  ``RESUME_MAY_CHANGE`` (the micro-batch split and gradient checkpointing for an OOM, ``skip_nonfinite`` for a
  NaN: not the method) may differ on resume; the change is recorded in provenance.json (``resumed_with``).
* Stops: one process writes a run (``runlog.locked``). SIGTERM/SIGINT finish the step, checkpoint it,
  write summary.json ``interrupted`` and raise ``Interrupted`` (:mod:`drgrpo_cli.interrupt`). A failure
  once work has started (step 0's eval on) becomes ``RunFailed``, one line naming the step (out of memory,
  disk full, a NaN/Inf ``train/loss`` or ``train/grad_norm``, anything else), recorded in summary.json;
  the last checkpoint stays. A non-finite loss or gradient norm is checked before ``opt.step()``, so it
  never reaches the weights; ``skip_nonfinite`` skips such updates instead (``train/skipped_updates``).
* Per-step metrics are a flat dict: ``train/*``, ``eval/*``, ``difficulty/k{k}/*``, ``time/*`` (see the
  README's "metrics" section for every key).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from drgrpo_cli import runlog
from drgrpo_cli.config import ConfigError, TrainConfig
from drgrpo_cli.interrupt import Interrupted, StopRequest, signal_name
from drgrpo_cli.errors import disk_full, is_oom, one_line
from drgrpo_cli.tasks import make_task

#: config fields that may differ on resume: memory use (the OOM remedies) and what a NaN does, not the method
RESUME_MAY_CHANGE = ("micro_batches", "max_tokens_per_micro_batch", "gradient_checkpointing", "skip_nonfinite")


class RunExistsError(Exception):
    """The output folder already holds a run (or cannot be used as asked); the message is one line."""


class RunFailed(Exception):
    """A run failed after work started: one line naming the step; ``checkpoint`` is the step it resumes from
    (None: no checkpoint yet, it restarts); ``kind`` is oom | disk_full | nonfinite | error."""

    def __init__(self, message: str, *, step: int | None, checkpoint: int | None, kind: str = "error"):
        super().__init__(message)
        self.step, self.checkpoint, self.kind = step, checkpoint, kind


@dataclass
class Batch:
    """One step's rollouts, flat over ``N = prompts * G`` responses."""

    prompts: list[list[int]]
    responses: list[list[int]]
    texts: list[str]
    rewards: list[float]
    truncated: list[bool]
    tags: list[str | None]
    prompt_texts: list[str]


# ----------------------------------------------------------------------------------------------------
# metrics helpers


def _mean(xs) -> float:
    xs = list(xs)
    return float(statistics.fmean(xs)) if xs else float("nan")


def rollout_metrics(batch: Batch, prefix: str) -> dict[str, float]:
    """Reward, accuracy and lengths, split by correctness and by task tag."""
    lens = [len(r) for r in batch.responses]
    ok = [r > 0.5 for r in batch.rewards]
    m = {
        f"{prefix}/reward": _mean(batch.rewards),
        f"{prefix}/accuracy": _mean(float(o) for o in ok),
        f"{prefix}/len_mean": _mean(lens),
        f"{prefix}/len_correct": _mean(l for l, o in zip(lens, ok) if o),
        f"{prefix}/len_incorrect": _mean(l for l, o in zip(lens, ok) if not o),
        f"{prefix}/truncated_frac": _mean(float(t) for t in batch.truncated),
    }
    for tag in sorted({t for t in batch.tags if t}):
        idx = [i for i, t in enumerate(batch.tags) if t == tag]
        m[f"{prefix}/{tag}/frac"] = len(idx) / len(batch.tags)
        m[f"{prefix}/{tag}/accuracy"] = _mean(float(ok[i]) for i in idx)
        m[f"{prefix}/{tag}/len"] = _mean(lens[i] for i in idx)
        m[f"{prefix}/{tag}/len_correct"] = _mean(lens[i] for i in idx if ok[i])
        m[f"{prefix}/{tag}/len_incorrect"] = _mean(lens[i] for i in idx if not ok[i])
    return m


def tag_entropy(tags: list[str | None], ent_sum, tokens) -> dict[str, float]:
    """Mean token entropy of each tag's responses: ``ent_sum`` and ``tokens`` are per-response ``[N]`` sums."""
    out = {}
    for tag in sorted({t for t in tags if t}):
        idx = [i for i, t in enumerate(tags) if t == tag]
        n = float(sum(float(tokens[i]) for i in idx))
        out[tag] = sum(float(ent_sum[i]) for i in idx) / n if n else float("nan")
    return out


# ----------------------------------------------------------------------------------------------------


def _refuse_foreign(out: Path, force: bool) -> None:
    """A non-empty folder that is not a run is never written to (not even a lock file)."""
    if out.is_dir() and runlog.run_state(out) == "missing" and any(p.name != runlog.LOCK for p in out.iterdir()):
        if force:
            raise RunExistsError(f"{out} exists and is not a drgrpo run folder; refusing to delete it even with --force")
        raise RunExistsError(f"{out} exists and is not empty; choose another --out")


def _prepare_dir(cfg: TrainConfig, out: Path, resume: bool, force: bool) -> tuple[str, dict[str, list]]:
    """(``fresh`` | ``resume`` | ``done``, the RESUME_MAY_CHANGE fields that change on resume: [old, new]);
    refuses to touch an existing run unless asked to."""
    _refuse_foreign(out, force)
    state = runlog.run_state(out)
    if state == "missing":
        return "fresh", {}
    if force:
        for name in (runlog.CONFIG, runlog.METRICS, runlog.SAMPLES, runlog.SUMMARY, runlog.PROVENANCE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / runlog.CHECKPOINT, ignore_errors=True)
        return "fresh", {}
    if not resume:
        raise RunExistsError(f"{out} already holds a {state} run; pass --resume to continue it or --force to start over")
    # validate(): a run saved before "auto" was resolved compares with its resolved values
    saved, new = TrainConfig.load(out / runlog.CONFIG).validate().to_dict(), cfg.to_dict()
    diff = sorted(k for k in saved if saved[k] != new.get(k))
    if set(diff) - set(RESUME_MAY_CHANGE) or (diff and state == "finished"):
        raise ConfigError(f"{out} was started with a different config ({', '.join(diff)} differ); use another --out")
    if state != "finished":
        from drgrpo_cli.provenance import resume_refusal

        why = resume_refusal(out)
        if why:
            raise ConfigError(why)
    return ("done", {}) if state == "finished" else ("resume", {k: [saved[k], new[k]] for k in diff})


def train(
    config: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    force: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) one training run into ``out_dir``; returns the summary dict.

    Raises, before touching the run: RunExistsError, ConfigError, ``runlog.InUseError`` (another process
    writes it); once work started: RunFailed (one line, recorded in summary.json); on SIGTERM/SIGINT:
    ``Interrupted`` after checkpointing (a second Ctrl-C: KeyboardInterrupt at once, resumable).
    """
    cfg = config.validate()
    if cfg.task == "math":  # detected dataset columns go into config.json
        from drgrpo_cli.tasks.math import resolve_fields

        cfg = resolve_fields(cfg, echo=(lambda line: print(line, file=sys.stderr)) if progress else None)
    out = Path(out_dir)
    _refuse_foreign(out, force)
    out.mkdir(parents=True, exist_ok=True)
    with runlog.locked(out):
        mode, changed = _prepare_dir(cfg, out, resume, force)
        if mode == "done":
            return runlog.read_summary(out) or {}
        if mode == "fresh":
            cfg.save(out / runlog.CONFIG)
        else:
            (out / runlog.SUMMARY).unlink(missing_ok=True)  # an interrupted or failed attempt: this one replaces it
        at: dict[str, int | None] = {"step": None, "checkpoint": None}  # step in progress, last checkpoint
        note = "finishing this step, then saving a checkpoint (Ctrl-C again to stop at once)" if progress else None
        try:
            with StopRequest(note) as stop:
                return _train(cfg, out, mode == "resume", on_step, progress, stop, at, changed)
        except KeyboardInterrupt:
            raise  # a partial run: resumable, not failed
        except BaseException as e:
            failed = _failure(e, at)
            if failed is None and mode == "fresh":  # nothing ran (a model or dataset that fails to load, say):
                _discard(out)  # leave no run behind, so the corrected command starts clean instead of "differs"
                raise
            _record_failure(out, failed or e, at)
            if failed is None or failed is e:
                raise
            raise failed from e


def _discard(out: Path) -> None:
    """Remove what a fresh run wrote before it failed to start: the folder is no run again."""
    for name in (runlog.CONFIG, runlog.PROVENANCE, runlog.METRICS, runlog.SAMPLES, runlog.SUMMARY):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / runlog.CHECKPOINT, ignore_errors=True)








def _failure(e: BaseException, at: dict[str, int | None]) -> RunFailed | None:
    """The one-line RunFailed for an exception raised once work started (None before, or not an Exception)."""
    if isinstance(e, RunFailed) or at["step"] is None or not isinstance(e, Exception):
        return e if isinstance(e, RunFailed) else None
    step, full = at["step"], disk_full(e)
    if is_oom(e):
        msg, kind = (f"out of memory at step {step}: lower --max-tokens-per-micro-batch (below the logged "
                     f"train/micro_batch_tokens), raise --micro-batches or add --gradient-checkpointing (all "
                     f"allowed on resume), or start over with a lower --max-tokens"), "oom"
    elif full is not None:
        msg, kind = f"disk full at step {step} (writing {full.filename or 'the run folder'}): free some space", \
            "disk_full"
    else:
        msg, kind = f"{one_line(e)} (at step {step})", "error"
    return RunFailed(msg, step=step, checkpoint=at["checkpoint"], kind=kind)


def _record_failure(out: Path, e: BaseException, at: dict[str, int | None]) -> None:
    """summary.json ``failed``, best effort (the disk may be full)."""
    try:
        runlog.write_json_atomic(out / runlog.SUMMARY, {
            "status": "failed", "error": str(e) if isinstance(e, RunFailed) else one_line(e), "step": at["step"],
            "checkpoint_step": at["checkpoint"]})
    except OSError:
        pass


def _train(cfg: TrainConfig, out: Path, resuming: bool, on_step, show_progress: bool, stop: StopRequest,
           at: dict[str, int | None], changed: dict[str, list]) -> dict[str, Any]:
    import torch

    from drgrpo_cli.microbatch import auto_budget, plan_micro_batches
    from drgrpo_cli.policy import load_model, load_tokenizer
    from drgrpo_cli.tasks.builtin_model import resolve_model_path
    from drgrpo_cli.objectives import aggregate_loss, compute_advantages, group_pass_stats, ppo_token_loss
    from drgrpo_cli.packing import packed_logprobs, response_mask
    from drgrpo_cli.rollout import make_backend

    t_start = time.time()
    from drgrpo_cli.tasks.builtin_model import is_builtin

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif is_builtin(cfg.model):
        torch.set_num_threads(1)  # the tiny model's ops are too small to split: 1 thread is fastest
    path = resolve_model_path(cfg.model)  # may build the base model (its own seeds): before seeding the run
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    if not (out / runlog.PROVENANCE).exists():
        from drgrpo_cli.provenance import collect

        runlog.write_json_atomic(out / runlog.PROVENANCE, collect(str(path), cfg.device, torch.get_num_threads()))
    tok = load_tokenizer(path)
    model = load_model(path, dtype=cfg.dtype, device=cfg.device, gradient_checkpointing=cfg.gradient_checkpointing)
    ref = None
    if cfg.beta > 0:
        ref = load_model(path, dtype=cfg.dtype, device=cfg.device).eval().requires_grad_(False)
    task = make_task(cfg)
    backend = make_backend(cfg.backend, model, tok, stop_strings=task.stop_strings, model_path=path, config=cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                            weight_decay=cfg.weight_decay)
    budget = cfg.max_tokens_per_micro_batch  # None only when micro_batches > 1, or on CUDA (sized here)
    sized_now = cfg.micro_batches == 1 and budget is None
    if sized_now:
        budget, _ = auto_budget(model, gradient_checkpointing=cfg.gradient_checkpointing)
    pad_id = tok.pad_token_id
    G = cfg.group_size
    enc_cache: dict[str, list[int]] = {}

    def encode(text: str) -> list[int]:
        if text not in enc_cache:
            enc_cache[text] = tok.encode(text, add_special_tokens=False)
        return enc_cache[text]

    def decode(ids: list[int]) -> str:
        return tok.decode(ids, skip_special_tokens=True)

    start = 1
    ckpt = out / runlog.CHECKPOINT / "state.pt"
    if resuming and ckpt.exists():
        try:
            state = torch.load(ckpt, weights_only=False)
        except Exception as e:  # noqa: BLE001 - only a damaged disk gets here (saves are atomic)
            raise RunExistsError(f"{ckpt} is unreadable ({one_line(e)}); delete it to restart the run from "
                                 f"step 0, or --force") from None
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        rng.setstate(state["py_rng"])
        start = state["step"] + 1
        at["checkpoint"] = state["step"]
        backend.sync(model)
    if resuming:
        # drop the rows the resumed run will write again: those past the checkpoint, or, with no checkpoint,
        # all of them (step 0's eval too: the run restarts); this also drops a torn last line
        keep_below = start if at["checkpoint"] is not None else 0
        for name in (runlog.METRICS, runlog.SAMPLES):
            rows, _ = runlog.read_jsonl(out / name)
            runlog.truncate_jsonl(out / name, [r for r in rows if r.get("step", 0) < keep_below])
        if changed:
            cfg.save(out / runlog.CONFIG)
            prov = json.loads((out / runlog.PROVENANCE).read_text())
            prov.setdefault("resumed_with", []).append({"from_step": start, "changed": changed})
            runlog.write_json_atomic(out / runlog.PROVENANCE, prov)

    metrics_w = runlog.JsonlWriter(out / runlog.METRICS)
    samples_w = runlog.JsonlWriter(out / runlog.SAMPLES)

    def eval_pass(prefix: str, k: int, greedy: bool) -> dict[str, float]:
        """One pass over every eval set (``k`` responses per prompt): ``{prefix}/*`` and ``{prefix}/<set>/*``."""
        row: dict[str, float] = {}
        pooled: list[Batch] = []
        for name, items in task.eval_sets().items():
            items = [it for it in items for _ in range(k)]
            prompts = [encode(text) for _, text, _ in items]
            outs = []
            for i in range(0, len(prompts), 256):
                outs += backend.generate(prompts[i: i + 256], max_new_tokens=cfg.max_tokens, greedy=greedy,
                                         temperature=cfg.temperature, top_p=cfg.top_p)
            texts = [decode(s.ids) for s in outs]
            b = Batch(prompts, [s.ids for s in outs], texts,
                      [task.reward(t, p.answer, s.truncated) for t, (p, _, _), s in zip(texts, items, outs)],
                      [s.truncated for s in outs], [tag for _, _, tag in items], [t for _, t, _ in items])
            pooled.append(b)
            if name:
                row.update(rollout_metrics(b, f"{prefix}/{name}"))
        if not pooled:  # a math run without --eval-dataset: nothing to evaluate
            return row
        merged = Batch(*[sum((getattr(b, f) for b in pooled), []) for f in Batch.__dataclass_fields__])
        row.update(rollout_metrics(merged, prefix))
        return row

    def evaluate(step: int) -> dict[str, float]:
        """Greedy eval (``eval/*``) and, with ``eval_samples`` > 0, sampled eval (``eval_sampled/*``).

        Sampled eval draws from its own seeded RNG (the run's seed and the step), so evaluating never
        changes the training run's random stream.
        """
        row = eval_pass("eval", 1, greedy=True)
        if cfg.eval_samples:
            with torch.random.fork_rng(devices=[torch.device(cfg.device)] if cfg.device.startswith("cuda") else []):
                torch.manual_seed(cfg.seed * 1_000_003 + step)
                row.update(eval_pass("eval_sampled", cfg.eval_samples, greedy=False))
        return row

    def stop_now(done: int | None) -> Interrupted:
        """After a SIGTERM/SIGINT: checkpoint the last completed step, record the stop, return the exception."""
        if done and at["checkpoint"] != done:
            _save_checkpoint(out, model, opt, rng, done)
            at["checkpoint"] = done
        runlog.write_json_atomic(out / runlog.SUMMARY, {
            "status": "interrupted", "signal": signal_name(stop.signum), "step": done,
            "checkpoint_step": at["checkpoint"], "steps": cfg.steps})
        return Interrupted(stop.signum, at["checkpoint"])

    bar = _Progress(cfg.steps, show_progress)
    last: dict[str, Any] = {}
    ok = False
    try:
        if stop:
            raise stop_now(start - 1)
        at["step"] = start - 1
        if start == 1 and cfg.eval_every:
            ev = evaluate(0)
            if ev:
                metrics_w.write({"step": 0, **ev})
        bar.advance_to(start - 1)
        if stop:
            raise stop_now(start - 1)
        for step in range(start, cfg.steps + 1):
            at["step"] = step
            t0 = time.time()
            # ---- rollouts ---------------------------------------------------------------------------------
            problems = task.sample(cfg.prompts_per_step, rng)
            prompt_texts, tags, golds = [], [], []
            for p in problems:
                for text, tag in task.rollout_prompts(p, G, rng):
                    prompt_texts.append(text)
                    tags.append(tag)
                    golds.append(p.answer)
            prompts = [encode(t) for t in prompt_texts]
            samples = backend.generate(prompts, max_new_tokens=cfg.max_tokens, temperature=cfg.temperature,
                                       top_p=cfg.top_p)
            t_gen = time.time() - t0
            texts = [decode(s.ids) for s in samples]
            rewards = [task.reward(t, g, s.truncated) for t, g, s in zip(texts, golds, samples)]
            batch = Batch(prompts, [s.ids for s in samples], texts, rewards, [s.truncated for s in samples], tags,
                          prompt_texts)

            # ---- advantages -------------------------------------------------------------------------------
            r = torch.tensor(rewards, dtype=torch.float32)
            adv = compute_advantages(r, G, cfg.adv_scale, eps=cfg.adv_eps, ddof=cfg.adv_std_ddof)  # [N]
            diff = group_pass_stats(r, adv, G)

            # ---- policy update ----------------------------------------------------------------------------
            t1 = time.time()
            model.train()
            dev = cfg.device
            mask, adv_d = response_mask(batch.responses).to(dev), adv.to(dev)  # [N, R], [N]
            N, R = mask.shape

            prompt_lens, response_lens = [len(p) for p in prompts], [len(x) for x in batch.responses]

            def micro_split(mb):
                """The micro-batches (row-index tensors) of the mini-batch ``mb``."""
                if cfg.micro_batches > 1:
                    return _chunks(mb, cfg.micro_batches)
                return plan_micro_batches(mb, prompt_lens, response_lens, budget)

            def score(m, rows, with_entropy=False):
                """(logp, entropy, mask) ``[len(rows), R]`` of the batch rows ``rows`` under model ``m``."""
                rows = rows.tolist()
                return packed_logprobs(m, [prompts[i] for i in rows], [batch.responses[i] for i in rows],
                                       cfg.temperature, pad_id=pad_id, width=R, with_entropy=with_entropy)

            on_policy = cfg.ppo_epochs == 1 and cfg.mini_batches == 1
            old_logp = None
            ref_logp = None
            if not on_policy or ref is not None:
                with torch.no_grad():
                    old_logp = None if on_policy else torch.zeros(N, R, device=dev)
                    ref_logp = None if ref is None else torch.zeros(N, R, device=dev)
                    for sl in [s for part in _chunks(torch.arange(N), cfg.mini_batches) for s in micro_split(part)]:
                        if old_logp is not None:
                            old_logp[sl.to(dev)] = score(model, sl)[0]
                        if ref_logp is not None:
                            ref_logp[sl.to(dev)] = score(ref, sl)[0]
            stats = {"loss": [], "grad_norm": [], "entropy": [], "clip": [], "kl": [], "micro": 0}
            skipped = 0
            row_ent = torch.zeros(N)  # per-response entropy sums over the first epoch, for the per-tag entropy
            for _epoch in range(cfg.ppo_epochs):
                order = torch.randperm(N) if cfg.mini_batches > 1 else torch.arange(N)
                for mb in _chunks(order, cfg.mini_batches):
                    opt.zero_grad(set_to_none=True)
                    mb_tokens = int(mask[mb].sum().item())
                    mb_loss = 0.0
                    for micro in micro_split(mb):
                        stats["micro"] += 1
                        logp, ent, _ = score(model, micro, with_entropy=True)  # [n, R]; 0 past each response
                        old = logp.detach() if old_logp is None else old_logp[micro]
                        tl, st = ppo_token_loss(logp, old, adv_d[micro], cfg.epsilon, cfg.epsilon_high,
                                                ref_logp=None if ref_logp is None else ref_logp[micro], beta=cfg.beta)
                        loss = aggregate_loss(tl, mask[micro], cfg.loss_agg, cfg.loss_max_tokens,
                                              num_sequences=len(mb), num_tokens=mb_tokens)
                        loss.backward()
                        mb_loss += loss.item()
                        with torch.no_grad():
                            m = mask[micro]
                            stats["entropy"].append(ent.sum().item() / max(1, mb_tokens))
                            if _epoch == 0:
                                row_ent[micro] = ent.sum(-1).float().cpu()
                            stats["clip"].append((st["clipped"].float() * m).sum().item() / max(1, mb_tokens))
                            stats["kl"].append((st["kl"] * m).sum().item() / max(1, mb_tokens))
                    gn = float(torch.nn.utils.clip_grad_norm_(
                        model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")))
                    bad = [(k, v) for k, v in (("train/loss", mb_loss), ("train/grad_norm", gn))
                           if not math.isfinite(v)]
                    if bad and cfg.skip_nonfinite:  # this update never reaches the weights
                        opt.zero_grad(set_to_none=True)
                        skipped += 1
                        continue
                    if bad:
                        raise RunFailed(f"non-finite {bad[0][0]} ({bad[0][1]}) at step {step}: lower --lr, or skip "
                                        f"such updates with --skip-nonfinite", step=step,
                                        checkpoint=at["checkpoint"], kind="nonfinite")
                    opt.step()
                    stats["loss"].append(mb_loss)
                    stats["grad_norm"].append(gn)
            backend.sync(model)
            t_train = time.time() - t1

            # ---- log --------------------------------------------------------------------------------------
            n_updates = cfg.ppo_epochs * cfg.mini_batches
            gen_tokens = sum(len(x) for x in batch.responses)
            row: dict[str, Any] = {"step": step, **rollout_metrics(batch, "train")}
            row.update({
                "train/loss": _mean(stats["loss"]),
                "train/grad_norm": _mean(stats["grad_norm"]),
                "train/entropy": sum(stats["entropy"]) / n_updates,
                "train/clip_frac": sum(stats["clip"]) / n_updates,
                "train/adv_abs_mean": adv.abs().mean().item(),
                "train/zero_std_frac": (diff["count"][0] + diff["count"][G]).item() / cfg.prompts_per_step,
                "train/gen_tokens": gen_tokens,
            })
            for tag, e in tag_entropy(tags, row_ent, mask.sum(-1).cpu()).items():
                row[f"train/{tag}/entropy"] = e
            if cfg.beta > 0:
                row["train/kl"] = sum(stats["kl"]) / n_updates
            if sized_now:  # the budget depends on the device: logged, not in config.json
                row["train/micro_batches"] = stats["micro"]
                if not last:
                    row["train/micro_batch_tokens"] = budget
            if cfg.skip_nonfinite:
                row["train/skipped_updates"] = skipped
            for k in range(G + 1):
                row[f"difficulty/k{k}/groups"] = int(diff["count"][k])
                row[f"difficulty/k{k}/abs_adv"] = float(diff["abs_adv"][k])
            if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                row.update(evaluate(step))
            dt = time.time() - t0
            row.update({"time/step_s": dt, "time/gen_s": t_gen, "time/train_s": t_train,
                        "time/gen_tok_per_s": gen_tokens / max(t_gen, 1e-9)})
            metrics_w.write(row)
            for i in range(0, min(cfg.samples_per_step * G, len(texts)), G):
                samples_w.write({"step": step, "prompt": prompt_texts[i], "response": texts[i], "reward": rewards[i],
                                 "length": len(batch.responses[i]), "truncated": batch.truncated[i], "tag": tags[i]})
            metrics_w.sync()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                _save_checkpoint(out, model, opt, rng, step)
                at["checkpoint"] = step
            last = row
            bar.update(step, row)
            if on_step is not None:
                on_step(row)
            if stop and step < cfg.steps:
                raise stop_now(step)
        ok = True
    finally:
        bar.close()
        for w in (metrics_w, samples_w):
            try:
                w.close()
            except OSError:
                if ok:  # a failure on the way out is already being raised; this one would hide it
                    raise

    rows, _ = runlog.read_jsonl(out / runlog.METRICS)
    summary = summarize(rows, cfg)
    summary.update({"status": "finished", "wall_s": round(time.time() - t_start, 2), "model_path": str(path),
                    "provenance": json.loads((out / runlog.PROVENANCE).read_text())})
    if sized_now:
        summary["micro_batch_tokens"] = budget
    runlog.write_json_atomic(out / runlog.SUMMARY, summary)
    shutil.rmtree(out / runlog.CHECKPOINT, ignore_errors=True)
    return summary


def summarize(rows: list[dict[str, Any]], cfg: TrainConfig) -> dict[str, Any]:
    """Final numbers of a run (the conventions of :mod:`drgrpo_cli.metrics`, shared with ablate and plot):
    train metrics are means over the last 10% of training steps, eval metrics the last eval point, and
    growth is the mean over the last 20% minus the first 10% of training steps."""
    from drgrpo_cli.metrics import last_value, length_growth, series, tail_mean, train_series

    final = {key: tail_mean(train_series(rows, key)) for key in (
        "train/reward", "train/accuracy", "train/len_mean", "train/len_correct", "train/len_incorrect",
        "train/truncated_frac")}
    for key in ("eval/accuracy", "eval/len_mean", "eval/len_correct", "eval/len_incorrect"):
        final[key] = last_value(series(rows, key))
    for tag in ("derailed", "clean"):
        for k in ("accuracy", "len_correct", "len_incorrect", "entropy"):
            if any(f"train/{tag}/{k}" in r for r in rows):
                final[f"train/{tag}/{k}"] = tail_mean(train_series(rows, f"train/{tag}/{k}"))
    for key in ("eval_sampled/accuracy", "eval_sampled/derailed/len_incorrect"):
        if any(key in r for r in rows):
            final[key] = last_value(series(rows, key))
    growth = {k: length_growth(train_series(rows, f"train/{k}"))
              for k in ("len_incorrect", "len_correct", "len_mean", "derailed/len_incorrect", "clean/len_correct")
              if any(f"train/{k}" in r for r in rows)}
    return {"steps": len(train_series(rows, "train/reward")), "arm": cfg.arm, "adv_scale": cfg.adv_scale,
            "loss_agg": cfg.loss_agg, "seed": cfg.seed, "final": final, "growth": growth}


def _save_checkpoint(out: Path, model, opt, rng: random.Random, step: int) -> None:
    """Write, fsync, rename: ``state.pt`` is always a whole checkpoint (the previous one if this save fails)."""
    import torch

    d = out / runlog.CHECKPOINT
    d.mkdir(exist_ok=True)
    tmp = d / "state.pt.tmp"
    try:
        with open(tmp, "wb") as f:  # a Python file: a full disk surfaces as OSError(ENOSPC) behind torch's error
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "torch_rng": torch.get_rng_state(), "py_rng": rng.getstate(), "step": step}, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, d / "state.pt")
    runlog.fsync_dir(d)


def _chunks(idx, k: int):
    n = len(idx)
    size = n // k
    return [idx[i * size: (i + 1) * size] for i in range(k)]


class _Progress:
    """A rich progress bar with live reward and lengths; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self.t = self.p.add_task("train", total=total, info="")
        self.p.start()

    def advance_to(self, step: int) -> None:
        if self.enabled:
            self.p.update(self.t, completed=step)

    def update(self, step: int, row: dict[str, Any]) -> None:
        if not self.enabled:
            return

        def f(key: str) -> str:
            v = row.get(key)
            return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:5.1f}"

        info = (f"reward {row['train/reward']:.2f}  len ✓{f('train/len_correct')} ✗{f('train/len_incorrect')}"
                f"  {row['time/step_s']:.2f}s/step")
        if row.get("eval/accuracy") is not None:
            info += f"  eval {row['eval/accuracy']:.2f}"
        self.p.update(self.t, completed=step, info=info)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()
