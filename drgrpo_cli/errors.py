"""How a failure is put into words: one line, whatever raised it.

Every command ends a failure with one line on stderr (exit 2 for bad input, 1 for a run that failed), and
summaries record one line too, so an exception is always reduced the same way: its type and its message
with every run of whitespace (newlines too) made one space, cut at ``limit`` characters. ``disk_full`` and ``is_oom`` name the two failures the
CLI words differently (free space; lower the micro-batch budget).
"""

from __future__ import annotations

import errno


def first_line(e: BaseException) -> str:
    """The first line of ``e``'s message, or its type's name when the message is empty."""
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def one_line(e: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, at most ``limit`` characters (cut with ``...``)."""
    text = " ".join(str(e).split())
    msg = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def disk_full(e: BaseException | None) -> OSError | None:
    """The ENOSPC/EDQUOT OSError behind ``e`` (torch wraps write errors in RuntimeError), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return e
        e = e.__cause__ or e.__context__
    return None


def is_oom(e: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA, or older torch's RuntimeError "... out of memory ...")."""
    return type(e).__name__ == "OutOfMemoryError" or (isinstance(e, RuntimeError) and "out of memory" in str(e))
