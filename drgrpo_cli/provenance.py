"""What produced a run: code, libraries, machine, base weights and command line (``provenance.json``).

Choices and why: a run directory must say which library set made it, because the same seed and weights
give different random streams under another torch or transformers (a published run could not be
reproduced after pip resolved a newer transformers, and nothing in the folder said so). The record is
written once, when a run starts, beside ``config.json`` (which stays the pure ``TrainConfig``), and
copied into ``summary.json`` at the end. ``LIBRARIES`` are the packages whose versions decide the numbers;
resuming a run under a different set of them would splice two random streams, so the trainer refuses it.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions change a run's numbers (vllm only matters when it is installed and used).
LIBRARIES = ("torch", "transformers", "numpy", "tokenizers", "safetensors", "vllm")


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(path: Path | None = None) -> dict[str, Any]:
    """The commit of the drgrpo checkout, whether it has uncommitted changes to tracked files, and which
    (``dirty_files``, paths from the repository root; None outside git)."""
    where = str(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "dirty_files": None}
    files = sorted(line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines() if line.strip())
    return {"commit": commit, "dirty": bool(files), "dirty_files": files}


#: Paths (from the repository root) whose changes can change a run's numbers; edits elsewhere (README,
#: CHANGELOG, docs, tests, benchmarks) cannot.
CODE_PATHS = ("drgrpo_cli/", "pyproject.toml", "setup.py", "setup.cfg")


def code_dirty(record: dict[str, Any]) -> bool | None:
    """Did the checkout that made a run have uncommitted changes to code (``CODE_PATHS``)? None outside git;
    True for a dirty record without ``dirty_files`` (written before they were recorded: cannot tell)."""
    if record.get("dirty") is None:
        return None
    if not record["dirty"]:
        return False
    files = record.get("dirty_files")
    if files is None:
        return True
    return any(f == p or f.startswith(p) for f in files for p in CODE_PATHS)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def weights_sha256(model_path: str) -> str | None:
    """sha256 over the weight files of a local model folder (sorted by name); None for a hub id."""
    folder = Path(model_path)
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder.is_dir() else []
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def collect(model_path: str, device: str, threads: int) -> dict[str, Any]:
    """The provenance record of a run starting now."""
    from drgrpo_cli import __version__

    dev: dict[str, Any] = {"device": device, "cpu": cpu_model(), "threads": threads}
    if device.startswith("cuda"):
        import torch

        dev["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return {"drgrpo": __version__, **git_state(), "libraries": library_versions(), "machine": dev,
            "model_path": model_path, "weights_sha256": weights_sha256(model_path), "argv": list(sys.argv)}


def library_change(saved: dict[str, Any], *, uses_vllm: bool = True) -> str | None:
    """``"torch 2.13.0 -> 2.14.0, ..."`` when this process's libraries differ from a saved record, else None.
    vllm counts only for a run that samples with it (installing vllm does not change an HF run)."""
    was, now = saved.get("libraries") or {}, library_versions()
    diff = [f"{k} {was.get(k)} -> {now.get(k)}" for k in now
            if was.get(k) != now.get(k) and (uses_vllm or k != "vllm")]
    return ", ".join(diff) or None


def resume_refusal(run_dir: Path) -> str | None:
    """Why a run must not be resumed in this process (it was started under another library set: the
    continuation would splice two random streams), as one line; None when it may be."""
    import json

    prov, cfg = Path(run_dir) / "provenance.json", Path(run_dir) / "config.json"
    if not prov.exists():
        return None
    backend = json.loads(cfg.read_text()).get("backend") if cfg.exists() else None
    change = library_change(json.loads(prov.read_text()), uses_vllm=backend != "hf")
    if change is None:
        return None
    return (f"{run_dir} was started under other libraries ({change}); resuming would splice two random streams: "
            f"reinstall those versions (results/constraints.txt for the published runs), or start over with --force")
