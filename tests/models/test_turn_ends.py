"""The token trained after a response is the chat template's end of turn, and generation stops at every
EOS id of the model: checked on tokenizers of five template families built offline (templates written
here in each family's format), and on a tokenizer without a template (EOS, said once in the log)."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from cream.models import tokens
from cream.models.tiny import train_tokenizer
from cream.models.tokens import encode_pair, stop_ids, template_info, turn_end_id
from cream.sampling.hf import generate

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
          "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
          "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
GEMMA = ("{{ bos_token }}{% for m in messages %}"
         "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
         "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
         "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
PHI3 = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% else %}{{ eos_token }}{% endif %}")
LLAMA2 = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token }}[INST] {{ m['content'] }} [/INST]"
          "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}")

# family: (template, eos token, extra special tokens, generation_config eos tokens, expected turn end)
FAMILIES = {
    "chatml_eos_s": (CHATML, "</s>", ["<|im_start|>", "<|im_end|>"], ["</s>"], "<|im_end|>"),
    "llama3": (LLAMA3, "<|end_of_text|>", ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
               ["<|end_of_text|>", "<|eot_id|>"], "<|eot_id|>"),
    "gemma": (GEMMA, "<eos>", ["<start_of_turn>", "<end_of_turn>"], ["<eos>", "<end_of_turn>"], "<end_of_turn>"),
    "phi3": (PHI3, "<|endoftext|>", ["<|user|>", "<|assistant|>", "<|end|>"], ["<|endoftext|>", "<|end|>"], "<|end|>"),
    "llama2": (LLAMA2, "</s>", [], ["</s>"], "</s>"),
}


def _tokenizer(tmp_path, template: str | None, eos: str, extra: list[str]):
    tok = train_tokenizer(["Which gas do plants take in? carbon dioxide. Answer: B"] * 10, 300, tmp_path)
    tok.add_special_tokens({"eos_token": eos, "additional_special_tokens": extra})
    tok.chat_template = template
    return tok


def _model(tok, gen_eos: list[str]):
    ids = [tok.convert_tokens_to_ids(t) for t in gen_eos]
    return SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=ids if len(ids) > 1 else ids[0]))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_trained_terminator_and_stop_ids(tmp_path, family):
    template, eos, extra, gen_eos, expected = FAMILIES[family]
    tok = _tokenizer(tmp_path, template, eos, extra)
    end = tok.convert_tokens_to_ids(expected)
    assert turn_end_id(tok) == end
    ids, start, _ = encode_pair(tok, "Which gas?", "carbon dioxide", 64, 32)
    assert ids[-1] == end and tok.decode(ids[start:-1]) == "carbon dioxide"
    want = {end, *(tok.convert_tokens_to_ids(t) for t in gen_eos), tok.eos_token_id}
    got = stop_ids(tok, _model(tok, gen_eos))
    assert got[0] == end and set(got) == want and len(got) == len(want)


def test_chatml_with_eos_s_no_longer_trains_eos(tmp_path):
    """The case the issue names: a ChatML template on a tokenizer whose EOS is </s>."""
    tok = _tokenizer(tmp_path, CHATML, "</s>", ["<|im_start|>", "<|im_end|>"])
    ids, _, _ = encode_pair(tok, "Q", "A", 32, 16)
    assert tok.convert_ids_to_tokens(ids[-1]) == "<|im_end|>" != tok.eos_token


def test_no_template_uses_eos_and_says_so_once(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(tokens, "_SAID", set())
    with caplog.at_level(logging.WARNING, logger="cream.models"):
        for _ in range(3):  # three loads of the tokenizer, as three stages do
            tok = _tokenizer(tmp_path, None, "</s>", [])
            assert turn_end_id(tok) == tok.eos_token_id
    assert sum("no chat template" in r.message for r in caplog.records) == 1
    info = template_info(tok)
    assert info == {"chat_template": False, "turn_end": "</s>", "turn_end_id": tok.eos_token_id,
                    "stop_ids": [tok.eos_token_id]}


def test_generate_stops_at_every_id_and_flags_cut_responses(tmp_path, monkeypatch):
    """generate passes every stop id to the model's generate and marks completions that hit the limit."""
    template, eos, extra, gen_eos, expected = FAMILIES["llama3"]
    tok = _tokenizer(tmp_path, template, eos, extra)
    eot, eot_text = tok.convert_tokens_to_ids("<|eot_id|>"), tok.convert_tokens_to_ids("<|end_of_text|>")
    seen = {}

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.generation_config = _model(tok, gen_eos).generation_config

        def generate(self, input_ids, **kw):
            seen.update(kw)
            tails = [[5, eot, tok.pad_token_id], [5, 6, 7], [eot_text, tok.pad_token_id, tok.pad_token_id]]
            return torch.cat([input_ids, torch.tensor(tails[: input_ids.shape[0]])], dim=1)

    texts, finished, _ = generate(Spy(), tok, ["a", "b", "c"], max_new_tokens=3, batch_size=3, progress=False,
                                  return_finished=True)
    assert set(seen["eos_token_id"]) == {eot, eot_text} and seen["eos_token_id"][0] == eot
    assert sorted(f[0] for f in finished) == [False, True, True]
