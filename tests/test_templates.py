"""Prompt templates: the paper's exact texts, stops, extractors, and user template files."""

from __future__ import annotations

import pytest

from drgrpo_cli.tasks.templates import TEMPLATES, Template, TemplateError, load_template, template_names


# The paper's code, sail-sg/understand-r1-zero train_zero_math.py, copied verbatim (long lines kept as there).
def apply_qwen_math_template(question: str):
    return (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>user\n"
        + question
        + "<|im_end|>\n<|im_start|>assistant\n"
    )


def apply_r1_template(question: str):
    return (
        "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. The Assistant first thinks about the reasoning process in the mind and then provides the User with the answer. "
        "The reasoning process is enclosed within <think> </think> and answer is enclosed within <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.\nUser: "
        + question
        + "\nAssistant: <think>"
    )


QUESTIONS = ["What is 3+4?", "Find $x$ if $\\frac{x}{2} = {3}$.", "Use {braces} and \\boxed{} freely."]


@pytest.mark.parametrize("question", QUESTIONS)
def test_builtins_match_the_paper_exactly(question):
    assert load_template("qwen_math").apply(question) == apply_qwen_math_template(question)
    assert load_template("r1").apply(question) == apply_r1_template(question)
    assert load_template("none").apply(question) == question
    assert load_template("no")(question) == question  # the paper's name for it


def test_stops_and_extractors():
    assert template_names() == ("qwen_math", "r1", "none")
    assert TEMPLATES["r1"].stop == ("</answer>",) and TEMPLATES["r1"].extractor == "answer_tag"
    for name in ("qwen_math", "none"):
        assert TEMPLATES[name].stop == () and TEMPLATES[name].extractor == "boxed"
    assert "\\boxed{}" in TEMPLATES["qwen_math"].format


def test_template_is_frozen():
    with pytest.raises(Exception):
        TEMPLATES["r1"].name = "x"  # type: ignore[misc]


def test_user_template_file(tmp_path):
    path = tmp_path / "my_prompt.txt"
    path.write_text("Solve {x}: {question}\nPut the answer in \\boxed{}.\nAnswer:\n", encoding="utf-8")
    t = load_template(str(path))
    assert isinstance(t, Template)
    assert t.name == "my_prompt" and t.extractor == "boxed" and t.stop == ()
    # one trailing newline (the editor's) is dropped; other braces are left alone
    assert t.apply("1+1?") == "Solve {x}: 1+1?\nPut the answer in \\boxed{}.\nAnswer:"


def test_user_template_blank_last_line_keeps_a_newline(tmp_path):
    path = tmp_path / "nl.txt"
    path.write_text("Q: {question}\nA:\n\n", encoding="utf-8")
    assert load_template(str(path)).apply("q") == "Q: q\nA:\n"


def test_user_template_answer_tags_infer_extractor(tmp_path):
    path = tmp_path / "tags.txt"
    path.write_text("Think, then write <answer> </answer>.\nUser: {question}\nAssistant:", encoding="utf-8")
    t = load_template(str(path))
    assert t.extractor == "answer_tag" and t.stop == ("</answer>",)
    t2 = load_template(str(path), extractor="boxed", stop=("\n\n",))
    assert t2.extractor == "boxed" and t2.stop == ("\n\n",)


def test_missing_placeholder_is_an_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("Solve: {problem}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"no \{question\} placeholder") as info:
        load_template(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("spec", ["qwen", "missing_template.txt", ""])
def test_unknown_template_is_an_error(spec):
    with pytest.raises(TemplateError) as info:
        load_template(spec)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_extractor_and_binary_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("{question}", encoding="utf-8")
    with pytest.raises(TemplateError, match="extractor"):
        load_template(str(path), extractor="regex")
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe{question}")
    with pytest.raises(TemplateError, match="not UTF-8"):
        load_template(str(binary))
