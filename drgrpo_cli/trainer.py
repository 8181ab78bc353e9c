"""The training loop: set up, then per step rollout -> rewards -> advantages -> update -> one metrics row.

``drgrpo train`` and ``drgrpo ablate`` both call :func:`train`. It words nothing for a terminal: errors state
facts (the CLI adds its flags), and what a person watches goes to a ``progress`` object. The two bias knobs
go straight into :mod:`drgrpo_cli.objectives`; nothing else here depends on them. Same seeds give the same
metrics and checkpoints: python ``random`` (prompts) and torch's global RNG (sampling, mini-batch order)
are drawn in a fixed order and checkpointed. Resume, graceful stops and failures: docs/design/training.md.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from drgrpo_cli import microbatch, rollout, rundir, runlog, sampling
from drgrpo_cli.batch import Batch, mean_or_nan, rollout_metrics, tag_entropy
from drgrpo_cli.config import TrainConfig
from drgrpo_cli.errors import disk_full, is_oom, one_line
from drgrpo_cli.interrupt import Interrupted, StopRequest, signal_name
from drgrpo_cli.metrics import run_summary
from drgrpo_cli.objectives import compute_advantages, group_pass_stats, length_weights, overlong_penalty
from drgrpo_cli.policy import load_model, load_tokenizer
from drgrpo_cli.provenance import collect
from drgrpo_cli.tasks import builtin_model, make_task
from drgrpo_cli.update import NonFiniteUpdate, Rows, policy_update, sequence_kl


class RunFailed(Exception):
    """A run failed after work started: ``fact`` names the step (``: remedy`` follows in the message);
    ``checkpoint`` is the step it resumes from (None: it restarts); ``kind``: oom | disk_full | nonfinite | error."""

    def __init__(self, fact: str, *, step: int | None, checkpoint: int | None, kind: str = "error",
                 remedy: str | None = None):
        super().__init__(f"{fact}: {remedy}" if remedy else fact)
        self.fact, self.remedy, self.step, self.checkpoint, self.kind = fact, remedy, step, checkpoint, kind


class Progress(Protocol):
    """What :func:`train` tells a person watching (``drgrpo_cli.cli.progress.TrainProgress`` draws a bar)."""

    stop_note: str | None  # printed on stderr when the first SIGTERM/SIGINT arrives

    def echo(self, line: str) -> None: ...  # one line of information before the run starts

    def start(self, total: int, done: int) -> None: ...

    def update(self, step: int, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------------------------------
# train()


@dataclass
class Position:
    """Where a run is: the step in progress (None: work has not started) and the last checkpointed step."""

    step: int | None = None
    checkpoint: int | None = None


def train(
    config: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    force: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run (or resume) one training run into ``out_dir``; returns the summary dict. ``on_step`` gets each
    step's metrics row; ``progress`` (None or False: silent) is told what a person watching needs.

    Raises, before touching the run: RunExistsError, ConfigError (ConfigDiffers among them),
    ``runlog.InUseError`` (another process writes it); once work started: RunFailed (recorded in
    summary.json); on SIGTERM/SIGINT: ``Interrupted`` after checkpointing (a second Ctrl-C:
    KeyboardInterrupt at once, resumable).
    """
    if progress is True:
        raise TypeError("progress=True: pass a progress object (drgrpo_cli.cli.progress.TrainProgress()) or None")
    progress = progress or None
    cfg = config.validate()
    cfg = resolve_fields(cfg, echo=progress.echo if progress else None)  # detected columns go into config.json
    out = Path(out_dir)
    rundir.refuse_foreign(out, force)
    out.mkdir(parents=True, exist_ok=True)
    with runlog.locked(out):
        mode, changed = rundir.prepare(cfg, out, resume, force)
        if mode == "done":
            return runlog.read_summary(out) or {}
        if mode == "fresh":
            cfg.save(out / runlog.CONFIG)
        else:
            (out / runlog.SUMMARY).unlink(missing_ok=True)  # an interrupted or failed attempt: this one replaces it
        at = Position()
        try:
            with StopRequest(progress.stop_note if progress else None) as stop:
                return _train(cfg, out, mode == "resume", changed, at, stop, on_step, progress)
        except KeyboardInterrupt:
            raise  # a partial run: resumable, not failed
        except BaseException as e:
            failed = _failure(e, at)
            if failed is None and mode == "fresh":  # nothing ran (a model or dataset that fails to load, say):
                rundir.discard(out)  # leave no run behind, so the corrected command starts clean instead of "differs"
                raise
            _record_failure(out, failed or e, at)
            if failed is None or failed is e:
                raise
            raise failed from e


def resolve_fields(cfg: TrainConfig, echo: Callable[[str], None] | None = None) -> TrainConfig:
    """``cfg`` with ``question_field``/``answer_field`` detected from a math run's datasets where they are None
    (:func:`drgrpo_cli.tasks.math.detect_fields`); any other config is returned as it is."""
    if cfg.task != "math" or not cfg.dataset or (cfg.question_field is not None and cfg.answer_field is not None):
        return cfg
    from drgrpo_cli.tasks.math import detect_fields

    q, a = detect_fields(cfg.dataset, cfg.eval_datasets, cfg.question_field, cfg.answer_field, echo)
    return dataclasses.replace(cfg, question_field=q, answer_field=a)


def _failure(e: BaseException, at: Position) -> RunFailed | None:
    """The RunFailed for an exception raised once work started (None before, or not an Exception)."""
    if isinstance(e, RunFailed) or at.step is None or not isinstance(e, Exception):
        return e if isinstance(e, RunFailed) else None
    step, full = at.step, disk_full(e)
    if isinstance(e, NonFiniteUpdate):
        fact, remedy, kind = f"{e} at step {step}", "lower lr, or skip such updates with skip_nonfinite", \
            "nonfinite"
    elif is_oom(e):
        fact, kind = f"out of memory at step {step}", "oom"
        remedy = ("lower max_tokens_per_micro_batch (below the logged train/micro_batch_tokens), raise micro_batches "
                  "or turn on gradient_checkpointing (all allowed on resume), or start over with a lower max_tokens")
    elif full is not None:
        fact, remedy, kind = f"disk full at step {step} (writing {full.filename or 'the run folder'})", \
            "free some space", "disk_full"
    else:
        fact, remedy, kind = f"{one_line(e)} (at step {step})", None, "error"
    return RunFailed(fact, step=step, checkpoint=at.checkpoint, kind=kind, remedy=remedy)


def _record_failure(out: Path, e: BaseException, at: Position) -> None:
    """summary.json ``failed``, best effort (the disk may be full)."""
    try:
        runlog.write_json_atomic(out / runlog.SUMMARY, {
            "status": "failed", "error": str(e) if isinstance(e, RunFailed) else one_line(e), "step": at.step,
            "checkpoint_step": at.checkpoint})
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------------
# the run: set up, then the loop


@dataclass
class _Run:
    """What one training process holds while it trains a run."""

    cfg: TrainConfig
    out: Path
    at: Position
    model_path: str
    tok: Any
    model: Any
    ref: Any  # the frozen reference model (beta > 0), else None
    task: Any
    backend: Any
    opt: Any
    rng: random.Random
    budget: int | None  # micro-batch token budget (None: a count split)
    sized_now: bool  # the budget was sized from the device at start: logged, not in config.json
    enc_cache: dict[str, list[int]] = field(default_factory=dict)
    metrics_w: Any = None
    samples_w: Any = None

    def encode(self, text: str) -> list[int]:
        if text not in self.enc_cache:
            self.enc_cache[text] = self.tok.encode(text, add_special_tokens=False)
        return self.enc_cache[text]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)


def _train(cfg: TrainConfig, out: Path, resuming: bool, changed: dict[str, list], at: Position, stop: StopRequest,
           on_step, progress: Progress | None) -> dict[str, Any]:
    t_start = time.time()
    run = _setup(cfg, out, at)
    start = _resume(run, changed) if resuming else 1
    run.metrics_w = runlog.JsonlWriter(out / runlog.METRICS)
    run.samples_w = runlog.JsonlWriter(out / runlog.SAMPLES)
    ok = False
    try:
        _loop(run, start, stop, on_step, progress)
        ok = True
    finally:
        if progress:
            progress.close()
        for w in (run.metrics_w, run.samples_w):
            try:
                w.close()
            except OSError:
                if ok:  # a failure on the way out is already being raised; this one would hide it
                    raise
    return _finish(run, t_start)


def _setup(cfg: TrainConfig, out: Path, at: Position) -> _Run:
    """Threads, base weights, seeds, provenance, model(s), task, rollout backend, optimizer, micro-batch budget
    (in this order: loading a model may draw from the just-seeded torch RNG)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    path = builtin_model.resolve_model_path(cfg.model)  # may build the base model (its own seeds): before seeding
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    if not (out / runlog.PROVENANCE).exists():
        runlog.write_json_atomic(out / runlog.PROVENANCE, collect(str(path), cfg.device, torch.get_num_threads()))
    tok = load_tokenizer(path)
    model = load_model(path, dtype=cfg.dtype, device=cfg.device, gradient_checkpointing=cfg.gradient_checkpointing)
    ref = None
    if cfg.beta > 0:
        ref = load_model(path, dtype=cfg.dtype, device=cfg.device).eval().requires_grad_(False)
    task = make_task(cfg)
    backend = rollout.make_backend(cfg.backend, model, tok, stop_strings=task.stop_strings, model_path=path,
                                   config=cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                            weight_decay=cfg.weight_decay)
    budget = cfg.max_tokens_per_micro_batch  # None only when micro_batches > 1, or on CUDA (sized here)
    sized_now = cfg.micro_batches == 1 and budget is None
    if sized_now:
        budget, _ = microbatch.auto_budget(model, gradient_checkpointing=cfg.gradient_checkpointing)
    return _Run(cfg, out, at, path, tok, model, ref, task, backend, opt, rng, budget, sized_now)


def _loop(run: _Run, start: int, stop: StopRequest, on_step, progress: Progress | None) -> None:
    """Step 0's eval (a fresh run), then steps ``start..steps``; a SIGTERM/SIGINT stops after a whole step."""
    cfg = run.cfg
    if progress:
        progress.start(cfg.steps, start - 1)
    if stop:
        raise _stop(run, stop, start - 1)
    run.at.step = start - 1
    if start == 1 and cfg.eval_every:
        ev = _evaluate(run, 0)
        if ev:
            run.metrics_w.write({"step": 0, **ev})
    if stop:
        raise _stop(run, stop, start - 1)
    for step in range(start, cfg.steps + 1):
        run.at.step = step
        row = _step(run, step, first=step == start)
        if progress:
            progress.update(step, row)
        if on_step is not None:
            on_step(row)
        if stop and step < cfg.steps:
            raise _stop(run, stop, step)


def _step(run: _Run, step: int, first: bool) -> dict[str, Any]:
    """One policy step, logged (``first``: the first step of this process)."""
    cfg = run.cfg
    t0 = time.time()
    got = sampling.collect(run)  # rollouts and their rewards; got.gen_s: the generation alone
    adv, diff, valid, shaping = _advantages(run, got.train) if got.train.rewards else (None, None, None, {})
    t1 = time.time()
    stats = None
    if adv is not None and (valid is None or bool(valid.any())):  # no group kept, or every row masked: no update
        ref = run.ref if cfg.kl_in == "loss" else None  # kl_in reward: the KL went into the rewards
        stats = policy_update(run.model, ref, run.opt, cfg, Rows(got.train.prompts, got.train.responses, adv, valid),
                              budget=run.budget, pad_id=run.tok.pad_token_id)
        run.backend.sync(run.model)
    t_train = time.time() - t1
    row = _log_row(run, step, got, adv, diff, stats, first)
    row.update(shaping)
    if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
        row.update(_evaluate(run, step))
    gen_tokens = row["train/gen_tokens"]
    row.update({"time/step_s": time.time() - t0, "time/gen_s": got.gen_s, "time/train_s": t_train,
                "time/gen_tok_per_s": gen_tokens / max(got.gen_s, 1e-9)})
    _write_logs(run, step, row, got.seen)
    if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
        _save_checkpoint(run, step)
    return row


def _advantages(run: _Run, batch: Batch) -> tuple[Tensor, dict[str, Tensor], Tensor | None, dict[str, float]]:
    """Advantages ``[N]`` of the rows to train on: the task's rewards, shaped (overlong penalty, KL in the
    reward), made group-relative (``adv_scale``, ``baseline``), weighted by length (``length_alpha``); the
    per-difficulty diagnostics (over the task's rewards); which rows are in the loss (``mask_truncated``); and
    the shaping's metrics."""
    cfg, G = run.cfg, run.cfg.group_size
    r = torch.tensor(batch.rewards, dtype=torch.float32)  # [N]
    lengths = torch.tensor([len(x) for x in batch.responses], dtype=torch.float32)  # [N]
    valid = ~torch.tensor(batch.truncated, dtype=torch.bool) if cfg.mask_truncated else None
    shaped, logged = r, {}
    if cfg.overlong_buffer_frac > 0:
        pen = overlong_penalty(lengths, cfg.max_tokens, cfg.overlong_buffer_tokens, cfg.overlong_penalty)
        shaped, logged["train/overlong_penalty"] = shaped + pen, pen.mean().item()
    if cfg.beta > 0 and cfg.kl_in == "reward":
        kl, tokens = sequence_kl(run.model, run.ref, cfg, Rows(batch.prompts, batch.responses, r),
                                 budget=run.budget, pad_id=run.tok.pad_token_id)
        shaped, logged["train/kl"] = shaped - cfg.beta * kl.float().cpu(), kl.sum().item() / max(1, tokens)
    adv = compute_advantages(shaped, G, cfg.adv_scale, eps=cfg.adv_eps, ddof=cfg.adv_std_ddof, baseline=cfg.baseline,
                             valid=valid)
    if cfg.length_alpha:
        adv = adv * length_weights(lengths, G, cfg.length_alpha, valid)
    if valid is not None:
        logged["train/masked_frac"] = 1.0 - valid.float().mean().item()
    return adv, group_pass_stats(r, adv, G), valid, logged


def _log_row(run: _Run, step: int, got: sampling.Collected, adv, diff, stats, first: bool) -> dict[str, Any]:
    """The step's metrics row (the README's "metrics" section), before eval and timings: rollouts over
    everything sampled, the update's figures over what was trained on (NaN when nothing was)."""
    cfg, G = run.cfg, run.cfg.group_size
    n_updates = cfg.ppo_epochs * cfg.mini_batches
    nan = float("nan")
    row: dict[str, Any] = {"step": step, **rollout_metrics(got.seen, "train")}
    row.update({
        "train/loss": mean_or_nan(stats.loss) if stats else nan,
        "train/grad_norm": mean_or_nan(stats.grad_norm) if stats else nan,
        "train/entropy": sum(stats.entropy) / n_updates if stats else nan,
        "train/clip_frac": sum(stats.clip) / n_updates if stats else nan,
        "train/adv_abs_mean": adv.abs().mean().item() if adv is not None else nan,
        "train/zero_std_frac": (diff["count"][0] + diff["count"][G]).item() / cfg.prompts_per_step if diff else nan,
        "train/gen_tokens": sum(len(x) for x in got.seen.responses),
    })
    if got.rounds is not None:  # dynamic sampling: the share of groups without a signal among all drawn
        row.update({"train/zero_std_frac": 1 - got.groups_varied / got.groups_seen,
                    "train/ds_rounds": got.rounds, "train/ds_groups_kept": got.groups_kept})
    if stats:
        for tag, e in tag_entropy(got.train.tags, stats.row_entropy, stats.mask.sum(-1).cpu()).items():
            row[f"train/{tag}/entropy"] = e
    if cfg.beta > 0 and cfg.kl_in == "loss":
        row["train/kl"] = sum(stats.kl) / n_updates if stats else nan
    if run.sized_now:  # the budget depends on the device: logged, not in config.json
        row["train/micro_batches"] = stats.micro if stats else 0
        if first:
            row["train/micro_batch_tokens"] = run.budget
    if cfg.skip_nonfinite:
        row["train/skipped_updates"] = stats.skipped if stats else 0
    for k in range(G + 1):
        row[f"difficulty/k{k}/groups"] = int(diff["count"][k]) if diff else 0
        row[f"difficulty/k{k}/abs_adv"] = float(diff["abs_adv"][k]) if diff else nan
    return row


def _write_logs(run: _Run, step: int, row: dict[str, Any], batch: Batch) -> None:
    """The metrics row and the first response of the first ``samples_per_step`` groups; synced to disk."""
    G = run.cfg.group_size
    run.metrics_w.write(row)
    for i in range(0, min(run.cfg.samples_per_step * G, len(batch.texts)), G):
        run.samples_w.write({"step": step, "prompt": batch.prompt_texts[i], "response": batch.texts[i],
                             "reward": batch.rewards[i], "length": len(batch.responses[i]),
                             "truncated": batch.truncated[i], "tag": batch.tags[i]})
    run.metrics_w.sync()


# ----------------------------------------------------------------------------------------------------
# eval


def _evaluate(run: _Run, step: int) -> dict[str, float]:
    """Greedy eval (``eval/*``) and, with ``eval_samples`` > 0, sampled eval (``eval_sampled/*``).

    Sampled eval draws from its own seeded RNG (the run's seed and the step), so evaluating never
    changes the training run's random stream.
    """
    cfg = run.cfg
    row = _eval_pass(run, "eval", 1, greedy=True)
    if cfg.eval_samples:
        with torch.random.fork_rng(devices=[torch.device(cfg.device)] if cfg.device.startswith("cuda") else []):
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            row.update(_eval_pass(run, "eval_sampled", cfg.eval_samples, greedy=False))
    return row


def _eval_pass(run: _Run, prefix: str, k: int, greedy: bool) -> dict[str, float]:
    """One pass over every eval set (``k`` responses per prompt): ``{prefix}/*`` and ``{prefix}/<set>/*``."""
    cfg = run.cfg
    row: dict[str, float] = {}
    pooled: list[Batch] = []
    for name, items in run.task.eval_sets().items():
        items = [it for it in items for _ in range(k)]
        prompts = sampling.Prompts([it.prompt for it in items], [it.tag for it in items],
                                   [it.problem.answer for it in items])
        prompts.ids = [run.encode(text) for text in prompts.texts]
        outs = []
        for i in range(0, len(prompts.ids), 256):
            outs += run.backend.generate(prompts.ids[i: i + 256], max_new_tokens=cfg.max_tokens, greedy=greedy,
                                         temperature=cfg.temperature, top_p=cfg.top_p)
        b = sampling.scored(run, prompts, outs)
        pooled.append(b)
        if name:
            row.update(rollout_metrics(b, f"{prefix}/{name}"))
    if not pooled:  # a math run without --eval-dataset: nothing to evaluate
        return row
    row.update(rollout_metrics(sampling.merged(pooled), prefix))
    return row


# ----------------------------------------------------------------------------------------------------
# checkpoints, resume, stops, the end


def _save_checkpoint(run: _Run, step: int) -> None:
    rundir.save_checkpoint(run.out, run.model, run.opt, run.rng, step)
    run.at.checkpoint = step


def _resume(run: _Run, changed: dict[str, list]) -> int:
    """Load the checkpoint (if any), drop the log rows the resumed run writes again (with no checkpoint: all,
    step 0's eval too, the run restarts), record changed fields; returns the first step to run."""
    start = 1
    state = rundir.load_checkpoint(run.out)
    if state is not None:
        run.model.load_state_dict(state["model"])
        run.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        run.rng.setstate(state["py_rng"])
        start = state["step"] + 1
        run.at.checkpoint = state["step"]
        run.backend.sync(run.model)
    rundir.forget_from(run.out, start if run.at.checkpoint is not None else 0)
    if changed:
        rundir.record_changes(run.out, run.cfg, start, changed)
    return start


def _stop(run: _Run, stop: StopRequest, done: int | None) -> Interrupted:
    """After a SIGTERM/SIGINT: checkpoint the last completed step, record the stop, return the exception."""
    if done and run.at.checkpoint != done:
        _save_checkpoint(run, done)
    runlog.write_json_atomic(run.out / runlog.SUMMARY, {
        "status": "interrupted", "signal": signal_name(stop.signum), "step": done,
        "checkpoint_step": run.at.checkpoint, "steps": run.cfg.steps})
    return Interrupted(stop.signum, run.at.checkpoint)


def _finish(run: _Run, t_start: float) -> dict[str, Any]:
    """summary.json ``finished`` (:func:`drgrpo_cli.metrics.run_summary` and what produced the run); the
    checkpoint goes."""
    cfg, out = run.cfg, run.out
    rows, _ = runlog.read_jsonl(out / runlog.METRICS)
    summary = run_summary(rows, cfg.arm, cfg.adv_scale, cfg.loss_agg, cfg.seed)
    summary.update({"status": "finished", "wall_s": round(time.time() - t_start, 2), "model_path": str(run.model_path),
                    "provenance": json.loads((out / runlog.PROVENANCE).read_text())})
    if run.sized_now:
        summary["micro_batch_tokens"] = run.budget
    runlog.write_json_atomic(out / runlog.SUMMARY, summary)
    shutil.rmtree(out / runlog.CHECKPOINT, ignore_errors=True)
    return summary
