"""Grid files for ``drgrpo ablate``: a TOML file that expands to a list of runs (:class:`RunSpec`).

A grid has ``name``, ``seeds``, ``[base]`` (TrainConfig fields for every run), ``[axes]`` (their Cartesian
product) and ``[arms]`` (names for points of the product, or, without ``[axes]``, one run each); the format
is in ``ablations/README.md``. Expansion is ``points x seeds``, seed-major, so a sweep stopped early has
complete comparisons for its first seeds. Every value is parsed and type-checked by ``config.coerce_value``
and every config validated here, so a bad grid fails before any run starts, as a :class:`GridError`
``<file>:<line>: <what>``. The grids shipped with drgrpo are ``ablations/*.toml``, installed as the
package ``drgrpo_cli.grids``. Why: docs/design/sweep.md.
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

from drgrpo_cli.config import OBJECTIVE_KNOBS, ConfigError, TrainConfig, arm_label, coerce_value, field_names
from drgrpo_cli.report.stats import extra_knobs, knob_value_text, knobs_of

DEFAULT_GRID = "bias-2x2"
BUNDLED_GRIDS = ("bias-2x2", "loss-modes", "length-normalizers", "difficulty", "qwen-math-1.5b-2x2")
TOP_KEYS = ("name", "description", "seeds", "base", "axes", "arms")
_FIELDS = frozenset(field_names())


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


def grids_dir() -> Path:
    """The folder of the bundled grids: ``ablations/`` installed as ``drgrpo_cli/grids`` (a wheel), else the
    ``ablations/`` beside the package (a checkout: an editable install, or the source tree on PYTHONPATH)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "grids"
    return installed if installed.is_dir() else package.parent / "ablations"


def bundled_grid(name: str) -> Path:
    return grids_dir() / f"{name}.toml"


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


def _value_text(v: Any) -> str:
    """A value as a label or a message shows it (TOML-like: ``true``, ``[a,b]``)."""
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value_text(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


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
    """The runs of a parsed grid file, each step checking what it reads (in this order, so the first mistake
    in the file is the one reported)."""
    g = _GridReader(path, text, doc)
    name, description = g.header()
    seed_list = g.seeds(seeds)
    g.read_base()
    g.read_axes()
    g.apply_sets(sets)
    g.read_arms()
    points, names = g.points()
    labelled = g.label(points, names)
    runs = [RunSpec(name=f"{slug}__seed{seed}", arm=label, seed=seed, overrides=dict(p),
                    config=replace(cfg, seed=seed))
            for seed in seed_list for (p, label, slug, cfg) in labelled]
    return Grid(name=name, source=path, seeds=tuple(seed_list), base=g.base, runs=tuple(runs),
                description=description)


class _GridReader:
    """Reads the tables of one grid file, checking each value, and keeps where each key came from."""

    def __init__(self, path: Path, text: str, doc: dict[str, Any]):
        self.path, self.doc, self.loc = path, doc, _Locator(path, text)
        self.base: dict[str, Any] = {}  # [base] + --set
        self.source: dict[str, int | None] = {}  # key of [base] or [axes] -> its line (None = --set)
        self.axes: dict[str, list[Any]] = {}
        self.set_keys: set[str] = set()
        self.arms: dict[str, dict[str, Any]] = {}
        self.arm_lines: dict[str, int] = {}

    def header(self) -> tuple[str, str]:
        """The top-level keys are known; (name, description)."""
        doc, loc = self.doc, self.loc
        for k in doc:
            if k not in TOP_KEYS:
                hint = " (config fields go in [base])" if k in _FIELDS else ""
                raise loc.err(loc.key(k), f"unknown top-level key {k!r}{hint}; expected {', '.join(TOP_KEYS)}")
        name = doc.get("name", self.path.stem)
        if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name or name in (".", ".."):
            raise loc.err(loc.key("name"), f"name must be a non-empty string without '/', got {name!r}")
        description = doc.get("description", "")
        if not isinstance(description, str):
            raise loc.err(loc.key("description"), "description must be a string")
        return name, description

    def seeds(self, seeds: Sequence[int] | None) -> list[int]:
        """``--seeds`` if given, else the file's ``seeds``."""
        if seeds is None:
            raw = self.doc.get("seeds", [0])
            if not isinstance(raw, list) or not raw or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                and s >= 0 for s in raw):
                raise self.loc.err(self.loc.key("seeds"),
                                   f"seeds must be a non-empty list of integers >= 0, got {raw!r}")
            if len(set(raw)) != len(raw):
                raise self.loc.err(self.loc.key("seeds"), f"seeds has duplicates: {raw!r}")
            return list(raw)
        seed_list = list(seeds)
        if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seed_list):
            raise GridError(f"--seeds must be integers >= 0, got {seeds!r}")
        if len(set(seed_list)) != len(seed_list):
            raise GridError(f"--seeds has duplicates: {list(seeds)!r}")
        return seed_list

    def _table(self, key: str) -> dict[str, Any]:
        v = self.doc.get(key, {})
        if not isinstance(v, dict):
            raise self.loc.err(self.loc.key(key), f"{key} must be a table ([{key}])")
        return v

    def _value(self, key: str, v: Any, line: int, where: str) -> Any:
        if key == "seed":
            raise self.loc.err(line, f"{where}: seed is not a grid key; list seeds in the top-level 'seeds' or "
                                     f"use --seeds")
        if key not in _FIELDS:
            raise self.loc.err(line, f"{where}: unknown config key {key!r}")
        try:
            return coerce_value(key, v)
        except ConfigError as e:
            raise self.loc.err(line, f"{where}: {e}") from None

    def read_base(self) -> None:
        for k, v in self._table("base").items():
            line = self.loc.key(k, "base")
            self.base[k] = self._value(k, v, line, "[base]")
            self.source[k] = line

    def read_axes(self) -> None:
        for k, vs in self._table("axes").items():
            line = self.loc.key(k, "axes")
            if not isinstance(vs, list):
                raise self.loc.err(line, f"[axes] {k} must be a list of values, got {vs!r}")
            if not vs:
                raise self.loc.err(line, f"[axes] {k} is empty: an axis needs at least one value")
            vals = [self._value(k, v, line, f"[axes] {k}") for v in vs]
            if len({json.dumps(_jsonable(v)) for v in vals}) != len(vals):
                raise self.loc.err(line, f"[axes] {k} has duplicate values: {vs!r}")
            self.axes[k] = vals
            self.source[k] = line

    def apply_sets(self, sets: Sequence[str]) -> None:
        """``--set key=value`` on top of [base]; an axis cannot be set."""
        for item in sets:
            k, v = parse_set(item)
            if k in self.axes:
                raise GridError(f"--set {item}: {k} is an axis of {self.path}; edit the grid's [axes] instead")
            self.base[k] = v
            self.source[k] = None
            self.set_keys.add(k)

    def read_arms(self) -> None:
        loc = self.loc
        for arm_name, t in self._table("arms").items():
            aline = loc.arm(arm_name)
            self.arm_lines[arm_name] = aline
            if not isinstance(t, dict):
                raise loc.err(aline, f"arm {arm_name!r} must be a table like "
                                     f"{{adv_scale=\"none\", loss_agg=\"max_tokens\"}}")
            if not arm_name.strip() or not slugify(arm_name):
                raise loc.err(aline, f"arm name {arm_name!r} has no letters or digits for a directory name")
            vals: dict[str, Any] = {}
            for k, v in t.items():
                line = loc.key(k, after=aline)
                if self.axes and k not in self.axes and k != "seed" and k in _FIELDS:
                    raise loc.err(line, f"arm {arm_name!r} sets {k!r}, which is not an axis "
                                        f"(axes: {', '.join(self.axes)}); with [axes], arms only name points")
                vals[k] = self._value(k, v, line, f"arm {arm_name!r}")
                if k in self.set_keys:
                    raise GridError(f"--set {k}: arm {arm_name!r} of {self.path} sets {k}; edit the grid instead")
            self.arms[arm_name] = vals

    def points(self) -> tuple[list[dict[str, Any]], dict[int, str]]:
        """The grid points (what each sets on top of [base]) and the arm name of each named one (by index):
        the product of the axes, named points first in [arms] order; or, without axes, one per arm."""
        if self.axes:
            return self._named_first(*self._product_points())
        if self.arms:
            return list(self.arms.values()), dict(enumerate(self.arms))
        raise self.loc.err(self.loc.section("axes") or self.loc.section("arms") or 1,
                           "grid has no runs: add an [axes] table (Cartesian product) or an [arms] table")

    def _product_points(self) -> tuple[list[dict[str, Any]], dict[int, str]]:
        keys = list(self.axes)
        points = [dict(zip(keys, combo)) for combo in itertools.product(*(self.axes[k] for k in keys))]
        names: dict[int, str] = {}
        for arm_name, vals in self.arms.items():
            line = self.arm_lines[arm_name]
            matches = [i for i, p in enumerate(points) if all(p[k] == v for k, v in vals.items())]
            desc = ", ".join(f"{k}={_value_text(v)}" for k, v in vals.items()) or "no values"
            if not matches:
                raise self.loc.err(line, f"arm {arm_name!r} ({desc}) matches no grid point")
            if len(matches) > 1:
                missing = [k for k in keys if k not in vals]
                raise self.loc.err(line, f"arm {arm_name!r} ({desc}) matches {len(matches)} grid points; "
                                         f"give a value for {', '.join(missing)}")
            if matches[0] in names:
                raise self.loc.err(line, f"arms {names[matches[0]]!r} and {arm_name!r} name the same grid point")
            names[matches[0]] = arm_name
        return points, names

    @staticmethod
    def _named_first(points: list[dict[str, Any]], names: dict[int, str]) -> tuple[list[dict[str, Any]],
                                                                                    dict[int, str]]:
        """Named points first, in [arms] order, then the unnamed ones in product order."""
        if not names:
            return points, names
        order = list(names.values())
        idx = sorted(range(len(points)), key=lambda i: (order.index(names[i]) if i in names else len(order), i))
        return [points[i] for i in idx], {j: names[i] for j, i in enumerate(idx) if i in names}

    def label(self, points: list[dict[str, Any]],
              names: dict[int, str]) -> list[tuple[dict[str, Any], str, str, TrainConfig]]:
        """(point, arm label, directory slug, config) of each point; labels and slugs must be unique and every
        config valid."""
        labelled = []
        seen_labels: set[str] = set()
        seen_slugs: dict[str, str] = {}
        for i, p in enumerate(points):
            cfg = TrainConfig(**{**self.base, **p})
            label, slug = self._point_name(p, cfg, names.get(i))
            where_line = self.arm_lines.get(names.get(i, ""), None)
            if label in seen_labels:
                raise self.loc.err(where_line or self.loc.section("arms") or self.loc.section("axes"),
                                   f"two grid points share the arm name {label!r}; name them in [arms]")
            if slug in seen_slugs:
                raise self.loc.err(where_line or self.loc.section("arms") or self.loc.section("axes"),
                                   f"arms {seen_slugs[slug]!r} and {label!r} give the same directory name {slug!r}")
            seen_labels.add(label)
            seen_slugs[slug] = label
            self._validate(cfg, p, names.get(i), label)
            labelled.append((p, label, slug, cfg))
        return labelled

    @staticmethod
    def _point_name(p: dict[str, Any], cfg: TrainConfig, arm_name: str | None) -> tuple[str, str]:
        """(label, slug): the arm's name, else ``config.arm_label`` of adv_scale and loss_agg, then the other
        objective knobs (``config.OBJECTIVE_KNOBS``) off their defaults and the axis values that are not knobs,
        e.g. "Dr. GRPO (length_alpha=1, lr=0.001)" (as ``drgrpo plot`` names an arm from its knobs)."""
        if arm_name is not None:
            return arm_name, slugify(arm_name)
        label = arm_label(cfg.adv_scale, cfg.loss_agg)
        extra = [f"{k}={knob_value_text(v)}" for k, v in extra_knobs(knobs_of(cfg.to_dict()))]
        extra += [f"{k}={_value_text(v)}" for k, v in p.items() if k not in OBJECTIVE_KNOBS]
        if extra:
            label += " (" + ", ".join(extra) + ")"
        return label, "-".join(_value_slug(v) for v in p.values())

    def _validate(self, cfg: TrainConfig, p: dict[str, Any], arm_name: str | None, label: str) -> None:
        """``cfg.validate()``, its error at the line of the key it names (best effort)."""
        try:
            cfg.validate()
        except ConfigError as e:
            msg = str(e)
            line = None
            for tok in re.findall(r"[a-z_][a-z0-9_]*", msg):
                if tok in p and arm_name is not None and not self.axes:
                    line = self.loc.key(tok, after=self.arm_lines[arm_name])
                    break
                if tok in self.source:
                    line = self.source[tok]
                    if line is None:
                        raise GridError(f"--set {tok}: arm {label!r}: {msg}") from None
                    break
            if line is None:
                line = (self.arm_lines.get(arm_name or "", None) or self.loc.section("base")
                        or self.loc.section("axes") or self.loc.section("arms"))
            raise self.loc.err(line, f"arm {label!r}: {msg}") from None


__all__ = [
    "BUNDLED_GRIDS", "DEFAULT_GRID", "Grid", "GridError", "RunSpec", "bundled_grid", "grids_dir", "load_grid",
    "parse_set", "resolve_grid_path", "slugify",
]
