"""Shared by the sweep tests: fake trainers (same signature as ``drgrpo_cli.trainer.train``), small grids, and
a hand-made finished sweep. The fake trainers are module-level so that spawned worker processes (and Ray workers)
can import them.
"""

from __future__ import annotations

import io
import json
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any, Sequence

from drgrpo_cli.config import TrainConfig
from drgrpo_cli.sweep.grid import slugify

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# ----------------------------------------------------------------------------------------------------------
# fake trainers (same signature as drgrpo_cli.trainer.train)

class RunExistsError(Exception):
    pass


def _metrics_row(config: TrainConfig, step: int) -> dict:
    # deterministic, seed-dependent synthetic metrics (exact binary fractions)
    k = 1 + config.seed
    row = {
        "step": step,
        "train/reward": step / (8 * k),
        "train/accuracy": 0.5,
        "train/len_correct": 20.0,
        "train/len_incorrect": 10.0 * step * k,
        "train/len_mean": 15.0,
    }
    if step % 5 == 0:
        row["eval/accuracy"] = 0.25 * (step // 5)
    return row


def fake_train(config, out_dir, *, resume=False, force=False, on_step=None, progress=True):
    """Mimics the trainer's contract: refuses an existing dir, resumes after the last metrics row."""
    out_dir = Path(out_dir)
    summary_path = out_dir / "summary.json"
    if out_dir.exists() and (out_dir / "config.json").exists() and not (resume or force):
        raise RunExistsError(f"{out_dir} exists")
    if resume and summary_path.exists() and json.loads(summary_path.read_text()).get("status") == "finished":
        return json.loads(summary_path.read_text())
    if force and out_dir.exists():
        for p in out_dir.iterdir():
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "calls.jsonl", "a") as f:
        f.write(json.dumps({"resume": resume, "force": force, "pid": os.getpid(), "start": time.time()}) + "\n")
    (out_dir / "config.json").write_text(json.dumps(config.validate().to_dict()))
    done = 0
    metrics = out_dir / "metrics.jsonl"
    if resume and metrics.exists():
        done = len([ln for ln in metrics.read_text().splitlines() if ln.strip()])
    if summary_path.exists():
        summary_path.unlink()
    with open(metrics, "a") as f:
        for step in range(done + 1, config.steps + 1):
            row = _metrics_row(config, step)
            f.write(json.dumps(row) + "\n")
            f.flush()
            if on_step:
                on_step(row)
            _maybe_fail(config, step, out_dir)
    summary = {"status": "finished", "steps": config.steps}
    summary_path.write_text(json.dumps(summary))
    with open(out_dir / "calls.jsonl", "a") as f:
        f.write(json.dumps({"end": time.time()}) + "\n")
    return summary


def _maybe_fail(config, step, out_dir):
    """Failure injection keyed on lr (so grids can choose which arm fails)."""
    if config.lr == 0.125 and step == 2:
        raise FloatingPointError("NaN loss at step 2")
    if config.lr == 0.25 and step == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    if config.lr == 0.375 and step == 2:
        os._exit(3)
    if config.lr == 0.5:
        time.sleep(0.4)  # slow enough to see two runs overlap


def calls(run_dir: Path) -> list[dict]:
    p = Path(run_dir) / "calls.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines()] if p.exists() else []


def quiet():
    from rich.console import Console

    return Console(file=io.StringIO(), width=160)


def write(tmp_path: Path, text: str, name: str = "g.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


SMALL = """
name = "small"
seeds = [0]
[base]
steps = 4
[axes]
adv_scale = ["group", "none"]
loss_agg = ["seq_mean", "max_tokens"]
[arms]
GRPO = {adv_scale="group", loss_agg="seq_mean"}
"Dr. GRPO" = {adv_scale="none", loss_agg="max_tokens"}
"""


FAILING = """
name = "failing"
[base]
steps = 4
[arms]
ok1 = {adv_scale="group", loss_agg="seq_mean"}
nan = {adv_scale="none", loss_agg="max_tokens", lr=0.125}
sigkill = {adv_scale="none", loss_agg="seq_mean", lr=0.25}
osexit = {adv_scale="group", loss_agg="max_tokens", lr=0.375}
ok2 = {adv_scale="group", loss_agg="token_mean"}
"""


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}

# a tiny real-trainer config: seconds per run once the cached base model exists
REAL_SETS = ["model=builtin-small", "prompts_per_step=4", "group_size=4", "max_tokens=24", "eval_every=2",
             "eval_max_prompts=8", "checkpoint_every=2", "samples_per_step=1", "threads=1"]

# growth of the failure-state wrong-answer length per arm and seed (2x2, 3 seeds), and final reward
HAND_GROWTH = {"GRPO": [20.0, 24.0, 16.0], "std-only fix": [18.0, 20.0, 16.0], "length-only fix": [2.0, 4.0, 0.0],
               "Dr. GRPO": [0.0, 2.0, 1.0]}

HAND_REWARD = {"GRPO": [0.5, 0.25, 0.5], "std-only fix": [0.5, 0.5, 0.5], "length-only fix": [0.5, 0.5, 0.5],
               "Dr. GRPO": [0.5, 0.5, 0.75]}
HAND_KNOBS = {"GRPO": ("group", "seq_mean"), "std-only fix": ("none", "seq_mean"),
              "length-only fix": ("group", "max_tokens"), "Dr. GRPO": ("none", "max_tokens")}
T2 = 4.3026527  # t_{0.975, 2}

def write_hand_sweep(root: Path, labels: dict[str, str] | None = None, derailed: bool = True,
                     config: dict[str, dict[str, Any]] | None = None, drop: Sequence[str] = ()) -> Path:
    """A finished 2x2 sweep (grid.json + run dirs) with 10 steps per run: failure-state wrong-answer length
    10 at step 1 and 10 + growth on the last 20% of steps; pooled length = 2x that; constant reward.
    ``config``: more config values per arm (by its HAND_KNOBS name); ``drop``: keys left out of every
    config (as an older drgrpo wrote them)."""
    runs = []
    for arm, (adv, agg) in HAND_KNOBS.items():
        label = (labels or {}).get(arm, arm)
        for seed in range(3):
            d = root / f"{slugify(label)}__seed{seed}"
            d.mkdir(parents=True)
            more = (config or {}).get(arm, {})
            cfg = TrainConfig(adv_scale=adv, loss_agg=agg, seed=seed, steps=10, **more).to_dict()
            cfg = {k: v for k, v in cfg.items() if k not in drop}
            (d / "config.json").write_text(json.dumps(cfg))
            g, rew = HAND_GROWTH[arm][seed], HAND_REWARD[arm][seed]
            rows = [{"step": 0, "eval/accuracy": 0.25}]
            for s in range(1, 11):
                li = 10.0 if s == 1 else 10.0 + g if s >= 9 else 50.0
                row = {"step": s, "train/reward": rew, "train/accuracy": rew, "train/len_incorrect": 2 * li,
                       "train/len_correct": 5.0}
                if derailed:
                    row["train/derailed/len_incorrect"] = li
                rows.append(row)
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (d / "summary.json").write_text(json.dumps({"status": "finished", "steps": 10}))
            runs.append({"dir": d.name, "arm": label, "seed": seed, "overrides": {}, "config": cfg})
    (root / "grid.json").write_text(json.dumps({"name": "hand", "source": "test", "seeds": [0, 1, 2], "base": {},
                                                "arms": {r["dir"]: r["arm"] for r in runs}, "runs": runs}))
    return root


def typer_app(fn):
    import typer

    app = typer.Typer()
    app.command("ablate")(fn)
    app.command("other")(lambda: None)
    return app
