"""Grid files for ``drgrpo ablate``: a TOML file that expands to a list of runs.

Format::

    name = "bias-2x2"              # sweep name; the default output directory is results/<name>
    description = "..."            # optional, free text
    seeds = [0]                    # default seeds, overridden by --seeds
    [base]                         # any TrainConfig field, applied to every run
    steps = 200
    [axes]                         # Cartesian product of these values
    adv_scale = ["group", "none"]
    loss_agg = ["seq_mean", "max_tokens"]
    [arms]                         # optional: readable names for points of the product
    GRPO = {adv_scale="group", loss_agg="seq_mean"}
    "Dr. GRPO" = {adv_scale="none", loss_agg="max_tokens"}

A grid may also have ``[arms]`` and no ``[axes]``: then each arm is one point, and its table may set any
TrainConfig field (not only axes). With ``[axes]``, every point of the product runs; an arm only names a
point, must give a value for the axes it needs to pick exactly one point, and may set nothing else.

Expansion: ``points x seeds``, seed-major (every arm of seed 0, then every arm of seed 1, ...) so that a
sweep that is stopped early has complete comparisons for the first seeds; points named in ``[arms]`` come
first in ``[arms]`` order, then unnamed points in product order. Each run is a :class:`RunSpec`.

Choices and why:

* Run directory names are ``<slug>__seed<N>``, stable and readable: the slug of the arm name
  (``"Dr. GRPO"`` -> ``dr-grpo``, ``"std-only fix"`` -> ``std-only-fix``), or, for a point no arm names,
  the slugs of its axis values joined by ``-`` (``group-seq_mean``). Unnamed points are labelled
  ``config.arm_label`` (``GRPO``), plus the other axis values in brackets when there are other axes
  (``GRPO (lr=0.0001)``), so two different points never share a label. Colliding names are an error.
* Values are parsed and type-checked by ``config.coerce_value`` (the one parser of config values), so
  ``steps = "abc"`` or ``lr = "fast"`` fails here, not inside a worker an hour later; every config is
  validated (``TrainConfig.validate``) at expansion time, so a bad grid fails before any run starts.
* ``seed`` is not a grid key: seeds come from ``seeds = [...]`` or ``--seeds`` only, so the run directory
  name (``__seed<N>``) always tells the seed.
* ``--set key=value`` applies to ``[base]``; setting a key that is an axis is an error (the axis would
  silently win or the grid would collapse; neither is what the user meant). Axes override ``[base]``.
* Every error is a :class:`GridError` with one line ``<file>:<line>: <what>``. The line of a TOML syntax
  error comes from tomllib's "(at line N, column M)"; for a bad key or value it is found by scanning the
  text for the key (best effort: the first match in the right table).
* ``grid.json`` at the sweep root records the resolved grid (``arms``: run dir -> arm label, read by
  ``drgrpo plot``; ``runs``: dir, arm, seed, overrides and the full config). A new grid is compatible with
  an existing grid.json when every run directory in both has the same arm, seed, overrides and config;
  the file then becomes the union (so adding seeds to a sweep just works). A disagreement is an error
  unless ``force``, because the run directories on disk would no longer match what grid.json says.
* Default grids ship inside the package (``drgrpo_cli/data/*.toml``) so a non-editable install works; the
  repository's ``ablations/*.toml`` are identical copies for reading and editing (a test checks it). A grid
  argument that is not an existing file but is the name of a bundled grid (``loss-modes``) uses it.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from drgrpo_cli.config import ConfigError, TrainConfig, arm_label, coerce_value, field_names
from drgrpo_cli.runlog import write_json_atomic

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEFAULT_GRID = "bias-2x2"
BUNDLED_GRIDS = ("bias-2x2", "loss-modes", "qwen-math-1.5b-2x2")
GRID_JSON = "grid.json"
TOP_KEYS = ("name", "description", "seeds", "base", "axes", "arms")
KNOB_KEYS = ("adv_scale", "loss_agg")


class GridError(ValueError):
    """A bad grid file or grid option; the message is one line, ``<file>:<line>: <what>`` where it can be."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep."""

    name: str  # run directory name, e.g. "dr-grpo__seed0"
    arm: str  # arm label, e.g. "Dr. GRPO"
    seed: int
    overrides: dict[str, Any]  # what this point sets on top of [base] (axis values, or the arm's table)
    config: TrainConfig  # the full config (not resolved: the trainer resolves and saves it)

    def to_json(self) -> dict[str, Any]:
        return {"dir": self.name, "arm": self.arm, "seed": self.seed, "overrides": _jsonable(self.overrides),
                "config": self.config.to_dict()}


@dataclass(frozen=True)
class Grid:
    name: str
    source: Path
    seeds: tuple[int, ...]
    base: dict[str, Any]  # [base] plus --set
    runs: tuple[RunSpec, ...]
    description: str = ""

    @property
    def arms(self) -> dict[str, str]:
        """Run directory name -> arm label, in run order."""
        return {r.name: r.arm for r in self.runs}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": str(self.source),
            "seeds": list(self.seeds),
            "base": _jsonable(self.base),
            "arms": self.arms,
            "runs": [r.to_json() for r in self.runs],
        }


# ------------------------------------------------------------------------------------------------------
# grid file resolution


def bundled_grid(name: str) -> Path:
    return DATA_DIR / f"{name}.toml"


def resolve_grid_path(grid: Path | str | None) -> Path:
    """The grid file to read: ``None`` -> the bundled default; an existing path; or a bundled grid's name."""
    if grid is None:
        return bundled_grid(DEFAULT_GRID)
    p = Path(grid)
    if p.is_file():
        return p
    stem = p.name[:-5] if p.name.endswith(".toml") else p.name
    if p.parent == Path(".") and stem in BUNDLED_GRIDS:
        return bundled_grid(stem)
    if p.exists():
        raise GridError(f"{p}: not a file")
    raise GridError(f"{p}: no such grid file (bundled grids: {', '.join(BUNDLED_GRIDS)})")


# ------------------------------------------------------------------------------------------------------
# helpers


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def slugify(text: str) -> str:
    """Lowercase, ``[a-z0-9_]`` kept, a ``.`` kept only between digits (``0.001``), the rest -> ``-``."""
    s = str(text).strip().lower()
    s = re.sub(r"[^a-z0-9_.]+", "-", s)
    s = re.sub(r"(?<![0-9])\.|\.(?![0-9])", "-", s)
    s = re.sub(r"-{2,}", "-", s).strip("-")
    return s


def _value_slug(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return "+".join(_value_slug(x) for x in v) or "empty"
    return slugify(str(v)) or "x"


def _fmt(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


_FIELD_TYPES = frozenset(field_names())


class _Locator:
    """Finds the line of a key or a table in the grid text (best effort, 1-based)."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()

    def err(self, line: int | None, msg: str) -> GridError:
        return GridError(f"{self.path}:{line or 1}: {msg}")

    def section(self, name: str) -> int | None:
        pat = re.compile(r"^\s*\[\s*" + re.escape(name) + r"\s*(\]|\.)")
        dotted = re.compile(r"^\s*" + re.escape(name) + r"\s*\.")
        for i, line in enumerate(self.lines):
            if pat.match(line) or dotted.match(line):
                return i + 1
        return None

    def _search(self, pat: re.Pattern[str], start: int) -> int | None:
        for i in range(max(0, start - 1), len(self.lines)):
            if pat.search(self.lines[i]):
                return i + 1
        return None

    def key(self, key: str, section: str | None = None, after: int | None = None) -> int:
        pat = re.compile(r"(?:^|[\s{,.])([\"']?)" + re.escape(key) + r"\1\s*=")
        start = after or (self.section(section) if section else None) or 1
        return (self._search(pat, start) or self._search(pat, 1)
                or (self.section(section) if section else None) or 1)

    def arm(self, name: str) -> int:
        pat = re.compile(r"(?:^|[\s{,.\[])([\"']?)" + re.escape(name) + r"\1\s*(=|\])")
        return self._search(pat, self.section("arms") or 1) or self.section("arms") or 1


def parse_set(item: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, coerced value)``; raises GridError."""
    if "=" not in item:
        raise GridError(f"--set {item}: expected KEY=VALUE")
    key, _, value = item.partition("=")
    key = key.strip().replace("-", "_")
    if key == "seed":
        raise GridError(f"--set {item}: set seeds with --seeds, not --set seed")
    try:
        return key, coerce_value(key, value)
    except ConfigError as e:
        raise GridError(f"--set {item}: {e}") from None


# ------------------------------------------------------------------------------------------------------
# loading and expansion


def load_grid(path: Path | str | None = None, *, seeds: Sequence[int] | None = None,
              sets: Iterable[str] = ()) -> Grid:
    """Read, check and expand a grid file (see the module docstring); raises GridError with one line."""
    path = resolve_grid_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GridError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)", msg)
        if m:
            line = int(m.group(1))
            msg = f"{msg[:m.start()]} (column {m.group(2)})"
        else:
            line = max(1, len(text.splitlines()))
            msg = re.sub(r"\s*\(at end of document\)", " at the end of the file", msg)
        raise GridError(f"{path}:{line}: TOML syntax error: {msg}") from None
    return _expand(path, text, doc, seeds=seeds, sets=tuple(sets))


def _expand(path: Path, text: str, doc: dict[str, Any], *, seeds: Sequence[int] | None,
            sets: tuple[str, ...]) -> Grid:
    loc = _Locator(path, text)

    for k in doc:
        if k not in TOP_KEYS:
            hint = " (config fields go in [base])" if k in _FIELD_TYPES else ""
            raise loc.err(loc.key(k), f"unknown top-level key {k!r}{hint}; expected {', '.join(TOP_KEYS)}")

    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name or name in (".", ".."):
        raise loc.err(loc.key("name"), f"name must be a non-empty string without '/', got {name!r}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise loc.err(loc.key("description"), "description must be a string")

    # seeds
    if seeds is None:
        raw = doc.get("seeds", [0])
        if not isinstance(raw, list) or not raw or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            and s >= 0 for s in raw):
            raise loc.err(loc.key("seeds"), f"seeds must be a non-empty list of integers >= 0, got {raw!r}")
        seed_list = list(raw)
        if len(set(seed_list)) != len(seed_list):
            raise loc.err(loc.key("seeds"), f"seeds has duplicates: {raw!r}")
    else:
        seed_list = list(seeds)
        if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seed_list):
            raise GridError(f"--seeds must be integers >= 0, got {seeds!r}")
        if len(set(seed_list)) != len(seed_list):
            raise GridError(f"--seeds has duplicates: {list(seeds)!r}")

    def table(key: str) -> dict[str, Any]:
        v = doc.get(key, {})
        if not isinstance(v, dict):
            raise loc.err(loc.key(key), f"{key} must be a table ([{key}])")
        return v

    def value(key: str, v: Any, line: int, where: str) -> Any:
        if key == "seed":
            raise loc.err(line, f"{where}: seed is not a grid key; list seeds in the top-level 'seeds' or use --seeds")
        if key not in _FIELD_TYPES:
            raise loc.err(line, f"{where}: unknown config key {key!r}")
        try:
            return coerce_value(key, v)
        except ConfigError as e:
            raise loc.err(line, f"{where}: {e}") from None

    # [base] + --set; remember where each key came from, for error lines
    source: dict[str, int | None] = {}  # key -> line (None = --set)
    base: dict[str, Any] = {}
    for k, v in table("base").items():
        line = loc.key(k, "base")
        base[k] = value(k, v, line, "[base]")
        source[k] = line

    # [axes]
    raw_axes = table("axes")
    axes: dict[str, list[Any]] = {}
    for k, vs in raw_axes.items():
        line = loc.key(k, "axes")
        if not isinstance(vs, list):
            raise loc.err(line, f"[axes] {k} must be a list of values, got {vs!r}")
        if not vs:
            raise loc.err(line, f"[axes] {k} is empty: an axis needs at least one value")
        vals = [value(k, v, line, f"[axes] {k}") for v in vs]
        if len({json.dumps(_jsonable(v)) for v in vals}) != len(vals):
            raise loc.err(line, f"[axes] {k} has duplicate values: {vs!r}")
        axes[k] = vals
        source[k] = line

    set_keys: set[str] = set()
    for item in sets:
        k, v = parse_set(item)
        if k in axes:
            raise GridError(f"--set {item}: {k} is an axis of {path}; edit the grid's [axes] instead")
        base[k] = v
        source[k] = None
        set_keys.add(k)

    # [arms]
    raw_arms = table("arms")
    arms: dict[str, dict[str, Any]] = {}
    arm_lines: dict[str, int] = {}
    for arm_name, t in raw_arms.items():
        aline = loc.arm(arm_name)
        arm_lines[arm_name] = aline
        if not isinstance(t, dict):
            raise loc.err(aline, f"arm {arm_name!r} must be a table like {{adv_scale=\"none\", loss_agg=\"max_tokens\"}}")
        if not arm_name.strip() or not slugify(arm_name):
            raise loc.err(aline, f"arm name {arm_name!r} has no letters or digits for a directory name")
        vals: dict[str, Any] = {}
        for k, v in t.items():
            line = loc.key(k, after=aline)
            if axes and k not in axes and k != "seed":
                if k in _FIELD_TYPES:
                    raise loc.err(line, f"arm {arm_name!r} sets {k!r}, which is not an axis "
                                        f"(axes: {', '.join(axes)}); with [axes], arms only name points")
            vals[k] = value(k, v, line, f"arm {arm_name!r}")
            if k in set_keys:
                raise GridError(f"--set {k}: arm {arm_name!r} of {path} sets {k}; edit the grid instead")
        arms[arm_name] = vals

    # points: (overrides, arm name or None)
    points: list[dict[str, Any]] = []
    names: dict[int, str] = {}
    if axes:
        keys = list(axes)
        points = [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]
        for arm_name, vals in arms.items():
            matches = [i for i, p in enumerate(points) if all(p[k] == v for k, v in vals.items())]
            desc = ", ".join(f"{k}={_fmt(v)}" for k, v in vals.items()) or "no values"
            if not matches:
                raise loc.err(arm_lines[arm_name], f"arm {arm_name!r} ({desc}) matches no grid point")
            if len(matches) > 1:
                missing = [k for k in keys if k not in vals]
                raise loc.err(arm_lines[arm_name], f"arm {arm_name!r} ({desc}) matches {len(matches)} grid points; "
                                                   f"give a value for {', '.join(missing)}")
            if matches[0] in names:
                raise loc.err(arm_lines[arm_name], f"arms {names[matches[0]]!r} and {arm_name!r} name the same grid point")
            names[matches[0]] = arm_name
    elif arms:
        for i, (arm_name, vals) in enumerate(arms.items()):
            points.append(vals)
            names[i] = arm_name
    else:
        raise loc.err(loc.section("axes") or loc.section("arms") or 1,
                      "grid has no runs: add an [axes] table (Cartesian product) or an [arms] table")

    # named points first, in [arms] order, then the unnamed ones in product order
    if axes and names:
        order = list(names.values())
        idx = sorted(range(len(points)), key=lambda i: (order.index(names[i]) if i in names else len(order), i))
        names = {j: names[i] for j, i in enumerate(idx) if i in names}
        points = [points[i] for i in idx]

    # labels, directory slugs, validation
    labelled: list[tuple[dict[str, Any], str, str, TrainConfig]] = []
    seen_labels: dict[str, int] = {}
    seen_slugs: dict[str, str] = {}
    for i, p in enumerate(points):
        cfg = TrainConfig(**{**base, **p})
        if i in names:
            label, slug = names[i], slugify(names[i])
        else:
            label = arm_label(cfg.adv_scale, cfg.loss_agg)
            extra = {k: v for k, v in p.items() if k not in KNOB_KEYS}
            if extra:
                label += " (" + ", ".join(f"{k}={_fmt(v)}" for k, v in extra.items()) + ")"
            slug = "-".join(_value_slug(v) for v in p.values())
        where_line = arm_lines.get(names.get(i, ""), None)
        if label in seen_labels:
            raise loc.err(where_line or loc.section("arms") or loc.section("axes"),
                          f"two grid points share the arm name {label!r}; name them in [arms]")
        if slug in seen_slugs:
            raise loc.err(where_line or loc.section("arms") or loc.section("axes"),
                          f"arms {seen_slugs[slug]!r} and {label!r} give the same directory name {slug!r}")
        seen_labels[label] = i
        seen_slugs[slug] = label
        try:
            cfg.validate()
        except ConfigError as e:
            msg = str(e)
            line = None
            for tok in re.findall(r"[a-z_][a-z0-9_]*", msg):
                if tok in p and i in names and not axes:
                    line = loc.key(tok, after=arm_lines[names[i]])
                    break
                if tok in source:
                    line = source[tok]
                    if line is None:
                        raise GridError(f"--set {tok}: arm {label!r}: {msg}") from None
                    break
            if line is None:
                line = (arm_lines.get(names.get(i, ""), None) or loc.section("base") or loc.section("axes")
                        or loc.section("arms"))
            raise loc.err(line, f"arm {label!r}: {msg}") from None
        labelled.append((p, label, slug, cfg))

    runs = [RunSpec(name=f"{slug}__seed{seed}", arm=label, seed=seed, overrides=dict(p),
                    config=replace(cfg, seed=seed))
            for seed in seed_list for (p, label, slug, cfg) in labelled]
    return Grid(name=name, source=path, seeds=tuple(seed_list), base=base, runs=tuple(runs),
                description=description)


# ------------------------------------------------------------------------------------------------------
# grid.json


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


__all__ = [
    "BUNDLED_GRIDS", "DEFAULT_GRID", "GRID_JSON", "Grid", "GridError", "RunSpec", "bundled_grid",
    "check_grid_json", "load_grid", "merged_grid_json", "parse_set", "read_grid_json",
    "resolve_grid_path", "slugify", "write_grid_json",
]
