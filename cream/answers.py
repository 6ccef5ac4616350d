"""Answer extraction from generated text, and accuracy.

Multiple choice (``extract_choice``), first rule that finds a valid label wins:

1. ``Answer: X`` -- the word "answer" in any case, optionally "is" and markdown ``**``/``__``, "option"
   or "choice", parentheses around X. With several such lines the LAST valid one wins. X is an option
   label in capitals; a lowercase letter (``Answer: b``) is accepted only when it stands alone up to the
   end of the line (optionally followed by ``)``, ``.``, ``*``) and is a label once uppercased, so
   ``Answer: a dog`` is never read as A.
2. ``answer is X`` / ``answer is (X)`` (no colon), same rules, last one wins.
3. The last standalone capital label letter (word boundaries on both sides). The text is never
   lowercased, so the article "a" is never option A; a sentence-initial "A" followed by a lowercase
   word ("A plant needs ...") is taken for the article and skipped too.

Digits are never mapped to letters: options are shown to the model as letters, so ``Answer: 3`` is no answer.

GSM8K (``extract_number``): the number after the last ``####`` or ``Answer:``/``answer is``; else the
last number in the text. Commas, ``$`` and spaces are stripped; the sign and decimals are kept;
``is_correct`` compares numerically (``72.0 == 72``).
"""
from __future__ import annotations

import re
from typing import Sequence

from cream.data.benchmarks import Example

_LEAD = r"[\s*_]*(?:(?i:option|choice)\s+)?\(?\s*([A-Za-z])\s*\)?(?=(?P<rest>[^\n]*))"
_ANSWER_COLON = re.compile(r"(?i:answer)\s*(?:(?i:is)\s*)?[*_]*\s*[:：]" + _LEAD)
_ANSWER_IS = re.compile(r"(?i:answer\s+is)\s*(?:[:：])?" + _LEAD)
_LOWER_TAIL = re.compile(r"[\s*_.)\]]*$")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s*|\n\s*)$")

_NUM = r"-?(?:\$\s?)?-?\d[\d,]*(?:\.\d+)?"
_NUM_RE = re.compile(r"(?<![\w.])" + _NUM)
_MARKED_NUM = re.compile(r"(?:####|(?i:answer)\s*(?:(?i:is)\s*)?[*_]*\s*[:：]?)\s*[*_]*\s*(" + _NUM + ")")


def _valid(m: re.Match, labels: set[str]) -> str | None:
    """The label of one "answer ... X" match, or None when X is not a standalone option label."""
    letter, rest = m.group(1), m.group("rest")
    if letter.isupper():
        ok = letter in labels and not re.match(r"[A-Za-z0-9'’]", rest)
    else:
        letter = letter.upper()
        ok = letter in labels and _LOWER_TAIL.match(rest) is not None
    return letter if ok else None


def extract_choice(text: str, labels: Sequence[str] = "ABCDE") -> str | None:
    """The chosen option letter in ``text`` (see the module docstring for the rules), or None."""
    valid = {str(x) for x in labels}
    for pattern in (_ANSWER_COLON, _ANSWER_IS):
        found = [c for c in (_valid(m, valid) for m in pattern.finditer(text)) if c]
        if found:
            return found[-1]
    for m in reversed(list(_STANDALONE.finditer(text))):
        letter = m.group(1)
        if letter not in valid:
            continue
        after = text[m.end():m.end() + 2]
        if letter == "A" and re.fullmatch(r" [a-z]", after) and _SENTENCE_START.search(text[:m.start()]):
            continue  # the article at the start of a sentence
        return letter
    return None


def _clean_number(s: str) -> str:
    return s.replace("$", "").replace(",", "").replace(" ", "")


def extract_number(text: str) -> str | None:
    """The final numeric answer in ``text`` as a plain number string ("-1234.5"), or None if there is none."""
    marked = list(_MARKED_NUM.finditer(text))
    if marked:
        return _clean_number(marked[-1].group(1))
    nums = _NUM_RE.findall(text)
    return _clean_number(nums[-1]) if nums else None


def is_correct(ex: Example, text: str) -> bool:
    """Whether the model output ``text`` answers ``ex`` correctly."""
    if ex.is_multiple_choice:
        return extract_choice(text, ex.labels or "ABCDE") == ex.answer
    pred = extract_number(text)
    if pred is None:
        return False
    try:
        return abs(float(pred) - float(ex.answer)) < 1e-6
    except ValueError:
        return False


def accuracy(examples: Sequence[Example], outputs: Sequence[str]) -> float:
    """The fraction of ``outputs`` (one per example, same order) that are correct; 0.0 for no examples."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    return sum(is_correct(ex, o) for ex, o in zip(examples, outputs)) / len(examples) if examples else 0.0
