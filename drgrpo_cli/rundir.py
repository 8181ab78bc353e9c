"""Starting a run folder fresh, resuming it, or refusing to; and the checkpoints a resume starts from.

A folder that holds something other than a run is never written to; an existing run is continued only when
asked (``resume``) and only with the same config, except :data:`RESUME_MAY_CHANGE` (memory use and what a NaN
does, not the method); ``force`` deletes a run's files, never anything else. A checkpoint is written to a
temporary name, fsynced and renamed, so a crash or a full disk mid-save leaves the previous one. Errors
state facts; the CLI words them with its flags.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

from drgrpo_cli import runlog
from drgrpo_cli.config import ConfigError, TrainConfig

#: config fields that may differ on resume: memory use (the OOM remedies) and what a NaN does, not the method
RESUME_MAY_CHANGE = ("micro_batches", "max_tokens_per_micro_batch", "gradient_checkpointing", "skip_nonfinite")
STATE = "state.pt"


class RunExistsError(Exception):
    """The output folder cannot be used as asked; one line of facts. ``reason``: ``foreign`` (a non-empty
    folder that is no run; ``force`` says whether deleting was asked), ``holds_run`` (a run in ``state``) or
    ``unreadable_checkpoint`` (``path`` is the checkpoint)."""

    def __init__(self, message: str, *, reason: str, path: Path, state: str | None = None, force: bool = False):
        super().__init__(message)
        self.reason, self.path, self.state, self.force = reason, path, state, force


class ConfigDiffers(ConfigError):
    """The run in ``path`` was started with another config: ``keys`` differ."""

    def __init__(self, path: Path, keys: list[str]):
        super().__init__(f"{path} was started with a different config ({', '.join(keys)} differ)")
        self.path, self.keys = path, keys


def refuse_foreign(out: Path, force: bool) -> None:
    """A non-empty folder that is not a run is never written to (not even a lock file)."""
    if out.is_dir() and runlog.run_state(out) == "missing" and any(p.name != runlog.LOCK for p in out.iterdir()):
        what = "delete" if force else "write to"
        raise RunExistsError(f"{out} exists, is not empty and holds no drgrpo run; refusing to {what} it",
                             reason="foreign", path=out, force=force)


def prepare(cfg: TrainConfig, out: Path, resume: bool, force: bool) -> tuple[str, dict[str, list]]:
    """(``fresh`` | ``resume`` | ``done``, the RESUME_MAY_CHANGE fields that change on resume: [old, new]);
    refuses to touch an existing run unless asked to."""
    refuse_foreign(out, force)
    state = runlog.run_state(out)
    if state == "missing":
        return "fresh", {}
    if force:
        discard(out)
        return "fresh", {}
    if not resume:
        raise RunExistsError(f"{out} already holds a {state} run; resume it, or delete it to start over",
                             reason="holds_run", path=out, state=state)
    # validate(): a run saved before "auto" was resolved compares with its resolved values
    saved, new = TrainConfig.load(out / runlog.CONFIG).validate().to_dict(), cfg.to_dict()
    diff = sorted(k for k in saved if saved[k] != new.get(k))
    if set(diff) - set(RESUME_MAY_CHANGE) or (diff and state == "finished"):
        raise ConfigDiffers(out, diff)
    if state != "finished":
        from drgrpo_cli.provenance import resume_refusal

        why = resume_refusal(out)
        if why:
            raise ConfigError(why)
    return ("done", {}) if state == "finished" else ("resume", {k: [saved[k], new[k]] for k in diff})


def discard(out: Path) -> None:
    """Remove a run's files (not the folder, nor its lock): the folder is no run again."""
    for name in (runlog.CONFIG, runlog.PROVENANCE, runlog.METRICS, runlog.SAMPLES, runlog.SUMMARY):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / runlog.CHECKPOINT, ignore_errors=True)


def save_checkpoint(out: Path, model, opt, rng: random.Random, step: int) -> None:
    """Write, fsync, rename: ``state.pt`` is always a whole checkpoint (the previous one if this save fails)."""
    import torch

    d = out / runlog.CHECKPOINT
    d.mkdir(exist_ok=True)
    tmp = d / (STATE + ".tmp")
    try:
        with open(tmp, "wb") as f:  # a Python file: a full disk surfaces as OSError(ENOSPC) behind torch's error
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "torch_rng": torch.get_rng_state(), "py_rng": rng.getstate(), "step": step}, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, d / STATE)
    runlog.fsync_dir(d)


def load_checkpoint(out: Path) -> dict[str, Any] | None:
    """The saved state (``model``, ``optimizer``, ``torch_rng``, ``py_rng``, ``step``), or None when there is none."""
    import torch

    from drgrpo_cli.errors import one_line

    ckpt = out / runlog.CHECKPOINT / STATE
    if not ckpt.exists():
        return None
    try:
        return torch.load(ckpt, weights_only=False)
    except Exception as e:  # noqa: BLE001 - only a damaged disk gets here (saves are atomic)
        raise RunExistsError(f"{ckpt} is unreadable ({one_line(e)}); delete it to restart the run from step 0",
                             reason="unreadable_checkpoint", path=ckpt) from None


def forget_from(out: Path, step: int) -> None:
    """Drop the metric and sample rows of ``step`` and later (a torn last line too): the resumed run writes them."""
    for name in (runlog.METRICS, runlog.SAMPLES):
        rows, _ = runlog.read_jsonl(out / name)
        runlog.truncate_jsonl(out / name, [r for r in rows if r.get("step", 0) < step])


def record_changes(out: Path, cfg: TrainConfig, start: int, changed: dict[str, list]) -> None:
    """Save the config a resume changed and add ``{from_step, changed}`` to provenance.json's ``resumed_with``."""
    cfg.save(out / runlog.CONFIG)
    prov = json.loads((out / runlog.PROVENANCE).read_text())
    prov.setdefault("resumed_with", []).append({"from_step": start, "changed": changed})
    runlog.write_json_atomic(out / runlog.PROVENANCE, prov)
