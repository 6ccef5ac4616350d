"""Answer extraction from generated text, and accuracy.

Multiple choice: the letter after the last "Answer:" (the word case-insensitive, the letter a capital
option label, optionally in ** or parentheses); else "answer is X"; else the last standalone capital
option letter.  The text is never lowercased, so the article "a" is never taken for option A (the
official CREAM code lowercases first and does).  GSM8K: the number after the last "####" or
"Answer:", else the last number in the text; commas and "$" stripped; compared numerically.
"""
from __future__ import annotations

import re
from typing import Sequence

from cream.data.benchmarks import Example

_NUM = r"-?\$?\s?\d[\d,]*(?:\.\d+)?"


def extract_choice(text: str, labels: Sequence[str] = "ABCDE") -> str | None:
    letters = "".join(labels)
    cls = f"[{re.escape(letters)}]"
    patterns = [
        rf"answer\s*(?:is)?\s*[:：]\s*[*_\s]*\(?({cls})\)?(?![A-Za-z])",
        rf"answer\s+is\s*[*_\s]*\(?({cls})\)?(?![A-Za-z])",
    ]
    for pat in patterns:
        # the word "answer" is case-insensitive; the letter must be a capital label
        hits = [h for h in re.finditer(pat, text, flags=re.IGNORECASE) if h.group(1) in letters]
        if hits:
            return hits[-1].group(1)
    standalone = re.findall(rf"(?<![A-Za-z0-9']){cls}(?![A-Za-z0-9'])", text)
    return standalone[-1] if standalone else None


def _number(s: str) -> str:
    return s.replace("$", "").replace(",", "").replace(" ", "").rstrip(".")


def extract_number(text: str) -> str | None:
    for marker in (r"####", r"answer\s*(?:is)?\s*[:：]?"):
        hits = list(re.finditer(rf"{marker}\s*[*_]*\s*({_NUM})", text, flags=re.IGNORECASE))
        if hits:
            return _number(hits[-1].group(1))
    nums = re.findall(_NUM, text)
    return _number(nums[-1]) if nums else None


def is_correct(ex: Example, text: str) -> bool:
    if ex.is_multiple_choice:
        return extract_choice(text, ex.labels) == ex.answer
    pred = extract_number(text)
    if pred is None:
        return False
    try:
        return abs(float(pred) - float(ex.answer)) < 1e-6
    except ValueError:
        return False


def accuracy(examples: Sequence[Example], outputs: Sequence[str]) -> float:
    return sum(is_correct(ex, o) for ex, o in zip(examples, outputs)) / max(1, len(examples))
