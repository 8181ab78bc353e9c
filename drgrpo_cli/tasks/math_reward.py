"""Rule-based math reward with Hugging Face ``math-verify``: 1.0 for a correct final answer, else 0.0.

Correctness only, no format reward; a truncated response gets 0. The answer is extracted
(:mod:`drgrpo_cli.tasks.answers`) and compared with the gold by math-verify, the paper's grader settings. A
verifier error, an unparseable gold or a timeout is reward 0 and counted, never a crash. math-verify's own
timeouts are off (they fail outside the main thread); one ``timeout_s`` budget covers a response, enforced by
a SIGALRM timer in the main thread or a long-lived child process elsewhere (``isolation``). math-verify is
imported lazily. Why: docs/design/tasks.md.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from drgrpo_cli.errors import one_line
from drgrpo_cli.tasks.answers import EXTRACTORS, extract_answer, gold_answer
from drgrpo_cli.tasks.templates import ALIASES, TEMPLATES

ISOLATIONS = ("auto", "signal", "process")
MISSING_MATH_VERIFY = "math-verify is not installed: install drgrpo[math] (pip install 'drgrpo[math]')"

_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


def _as_latex(ans: str) -> str:
    """Wrap an answer in ``$...$`` unless it already holds math delimiters (an escaped ``\\$`` is not one)."""
    return ans if _UNESCAPED_DOLLAR.search(ans) else f"${ans}$"


def _resolve_extractor(name: str) -> str:
    """``name`` itself when it is an extractor, else the extractor of the template ``name``."""
    if name in EXTRACTORS:
        return name
    tname = ALIASES.get(name, name)
    if tname in TEMPLATES:
        return TEMPLATES[tname].extractor
    raise ValueError(f"extractor must be one of {', '.join(EXTRACTORS)} (or a template name: "
                     f"{', '.join(TEMPLATES)}), got {name!r}")


# --------------------------------------------------------------------------------------------------------
# Grading core: math-verify, no timeouts of its own (the caller puts one around it)
# --------------------------------------------------------------------------------------------------------
class VerifierError(RuntimeError):
    """The verifier could not judge (gold unparseable)."""


class _MathVerifyTimeoutNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # we time out ourselves; drop math-verify's warning
        return "Timeout is disabled" not in record.getMessage()


_MV: Any = None
_GOLD_CACHE: OrderedDict[str, list] = OrderedDict()
_GOLD_CACHE_SIZE = 1024


def _import_math_verify() -> Any:
    global _MV
    if _MV is None:
        try:
            import math_verify
        except ImportError:
            raise ImportError(MISSING_MATH_VERIFY) from None
        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_MathVerifyTimeoutNoise())
        _MV = math_verify
    return _MV


def _parse(mv: Any, latex: str) -> list:
    return mv.parse(
        latex,
        extraction_config=[mv.LatexExtractionConfig(boxed_match_priority=0), mv.ExprExtractionConfig()],
        parsing_timeout=None,
        raise_on_error=True,
    )


def verify_answer(pred: str, gold: str) -> bool:
    """True when the extracted answer ``pred`` equals ``gold`` by math-verify. No timeout; may raise."""
    mv = _import_math_verify()
    if "".join(pred.split()) == "".join(gold.split()):
        return True
    gold_parsed = _GOLD_CACHE.get(gold)
    if gold_parsed is None:
        gold_parsed = _parse(mv, _as_latex(gold))
        if not gold_parsed:
            raise VerifierError(f"gold answer does not parse: {gold[:80]!r}")
        _GOLD_CACHE[gold] = gold_parsed
        if len(_GOLD_CACHE) > _GOLD_CACHE_SIZE:
            _GOLD_CACHE.popitem(last=False)
    pred_parsed = _parse(mv, _as_latex(pred))
    if not pred_parsed:
        return False
    return bool(mv.verify(gold_parsed, pred_parsed, timeout_seconds=None, raise_on_error=True))


class _Timeout(BaseException):
    """Raised by our SIGALRM handler; a BaseException so ``except Exception`` inside libraries lets it pass."""




# --------------------------------------------------------------------------------------------------------
# The reward
# --------------------------------------------------------------------------------------------------------
class MathReward:
    """``reward = MathReward("boxed")(response, gold, truncated)`` -> 1.0 or 0.0.

    ``extractor``: ``boxed`` or ``answer_tag`` (a template name, e.g. ``r1``, picks its template's).
    ``timeout_s``: budget for grading one response (seconds, float). ``isolation``: ``auto`` | ``signal`` |
    ``process`` (docs/design/tasks.md). Counters: ``calls``, ``failures`` (verifier errors and
    timeouts, reward 0), ``timeouts``; ``last_error`` holds the last failure's one-line message.
    """

    def __init__(self, extractor: str, timeout_s: float = 5.0, *, isolation: str = "auto") -> None:
        self.extractor = _resolve_extractor(extractor)
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
        _import_math_verify()
        self.timeout_s = float(timeout_s)
        self.isolation = isolation
        self.calls = 0
        self.failures = 0
        self.timeouts = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()  # counters
        self._worker_lock = threading.Lock()  # one request at a time to the child process
        self._proc: subprocess.Popen | None = None
        self._buf = b""

    # -- public --------------------------------------------------------------------------------------
    def __call__(self, response: str, gold: str, truncated: bool) -> float:
        with self._lock:
            self.calls += 1
        if truncated:
            return 0.0
        pred = extract_answer(response or "", self.extractor)
        if pred is None:
            return 0.0
        gold_ans = gold_answer(gold)
        if "".join(pred.split()) == "".join(gold_ans.split()):
            return 1.0
        if self._use_signal():
            ok, correct, err, timed_out = self._grade_signal(pred, gold_ans)
        else:
            ok, correct, err, timed_out = self._grade_process(pred, gold_ans)
        if not ok:
            with self._lock:
                self.failures += 1
                self.timeouts += int(timed_out)
                self.last_error = err
            return 0.0
        return 1.0 if correct else 0.0

    def close(self) -> None:
        """Stop the grading child process, if one is running (a later call starts a new one)."""
        proc, self._proc, self._buf = self._proc, None, b""
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict:  # picklable (e.g. to a worker): locks and the child stay behind
        state = self.__dict__.copy()
        for key in ("_lock", "_worker_lock", "_proc", "_buf"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._worker_lock = threading.Lock()
        self._proc = None
        self._buf = b""

    # -- in-process grading, SIGALRM timer ----------------------------------------------------------------
    def _use_signal(self) -> bool:
        if self.isolation != "auto":
            return self.isolation == "signal"
        return (
            hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL)[0] == 0
        )

    def _grade_signal(self, pred: str, gold: str) -> tuple[bool, bool, str | None, bool]:
        if threading.current_thread() is not threading.main_thread():
            return False, False, "isolation='signal' needs the main thread", False
        armed = [True]

        def on_alarm(signum, frame):
            if armed[0]:
                raise _Timeout()

        def disarm():
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)

        previous = signal.signal(signal.SIGALRM, on_alarm)
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, self.timeout_s, 0.05)
                try:
                    correct = verify_answer(pred, gold)
                finally:
                    disarm()
                return True, correct, None, False
            except _Timeout:
                disarm()
                return False, False, f"timeout after {self.timeout_s:g}s", True
            except Exception as e:  # noqa: BLE001 - any verifier error is a failure, reward 0
                return False, False, one_line(e), False
        finally:
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)

    # -- child-process grading ---------------------------------------------------------------------------
    def _start_worker(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("OMP_NUM_THREADS", "1")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from drgrpo_cli.tasks.math_reward import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        self._buf = b""
        ready = self._read_line(max(60.0, self.timeout_s))
        if ready is None or json.loads(ready).get("ready") is not True:
            self.close()
            raise RuntimeError("the math-verify child process did not start")

    def _read_line(self, timeout: float) -> bytes | None:
        """One line from the child within ``timeout`` seconds; None on timeout or EOF."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def _grade_process(self, pred: str, gold: str) -> tuple[bool, bool, str | None, bool]:
        with self._worker_lock:
            try:
                if self._proc is None or self._proc.poll() is not None:
                    self._start_worker()
                assert self._proc is not None and self._proc.stdin is not None
                self._proc.stdin.write(json.dumps({"pred": pred, "gold": gold}).encode() + b"\n")
                self._proc.stdin.flush()
                line = self._read_line(self.timeout_s)
            except Exception as e:  # noqa: BLE001
                self.close()
                return False, False, one_line(e), False
            if line is None:
                timed_out = self._proc is not None and self._proc.poll() is None
                self.close()
                return False, False, (f"timeout after {self.timeout_s:g}s" if timed_out
                                      else "the math-verify child process died"), timed_out
            reply = json.loads(line)
            return bool(reply["ok"]), bool(reply.get("correct")), reply.get("error"), False


def _worker_main() -> None:
    """The grading child: one JSON request per stdin line, one JSON reply per stdout line."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the protocol stream
    _import_math_verify()
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            reply = {"ok": True, "correct": verify_answer(req["pred"], req["gold"])}
        except Exception as e:  # noqa: BLE001
            reply = {"ok": False, "correct": False, "error": one_line(e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()
