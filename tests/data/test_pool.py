"""The prompt pool D_U: the paper's (D_S prompts + full train splits, T disjoint parts), a prompts file,
and today's per-benchmark slices; the sampling instruction switch."""
from __future__ import annotations

import json
import random

import pytest

from conftest import compose
from cream.data.benchmarks import Example, load_benchmark
from cream.data.custom import Prompt
from cream.data.pool import full_pool, prompt_slice, seed_set
from cream.data.prompts import EVAL_INSTRUCTION, format_question, pool_messages, render, render_messages

CONVS = [
    {"id": "c1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                              {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye?"},
                              {"role": "assistant", "content": "Bye."}]},
    {"id": "c2", "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
    {"id": "c3", "messages": [{"role": "user", "content": "Sky colour?"}, {"role": "assistant", "content": "Blue."}]},
]


def _seed_file(tmp_path):
    p = tmp_path / "seed.jsonl"
    p.write_text("".join(json.dumps(c) + "\n" for c in CONVS))
    return p


def _paper(tmp_path, *more):
    return compose(["data=paper", "data.benchmarks=[arc_easy,gsm8k]", "data.seed.source=file",
                    f"data.seed.path={_seed_file(tmp_path)}", "pipeline.iterations=3", *more])


def test_paper_pool_composition(tmp_path):
    cfg = _paper(tmp_path)
    pool = full_pool(cfg)
    # the shipped sample: 800 ARC-Easy and 300 GSM8K train records; + the 3 seed prompts
    assert len(pool) == 800 + 300 + 3
    prompts = [x for x in pool if isinstance(x, Prompt)]
    assert sorted(p.id for p in prompts) == ["seed-c1", "seed-c2", "seed-c3"]
    # a seed conversation's prompt: everything up to its first user turn (the system message kept)
    assert next(p for p in prompts if p.id == "seed-c1").messages == (
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"})
    train = {ex.id for name in ("arc_easy", "gsm8k") for ex in load_benchmark(name, "train")}
    assert {x.id for x in pool if isinstance(x, Example)} == train  # every train question, once
    # the order is the seeded shuffle of (seed prompts, then benchmark train files in order)
    order = [f"seed-{c['id']}" for c in CONVS] + [ex.id for name in ("arc_easy", "gsm8k")
                                                  for ex in load_benchmark(name, "train")]
    random.Random("0-pool").shuffle(order)
    assert [x.id for x in pool] == order


def test_paper_pool_parts_are_disjoint_and_cover_the_pool(tmp_path):
    cfg = _paper(tmp_path)
    parts = [prompt_slice(cfg, t) for t in (1, 2, 3)]
    assert [len(p) for p in parts] == [368, 368, 367]  # 1103 = 3 x 367 + 2: the first two parts one longer
    ids = [x.id for p in parts for x in p]
    assert ids == [x.id for x in full_pool(cfg)]  # contiguous, in order, nothing left out or repeated
    capped = [prompt_slice(_paper(tmp_path, "data.n_prompts=10"), t) for t in (1, 2, 3)]
    assert [[x.id for x in c] for c in capped] == [[x.id for x in p[:10]] for p in parts]


def test_paper_pool_with_the_benchmark_seed_set_is_the_train_splits(tmp_path):
    cfg = compose(["data=paper", "data.benchmarks=[gsm8k]", "data.seed.source=benchmarks", "data.n_seed=8",
                   "pipeline.iterations=2"])
    pool = full_pool(cfg)
    assert len(pool) == 300 and all(isinstance(x, Example) for x in pool)
    assert {ex.id for ex in seed_set(cfg)} <= {x.id for x in pool}  # D_S's prompts are part of D_U
    assert [len(prompt_slice(cfg, t)) for t in (1, 2)] == [150, 150]


def test_per_benchmark_slices_stay_as_they_were():
    cfg = compose(["data=mix", "data.n_seed=5", "data.n_prompts=7"])
    for name in cfg.data.benchmarks:
        shuffled = load_benchmark(name, "train")
        random.Random(f"0-{name}").shuffle(shuffled)
        assert [ex.id for ex in prompt_slice(cfg, 2) if ex.benchmark == name] == [ex.id for ex in shuffled[12:19]]
        assert [ex.id for ex in seed_set(cfg) if ex.benchmark == name] == [ex.id for ex in shuffled[:5]]


def test_file_pool_parts(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(5)))
    cfg = compose(["data.pool=file", f"data.prompts={p}", "pipeline.iterations=2"])
    parts = [prompt_slice(cfg, t) for t in (1, 2)]
    assert [len(x) for x in parts] == [3, 2]
    assert sorted(x.id for part in parts for x in part) == [f"prompts-{i}" for i in range(5)]
    assert all(x.messages[0]["content"] == f"question {x.id[-1]}" for part in parts for x in part)


def test_sampling_instruction_none_is_the_raw_question(tiny_dir):
    from cream.models.loading import load_tokenizer

    ex = load_benchmark("arc_easy", "train")[0]
    raw = pool_messages(ex, "none")
    assert raw == [{"role": "user", "content": format_question(ex)}] and EVAL_INSTRUCTION not in raw[0]["content"]
    assert pool_messages(ex, "cot")[0]["content"] == f"{format_question(ex)}\n{EVAL_INSTRUCTION}"
    tok = load_tokenizer(tiny_dir)  # no chat template: one user turn renders as before (the default run is unchanged)
    assert render_messages(tok, pool_messages(ex, "cot")) == render(tok, f"{format_question(ex)}\n{EVAL_INSTRUCTION}")
    assert compose([]).sampling.instruction == "cot"
    assert compose(["experiment=cream_llama3_8b"]).sampling.instruction == "none"


@pytest.mark.parametrize("name", ["cream_llama2_7b", "cream_llama3_8b", "srlm_llama2_7b", "srlm_llama3_8b",
                                  "srlm_judge_llama3_8b"])
def test_paper_experiments_use_the_paper_data(name):
    cfg = compose([f"experiment={name}"])
    d = cfg.data
    assert d.pool == "paper" and d.seed.source == "oasst" and d.n_prompts is None and d.dir is None
    assert list(d.benchmarks) == ["arc_easy", "arc_challenge", "obqa", "siqa", "gsm8k"]
    assert cfg.eval.limit is None and list(cfg.eval.benchmarks) == list(d.benchmarks)
