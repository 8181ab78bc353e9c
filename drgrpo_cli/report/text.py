"""How a number, a config value or a table is written in the report, the figures' titles and the paired
sentences.

One convention everywhere: a missing number (None, NaN, not a number) is written "—", never 0.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from drgrpo_cli.metrics import finite

__all__ = ["markdown_table", "number_text", "or_nan", "value_text"]


def or_nan(v: Any) -> float:
    """A float, or NaN for None / non-numbers / non-finite values (JSON null = missing)."""
    f = finite(v)
    return math.nan if f is None else f


def number_text(x: Any, decimals: int = 1, signed: bool = False) -> str:
    """``x`` with ``decimals`` decimals (``+`` sign shown when ``signed``), or "—" when missing."""
    x = or_nan(x)
    if math.isnan(x):
        return "—"
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def value_text(v: Any) -> str:
    """A config value as text: strings as they are, anything else as JSON (sorted keys)."""
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def _table_cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines (``|`` in a cell escaped, newlines made spaces)."""
    lines = ["| " + " | ".join(_table_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_table_cell(c) for c in row) + " |" for row in rows]
    return lines
