"""``sampler=vllm``: the sample stage's generation with vLLM (GPU, optional; ``conf/sampler/vllm.yaml``).

Same prompts, truncation rule and sampling settings as ``sampler=hf``; vLLM is imported only when chosen.
With several ranks each one samples its shard of the prompts (``cream.distributed``) and all of
them get every completion back.
"""
from __future__ import annotations

import gc
import logging
from collections.abc import Sequence

from cream import distributed
from cream.errors import SamplerError
from cream.models.tokens import encode_prompt, stop_ids

log = logging.getLogger(__name__)


class VLLMSampler:
    """``sampler=vllm``: continuous batching and paged attention (GPU, optional: ``pip install vllm``); the
    model is loaded by vLLM from M_t's folder, so the sample stage leaves it on the CPU."""

    moves_model = False  # vLLM loads the weights itself, from M_t's folder
    resumes = False  # one call for every prompt: a killed sample stage starts again

    def __init__(self, gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1, dtype: str = "auto",
                 max_model_len: int | None = None, enforce_eager: bool = False, swap_space: float = 4):
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise SamplerError(
                f"sampler=vllm needs the vllm package, which is not installed here ({e}). Install it on a GPU "
                "machine (pip install vllm, in this venv) or use sampler=hf."
            ) from None
        self.gpu_memory_utilization = float(gpu_memory_utilization)
        self.tensor_parallel_size = int(tensor_parallel_size)
        self.dtype, self.max_model_len = dtype, max_model_len
        self.enforce_eager, self.swap_space = enforce_eager, swap_space

    def __call__(self, model, tokenizer, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 64,
                 temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 16, seed: int = 0,
                 max_prompt_length: int = 512, desc: str = "generate", progress: bool = True,
                 return_finished: bool = False) -> tuple:
        mine = distributed.shard(prompts)
        texts, fin, n_trunc = _vllm_generate(self, model, tokenizer, mine, n=n, max_new_tokens=max_new_tokens,
                                             temperature=temperature, top_p=top_p,
                                             seed=seed + 7919 * distributed.rank(),
                                             max_prompt_length=max_prompt_length,
                                             progress=progress and distributed.is_main())
        texts, fin, n_trunc = distributed.gather(texts), distributed.gather(fin), sum(distributed.gather([n_trunc]))
        return (texts, fin, n_trunc) if return_finished else (texts, n_trunc)


def _vllm_generate(opts, model, tokenizer, prompts, *, n, max_new_tokens, temperature, top_p, seed, max_prompt_length,
                   progress) -> tuple[list[list[str]], list[list[bool]], int]:
    import torch
    from vllm import LLM, SamplingParams

    path = getattr(model, "name_or_path", None) or model.config._name_or_path
    if not path:
        raise SamplerError("sampler=vllm: the model has no name_or_path to load it from")
    encoded = [encode_prompt(tokenizer, p, max_prompt_length) for p in prompts]
    max_len = opts.max_model_len or (max(len(e[0]) for e in encoded) + max_new_tokens if encoded else None)
    llm = LLM(model=str(path), tokenizer=str(path), dtype=opts.dtype, seed=int(seed),
              gpu_memory_utilization=opts.gpu_memory_utilization, tensor_parallel_size=opts.tensor_parallel_size,
              max_model_len=max_len, enforce_eager=bool(opts.enforce_eager), swap_space=float(opts.swap_space))
    sample = temperature > 0
    params = SamplingParams(n=n if sample else 1, temperature=temperature if sample else 0.0,
                            top_p=top_p if sample else 1.0, max_tokens=max_new_tokens, seed=int(seed),
                            stop_token_ids=stop_ids(tokenizer, model), skip_special_tokens=True)
    outs = llm.generate([{"prompt_token_ids": ids} for ids, _ in encoded], params, use_tqdm=progress)
    texts = [[o.text for o in out.outputs] for out in outs]
    finished = [[o.finish_reason != "length" for o in out.outputs] for out in outs]
    if not sample:  # greedy: the n completions are one and the same
        texts, finished = [t * n for t in texts], [f * n for f in finished]
    del llm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return texts, finished, sum(t for _, t in encoded)
