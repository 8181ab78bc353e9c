"""``grid.json``: a sweep directory's record of the grid its runs were made from.

It holds the resolved grid (``arms``: run dir -> arm label, read by ``drgrpo plot``; ``runs``: dir, arm, seed,
overrides and the full config). A new grid is compatible with an existing grid.json when every run directory
in both has the same arm, seed, overrides and config; the file then becomes the union (so adding seeds to a
sweep just works). A disagreement is a :class:`~drgrpo_cli.sweep.grid.GridError` unless ``force``: the run
directories on disk would no longer match what grid.json says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drgrpo_cli.runlog import write_json_atomic
from drgrpo_cli.sweep.grid import Grid, GridError

GRID_JSON = "grid.json"


def read_grid_json(sweep_dir: Path) -> dict[str, Any] | None:
    p = Path(sweep_dir) / GRID_JSON
    if not p.exists():
        return None
    try:
        d = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GridError(f"{p}: unreadable ({e}); move it away or use --force") from None
    if not isinstance(d, dict) or not isinstance(d.get("runs"), list):
        raise GridError(f"{p}: not a drgrpo grid.json; move it away or use --force")
    return d


def _same_run(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """None when compatible, else a short reason."""
    for k in ("arm", "seed", "overrides"):
        if old.get(k) != new.get(k):
            return f"{k} {old.get(k)!r} != {new.get(k)!r}"
    oc, nc = old.get("config") or {}, new.get("config") or {}
    for k in sorted(set(oc) & set(nc)):
        if oc[k] != nc[k]:
            return f"config {k}={oc[k]!r} != {nc[k]!r}"
    return None


def merged_grid_json(existing: dict[str, Any] | None, grid: Grid, *, force: bool = False,
                     where: Path | None = None) -> dict[str, Any]:
    """The grid.json to write: the new grid, plus runs of an existing compatible grid.json; GridError on conflict."""
    new = grid.to_json()
    if existing is None or force:
        return new
    old_runs = {r.get("dir"): r for r in existing.get("runs", []) if isinstance(r, dict)}
    for r in new["runs"]:
        o = old_runs.get(r["dir"])
        if o is not None:
            why = _same_run(o, r)
            if why:
                raise GridError(f"{where or GRID_JSON}: run {r['dir']!r} was made by a different grid ({why}); "
                                f"use another --out, or --force to rerun everything with the new grid")
    new_dirs = {r["dir"] for r in new["runs"]}
    if any(d not in new_dirs for d in old_runs):
        new["runs"] = _in_order(existing, new["runs"])
        new["arms"] = {r["dir"]: r["arm"] for r in new["runs"]}
        new["seeds"] = sorted({r["seed"] for r in new["runs"]})
    return new


def _in_order(existing: dict[str, Any], new_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Old runs first (in their order, replaced by the new entry where both have it), then new ones."""
    by_dir = {r["dir"]: r for r in new_runs}
    out = []
    seen = set()
    for r in existing.get("runs", []):
        d = r.get("dir")
        if d in seen or not isinstance(d, str):
            continue
        out.append(by_dir.get(d, r))
        seen.add(d)
    out += [r for r in new_runs if r["dir"] not in seen]
    return out


def write_grid_json(sweep_dir: Path, grid: Grid, *, force: bool = False) -> bool:
    """Write (or merge into) ``<sweep_dir>/grid.json``; returns True when the file changed."""
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / GRID_JSON
    existing = None if force else read_grid_json(sweep_dir)
    merged = merged_grid_json(existing, grid, force=force, where=path)
    if existing is not None and existing == json.loads(json.dumps(merged)):
        return False
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, merged)
    return True


def check_grid_json(sweep_dir: Path, grid: Grid, *, force: bool = False) -> None:
    """Raise GridError if writing grid.json would conflict (used by --dry-run, which writes nothing)."""
    if not force:
        merged_grid_json(read_grid_json(sweep_dir), grid, where=Path(sweep_dir) / GRID_JSON)
