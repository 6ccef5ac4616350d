"""Sampling backends for the sample stage (``sampler=``, a ``_target_`` group): ``hf`` (default,
:class:`cream.sampling.hf.HFSampler`) and ``vllm`` (GPU, optional, :class:`cream.sampling.vllm.VLLMSampler`).

A sampler is a callable with the signature of :func:`cream.sampling.hf.generate`:
``fn(model, tokenizer, prompts, *, n, max_new_tokens, temperature, top_p, batch_size, seed,
max_prompt_length, desc, progress, return_finished) -> (completions per prompt, [finished flags,]
number of prompts truncated)``, and a ``moves_model`` attribute: whether the stage must put M_t on the
accelerator first (false when the backend loads the weights itself), and a ``resumes`` attribute: whether it
takes a ``journal`` (``cream.artifacts.Journal``) where it saves finished pieces, so that a killed sample stage
goes on from them.  A new sampler: one class plus
``conf/sampler/<name>.yaml`` with its ``_target_`` and constructor arguments.
"""
from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from cream.errors import CreamError


def make_sampler(cfg_sampler):
    """``instantiate(cfg.sampler)``; a CreamError raised by the constructor (e.g. vllm not installed)
    comes out as itself rather than wrapped in Hydra's InstantiationException."""
    try:
        return instantiate(cfg_sampler)
    except InstantiationException as e:
        if isinstance(e.__cause__, CreamError):
            raise e.__cause__ from None
        raise
