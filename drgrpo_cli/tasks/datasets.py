"""Math problems from a local file (``.jsonl``, ``.json``, ``.csv``, ``.parquet``) or a Hugging Face ``datasets``
name (``name[:config]:split``), as a list of :class:`~drgrpo_cli.tasks.interface.Problem`.

Every problem with the data is a one-line :class:`DatasetError` naming the file and line or row; an
unreachable hub is one line too (a 3 s probe first, instead of the hub client's retries). Values are text; an
answer holding ``\\boxed{...}`` is reduced to the last box. Columns not given are detected from the first row
(:data:`QUESTION_FIELDS`, :data:`ANSWER_FIELDS`). Why: docs/design/tasks.md.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import socket
import urllib.parse
from pathlib import Path
from typing import Any, Iterable, Iterator

from drgrpo_cli.tasks.answers import BOX_COMMANDS, last_boxed
from drgrpo_cli.tasks.interface import Problem

FILE_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
#: Column names detected when no field is given, in order of preference.
QUESTION_FIELDS = ("problem", "question", "prompt")
ANSWER_FIELDS = ("answer", "solution", "ground_truth")
MISSING_DATASETS = "the datasets library is not installed: install drgrpo[math] (pip install 'drgrpo[math]')"


class DatasetError(ValueError):
    """A dataset that cannot be used; the message is one line naming the file and line."""


def dataset_name(spec: str) -> str:
    """A short name for metric keys: the file stem, or the hub name's last part (``org/MATH-500:test`` ->
    ``MATH-500``); characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``."""
    spec = str(spec)
    if _is_file_spec(spec):
        name = Path(spec).expanduser().stem
    else:
        name = spec.split(":", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "dataset"


def detect_fields(columns: Iterable[Any], question_field: str | None = None, answer_field: str | None = None,
                  where: str = "dataset") -> tuple[str, str]:
    """``(question_field, answer_field)`` for data with these ``columns``: a given name is kept as it is, a None
    one is the first of :data:`QUESTION_FIELDS` / :data:`ANSWER_FIELDS` present (exact name first, then
    ignoring case); none present is a one-line :class:`DatasetError` listing the columns."""
    cols = [str(c) for c in columns]

    def pick(given: str | None, names: tuple[str, ...], what: str, option: str) -> str:
        if given is not None:
            return given
        for name in names:
            if name in cols:
                return name
        lower = {c.lower(): c for c in reversed(cols)}
        for name in names:
            if name in lower:
                return lower[name]
        have = ", ".join(cols) or "none"
        raise DatasetError(f"{where}: no {what} column (looked for {', '.join(names)}); its columns are: {have}; "
                           f"pass {option}")

    return (pick(question_field, QUESTION_FIELDS, "question", "--question-field"),
            pick(answer_field, ANSWER_FIELDS, "answer", "--answer-field"))


def dataset_fields(spec: str, question_field: str | None = None,
                   answer_field: str | None = None) -> tuple[str, str]:
    """The (question, answer) column names :func:`load_problems` uses for ``spec`` with these fields (None =
    detected from the first row); reads the first row only (a hub dataset is loaded)."""
    if question_field is not None and answer_field is not None:
        return question_field, answer_field
    rows, where_file, is_file = _open_rows(spec)
    first = next(iter(rows), None)
    if first is None:
        raise _empty(where_file, is_file)
    where, row = first
    if not isinstance(row, dict):
        raise DatasetError(f"{where_file}, {where}: expected a JSON object, got {type(row).__name__}")
    return detect_fields(row.keys(), question_field, answer_field, where_file)


def load_problems(
    spec: str,
    question_field: str | None = None,
    answer_field: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """The problems in ``spec`` (a local .jsonl/.json/.csv/.parquet file or a ``datasets`` name); a field
    that is None is detected from the first row (:func:`detect_fields`)."""
    _check_spec(spec)
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be >= 1, got {limit}")
    source = dataset_name(spec)
    rows, where_file, is_file = _open_rows(spec)
    problems: list[Problem] = []
    for where, row in rows:
        if limit is not None and len(problems) >= limit:
            break
        if question_field is None or answer_field is None:
            if isinstance(row, dict):
                question_field, answer_field = detect_fields(row.keys(), question_field, answer_field, where_file)
        question = _field(row, question_field or "", where_file, where)
        answer = _field(row, answer_field or "", where_file, where)
        if any(cmd in answer for cmd in BOX_COMMANDS):
            boxed = last_boxed(answer)
            if boxed is None or not boxed.strip():
                raise DatasetError(f"{where_file}, {where}: field {answer_field!r} has an unclosed or empty "
                                   f"\\boxed{{}}")
            answer = boxed.strip()
        elif answer_field == "solution":
            raise DatasetError(f"{where_file}, {where}: field 'solution' has no \\boxed{{...}} answer")
        problems.append(Problem(question=question, answer=answer, source=source))
    if not problems:
        raise _empty(where_file, is_file)
    return problems


def _check_spec(spec: Any) -> None:
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(f"dataset must be a file path or a datasets name, got {spec!r}")


def _empty(where_file: str, is_file: bool) -> DatasetError:
    return DatasetError(f"{where_file}: empty file (no problems)" if is_file else f"{where_file}: no problems")


def _open_rows(spec: str) -> tuple[Iterable[tuple[str, Any]], str, bool]:
    """(rows as ``(where, row)``, the name errors use, whether it is a local file) for a dataset spec."""
    _check_spec(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        readers = {".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json, ".csv": _read_csv,
                   ".parquet": _read_parquet}
        if suffix not in readers:
            raise DatasetError(f"{spec}: unknown file type {suffix or '(none)'!r}; use one of "
                               f"{', '.join(FILE_EXTENSIONS)}")
        return readers[suffix](path, spec), spec, True
    if path.is_dir():
        raise DatasetError(f"{spec}: is a directory; pass a .jsonl/.json/.csv/.parquet file or a datasets name")
    if _is_file_spec(spec):
        raise DatasetError(f"{spec}: no such file")
    return _read_hub(spec), f"dataset {spec}", False


# --------------------------------------------------------------------------------------------------------
def _is_file_spec(spec: str) -> bool:
    if Path(spec).expanduser().exists():
        return True
    if spec.startswith(("/", "./", "../", "~", ".\\")):
        return True
    return spec.lower().endswith(FILE_EXTENSIONS + (".txt", ".tsv", ".gz", ".arrow"))


def _field(row: Any, name: str, file: str, where: str) -> str:
    if not isinstance(row, dict):
        raise DatasetError(f"{file}, {where}: expected a JSON object, got {type(row).__name__}")
    if name not in row or row[name] is None:
        have = ", ".join(map(str, list(row)[:8])) or "none"
        raise DatasetError(f"{file}, {where}: missing field {name!r} (fields: {have})")
    value = row[name]
    if isinstance(value, float) and value != value:  # NaN from pandas
        raise DatasetError(f"{file}, {where}: missing field {name!r} (empty value)")
    if isinstance(value, (dict, list)):
        raise DatasetError(f"{file}, {where}: field {name!r} is a {type(value).__name__}, expected text")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        raise DatasetError(f"{file}, {where}: field {name!r} is empty")
    return text


def _read_jsonl(path: Path, spec: str) -> Iterator[tuple[str, Any]]:
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{spec}, line {lineno}: bad JSON ({e.msg} at column {e.colno})") from None
                yield f"line {lineno}", row
    except UnicodeDecodeError:
        raise DatasetError(f"{spec}: not UTF-8 text") from None


def _read_json(path: Path, spec: str) -> Iterable[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{spec}: not UTF-8 text") from None
    if not text.lstrip().startswith("["):
        return _read_jsonl(path, spec)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{spec}, line {e.lineno}: bad JSON ({e.msg} at column {e.colno})") from None
    return [(f"item {i}", row) for i, row in enumerate(data, 1)]


def _read_csv(path: Path, spec: str) -> Iterator[tuple[str, Any]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header: list[str] | None = None
            prev_end = 0
            for record in reader:
                start, prev_end = prev_end + 1, reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                if header is None:
                    header = [h.strip() for h in record]
                    continue
                if len(record) != len(header):
                    raise DatasetError(f"{spec}, line {start}: {len(record)} fields, the header has {len(header)}")
                yield f"line {start}", dict(zip(header, record))
    except UnicodeDecodeError:
        raise DatasetError(f"{spec}: not UTF-8 text") from None
    except csv.Error as e:
        raise DatasetError(f"{spec}, line {reader.line_num}: bad CSV ({e})") from None


def _read_parquet(path: Path, spec: str) -> list[tuple[str, Any]]:
    try:
        import pandas as pd
    except ImportError:
        raise DatasetError("reading Parquet needs pandas and pyarrow: install drgrpo[math]") from None
    try:
        df = pd.read_parquet(path)
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: install drgrpo[math] (pip install pyarrow)") from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        msg = " ".join(str(e).split())[:160]
        raise DatasetError(f"{spec}: not a readable Parquet file ({type(e).__name__}: {msg})") from None
    return [(f"row {i}", row) for i, row in enumerate(df.to_dict(orient="records"), 1)]


def _hub_unreachable(hf: Any) -> str | None:
    """Why the hub cannot be reached (a 3 s TCP connect to its endpoint), or None when it can or when we
    cannot tell (offline mode set: ``datasets`` then reads its cache; a proxy configured)."""
    if getattr(getattr(hf, "config", None), "HF_HUB_OFFLINE", False):
        return None
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        return f"{host}:{port}: {e.strerror or type(e).__name__}"
    return None


def _read_hub(spec: str) -> Iterator[tuple[str, Any]]:
    parts = spec.split(":")
    if len(parts) > 3 or not all(parts):
        raise DatasetError(f"dataset spec {spec!r}: expected name, name:split or name:config:split")
    name, config, split = parts[0], (parts[1] if len(parts) == 3 else None), (parts[-1] if len(parts) > 1 else None)
    try:
        hf = importlib.import_module("datasets")
    except ImportError:
        raise DatasetError(f"{spec!r} is not a local file, and {MISSING_DATASETS}") from None
    unreachable = _hub_unreachable(hf)
    if unreachable:
        raise DatasetError(
            f"cannot reach the Hugging Face hub ({unreachable}) to load dataset {name!r}; pass a local "
            f".jsonl/.csv/.parquet file instead (or set HF_HUB_OFFLINE=1 to use a cached copy)"
        )
    try:
        ds = hf.load_dataset(name, config) if config else hf.load_dataset(name)
    except Exception as e:  # noqa: BLE001 - offline, unknown name, auth: all end the same way
        msg = " ".join(str(e).split())[:160]
        raise DatasetError(
            f"cannot reach Hugging Face dataset {name!r} (offline or not found: {type(e).__name__}: {msg}); "
            f"pass a local .jsonl/.csv/.parquet file instead"
        ) from None
    splits = list(ds.keys()) if hasattr(ds, "keys") else []
    if split is None:
        if "train" in splits:
            split = "train"
        elif len(splits) == 1:
            split = splits[0]
        else:
            raise DatasetError(f"dataset {name!r} has splits {', '.join(splits)}; pick one as {name}:SPLIT")
    if split not in splits:
        raise DatasetError(f"dataset {name!r} has no split {split!r} (splits: {', '.join(splits) or 'none'})")
    return ((f"row {i}", dict(row)) for i, row in enumerate(ds[split], 1))  # lazy: the first row, or up to a limit
