"""Prompts as in the CREAM paper: the question with lettered options, then the step-by-step instruction."""
from __future__ import annotations

from cream.data.benchmarks import Example

EVAL_INSTRUCTION = ("Answer the question by thinking step by step. At the end, output the final answer, "
                    "starting with 'Answer:'.")


def format_question(ex: Example) -> str:
    """The question, then one line per option ("A. text") for multiple choice."""
    if not ex.is_multiple_choice:
        return ex.question
    return ex.question + "\n" + "\n".join(f"{label}. {text}" for label, text in zip(ex.labels, ex.choices))


def format_prompt(ex: Example) -> str:
    """The user turn: the question and the instruction."""
    return f"{format_question(ex)}\n{EVAL_INSTRUCTION}"


def sft_target(ex: Example) -> str:
    """The labeled response: GSM8K's worked solution, or a short sentence; both end in 'Answer: <gold>'."""
    if not ex.is_multiple_choice:
        return f"{ex.solution}\nAnswer: {ex.answer}"
    text = ex.choices[ex.labels.index(ex.answer)]
    return f"The answer is {text}.\nAnswer: {ex.answer}"


def render(tokenizer, user_text: str) -> str:
    """The prompt as the model sees it: its chat template when it has one, else the text and a newline."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True)
    return user_text + "\n"
