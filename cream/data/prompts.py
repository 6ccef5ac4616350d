"""Prompts as in the CREAM paper: the question with lettered options, then the step-by-step instruction;
and conversations (seed set, own prompts) rendered through the tokenizer's chat template."""
from __future__ import annotations

from cream.data.benchmarks import Example
from cream.errors import DataError

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
        return tokenizer.apply_chat_template([{"role": "user", "content": user_text}], tokenize=False,
                                             add_generation_prompt=True)
    return user_text + "\n"


def pool_messages(item, instruction: str = "cot") -> list[dict]:
    """The chat messages a prompt of the pool is sampled from.

    A benchmark question is one user turn: ``instruction="cot"`` its question and the evaluation's
    step-by-step instruction (``format_prompt``), ``"none"`` the raw question with its options (the
    official code's ``--sysprompt none``).  Any other prompt (OASST, your own) is sampled as it is.
    """
    if isinstance(item, Example):
        text = format_prompt(item) if instruction == "cot" else format_question(item)
        return [{"role": "user", "content": text}]
    return [dict(m) for m in item.messages]


def render_messages(tokenizer, messages: list[dict]) -> str:
    """A prompt conversation (ending with a user turn) as the model sees it: the chat template with the
    generation prompt; without a template, each turn as in ``render`` (user text and a newline) and each
    assistant turn followed by the EOS token, as the SFT targets end.  One user turn renders exactly as
    ``render(tokenizer, text)``."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "".join(m["content"] + (tokenizer.eos_token or "") if m["role"] == "assistant" else m["content"] + "\n"
                   for m in messages)


def last_user_text(messages: list[dict]) -> str:
    """The text of the last user turn (what a judge is shown as the instruction)."""
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def conversation_segments(tokenizer, messages: list[dict]) -> list[tuple[list[int], bool]]:
    """A seed conversation as (token ids, trained) segments: trained = the assistant turns.

    With a chat template: the text ``apply_chat_template(messages)``; assistant turn i spans from the end of
    the template applied to ``messages[:i]`` with the generation prompt, to the end of the template applied
    to ``messages[:i+1]`` (trailing whitespace left out), so it holds the reply and the end-of-turn token the
    template emits after it, and not the role header.  Each segment is tokenized on its own.  Without a
    template (the tiny default): user/system text and a newline (not trained), then the assistant text and
    EOS (trained), the plain rendering of ``render`` and the single-turn SFT targets.  One BOS token first
    unless the text already starts with it.
    """
    bos = tokenizer.bos_token_id
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        texts, pos = [], 0
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
            upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
            if not (full.startswith(upto) and upto.startswith(before) and len(before) >= pos):
                raise DataError(f"the chat template of {tokenizer.name_or_path!r} does not render a conversation as "
                                "the concatenation of its turns (it rewrites earlier turns), so the assistant turns "
                                "cannot be located for the loss mask; use data.seed.max_turns=1 or another tokenizer")
            end = len(upto.rstrip())
            texts += [(full[pos:len(before)], False), (full[len(before):end], True)]
            pos = end
        texts.append((full[pos:], False))
        segs = [(tokenizer(t, add_special_tokens=False)["input_ids"], trained) for t, trained in texts if t]
        starts_with_bos = bool(tokenizer.bos_token) and full.startswith(tokenizer.bos_token)
    else:
        segs = [(tokenizer(m["content"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id], True)
                if m["role"] == "assistant"
                else (tokenizer(m["content"] + "\n", add_special_tokens=False)["input_ids"], False)
                for m in messages]
        starts_with_bos = False
    if bos is not None and not starts_with_bos:
        segs.insert(0, ([bos], False))
    return segs


def encode_conversation(tokenizer, messages: list[dict], max_length: int) -> tuple[list[int], list[bool], bool]:
    """(ids, trained mask, truncated): ``conversation_segments`` joined and cut to the first ``max_length`` tokens."""
    ids, mask = [], []
    for seg, trained in conversation_segments(tokenizer, messages):
        ids += seg
        mask += [trained] * len(seg)
    truncated = len(ids) > max_length
    return ids[:max_length], mask[:max_length], truncated
