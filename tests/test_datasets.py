"""Math problem loading: JSONL / JSON / CSV / Parquet, field config, boxed solutions, errors, the hub path."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from drgrpo_cli.tasks import datasets as ds
from drgrpo_cli.tasks import Problem
from drgrpo_cli.tasks.datasets import DatasetError, dataset_name, load_problems

DATA = Path(__file__).parent / "data"
TINY = [
    ("What is 3+4?", "7"), ("What is 12-5?", "7"), ("What is 6*7?", "42"), ("What is 81/9?", "9"),
    ("What is 2+2?", "4"), ("What is 10-13?", "-3"), ("What is 1/2+1/4?", "\\frac{3}{4}"), ("What is 15*3?", "45"),
]


def pairs(problems):
    return [(p.question, p.answer) for p in problems]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def one_line_error(spec, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        load_problems(str(spec), **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, ValueError)
    return msg


# ---- formats --------------------------------------------------------------------------------------------
def test_jsonl():
    problems = load_problems(str(DATA / "tiny_math.jsonl"))
    assert pairs(problems) == TINY
    assert problems[0] == Problem("What is 3+4?", "7", "tiny_math")


def test_csv_matches_jsonl():
    assert load_problems(str(DATA / "tiny_math.csv")) == load_problems(str(DATA / "tiny_math.jsonl"))


def test_parquet_written_on_the_fly(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "tiny_math.parquet"
    pd.DataFrame({"problem": [q for q, _ in TINY], "answer": [a for _, a in TINY]}).to_parquet(path)
    assert load_problems(str(path)) == load_problems(str(DATA / "tiny_math.jsonl"))


def test_parquet_missing_column_names_the_row(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "q.parquet"
    pd.DataFrame({"problem": ["a", "b"], "final": ["1", "2"]}).to_parquet(path)
    msg = one_line_error(path, answer_field="answer")
    assert f"{path}, row 1: missing field 'answer'" in msg and "final" in msg
    # without --answer-field: no known answer column, one line listing the columns there are
    msg = one_line_error(path)
    assert f"{path}: no answer column" in msg and "problem, final" in msg


def test_not_a_parquet_file(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "x.parquet"
    path.write_text("not parquet")
    assert "not a readable Parquet file" in one_line_error(path)


def test_json_array(tmp_path):
    path = tmp_path / "arr.json"
    path.write_text(json.dumps([{"problem": q, "answer": a} for q, a in TINY]), encoding="utf-8")
    assert pairs(load_problems(str(path))) == TINY


def test_numbers_become_text_and_limit(tmp_path):
    path = write_jsonl(tmp_path / "n.jsonl", [{"problem": "1+1", "answer": 2}, {"problem": "1.5*2", "answer": 3.0},
                                              {"problem": "1/4", "answer": 0.25}])
    assert [p.answer for p in load_problems(str(path))] == ["2", "3", "0.25"]
    assert len(load_problems(str(path), limit=2)) == 2
    assert "limit" in one_line_error(path, limit=0)


# ---- field configuration --------------------------------------------------------------------------------
def test_custom_fields(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", [{"question": "What is 3+4?", "final": "7", "extra": 1}])
    assert pairs(load_problems(str(path), question_field="question", answer_field="final")) == [("What is 3+4?", "7")]
    msg = one_line_error(path, question_field="problem", answer_field="final")
    assert "line 1: missing field 'problem'" in msg and "question" in msg


def test_solution_field_extracts_last_boxed(tmp_path):
    rows = [
        {"problem": "Simplify 2/4.", "solution": "We have $\\frac{2}{4} = \\boxed{\\frac{1}{2}}$."},
        {"problem": "p", "solution": "Try \\boxed{1}, no: the answer is $\\boxed{\\{1, 2\\}}$."},
    ]
    path = write_jsonl(tmp_path / "math.jsonl", rows)
    assert [p.answer for p in load_problems(str(path), answer_field="solution")] == ["\\frac{1}{2}", "\\{1, 2\\}"]


def test_solution_without_box_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "\\boxed{1}"},
                                              {"problem": "q", "solution": "The answer is 4."}])
    msg = one_line_error(path, answer_field="solution")
    assert f"{path}, line 2: field 'solution' has no \\boxed" in msg


def test_boxed_gold_in_answer_field_is_reduced(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", [{"problem": "p", "answer": "\\boxed{5}"}])
    assert load_problems(str(path))[0].answer == "5"


# ---- errors name the file and line ---------------------------------------------------------------------
def test_malformed_jsonl_names_file_and_line():
    msg = one_line_error(DATA / "malformed.jsonl")
    assert msg.startswith(f"{DATA / 'malformed.jsonl'}, line 3: bad JSON")


def test_missing_answer_names_the_line(tmp_path):
    path = tmp_path / "miss.jsonl"
    path.write_text('{"problem": "a", "answer": "1"}\n\n{"problem": "b"}\n', encoding="utf-8")
    assert f"{path}, line 3: missing field 'answer'" in one_line_error(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    assert one_line_error(path) == f"{path}: empty file (no problems)"


def test_empty_csv_and_header_only(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("problem,answer\n")
    assert "empty file" in one_line_error(path)


def test_empty_value_and_non_object(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"problem": "a", "answer": "  "}\n')
    assert "line 1: field 'answer' is empty" in one_line_error(path)
    path.write_text('["a", "b"]\n')
    assert "line 1: expected a JSON object" in one_line_error(path)


def test_csv_line_numbers_count_physical_lines(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('problem,answer\n"A question\nover two lines",5\n"q2",\n', encoding="utf-8")
    assert f"{path}, line 4: field 'answer' is empty" in one_line_error(path)
    path.write_text("problem,answer\nq1,1\nq2,2,extra\n", encoding="utf-8")
    assert f"{path}, line 3: 3 fields, the header has 2" in one_line_error(path)
    path.write_text("question,answer\nq1,1\n", encoding="utf-8")
    assert f"{path}, line 2: missing field 'problem'" in one_line_error(path, question_field="problem")


def test_csv_keeps_text_values(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("\ufeffproblem,answer\nWhich?,NaN\nHow many?,007\n", encoding="utf-8")
    assert pairs(load_problems(str(path))) == [("Which?", "NaN"), ("How many?", "007")]


def test_missing_file_unknown_type_directory(tmp_path):
    assert one_line_error(tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: no such file"
    assert "no such file" in one_line_error("./data/train")
    other = tmp_path / "data.txt"
    other.write_text("x")
    assert "unknown file type '.txt'" in one_line_error(other)
    assert "is a directory" in one_line_error(tmp_path)


# ---- names ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, name", [
    (str(DATA / "tiny_math.jsonl"), "tiny_math"),
    ("runs/my data.csv", "my_data"),
    ("HuggingFaceH4/MATH-500:test", "MATH-500"),
    ("openai/gsm8k:main:test", "gsm8k"),
    ("gsm8k", "gsm8k"),
])
def test_dataset_name(spec, name):
    assert dataset_name(spec) == name


# ---- Hugging Face datasets (faked: no hub in tests) ------------------------------------------------------
def fake_datasets(monkeypatch, splits=None, error=None):
    calls = []

    def load_dataset(name, *args):
        calls.append((name, *args))
        if error is not None:
            raise error
        return splits

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_hub_dataset_with_split(monkeypatch):
    monkeypatch.setattr(ds, "_hub_unreachable", lambda hf: None)
    calls = fake_datasets(monkeypatch, {"test": [{"problem": "p1", "answer": "1"}, {"problem": "p2", "answer": 2}],
                                        "train": [{"problem": "t", "answer": "0"}]})
    problems = load_problems("org/tiny-set:test")
    assert problems == [Problem("p1", "1", "tiny-set"), Problem("p2", "2", "tiny-set")]
    assert pairs(load_problems("org/tiny-set")) == [("t", "0")]  # no split: train
    assert calls == [("org/tiny-set",), ("org/tiny-set",)]
    assert "no split 'dev'" in one_line_error("org/tiny-set:dev")


def test_hub_config_and_single_split(monkeypatch):
    monkeypatch.setattr(ds, "_hub_unreachable", lambda hf: None)
    calls = fake_datasets(monkeypatch, {"test": [{"question": "q", "answer": "a"}]})
    assert pairs(load_problems("openai/gsm8k:main:test", question_field="question")) == [("q", "a")]
    assert pairs(load_problems("org/only-test", question_field="question")) == [("q", "a")]
    assert calls[0] == ("openai/gsm8k", "main")
    assert "row 1: missing field 'problem'" in one_line_error("org/only-test", question_field="problem")
    assert pairs(load_problems("org/only-test")) == [("q", "a")]  # detected: question, answer


def test_hub_offline_is_one_line_and_never_calls_load(monkeypatch):
    monkeypatch.setattr(ds, "_hub_unreachable", lambda hf: "huggingface.co:443: Name or service not known")
    calls = fake_datasets(monkeypatch, {})
    msg = one_line_error("HuggingFaceH4/MATH-500:test")
    assert "cannot reach the Hugging Face hub" in msg and "local" in msg and "MATH-500" in msg
    assert calls == []


def test_hub_load_error_is_one_line(monkeypatch):
    monkeypatch.setattr(ds, "_hub_unreachable", lambda hf: None)
    fake_datasets(monkeypatch, error=ConnectionError("Couldn't reach 'x/y' on the Hub\n(LocalEntryNotFoundError)"))
    msg = one_line_error("x/y")
    assert msg.startswith("cannot reach Hugging Face dataset 'x/y'") and "local" in msg


def test_hub_without_datasets_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert "install drgrpo[math]" in one_line_error("org/some-set")


def test_bad_hub_spec():
    assert "expected name" in one_line_error("a:b:c:d")


# ---- column names detected when no field is given ---------------------------------------------------------
@pytest.mark.parametrize("row,expect", [
    ({"problem": "p", "answer": "1"}, ("problem", "answer")),
    ({"question": "p", "answer": "1"}, ("question", "answer")),  # GSM8K
    ({"prompt": "p", "ground_truth": "1"}, ("prompt", "ground_truth")),
    ({"problem": "p", "solution": "\\boxed{1}", "answer": "1"}, ("problem", "answer")),  # MATH: answer first
    ({"problem": "p", "solution": "so \\boxed{1}"}, ("problem", "solution")),
    ({"prompt": "x", "question": "p", "problem": "q", "answer": "1"}, ("problem", "answer")),  # order of preference
    ({"Question": "p", "Answer": "1"}, ("Question", "Answer")),  # case ignored, the file's spelling kept
])
def test_fields_are_detected_in_jsonl_and_csv(tmp_path, row, expect):
    from drgrpo_cli.tasks.datasets import dataset_fields

    path = write_jsonl(tmp_path / "d.jsonl", [row, row])
    assert dataset_fields(str(path)) == expect
    assert [p.answer for p in load_problems(str(path))] == ["1", "1"]
    csv = tmp_path / "d.csv"
    csv.write_text(",".join(row) + "\n" + ",".join(f'"{v}"' for v in row.values()) + "\n", encoding="utf-8")
    assert dataset_fields(str(csv)) == expect
    assert load_problems(str(csv))[0].answer == "1"


def test_given_fields_are_kept_and_detection_fills_the_other(tmp_path):
    from drgrpo_cli.tasks.datasets import dataset_fields

    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "final": "7", "answer": "8"}])
    assert dataset_fields(str(path), answer_field="final") == ("question", "final")
    assert pairs(load_problems(str(path), answer_field="final")) == [("q", "7")]
    assert dataset_fields(str(path), "x", "y") == ("x", "y")  # nothing to read


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_no_known_column_is_one_line_listing_the_columns(tmp_path, suffix):
    from drgrpo_cli.tasks.datasets import dataset_fields

    path = tmp_path / f"odd{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, [{"text": "What is 1+1?", "label": "2", "id": 7}])
    else:
        path.write_text("text,label,id\nWhat is 1+1?,2,7\n", encoding="utf-8")
    msg = one_line_error(path)
    assert msg == (f"{path}: no question column (looked for problem, question, prompt); its columns are: text, "
                   f"label, id; pass --question-field")
    with pytest.raises(DatasetError, match="no question column"):
        dataset_fields(str(path))
    msg = one_line_error(path, question_field="text")
    assert "no answer column (looked for answer, solution, ground_truth)" in msg and "text, label, id" in msg
