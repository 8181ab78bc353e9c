"""Synthetic run directories and sweeps with known numbers, shared by the ``drgrpo plot`` tests
(``tests/test_report_*.py``), and the plots of the two sweeps several of them read (made once per session)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from drgrpo_cli.config import TrainConfig
from drgrpo_cli.report.plot import PlotResult, plot

G = 4
STEPS = 10
# mean |A| per group by k (k = 0..G): std-scaled arms and unscaled arms
ABS_STD = [0.0, 0.8, 1.0, 0.8, 0.0]
ABS_NOSTD = [0.0, 0.375, 0.5, 0.375, 0.0]
COUNTS = [1, 2, 3, 2, 1]


def write_run(
    d: Path,
    *,
    adv_scale: str = "group",
    loss_agg: str = "seq_mean",
    seed: int = 0,
    first: float = 100.0,
    last: float = 140.0,
    reward_last: float = 0.5,
    eval_acc: tuple[float, float] | None = (0.3, 0.6),
    finished: bool = True,
    steps: int = STEPS,
    lr: float = 1e-3,
    extra_config: dict | None = None,
) -> Path:
    """len_incorrect = ``first`` at step 1, ``last`` on the final 20% of steps, linear ramp in between."""
    d.mkdir(parents=True)
    TrainConfig(adv_scale=adv_scale, loss_agg=loss_agg, seed=seed, steps=steps, group_size=G, lr=lr).save(d / "config.json")
    if extra_config:
        cfg = json.loads((d / "config.json").read_text())
        cfg.update(extra_config)
        (d / "config.json").write_text(json.dumps(cfg))
    n_last = math.ceil(0.2 * steps)
    abs_adv = ABS_STD if adv_scale != "none" else ABS_NOSTD
    rows = []
    for s in range(1, steps + 1):
        if s > steps - n_last:
            li = last
        else:
            li = first + (last - first) * (s - 1) / max(1, steps - n_last)
        row = {
            "step": s,
            "train/reward": reward_last if s == steps else 0.1,
            "train/accuracy": reward_last if s == steps else 0.1,
            "train/len_mean": 50.0 + s,
            "train/len_correct": 40.0,
            "train/len_incorrect": li,
            "train/loss": 0.01 * s,
            "train/entropy": 1.0 - 0.05 * s,
            "train/grad_norm": None,
        }
        for k in range(G + 1):
            row[f"difficulty/k{k}/groups"] = COUNTS[k]
            row[f"difficulty/k{k}/abs_adv"] = abs_adv[k]
        if eval_acc is not None and s in (steps // 2, steps):
            acc = eval_acc[0] if s == steps // 2 else eval_acc[1]
            row.update({"eval/accuracy": acc, "eval/len_mean": 60.0, "eval/len_correct": 50.0,
                        "eval/len_incorrect": 70.0})
        rows.append(row)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        (d / "summary.json").write_text(json.dumps({"status": "finished"}))
    return d


def png_size(p: Path) -> tuple[int, int]:
    data = p.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


_PLOTS: dict[str, Any] = {}


def small_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PlotResult]:
    """GRPO growth 40/50, Dr. GRPO 10/20 (seeds 0/1) -> means 45 and 15, paired differences 30 and 30."""
    if "small" not in _PLOTS:
        root = tmp_path_factory.mktemp("sweep")
        write_run(root / "grpo-s0", seed=0, last=140, reward_last=0.5)
        write_run(root / "grpo-s1", seed=1, last=150, reward_last=0.7)
        write_run(root / "drgrpo-s0", adv_scale="none", loss_agg="max_tokens", seed=0, last=110)
        write_run(root / "drgrpo-s1", adv_scale="none", loss_agg="max_tokens", seed=1, last=120)
        _PLOTS["small"] = root, plot([root], smooth=2, metrics=["train/entropy"], formats=("png", "svg"))
    return _PLOTS["small"]


def fake_sweep_10(tmp_path_factory: pytest.TempPathFactory) -> PlotResult:
    """:func:`write_fake_sweep` with 10 seeds, plotted."""
    if "fake10" not in _PLOTS:
        root = write_fake_sweep(tmp_path_factory.mktemp("fake") / "sweep")
        _PLOTS["fake10"] = plot([root], formats=("png",))
    return _PLOTS["fake10"]


def trainer_like_run(d: Path, *, adv_scale: str, loss_agg: str, seed: int, steps: int = 20) -> list[dict]:
    """Rows as the trainer writes them: an eval-only step-0 row, then one row per step, eval every 2 steps,
    values that change every step (so the step-0 row or a window over eval points would change the numbers)."""
    from drgrpo_cli.metrics import run_summary

    d.mkdir(parents=True)
    cfg = TrainConfig(adv_scale=adv_scale, loss_agg=loss_agg, seed=seed, steps=steps, group_size=G, eval_every=2)
    cfg.save(d / "config.json")
    k = 1 + seed + (adv_scale == "group")

    def ev(s: int) -> dict:
        return {"eval/accuracy": 0.1 + 0.031 * s * k, "eval/len_mean": 60.0 + s, "eval/len_correct": 50.0,
                "eval/len_incorrect": 70.0 + s}

    rows = [{"step": 0, **ev(0)}]
    for s in range(1, steps + 1):
        row = {"step": s, "train/reward": 0.013 * s * k + 0.007 * (s % 3), "train/accuracy": 0.011 * s * k,
               "train/len_mean": 50.0 + 1.7 * s * k, "train/len_correct": 40.0 + 0.37 * s,
               "train/len_incorrect": None if s == steps - 1 else 90.0 + 2.3 * s * k + (s % 4),
               "train/derailed/len_incorrect": None if s == 2 else 95.0 + 3.1 * s * k + (s % 3),
               "train/truncated_frac": 0.0}
        if s % 2 == 0:
            row.update(ev(s))
        rows.append(row)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run_summary(rows, cfg.arm, cfg.adv_scale, cfg.loss_agg, cfg.seed)
    (d / "summary.json").write_text(json.dumps({**summary, "status": "finished"}))
    return rows


def md_table(md: str, section: str) -> dict[str, list[str]]:
    """The rows of the first table under ``## section``, by their first cell."""
    lines = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if ln.startswith("| ")]
    return {r[0]: r for r in rows[1:]}


#: label -> (adv_scale, loss_agg, failure-state wrong-answer length at step 1, at the last step)
FAKE_ARMS = {
    "GRPO": ("group", "seq_mean", 16.0, 40.0),
    "std-only fix": ("none", "seq_mean", 16.0, 36.0),
    "length-only fix": ("group", "max_tokens", 16.0, 15.0),
    "Dr. GRPO": ("none", "max_tokens", 16.0, 15.0),
}
SPIKE = 400.0  # one seed of Dr. GRPO, one step



def write_fake_sweep(root: Path, *, seeds: int = 10, steps: int = 150, eval_every: int = 15, new_names: bool = True,
                     labels: dict[str, str] | None = None) -> Path:
    """A sweep folder as ``drgrpo ablate`` writes it (grid.json, ARM__seedN run dirs with config.json,
    metrics.jsonl with a step-0 eval row, summary.json): the built-in task's 2x2 where the failure-state
    wrong answers grow 16 -> 40 tokens under GRPO and stay ~15 under Dr. GRPO, rewards ~0.44 in every arm,
    a per-seed offset shared by all arms (what pairing removes), noise, and one spike (Dr. GRPO, seed 3,
    step 100). ``new_names=False`` writes the old metric names only (no train/derailed/len_incorrect,
    no eval_sampled/...). ``labels`` renames arms (knobs unchanged)."""
    import random

    root.mkdir(parents=True, exist_ok=True)
    grid = {"name": "fake-2x2", "source": "test", "seeds": list(range(seeds)), "base": {"task": "builtin"},
            "arms": {}, "runs": []}
    for arm, (adv, agg, start, end) in FAKE_ARMS.items():
        label = (labels or {}).get(arm, arm)
        for seed in range(seeds):
            d = root / f"{adv}-{agg}__seed{seed}"
            d.mkdir()
            cfg = {"adv_scale": adv, "loss_agg": agg, "seed": seed, "steps": steps, "task": "builtin",
                   "eval_every": eval_every, "group_size": 8, "lr": 2e-4}
            (d / "config.json").write_text(json.dumps(cfg))
            rng = random.Random(1000 * seed + len(arm))
            offset = random.Random(seed).gauss(0, 2.0)
            rows = []
            for s in range(steps + 1):
                row: dict = {"step": s}
                t = s / steps
                if s >= 1:
                    dl = start + (end - start) * t + offset + rng.gauss(0, 2.5)
                    if arm == "Dr. GRPO" and seed == 3 and s == 100:
                        dl = SPIKE
                    reward = min(1.0, max(0.0, 0.44 + rng.gauss(0, 0.05)))
                    cl = 6.0 + rng.gauss(0, 0.6)
                    row.update({"train/reward": reward, "train/accuracy": reward, "train/len_mean": 0.5 * (dl + cl),
                                "train/len_correct": cl, "train/len_incorrect": 0.8 * dl + 1.8,
                                "train/derailed/len": dl, "train/clean/len": cl})
                    if new_names:
                        row.update({"train/derailed/frac": 0.5, "train/derailed/accuracy": 0.0,
                                    "train/derailed/len_incorrect": dl, "train/derailed/len_correct": None,
                                    "train/clean/frac": 0.5, "train/clean/accuracy": 0.88,
                                    "train/clean/len_correct": cl, "train/clean/len_incorrect": 9.0})
                if s % eval_every == 0:
                    ev = start + (end - start) * t + offset + rng.gauss(0, 3.0)
                    row.update({"eval/accuracy": 0.45, "eval/len_mean": 15.0, "eval/len_correct": 6.0,
                                "eval/len_incorrect": 24.0})
                    if new_names:
                        row.update({"eval_sampled/accuracy": 0.43 + rng.gauss(0, 0.03),
                                    "eval_sampled/derailed/len_incorrect": ev,
                                    "eval_sampled/len_incorrect": 0.8 * ev + 1.8})
                rows.append(row)
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (d / "summary.json").write_text(json.dumps({"status": "finished", "steps": steps}))
            grid["arms"][d.name] = label
            grid["runs"].append({"dir": d.name, "arm": label, "seed": seed,
                                 "overrides": {"adv_scale": adv, "loss_agg": agg}, "config": cfg})
    (root / "grid.json").write_text(json.dumps(grid))
    return root


def axes_by_title(fig) -> dict:
    return {ax.get_title(): ax for ax in fig.axes}


PROV = {"drgrpo": "0.1.0", "commit": "a47fd12f624cb4af1f1134e2f58ec8e2041b511c", "dirty": False, "dirty_files": [],
        "libraries": {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.24.0", "numpy": "2.4.6",
                      "tokenizers": "0.23.3", "safetensors": "0.8.0", "vllm": None},
        "machine": {"device": "cpu", "cpu": "AMD EPYC", "threads": 1},
        "model_path": "/cache/builtin", "weights_sha256": "9a9c8b1e03b1" + "0" * 52, "argv": ["drgrpo", "ablate"]}


def write_prov(d: Path, *, where: str = "provenance.json", **changes) -> None:
    prov = json.loads(json.dumps(PROV))
    for k, v in changes.items():
        if k in prov["libraries"]:
            prov["libraries"][k] = v
        else:
            prov[k] = v
    if where == "summary.json":  # an older layout: only the copy in summary.json
        (d / "summary.json").write_text(json.dumps({"status": "finished", "provenance": prov}))
    else:
        (d / "provenance.json").write_text(json.dumps(prov))


def prov_runs(root: Path, changes: dict[str, dict]) -> dict[str, Path]:
    runs = {}
    for arm, knobs in (("grpo", {}), ("drgrpo", dict(adv_scale="none", loss_agg="max_tokens"))):
        for seed in (0, 1):
            name = f"{arm}-s{seed}"
            runs[name] = write_run(root / name, seed=seed, steps=5, **knobs)
            if changes.get(name) != "none":
                write_prov(runs[name], **changes.get(name, {}))
    return runs


def prov_warnings(res: PlotResult) -> list[str]:
    return [w for w in res.warnings if "differ in" in w or "provenance" in w]
