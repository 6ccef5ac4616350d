"""Answer extraction from generated text, accuracy, and its standard error.

Three rule sets read an answer out of a model's output; each returns an ``Extraction`` (the answer and
the name of the rule that found it, both None when nothing was found):

``lenient`` (the default, this project's rules).  Multiple choice (``extract_choice``), first rule that
finds a valid label wins:

1. ``answer:`` -- ``Answer: X``: the word "answer" in any case, optionally "is" and markdown ``**``/``__``,
   "option" or "choice", and X in any wrapper: ``(B)``, ``[B]``, ``{B}``, ``<B>``, ``**B**``, backquotes,
   ``"B"``, ``'B'``, ``$B$``, ``\\boxed{B}``, ``B.``, ``B)``. With several such statements the LAST valid one wins.
   A statement whose next line starts another option ("Answer:\nA. oxygen\nB. carbon dioxide") is the
   echo of the option list, never an answer.
   X is an option label in capitals; a lowercase letter is accepted only when it is marked as a label:
   followed by ``)``/``.``/``:`` (``Answer: b) the nucleus``, ``Answer: (b)``) or standing alone up to
   the end of the line (``answer: b``), and a label once uppercased -- so ``Answer: a dog`` is never A.
2. ``answer is`` -- ``answer is X`` / ``answer is (X)`` (no colon), same rules, last one wins.
3. ``last letter`` -- the last standalone capital label letter (word boundaries on both sides). The text
   is never lowercased, so the article "a" is never option A; a sentence-initial "A" followed by a
   lowercase word ("A plant needs ...") is taken for the article and skipped too.

Digits are never mapped to letters: options are shown to the model as letters, so ``Answer: 3`` is no answer.

GSM8K (``extract_number``): rule ``####`` / ``answer:`` (also "answer is") -- the number after the last such
marker, in the same wrappers (``\\boxed{72}``, ``**72**``); when the marker is followed by an equation
(``Answer: 3 x 15 = 45``) the result after its last "=" (45); else ``last number`` -- the last number in the text.
Commas, ``$`` and spaces are stripped; the sign and decimals are kept; correctness is numeric (``72.0 == 72``).

``strict``: the same, but only an explicit answer statement counts (rules 1-2, the GSM8K markers, with every
wrapper they accept): no last-letter or last-number fallback, so an option list the model merely echoes ("A. oxygen B.
carbon dioxide ...") is never an answer.

``official``: the rules of the CREAM authors' ``evaluate.py`` (``cream.evaluation.official_answers``), to set numbers
beside the paper's.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cream.data.benchmarks import Example
from cream.errors import ExtractionError
from cream.evaluation.official_answers import official_choice, official_number

RULE_SETS = ("lenient", "strict", "official")


@dataclass(frozen=True)
class Extraction:
    """What was read out of one output: the answer ("B", "72") and the rule that found it; None, None if nothing."""

    answer: str | None
    rule: str | None


NOTHING = Extraction(None, None)

# What may wrap the label after an answer statement: markdown emphasis and code, brackets of every kind,
# quotes, LaTeX math ("$B$", "\boxed{B}", "\text{B}"); openers and closers are matched independently.
_OPEN = r"(?:[\s*_`(\[{<\"'“‘$]|\\(?:boxed|text|textbf|mathrm)\{)*"
_CLOSE = r"[\s*_`)\]}>\"'”’$]*[)\]}>\"'”’`*_$]"
_LEAD = (_OPEN + r"(?:(?i:option|choice)\s+)?" + _OPEN + r"(?P<letter>[A-Za-z])(?P<close>" + _CLOSE
         + r")?(?=(?P<rest>[^\n]*))")
_ANSWER_COLON = re.compile(r"(?i:answer)\s*(?:(?i:is)\s*)?[*_]*\s*[:：]" + _LEAD)
_ANSWER_IS = re.compile(r"(?i:answer\s+is)\s*(?:[:：])?" + _LEAD)
_LOWER_TAIL = re.compile(r"[\s*_.)\]]*$")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s*|\n\s*)$")

_NUM = r"-?(?:\$\s?)?-?\d[\d,]*(?:\.\d+)?"
_NUM_RE = re.compile(r"(?<![\w.])" + _NUM)
# an equation before the result on an answer line: "3 x 15 = ", "$3 * 5 = 15 = " (digits, operators, "=")
_EQUATION = r"(?:[-\d\s.,$+*/x×÷()]*=\s*)+"
_MARKED_NUM = re.compile(r"(?:####|(?i:answer)\s*(?:(?i:is)\s*)?[*_]*\s*[:：]?)" + _OPEN
                         + r"(?:" + _EQUATION + r")?(" + _NUM + ")")


_NEXT_OPTION = re.compile(r"[^\S\n]*\n\s*\(?[A-E][.)]\s")


def _valid(m: re.Match, labels: set[str]) -> str | None:
    """The label of one "answer ... X" match, or None when X is not a standalone option label or is the
    first line of an echoed option list ("Answer:\nA. oxygen\nB. carbon dioxide ...")."""
    if _NEXT_OPTION.match(m.string, m.end("rest")):
        return None
    letter, closed, rest = m.group("letter"), m.group("close"), m.group("rest")
    if re.match(r"[A-Za-z0-9'’]", rest):  # "Bees", "B's": a word, not a label
        return None
    if letter.isupper():
        ok = letter in labels
    else:  # a lowercase letter must be marked as a label: "b)", "(b)", "[b]", "b.", "b:", or alone on its line
        letter = letter.upper()
        marked = closed or re.match(r"[.:]", rest) or _LOWER_TAIL.match(rest)
        ok = letter in labels and bool(marked)
    return letter if ok else None


def find_choice(text: str, labels: Sequence[str] = "ABCDE", strict: bool = False) -> Extraction:
    """The chosen option letter in ``text`` and the rule that found it (module docstring)."""
    valid = {str(x) for x in labels}
    for rule, pattern in (("answer:", _ANSWER_COLON), ("answer is", _ANSWER_IS)):
        found = [c for c in (_valid(m, valid) for m in pattern.finditer(text)) if c]
        if found:
            return Extraction(found[-1], rule)
    if strict:
        return NOTHING
    for m in reversed(list(_STANDALONE.finditer(text))):
        letter = m.group(1)
        if letter not in valid:
            continue
        after = text[m.end():m.end() + 2]
        if letter == "A" and re.fullmatch(r" [a-z]", after) and _SENTENCE_START.search(text[:m.start()]):
            continue  # the article at the start of a sentence
        return Extraction(letter, "last letter")
    return NOTHING


def extract_choice(text: str, labels: Sequence[str] = "ABCDE") -> str | None:
    """The chosen option letter in ``text`` under the lenient rules, or None."""
    return find_choice(text, labels).answer


def _clean_number(s: str) -> str:
    return s.replace("$", "").replace(",", "").replace(" ", "")


def find_number(text: str, strict: bool = False) -> Extraction:
    """The final numeric answer in ``text`` as a plain number string ("-1234.5") and the rule that found it."""
    marked = list(_MARKED_NUM.finditer(text))
    if marked:
        m = marked[-1]
        return Extraction(_clean_number(m.group(1)), "####" if m.group(0).startswith("####") else "answer:")
    if strict:
        return NOTHING
    nums = _NUM_RE.findall(text)
    return Extraction(_clean_number(nums[-1]), "last number") if nums else NOTHING


def extract_number(text: str) -> str | None:
    """The final numeric answer in ``text`` under the lenient rules, or None if there is none."""
    return find_number(text).answer


def extract(ex: Example, text: str, rules: str = "lenient") -> Extraction:
    """The answer to ``ex`` in ``text`` under one rule set: lenient | strict | official."""
    if rules not in RULE_SETS:
        raise ExtractionError(f"eval.extraction={rules!r}: expected one of {', '.join(RULE_SETS)}")
    if rules == "official":
        answer = official_choice(text) if ex.is_multiple_choice else official_number(text)
        return Extraction(answer, "official" if answer is not None else None)
    if ex.is_multiple_choice:
        return find_choice(text, ex.labels or "ABCDE", strict=rules == "strict")
    return find_number(text, strict=rules == "strict")


def matches(ex: Example, found: Extraction, rules: str = "lenient") -> bool:
    """Whether an extracted answer is the gold one: letters equal; GSM8K numerically (official: as strings)."""
    if found.answer is None:
        return False
    if ex.is_multiple_choice or rules == "official":
        return found.answer == ex.answer
    try:
        return abs(float(found.answer) - float(ex.answer)) < 1e-6
    except ValueError:
        return False


def is_correct(ex: Example, text: str, rules: str = "lenient") -> bool:
    """Whether the model output ``text`` answers ``ex`` correctly under ``rules``."""
    return matches(ex, extract(ex, text, rules), rules)


def accuracy(examples: Sequence[Example], outputs: Sequence[str], rules: str = "lenient") -> float:
    """The fraction of ``outputs`` (one per example, same order) that are correct; 0.0 for no examples."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    return sum(is_correct(ex, o, rules) for ex, o in zip(examples, outputs)) / len(examples) if examples else 0.0


def stderr(scores: Sequence[float]) -> float | None:
    """The standard error of the mean of per-item scores, as lm-evaluation-harness reports it: the sample
    standard deviation (ddof=1) over sqrt(n).  For 0/1 scores with mean p that is sqrt(p (1 - p) / (n - 1)).
    None for fewer than two items."""
    n = len(scores)
    if n < 2:
        return None
    mean = sum(scores) / n
    return math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1) / n)


def mean_stderr(stderrs: Sequence[float | None]) -> float | None:
    """The standard error of an unweighted average of k independent accuracies: sqrt(sum se_i^2) / k.
    None when any of them has none (or there are none)."""
    if not stderrs or any(s is None for s in stderrs):
        return None
    return math.sqrt(sum(s * s for s in stderrs)) / len(stderrs)
