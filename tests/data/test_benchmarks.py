"""Benchmark loaders: full-release counts, label mapping, hub parser parity, sample files, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from cream.data import BENCHMARKS, Example, load_benchmark, parse_hub_record
from cream.data.benchmarks import FILES, SAMPLE_DIR
from cream.data.prompts import EVAL_INSTRUCTION, format_prompt, format_question, render, sft_target
from cream.errors import DataError

DATA = SHARED_DATA
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"full benchmark releases not found at {DATA} "
                                                          "(set CREAM_SHARED_DATA to a folder laid out like them)")

COUNTS = {
    ("arc_easy", "train"): 2251, ("arc_easy", "validation"): 570, ("arc_easy", "test"): 2376,
    ("arc_challenge", "train"): 1119, ("arc_challenge", "validation"): 299, ("arc_challenge", "test"): 1172,
    ("obqa", "train"): 4957, ("obqa", "validation"): 500, ("obqa", "test"): 500,
    ("siqa", "train"): 33410, ("siqa", "validation"): 1954,
    ("gsm8k", "train"): 7473, ("gsm8k", "test"): 1319,
}
SAMPLE_COUNTS = {("arc_easy", "train"): 800, ("arc_easy", "test"): 300, ("arc_easy", "validation"): 100}
PAIRS = list(COUNTS)


def _check(ex: Example, name: str) -> None:
    assert ex.benchmark == name and ex.question and ex.id
    if name == "gsm8k":
        assert ex.choices is None and ex.labels is None and not ex.is_multiple_choice
        assert float(ex.answer) == float(ex.answer) and "," not in ex.answer
        assert ex.solution and "<<" not in ex.solution and "####" not in ex.solution
    else:
        assert ex.is_multiple_choice and ex.solution is None
        assert len(ex.choices) == len(ex.labels) and 3 <= len(ex.labels) <= 5
        assert ex.labels == tuple("ABCDE"[: len(ex.labels)])
        assert ex.answer in ex.labels


# --- full releases --------------------------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("name,split", PAIRS)
def test_full_release_counts(name, split):
    exs = load_benchmark(name, split, DATA)
    assert len(exs) == COUNTS[name, split]
    for ex in exs:
        _check(ex, name)
    if name not in ("siqa", "gsm8k"):
        assert len({e.id for e in exs}) == len(exs)


@needs_data
def test_numeric_arc_labels_mapped_to_letters():
    exs = {e.id: e for e in load_benchmark("arc_easy", "train", DATA)}
    ex = exs["NYSEDREGENTS_2006_8_10"]  # release labels 1-4, answerKey "3"
    assert ex.labels == ("A", "B", "C", "D") and ex.answer == "C"
    assert ex.choices[2] == "how they formed"
    n_numeric = sum(1 for line in (DATA / FILES["arc_easy"]["train"]).open()
                    if json.loads(line)["question"]["choices"][0]["label"] == "1")
    assert n_numeric == 102  # as SOURCES.md states


@needs_data
def test_siqa_label_alignment():
    ex = load_benchmark("siqa", "train", DATA)[0]
    assert ex.id == "siqa-train-0"
    assert ex.question == ("Cameron decided to have a barbecue and gathered her friends together. "
                           "How would Others feel as a result?")
    assert ex.answer == "A" and ex.choices[0] == "like attending"
    dev = load_benchmark("siqa", "validation", DATA)
    assert dev[0].answer == "C" and dev[0].choices[2] == "Find somewhere to go"  # dev-labels.lst line 1: "3"
    assert dev[1].answer == "A" and dev[1].choices[0] == "sympathetic"           # line 2: "1"
    assert dev[2].answer == "B" and dev[2].choices[1] == "get petitions signed"  # line 3: "2"


@needs_data
def test_gsm8k_answer_and_solution():
    ex = load_benchmark("gsm8k", "train", DATA)[0]
    assert ex.id == "gsm8k-train-0" and ex.answer == "72"
    assert ex.solution == ("Natalia sold 48/2 = 24 clips in May.\n"
                           "Natalia sold 48+24 = 72 clips altogether in April and May.")
    assert sft_target(ex) == ex.solution + "\nAnswer: 72"
    exs = load_benchmark("gsm8k", "train", DATA)
    raw = [json.loads(x)["answer"].rsplit("####", 1)[1].strip() for x in (DATA / "gsm8k" / "train.jsonl").open()]
    with_commas = [i for i, a in enumerate(raw) if "," in a]
    assert len(with_commas) == 79  # e.g. "#### 1,080"
    assert all(exs[i].answer == raw[i].replace(",", "") for i in range(len(raw)))
    assert any(e.answer.startswith("-") for e in exs)  # a few negative answers


# --- hub layout parity --------------------------------------------------------------------------------------

HUB_FILES = sorted((DATA / "hub-samples").glob("*/*.jsonl")) if DATA.is_dir() else []


@needs_data
@pytest.mark.parametrize("path", HUB_FILES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_hub_parser_matches_release(path):
    name, split = path.parent.name, path.stem
    release = load_benchmark(name, split, DATA)
    by_id = {e.id: e for e in release}
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines
    for i, line in enumerate(lines):
        ex = parse_hub_record(name, json.loads(line), i, split)
        expected = release[i] if name == "siqa" else by_id[ex.id]
        assert ex == expected
    if name != "siqa":  # first N records, in the split's order
        assert [parse_hub_record(name, json.loads(x), i, split).id for i, x in enumerate(lines)] == \
            [e.id for e in release[: len(lines)]]


def test_hub_parser_gsm8k_and_errors():
    rec = {"question": "What is 2+3?", "answer": "2+3=<<2+3=5>>5\n#### 5"}
    ex = parse_hub_record("gsm8k", rec, 4, "test")
    assert ex == Example("gsm8k-test-4", "gsm8k", "What is 2+3?", None, None, "5", "2+3=5")
    with pytest.raises(DataError, match="question_stem"):
        parse_hub_record("obqa",
                         {"id": "x", "choices": {"text": ["a", "b"], "label": ["A", "B"]},
                          "answerKey": "A"}, 0, "train")
    with pytest.raises(DataError, match="known benchmarks"):
        parse_hub_record("mmlu", {}, 0, "train")


# --- shipped sample ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,split", PAIRS)
def test_sample_loads(name, split):
    exs = load_benchmark(name, split)
    want = SAMPLE_COUNTS.get((name, split), 300 if split == "train" else 150)
    assert len(exs) == want
    for ex in exs:
        _check(ex, name)


@needs_data
@pytest.mark.parametrize("name,split", PAIRS)
def test_sample_is_prefix_of_release(name, split):
    rel = FILES[name][split]
    files = [rel] + ([rel.replace(".jsonl", "-labels.lst")] if name == "siqa" else [])
    for f in files:
        sample = (SAMPLE_DIR / f).read_bytes()
        full = (DATA / f).read_bytes()
        assert sample.endswith(b"\n") and full.startswith(sample)
    assert load_benchmark(name, split) == load_benchmark(name, split, DATA)[: len(load_benchmark(name, split))]


def test_sample_readme_exists():
    text = (SAMPLE_DIR / "README.md").read_text()
    for word in ("CC BY-SA 4.0", "Apache-2.0", "MIT", "Social IQa", "data.dir"):
        assert word in text


# --- prompts -----------------------------------------------------------------------------------------------

def test_prompts():
    ex = Example("q1", "arc_easy", "Which gas do plants take in?", ("oxygen", "carbon dioxide"), ("A", "B"), "B")
    assert format_question(ex) == "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide"
    assert format_prompt(ex) == format_question(ex) + "\n" + EVAL_INSTRUCTION
    assert sft_target(ex) == "The answer is carbon dioxide.\nAnswer: B"

    class Plain:
        chat_template = None

    class Chat:
        chat_template = "x"

        def apply_chat_template(self, msgs, tokenize, add_generation_prompt):
            assert tokenize is False and add_generation_prompt is True
            return f"<user>{msgs[0]['content']}</user><assistant>"

    assert render(Plain(), "hi") == "hi\n"
    assert render(Chat(), "hi") == "<user>hi</user><assistant>"


# --- errors --------------------------------------------------------------------------------------------------

ARC_OK = {"id": "x1", "question": {"stem": "Q?", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]},
          "answerKey": "A"}


def _write_arc(root: Path, lines: list[str]) -> Path:
    path = root / "arc_easy" / "ARC-Easy-Train.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_line(tmp_path):
    _write_arc(tmp_path, [json.dumps(ARC_OK), '{"id": "x2", "question": '])
    with pytest.raises(DataError, match=r"ARC-Easy-Train\.jsonl:2: malformed JSON"):
        load_benchmark("arc_easy", "train", tmp_path)


def test_missing_field(tmp_path):
    bad = {k: v for k, v in ARC_OK.items() if k != "answerKey"}
    _write_arc(tmp_path, [json.dumps(ARC_OK), json.dumps(ARC_OK), json.dumps(bad)])
    with pytest.raises(DataError, match=r"ARC-Easy-Train\.jsonl:3: missing field 'answerKey'"):
        load_benchmark("arc_easy", "train", tmp_path)


def test_label_not_among_choices(tmp_path):
    _write_arc(tmp_path, [json.dumps({**ARC_OK, "answerKey": "E"})])
    with pytest.raises(DataError, match=r"ARC-Easy-Train\.jsonl:1: key 'answerKey': gold 'E' is not among"):
        load_benchmark("arc_easy", "train", tmp_path)


def test_numeric_labels_mapped(tmp_path):
    rec = {"id": "n1",
           "question": {"stem": "Q?", "choices": [{"text": t, "label": str(i + 1)} for i, t in enumerate("wxyz")]},
           "answerKey": "4"}
    _write_arc(tmp_path, [json.dumps(rec)])
    (ex,) = load_benchmark("arc_easy", "train", tmp_path)
    assert ex.labels == ("A", "B", "C", "D") and ex.answer == "D" and ex.choices == ("w", "x", "y", "z")


def _write_siqa(root: Path, n_records: int, labels: list[str]) -> None:
    d = root / "siqa"
    d.mkdir(parents=True)
    rec = {"context": "C.", "question": "Q?", "answerA": "a", "answerB": "b", "answerC": "c"}
    (d / "dev.jsonl").write_text("".join(json.dumps(rec) + "\n" for _ in range(n_records)))
    (d / "dev-labels.lst").write_text("".join(x + "\n" for x in labels))


def test_siqa_label_count_mismatch(tmp_path):
    _write_siqa(tmp_path, 3, ["1", "2"])
    with pytest.raises(DataError, match=r"dev-labels\.lst:3: key 'label': 2 labels for 3 lines"):
        load_benchmark("siqa", "validation", tmp_path)


def test_siqa_label_value(tmp_path):
    _write_siqa(tmp_path, 3, ["1", "4", "2"])
    with pytest.raises(DataError, match=r"dev-labels\.lst:2: key 'label': '4' is not 1, 2 or 3"):
        load_benchmark("siqa", "validation", tmp_path)


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as e:
        load_benchmark("obqa", "validation", missing)
    msg = str(e.value)
    assert str(missing / "obqa" / "dev.jsonl") in msg and "data.dir=" in msg and "data.source=hub" in msg
    assert "allenai/openbookqa" in msg


def test_missing_file(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    with pytest.raises(DataError, match="gsm8k/test.jsonl") as e:
        load_benchmark("gsm8k", "test", tmp_path)
    assert "openai/gsm8k" in str(e.value) and "data.dir=" in str(e.value)


def test_unknown_benchmark_and_split():
    with pytest.raises(DataError) as e:
        load_benchmark("mmlu", "train")
    assert all(b in str(e.value) for b in BENCHMARKS)
    with pytest.raises(DataError, match="train, validation, test"):
        load_benchmark("obqa", "dev")
    with pytest.raises(DataError, match="siqa has no 'test' split; it has only: train, validation"):
        load_benchmark("siqa", "test")
    with pytest.raises(DataError, match="gsm8k has no 'validation' split; it has only: train, test"):
        load_benchmark("gsm8k", "validation")
    with pytest.raises(DataError, match="data.source"):
        load_benchmark("obqa", "train", source="ftp")
