"""The report's "Provenance" section: one row per distinct record and the runs that share it, and a
warning for each thing the compared runs differ in.

A record is the drgrpo version and commit, library versions, machine, threads and the base weights'
sha256, from each run's ``provenance.json`` (else the copy in ``summary.json``); older runs say "not
recorded". Runs that differ in library versions (python included), base weights or drgrpo commit (a
checkout with uncommitted *code* changes counts as another commit; docs do not) are a warning: same seed
then no longer means the same random stream, so a paired difference mixes the arms' effect with the code's.
"""

from __future__ import annotations

from typing import Any, Sequence

from drgrpo_cli.provenance import code_dirty
from drgrpo_cli.report.runs import PlotContext, Run
from drgrpo_cli.report.text import markdown_table, value_text

__all__ = ["NOT_RECORDED", "PROVENANCE_LIBS", "provenance_groups", "provenance_record",
           "provenance_table", "provenance_warnings", "runs_text", "seed_ranges"]

NOT_RECORDED = "not recorded"
#: Library versions shown (and compared), in this order; vllm only where a run had it installed.
PROVENANCE_LIBS = ("python", "torch", "transformers", "numpy", "tokenizers", "safetensors", "vllm")


def _commit(prov: dict[str, Any]) -> str:
    """The commit's first 10 hex digits, ``+dirty`` when the checkout had uncommitted code changes (or a
    dirty record does not say which files: cannot tell); edits to docs only do not count."""
    c = prov.get("commit")
    if not c:
        return "no git checkout"
    return str(c)[:10] + ("+dirty" if code_dirty(prov) else "")


def provenance_record(prov: dict[str, Any] | None) -> dict[str, str]:
    """The compact, comparable fields of a run's provenance record (all ``"not recorded"`` for None)."""
    if not prov:
        return {k: NOT_RECORDED for k in ("drgrpo", "libraries", "machine", "threads", "weights_sha256")}
    libs = prov.get("libraries") or {}
    lib_text = ", ".join(f"{k} {libs[k]}" for k in PROVENANCE_LIBS if libs.get(k)) or NOT_RECORDED
    m = prov.get("machine") or {}
    where = [str(m[k]) for k in ("gpu", "cpu") if m.get(k)]
    if m.get("device") and not str(m["device"]).startswith("cpu"):
        where.insert(0, str(m["device"]))
    sha = prov.get("weights_sha256")
    return {"drgrpo": f"{prov.get('drgrpo') or '?'} ({_commit(prov)})",
            "libraries": lib_text,
            "machine": ", ".join(where) or NOT_RECORDED,
            "threads": str(m["threads"]) if m.get("threads") is not None else NOT_RECORDED,
            "weights_sha256": str(sha)[:12] if sha else "none (hub model)"}


def runs_text(ctx: PlotContext, runs: Sequence[Run]) -> str:
    """Which runs: ``all 40 runs``, else per arm ``GRPO (all 10)`` or ``Dr. GRPO: seeds 0, 3``."""
    names = {r.name for r in runs}
    if names == {r.name for r in ctx.runs}:
        return f"all {len(runs)} runs" if len(runs) > 1 else "the run"
    parts = []
    for arm in ctx.arms:
        mine = [r for r in ctx.runs_by_arm[arm] if r.name in names]
        if not mine:
            continue
        if len(mine) == len(ctx.runs_by_arm[arm]):
            parts.append(f"{arm} (all {len(mine)})")
            continue
        seeds = [r.seed for r in mine]
        if len(set(map(str, seeds))) == len(seeds):
            parts.append(f"{arm}: seed{'s' if len(seeds) > 1 else ''} {seed_ranges(seeds)}")
        else:
            parts.append(f"{arm}: {', '.join(r.name for r in mine)}")
    return "; ".join(parts)


def seed_ranges(seeds: Sequence[Any]) -> str:
    """``0, 2-5, 9`` for integer seeds (runs of three or more consecutive seeds as a range), else as listed."""
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        return ", ".join(value_text(x) for x in seeds)
    out: list[str] = []
    xs = sorted(seeds)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out += [f"{xs[i]}-{xs[j]}"] if j - i >= 2 else [str(x) for x in xs[i:j + 1]]
        i = j + 1
    return ", ".join(out)


def provenance_groups(ctx: PlotContext) -> list[tuple[dict[str, str], list[Run]]]:
    """The distinct :func:`provenance_record` s of the runs, each with the runs that share it."""
    groups: dict[tuple[str, ...], tuple[dict[str, str], list[Run]]] = {}
    for r in ctx.runs:
        rec = provenance_record(r.provenance)
        groups.setdefault(tuple(rec.values()), (rec, []))[1].append(r)
    return list(groups.values())


def _library(p: dict[str, Any], k: str) -> str:
    return str((p.get("libraries") or {}).get(k) or "not installed")


def provenance_warnings(ctx: PlotContext) -> list[str]:
    """One warning per thing the compared runs differ in: library versions, base weights, drgrpo commit."""
    out: list[str] = []
    recorded = [r for r in ctx.runs if r.provenance]
    missing = [r for r in ctx.runs if not r.provenance]
    if recorded and missing:
        out.append(f"provenance not recorded for {runs_text(ctx, missing)} (made before drgrpo wrote "
                   f"provenance.json): whether they share the other runs' libraries and base weights is unknown")

    def differ(what: str, key, why: str) -> None:
        by: dict[str, list[Run]] = {}
        for r in recorded:
            by.setdefault(key(r.provenance), []).append(r)
        if len(by) > 1:
            parts = "; ".join(f"{v} ({runs_text(ctx, rs)})" for v, rs in by.items())
            out.append(f"the compared runs differ in {what}: {parts}; {why}")

    keys = [k for k in PROVENANCE_LIBS if len({_library(r.provenance, k) for r in recorded}) > 1]  # those that differ
    if keys:
        differ("library versions", lambda p: ", ".join(f"{k} {_library(p, k)}" for k in keys),
               "same seed no longer means the same random stream, so differences mix the arms' effect with the "
               "libraries'")
    differ("base weights (sha256)", lambda p: str(p.get("weights_sha256") or "none")[:12],
           "the arms did not start from the same model")
    differ("drgrpo commit", _commit, "the runs may have been made by different code (+dirty: uncommitted changes "
           "to drgrpo's code, or a record that does not say which files changed)")
    return out


def provenance_table(ctx: PlotContext) -> list[str]:
    """The section's text: what the table shows, then one row per distinct record."""
    groups = provenance_groups(ctx)
    rows = [[runs_text(ctx, runs), rec["drgrpo"], rec["libraries"], rec["machine"], rec["threads"],
             f"`{rec['weights_sha256']}`" if rec["weights_sha256"] != NOT_RECORDED else NOT_RECORDED]
            for rec, runs in groups]
    lines = ["What produced the runs, from each run's `provenance.json`: one row per distinct record and the runs "
             "that share it (drgrpo version and git commit, `+dirty` = uncommitted changes to its code; library versions; "
             "machine; torch threads; the first 12 hex digits of the base weights' sha256)."
             + (" One record: every run was made by the same code, libraries and base weights."
                if len(groups) == 1 and groups[0][1][0].provenance else ""), ""]
    return lines + markdown_table(["runs", "drgrpo (commit)", "libraries", "machine", "threads", "weights sha256"],
                                  rows)
