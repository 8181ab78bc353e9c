"""Math reward: math-verify grading on a fixture set, failures, timeouts (extraction: tests/test_answers.py)."""

from __future__ import annotations

import json
import pickle
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from drgrpo_cli.tasks import math_reward

FIXTURES = Path(__file__).parent / "data" / "math_fixtures.jsonl"
CASES = [json.loads(line) for line in FIXTURES.read_text().splitlines() if line.strip()]


@pytest.fixture
def MathReward():
    pytest.importorskip("math_verify")
    return math_reward.MathReward


# ---- fixture set --------------------------------------------------------------------------------------
def test_fixture_set_is_varied():
    assert len(CASES) >= 20
    assert {c["expected"] for c in CASES} == {0.0, 1.0}
    assert any(c["truncated"] for c in CASES) and any(c["extractor"] == "answer_tag" for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_fixture_rewards(MathReward, case):
    reward = MathReward(case["extractor"])
    assert reward(case["response"], case["gold"], case["truncated"]) == case["expected"]
    assert reward.failures == 0, reward.last_error


def test_template_name_picks_extractor(MathReward):
    assert MathReward("r1").extractor == "answer_tag"
    assert MathReward("qwen_math").extractor == "boxed"
    assert MathReward("none").extractor == "boxed"
    with pytest.raises(ValueError, match="extractor must be one of"):
        MathReward("regex")
    with pytest.raises(ValueError, match="timeout_s"):
        MathReward("boxed", timeout_s=0)


# ---- truncation, failures, timeouts ----------------------------------------------------------------------
def test_truncated_is_zero_without_calling_the_verifier(MathReward, monkeypatch):
    def boom(pred, gold):
        raise AssertionError("verifier called")

    monkeypatch.setattr(math_reward, "verify_answer", boom)
    reward = MathReward("boxed")
    assert reward("\\boxed{7}", "7", truncated=True) == 0.0
    assert reward.failures == 0 and reward.calls == 1


def test_verifier_exception_gives_zero_and_is_counted(MathReward, monkeypatch):
    import math_verify

    def boom(*args, **kwargs):
        raise RuntimeError("sympy exploded\nsecond line")

    monkeypatch.setattr(math_verify, "verify", boom)
    reward = MathReward("boxed")
    assert reward("\\boxed{0.5}", "\\frac{1}{2}", truncated=False) == 0.0
    assert reward("\\boxed{0.25}", "\\frac{1}{4}", truncated=False) == 0.0
    assert reward.failures == 2 and reward.timeouts == 0
    assert reward.last_error == "RuntimeError: sympy exploded second line"
    # identical strings never reach the verifier
    assert reward("\\boxed{ 7 }", "7", truncated=False) == 1.0
    assert reward.failures == 2


def test_unparseable_gold_is_a_failure_unparseable_response_is_not(MathReward):
    reward = MathReward("boxed")
    assert reward("\\boxed{7}", "", truncated=False) == 0.0
    assert reward.failures == 1 and "gold" in reward.last_error
    assert reward("\\boxed{\\frac{1}{}}", "7", truncated=False) == 0.0
    assert reward.failures == 1


def test_hang_times_out_in_process_and_is_counted(MathReward, monkeypatch):
    def spin(pred, gold):
        while True:
            pass

    monkeypatch.setattr(math_reward, "verify_answer", spin)
    previous = signal.getsignal(signal.SIGALRM)
    reward = MathReward("boxed", timeout_s=0.3, isolation="signal")
    t0 = time.monotonic()
    assert reward("\\boxed{2}", "3", truncated=False) == 0.0
    assert time.monotonic() - t0 < 2.0
    assert reward.failures == 1 and reward.timeouts == 1
    assert "timeout" in reward.last_error
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    assert signal.getsignal(signal.SIGALRM) == previous


def test_real_sympy_hang_times_out(MathReward):
    reward = MathReward("boxed", timeout_s=1.0)
    t0 = time.monotonic()
    assert reward("\\boxed{9^{9^{9^{9}}}}", "5", truncated=False) == 0.0
    assert time.monotonic() - t0 < 4.0
    assert reward.timeouts == 1
    assert reward("\\boxed{5}", "5.0", truncated=False) == 1.0  # still usable afterwards


def test_worker_thread_uses_a_child_process(MathReward):
    """math-verify's own timeout (signal.alarm) fails off the main thread; ours falls back to a child."""
    reward = MathReward("boxed", timeout_s=1.0)
    results: list = []

    def work():
        results.append(reward("\\boxed{1 + 2x}", "2x+1", truncated=False))
        t0 = time.monotonic()
        results.append(reward("\\boxed{9^{9^{9^{9}}}}", "5", truncated=False))
        results.append(time.monotonic() - t0)
        results.append(reward("\\boxed{\\dfrac{3}{4}}", "0.75", truncated=False))  # a fresh child

    try:
        th = threading.Thread(target=work)
        th.start()
        th.join(60)
        assert not th.is_alive()
        assert results[0] == 1.0 and results[1] == 0.0 and results[2] < 4.0 and results[3] == 1.0
        assert reward.failures == 1 and reward.timeouts == 1
    finally:
        reward.close()


def test_pickles_without_its_child(MathReward):
    reward = MathReward("r1")
    reward("<answer>7</answer>", "7", truncated=False)
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.extractor == "answer_tag" and clone.calls == 1
    assert clone("<answer>\\frac{1}{2}</answer>", "0.5", truncated=False) == 1.0


def test_missing_math_verify_says_what_to_install(monkeypatch):
    monkeypatch.setattr(math_reward, "_MV", None)
    monkeypatch.setitem(sys.modules, "math_verify", None)
    with pytest.raises(ImportError, match=r"install drgrpo\[math\]") as info:
        math_reward.MathReward("boxed")
    assert "\n" not in str(info.value)
