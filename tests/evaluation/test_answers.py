"""Answer extraction on realistic model outputs (lenient, strict and the official CREAM rules), scoring,
standard errors, and scripted models on the shipped sample."""
from __future__ import annotations

import json
import math
import statistics

import pytest

from cream.data import Example, load_benchmark
from cream.data.benchmarks import FILES, SAMPLE_DIR
from cream.data.prompts import sft_target
from cream.errors import ExtractionError
from cream.evaluation.answers import (
    Extraction,
    accuracy,
    extract,
    extract_choice,
    extract_number,
    find_choice,
    find_number,
    is_correct,
    mean_stderr,
    stderr,
)
from cream.evaluation.official_answers import official_choice, official_number

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
    # a lowercase label marked by ")" / "." and followed by the option text
    ("The nucleus holds the DNA.\nAnswer: b) the nucleus", ABCD, "B"),
    ("Answer: (c) it reflects light", ABCD, "C"),
    ("Answer: d. all of the above", ABCD, "D"),
    ("Answer: a) oxygen", ABCD, "A"),
    ("Answer: b)", ABC, "B"),
    ("Answer: e) none", ABCD, None),                   # e is no option here
    # an echoed option list after "Answer:" is not an answer; lenient falls back to the last letter
    ("Answer:\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon", ABCD, "D"),
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
    # an equation on the answer line: the result after its last "="
    ("She buys 3 packs of 15.\nAnswer: 3 x 15 = 45", "45"),
    ("Answer: 3 * 15 = 45 cookies", "45"),
    ("Answer: $4 + $6 = $10", "10"),
    ("Answer: 12 / 4 = 3 = 3", "3"),
    ("The answer is 2 * (3 + 4) = 14.", "14"),
    ("#### 5 x 9 = 45", "45"),
    ("Answer: 5 apples (Total = 12 - 7)", "5"),        # not an equation before the answer: the first number
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


# --------------------------------------------------------------------------- rules that found the answer

@pytest.mark.parametrize("text,labels,expected", [
    ("Answer: B", ABCD, Extraction("B", "answer:")),
    ("I think the answer is c.", ABCD, Extraction("C", "answer is")),
    ("Both look fine, but C fits best", ABCD, Extraction("C", "last letter")),
    ("no idea", ABCD, Extraction(None, None)),
])
def test_find_choice_names_the_rule(text, labels, expected):
    assert find_choice(text, labels) == expected


def test_find_number_names_the_rule():
    assert find_number("#### 72") == Extraction("72", "####")
    assert find_number("Answer: 3 x 15 = 45") == Extraction("45", "answer:")
    assert find_number("so 10 - 4 = 6") == Extraction("6", "last number")
    assert find_number("nothing") == Extraction(None, None)


# --------------------------------------------------------------------------- strict: explicit statements only

ECHOES = [  # a model that repeats the option list (and maybe the instruction) without answering
    "A. oxygen\nB. carbon dioxide\nC. helium\nD. neon",
    "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon\nAnswer the question by thinking "
    "step by step. At the end, output the final answer, starting with 'Answer:'.",
    "Options: (A) oxygen (B) carbon dioxide (C) helium (D) neon",
    "Answer:\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon",
    "Answer:\n(A) oxygen\n(B) carbon dioxide",
]


@pytest.mark.parametrize("text", ECHOES)
def test_strict_never_counts_an_echoed_option_list(text):
    ex = Example("m", "arc_easy", "q", ("oxygen", "carbon dioxide", "helium", "neon"), tuple(ABCD), "D")
    assert extract(ex, text, "strict") == Extraction(None, None)
    assert not is_correct(ex, text, "strict")
    assert extract(ex, text, "lenient").rule in ("last letter", None)  # lenient reads such text only by its fallback


@pytest.mark.parametrize("text,expected", [
    ("Plants use carbon dioxide.\nAnswer: B", "B"),
    ("The answer is (b).", "B"),
    ("Answer: b) carbon dioxide", "B"),
    ("A. oxygen\nB. carbon dioxide\nC. helium\nD. neon\nThe plant takes in carbon dioxide.\nAnswer: B", "B"),
    ("B is correct.", None),                           # no explicit statement
    ("I choose B", None),
])
def test_strict_choice(text, expected):
    assert find_choice(text, ABCD, strict=True).answer == expected


# Every wrapper of an option label after an explicit answer statement: the answer rules find it, so strict and
# lenient agree (and lenient's answer comes from the statement, not from its last-letter fallback).
WRAPPERS = ["B", "(B)", "[B]", "{B}", "<B>", "**B**", "*B*", "__B__", "`B`", '"B"', "'B'", "“B”", "$B$",
            "\\boxed{B}", "$\\boxed{B}$", "\\text{B}", "**(B)**", "[(B)]", "B.", "B)", "B:", "Option B", "option [B]",
            "**Option B**", "(b)", "[b]", "'b'", "**b**", "b)"]
STATEMENTS = ["Answer: {}", "The answer is {}", "The answer is: {}", "**Answer:** {}", "Final answer: {}"]


@pytest.mark.parametrize("wrapped", WRAPPERS)
@pytest.mark.parametrize("statement", STATEMENTS)
def test_every_wrapper_after_an_answer_statement_counts_under_both_rule_sets(statement, wrapped):
    text = ("Carbon dioxide goes in, so A and C are wrong. " + statement.format(wrapped)
            + "\nIt is used in photosynthesis.")
    rule = "answer is" if "is" in statement and ":" not in statement else "answer:"
    assert find_choice(text, ABCD) == Extraction("B", rule)
    assert find_choice(text, ABCD, strict=True) == Extraction("B", rule)


@pytest.mark.parametrize("text", ["Answer: [F]", "Answer: (E)", "The answer is [B's]", "Answer: 'a dog'"])
def test_a_wrapper_does_not_make_a_word_or_a_missing_option_a_label(text):
    assert find_choice(text, ABCD, strict=True) == Extraction(None, None)


@pytest.mark.parametrize("wrapped",
                         ["72", "**72**", "\\boxed{72}", "$\\boxed{72}$", "[72]", "(72)", "`72`", "$72",
                          "\\boxed{$72}"])
def test_every_wrapper_of_a_number_counts_under_both_rule_sets(wrapped):
    for statement in ("Answer: {}", "The answer is {}.", "#### {}"):
        text = "She has 48 + 24 clips. " + statement.format(wrapped)
        marker = "####" if "#" in statement else "answer:"
        assert find_number(text) == find_number(text, strict=True) == Extraction("72", marker)


def test_strict_number():
    assert find_number("Answer: 72", strict=True).answer == "72"
    assert find_number("#### 1,234", strict=True).answer == "1234"
    assert find_number("48 + 24 = 72", strict=True).answer is None
    g = Example("g", "gsm8k", "q", None, None, "72", "s")
    assert is_correct(g, "48 + 24 = 72") and not is_correct(g, "48 + 24 = 72", "strict")


def test_accuracy_per_rule_set():
    m = Example("m", "arc_easy", "q", ("x", "y", "z", "w"), tuple(ABCD), "D")
    outputs = ["Answer: D", "A. x\nB. y\nC. z\nD. w", "answer: a", "So it is D"]
    assert accuracy([m] * 4, outputs) == 0.75           # lenient: the echo and "So it is D" read as D
    assert accuracy([m] * 4, outputs, "strict") == 0.25
    assert accuracy([m] * 4, outputs, "official") == 0.75
    with pytest.raises(ExtractionError, match="eval.extraction='loose'"):
        extract(m, "Answer: D", "loose")


# --------------------------------------------------------------------------- official: the CREAM authors' rules
# Expected values are what the official evaluate.py (github.com/Raibows/CREAM, extract_qa_final_answer and
# gsm8k_extract_final_answer) returns for each text, checked by running that code on these texts.

OFFICIAL_CHOICE = [
    ("Answer: B", "B"),
    ("answer: b) the nucleus", "B"),
    ("The answer is C.", "C"),                          # no "answer:": the last standalone letter
    ("A plant needs water. Answer: c.", "C"),
    ("**Answer:** D", "D"),                             # "answer:**" blocks rule 1; last letter d
    ("Answer: E", None),                                # only a-d exist
    ("Answer: a dog is a mammal", "A"),                 # the article counts
    ("Answer:(b)", "B"),
    ("Answer: b\nOn reflection, Answer: c", "B"),        # the FIRST "answer:" wins
    ("I cannot tell.", None),
    ("A. oxygen\nB. carbon dioxide\nC. helium\nD. neon", "D"),
    ("Answer: Because of gravity, C is right", "C"),
    ("The correct option is (B).", "B"),
    ("Final answer: d", "D"),
    ("ANSWER:C", "C"),
    ("Answer: 3", None),
    ("Answer: bd", None),
    ("It is a gas.", "A"),                              # the article again
    ("Answer - B", "B"),
    ("b) carbon dioxide", "B"),
    ("Answer:   D.", "D"),
    ("answer:\nc", "C"),
    ("The answer is (A), not b.", "B"),
    ("Answer: C) helium, or maybe a.", "C"),
]


@pytest.mark.parametrize("text,expected", OFFICIAL_CHOICE)
def test_official_choice(text, expected):
    assert official_choice(text) == expected


OFFICIAL_NUMBER = [
    ("#### 72", "72"),
    ("Answer: 3 x 15 = 45", "3"),                       # the first number after the marker
    ("The answer is 1,234 dollars.", "1234"),
    ("She has 5 apples and 3 pears, 8 in total", "8"),  # no marker: the last number
    ("Answer: $18.00", "18"),                           # integral: written as an integer
    ("answer: 3.5", "3.5"),
    ("### 12\n#### 13", "13"),                          # "####" is looked for first
    ("So the answer: seven (7) apples", "7"),
    ("answer: none\nAnswer: 9", "9"),                    # the first part after a marker that holds a number
    ("I don't know.", None),
    ("Answer: -5 degrees", "-5"),
    ("10 - 4 = 6.", "6"),
    ("The answer is 42.", "42"),
    ("Answer: 72.0", "72"),
    ("The final Answer: 1,000,000.", "1000000"),
    ("48/2 = 24 clips, 48 + 24 = 72 in all", "72"),
    ("Answer: twelve\nThe answer is 12", "12"),
    ("#### -3", "-3"),
]


@pytest.mark.parametrize("text,expected", OFFICIAL_NUMBER)
def test_official_number(text, expected):
    assert official_number(text) == expected


def test_official_compares_strings():
    g = Example("g", "gsm8k", "q", None, None, "72", "s")
    assert is_correct(g, "Answer: 72.0", "official")    # normalised to "72"
    assert not is_correct(g, "Answer: 70 + 2 = 72", "official") and is_correct(g, "Answer: 70 + 2 = 72")
    m = Example("m", "arc_easy", "q", tuple("vwxyz"), tuple(ABCDE), "E")
    assert not is_correct(m, "Answer: E", "official") and is_correct(m, "Answer: E")


# --------------------------------------------------------------------------- standard errors

def test_stderr_is_lm_evals_binomial_stderr():
    scores = [1.0, 0.0, 1.0, 1.0]                       # p = 3/4, n = 4
    assert stderr(scores) == pytest.approx(math.sqrt(0.75 * 0.25 / 3))
    assert stderr(scores) == pytest.approx(statistics.stdev(scores) / math.sqrt(4))
    assert stderr([1.0] * 10) == 0.0
    assert stderr([1.0]) is None and stderr([]) is None
    p, n = 51 / 150, 150
    assert stderr([1.0] * 51 + [0.0] * 99) == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)))


def test_mean_stderr_of_an_average():
    assert mean_stderr([0.03, 0.04]) == pytest.approx(0.025)  # sqrt(0.03^2 + 0.04^2) / 2
    assert mean_stderr([0.1]) == 0.1
    assert mean_stderr([0.1, None]) is None and mean_stderr([]) is None
