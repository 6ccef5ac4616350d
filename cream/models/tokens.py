"""Tokens: where a response ends (the chat template's end of turn), the ids that stop generation, and
the one encoding of (prompt, response) that training, scoring and rewards share.
"""
from __future__ import annotations

import logging

from cream.errors import ModelLoadError

log = logging.getLogger(__name__)

_MARKER = "\u2063cream-turn-end-probe\u2063"
_SAID: set[str] = set()


def _template_turn_end(tokenizer) -> str | None:
    """The special token the chat template writes right after an assistant message, if there is one.

    The template is rendered on a two-turn chat whose assistant content is a marker; the text after the
    marker (leading whitespace skipped: Llama 2 writes " </s>") must start with a special token.
    """
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": _MARKER}],
                                             tokenize=False)
    except Exception:  # noqa: BLE001 - a template that rejects this chat: no end of turn to read
        return None
    if not isinstance(text, str) or _MARKER not in text:
        return None
    after = text.split(_MARKER, 1)[1].lstrip()
    special = sorted({str(t) for t in tokenizer.all_special_tokens} | set(tokenizer.get_added_vocab()), key=len,
                     reverse=True)
    return next((t for t in special if t and after.startswith(t)), None)


def turn_end_id(tokenizer) -> int:
    """The id that ends a response: the chat template's end of turn (``<|im_end|>`` for ChatML,
    ``<|eot_id|>`` for Llama 3, ``<end_of_turn>`` for Gemma, ``<|end|>`` for Phi-3, ``</s>`` for Llama 2),
    else EOS.  A tokenizer without a chat template uses EOS and says so once in the log."""
    cached = getattr(tokenizer, "_cream_turn_end", None)
    if cached is not None:
        return cached
    token = _template_turn_end(tokenizer) if getattr(tokenizer, "chat_template", None) else None
    if token is None:
        why = ("has no chat template: prompts are the plain text and responses end with EOS"
               if not getattr(tokenizer, "chat_template", None) else
               "has a chat template that writes no special token after an assistant turn: responses end with EOS")
        if why not in _SAID:  # once per process (every stage loads the tokenizer again); the base manifest records it
            _SAID.add(why)
            log.warning("the tokenizer of %s %s %r", getattr(tokenizer, "name_or_path", "?"), why, tokenizer.eos_token)
        if tokenizer.eos_token_id is None:
            raise ModelLoadError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has neither an end-of-turn "
                                 "token in its chat template nor an EOS token")
        tid = int(tokenizer.eos_token_id)
    else:
        tid = int(tokenizer.convert_tokens_to_ids(token))
    tokenizer._cream_turn_end = tid
    return tid


def stop_ids(tokenizer, model=None) -> list[int]:
    """Every id that ends generation: the turn end, the model's ``generation_config.eos_token_id`` (an id
    or a list of them) and the tokenizer's EOS; in that order, without repeats."""
    ids = [turn_end_id(tokenizer)]
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    ids += list(eos) if isinstance(eos, (list, tuple)) else [eos]
    ids.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def template_info(tokenizer, model=None) -> dict:
    """What the manifest records of how turns are formatted and ended."""
    end = turn_end_id(tokenizer)
    return {"chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "turn_end": tokenizer.convert_ids_to_tokens(end), "turn_end_id": end,
            "stop_ids": stop_ids(tokenizer, model)}


def encode_prompt(tokenizer, prompt: str, max_prompt_length: int) -> tuple[list[int], bool]:
    """Prompt ids (BOS first unless the rendered text already has it); keeps the last ``max_prompt_length``."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and not (tokenizer.bos_token and prompt.startswith(tokenizer.bos_token)):
        p = [bos] + p
    if len(p) > max_prompt_length:
        return p[-max_prompt_length:], True
    return p, False


def encode_pair(tokenizer, prompt: str, response: str, max_length: int,
                max_prompt_length: int) -> tuple[list[int], int, bool]:
    """Token ids of prompt + response + end of turn, and the index where the response starts.

    The terminator is the chat template's end-of-turn token (``turn_end_id``): what the model emits to end
    its turn, and so what it is trained and scored on.  Truncation rule (stated once, used everywhere): the
    prompt keeps its last ``max_prompt_length`` tokens; the response (with its terminator) is cut to fit
    ``max_length``.  Returns (ids, prompt_len, truncated).
    """
    p, truncated = encode_prompt(tokenizer, prompt, max_prompt_length)
    r = tokenizer(response, add_special_tokens=False)["input_ids"] + [turn_end_id(tokenizer)]
    room = max_length - len(p)
    if len(r) > room:
        r, truncated = r[: max(room, 1)], True
    return p + r, len(p), truncated
