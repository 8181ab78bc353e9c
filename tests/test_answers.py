"""Answer extraction (drgrpo_cli.tasks.answers): boxed, answer tags, gold answers; no math-verify needed."""

from __future__ import annotations

import pytest

from drgrpo_cli.tasks.answers import answer_tag, extract_answer, gold_answer, last_boxed


@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{7}.", "7"),
    ("\\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
    ("\\fbox{5}", "5"),
    ("$\\boxed 5$", "5"),
    ("\\boxed {x+1}", "x+1"),
    ("\\boxed{1} and then \\boxed{2", None),  # the last box never closes: no answer, not the earlier one
    ("no box here", None),
    ("", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("<think> x </think> <answer> 7 </answer>", "7"),
    ("<answer>1</answer> <answer>2</answer>", "2"),
    ("</think> <answer> so $\\boxed{\\frac{1}{2}}$ </answer>", "\\frac{1}{2}"),
    ("</think> <answer> 7", "7"),  # stop string dropped by the generator
    ("\\boxed{7}", None),
    ("<answer> \\boxed{7 </answer>", None),
])
def test_answer_tag(text, expected):
    assert answer_tag(text) == expected


def test_extract_answer_dispatch_and_empty():
    assert extract_answer("\\boxed{ 3 }", "boxed") == "3"
    assert extract_answer("\\boxed{  }", "boxed") is None
    assert extract_answer("<answer>  </answer>", "answer_tag") is None
    with pytest.raises(ValueError, match="extractor"):
        extract_answer("x", "regex")


def test_gold_answer_reduces_boxed():
    assert gold_answer("\\boxed{5}") == "5"
    assert gold_answer("  \\frac{1}{2} ") == "\\frac{1}{2}"
    assert gold_answer(7) == "7"
