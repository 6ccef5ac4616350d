"""The tiny offline default: a small Llama with random (seeded) weights and a byte-level BPE tokenizer
trained on the shipped text, saved once with ``save_pretrained`` and then loaded like any real model.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch

from cream.artifacts import as_umask_allows

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]

def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike):
    """Train a byte-level BPE tokenizer offline and save it as a ``transformers`` fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(list(texts), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        clean_up_tokenization_spaces=False,
    )
    tok.save_pretrained(str(out_dir))
    return tok


def build_tiny(out_dir: str | os.PathLike, texts: Iterable[str], *, vocab_size: int, hidden_size: int,
               intermediate_size: int, num_layers: int, num_heads: int, max_position_embeddings: int,
               seed: int) -> Path:
    """A tiny Llama with random weights (seeded) and an offline tokenizer, saved with ``save_pretrained``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tok = train_tokenizer(texts, vocab_size, out_dir)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return as_umask_allows(out_dir)
