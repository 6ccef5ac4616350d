"""The answer extraction of the CREAM authors' ``evaluate.py`` (github.com/Raibows/CREAM), re-implemented
so that ``eval.extraction=official`` gives numbers that can be set beside the paper's tables.

Multiple choice (``official_choice``): the text is stripped and lowercased; the FIRST ``answer:`` followed
by optional whitespace and one of a-d standing as a word wins; else the LAST standalone a-d anywhere in
the text (after lowercasing the article "a" counts as option A); else nothing.  Only A-D exist: a fifth
option E can never be predicted.

GSM8K (``official_number``): the text is stripped and lowercased; the first of the markers ``####``,
``###``, ``answer:``, ``answer is`` (in that order of preference) that occurs splits the text, and the
first number in the parts after it (scanned in order) is the answer; without any marker, the last number
in the text.  Numbers are ``-?\\d+\\.?\\d*`` after removing commas, stripped of dots, then written as an
integer when integral ("72.0" -> "72", "3.50" -> "3.5").  The answer is compared with the gold answer as
a string.  Two departures, neither changing a score: the original also lists "\\nAnswer" among the
markers, which can never match lowercased text (left out here), and it crashes on a non-integral answer
(it keeps it as a float and then uses it as a string); here that is the answer "3.5", which no GSM8K
gold (all integers) equals.

Differences from this project's lenient rules (``cream.evaluation.answers``): first vs last "Answer:"; a-d vs any
label A-E; lowercase letters and the article "a" count; GSM8K takes the first number after the first
marker (``Answer: 3 x 15 = 45`` gives 3) vs the result after the last marker; string vs numeric comparison.
"""
from __future__ import annotations

import re

_ANSWER_LETTER = re.compile(r"\banswer:\s*([a-d])\b")
_LETTER = re.compile(r"\b([a-d])\b")
_NUMBER = re.compile(r"-?\d+\.?\d*")
MARKERS = ("####", "###", "answer:", "answer is")


def official_choice(text: str) -> str | None:
    """The option letter ("A".."D") under the official rules, or None."""
    t = text.strip().lower()
    m = _ANSWER_LETTER.search(t)
    if m:
        return m.group(1).upper()
    letters = _LETTER.findall(t)
    return letters[-1].upper() if letters else None


def _normalize(number: str) -> str:
    value = float(number.strip("."))
    return str(int(value)) if value.is_integer() else str(value)


def official_number(text: str) -> str | None:
    """The GSM8K answer under the official rules as the string they compare ("45", "3.5"), or None."""
    t = text.strip().lower()
    marker = next((m for m in MARKERS if m in t), None)
    if marker is None:
        nums = _NUMBER.findall(t.replace(",", ""))
        return _normalize(nums[-1]) if nums else None
    for part in t.split(marker)[1:]:
        nums = _NUMBER.findall(part.replace(",", ""))
        if nums:
            return _normalize(nums[0])
    return None
