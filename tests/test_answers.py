"""Answer extraction on realistic model outputs, scoring, and scripted models on the shipped sample."""
from __future__ import annotations

import json

import pytest

from cream.answers import accuracy, extract_choice, extract_number, is_correct
from cream.data import Example, load_benchmark
from cream.data.benchmarks import FILES, SAMPLE_DIR
from cream.data.prompts import sft_target

ABCD, ABCDE, ABC = "ABCD", "ABCDE", "ABC"

CHOICE_CASES = [
    ("Answer: B", ABCD, "B"),
    ("The answer is (C).", ABCD, "C"),
    ("Plants take in carbon dioxide for photosynthesis.\nAnswer: B", ABCD, "B"),
    ("Answer: A\nWait, let me reconsider the second option.\nAnswer: D", ABCD, "D"),
    ("**Answer: C**", ABCD, "C"),
    ("Step 1: compare the options.\n**Answer:** E", ABCDE, "E"),
    ("Answer: (E)", ABCD, None),                       # E is not an option here
    ("answer: b", ABCD, "B"),                          # lowercase accepted when alone on its line
    ("Answer: (b)", ABCD, "B"),
    ("ANSWER: d", ABCD, "D"),
    ("Answer: a dog is a mammal, so it breathes air.", ABCD, None),  # the article, not option A
    ("A plant needs sunlight to grow.", ABCD, None),   # sentence-initial article "A"
    ("It is a gas, so option B is correct.", ABCD, "B"),
    ("The correct answer is option D", ABCD, "D"),
    ("Option 3 is correct.\nAnswer: 3", ABCD, None),   # digits are never mapped to letters
    ("Choice 2 (carbon dioxide) matches, so Answer: B", ABCD, "B"),
    ("I think the answer is B because plants need carbon dioxide.", ABCD, "B"),
    ("The answer is carbon dioxide.", ABCD, None),
    ("Answer: Because light bends in water, the answer is C.", ABCD, "C"),
    ("(A) is wrong and (B) is wrong, so (C).", ABCD, "C"),
    ("Answer:C", ABCD, "C"),
    ("The final answer is: E", ABCDE, "E"),
    ("", ABCD, None),
    ("I don't know.", ABCD, None),
    ("Answer: A. Answer: C", ABCD, "C"),                # last one wins on one line too
    ("B and C both look plausible, but A is best", ABCD, "A"),
    ("answer is d.", ABCD, "D"),
    ("Answer: B\n\nExplanation: oxygen is released, not absorbed.", ABCD, "B"),
    ("Answer: F", ABCDE, None),
    ("Answer: D", ABC, None),
    ("Social norms suggest they feel grateful.\nAnswer: C", ABC, "C"),
    ("Let's see: A. oxygen, B. nitrogen, C. carbon dioxide, D. helium. The gas used is C.", ABCD, "C"),
    ("answer: **B**", ABCD, "B"),
]


@pytest.mark.parametrize("text,labels,expected", CHOICE_CASES)
def test_extract_choice(text, labels, expected):
    assert extract_choice(text, labels) == expected


NUMBER_CASES = [
    ("Natalia sold 48/2 = 24 clips in May.\n48 + 24 = 72.\n#### 72", "72"),
    ("Answer: 1,234", "1234"),
    ("She lost $18 in total.\nAnswer: $18", "18"),
    ("The temperature drops to -5 degrees.\nAnswer: -5", "-5"),
    ("Answer: 3.75", "3.75"),
    ("So he has 10 - 4 = 6 apples left.", "6"),
    ("48 - 24", "24"),
    ("I cannot solve this.", None),
    ("", None),
    ("Answer: 72.0", "72.0"),
    ("#### 5\nOn second thought:\nAnswer: 7", "7"),
    ("The answer is 42.", "42"),
    ("**Answer:** 1,000,000", "1000000"),
    ("It costs $1,250.50 in total", "1250.50"),
    ("Answer: -$5", "-5"),
    ("Answer: twelve (12)", "12"),
    ("Answer: 18 dollars, because 3 * 6 = 18. She has 2 left over.", "18"),
]


@pytest.mark.parametrize("text,expected", NUMBER_CASES)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_is_correct_and_accuracy():
    g = Example("g", "gsm8k", "q", None, None, "72", "s")
    assert is_correct(g, "Answer: 72.0") and is_correct(g, "#### 72")
    assert not is_correct(g, "Answer: 72.5") and not is_correct(g, "no idea")
    m = Example("m", "siqa", "q", ("x", "y", "z"), ("A", "B", "C"), "C")
    assert is_correct(m, "Answer: C") and not is_correct(m, "Answer: D") and not is_correct(m, "Answer: B")
    assert accuracy([g, m], ["Answer: 72", "Answer: A"]) == 0.5
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy([g], [])


PAIRS = [(name, split) for name, splits in FILES.items() for split in splits]


@pytest.mark.parametrize("name,split", PAIRS)
def test_scripted_sft_model_is_perfect(name, split):
    exs = load_benchmark(name, split)
    assert accuracy(exs, [sft_target(ex) for ex in exs]) == 1.0


def _fraction_gold_a(name: str, split: str) -> float:
    """From the raw sample files, independently of the loader: the share of records whose gold is option A."""
    path = SAMPLE_DIR / FILES[name][split]
    if name == "gsm8k":
        return 0.0
    if name == "siqa":
        labels = path.with_name(path.stem + "-labels.lst").read_text().split()
        return labels.count("1") / len(labels)
    golds = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        first = rec["question"]["choices"][0]["label"]
        golds.append(rec["answerKey"] == first)
    return sum(golds) / len(golds)


@pytest.mark.parametrize("name,split", PAIRS)
def test_always_a_scores_share_of_a(name, split):
    exs = load_benchmark(name, split)
    expected = _fraction_gold_a(name, split)
    assert accuracy(exs, ["Answer: A"] * len(exs)) == pytest.approx(expected, abs=1e-12)
    if name != "gsm8k":
        assert 0.0 < expected < 1.0
