"""cream.distributed: shard/gather on two gloo processes; sharded scoring (per sequence, and with shared contexts per
question) equals single-process scoring; each rank's sampling keeps and reads back its own share's batches."""
from __future__ import annotations

import os

import pytest
import torch

SIZES = [5, 5, 5]  # the five responses of each prompt share it: one group each (2 groups on rank 0, 1 on rank 1)


def _worker(rank: int, world: int, store: str, model_dir: str, seqs, starts, out_dir: str) -> None:
    """One rank.  The group meets through a file in the test's tmp dir (no TCP port that another process could
    take between choosing it and binding it), and every rank leaves it together: barrier, then destroy.  A
    rank that exits while the other is still tearing down its gloo connections aborts (SIGABRT)."""
    import datetime
    import json

    from cream import distributed
    from cream.artifacts import Journal
    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import score_sequences, score_shared_context
    from cream.sampling.hf import generate

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                                         timeout=datetime.timedelta(seconds=120))
    try:
        assert distributed.init(backend="gloo")  # the group that exists is the one used
        items = list(range(11))
        # outside a collective block nothing is split (a stage only rank 0 runs must not wait for the others)
        assert distributed.shard(items) == items and distributed.gather(items) == items
        model, tok = load_model(model_dir), load_tokenizer(model_dir)
        with distributed.collective():
            mine = distributed.shard(items)
            assert mine == items[rank::world]
            back = distributed.gather([x * 10 for x in mine])
            scores = score_sequences(model, seqs, starts, tok.pad_token_id, batch_size=3, progress=False)
            shared, tokens = score_shared_context(model, seqs, starts, SIZES, tok.pad_token_id, batch_size=4,
                                                  progress=False)
            # each rank saves its own share's batches (a killed sample stage's rerun reads them back)
            journal = os.path.join(out_dir, f"journal{rank}.jsonl")
            kw = dict(n=2, max_new_tokens=4, temperature=0.7, top_p=0.9, batch_size=2, progress=False)
            prompts = ["Which gas do plants take in?", "48 + 24 =", "Answer:"] * 3
            texts, n_trunc = generate(model, tok, prompts, journal=Journal(journal), **kw)
            again, _ = generate(model, tok, prompts, journal=Journal(journal), **kw)
        with open(journal) as f:
            pieces = [json.loads(line)["prompts"] for line in f]
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"back": back, "scores": scores, "shared": shared, "tokens": tokens,
                       "n_texts": [len(t) for t in texts], "n_trunc": n_trunc, "again": again == texts,
                       "pieces": pieces,
                       "rank": distributed.rank(), "world": distributed.world_size()}, f)
        distributed.shutdown()  # a group it did not create is left to its owner
        assert torch.distributed.is_initialized()
    finally:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def test_shard_gather_and_sharded_scoring_match_one_process(tiny_dir, tmp_path):
    import json

    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import score_sequences, score_shared_context
    from cream.models.tokens import encode_pair

    tok = load_tokenizer(tiny_dir)
    prompts = ["Which gas do plants take in?", "Natalia sold 48 clips in April.", "Think step by step."]
    responses = ["carbon dioxide", "Answer: B", "48/2 = 24. 48 + 24 = 72. Answer: 72", "oxygen", "neon neon"]
    enc = [encode_pair(tok, p, r, 64, 32) for p in prompts for r in responses]
    seqs, starts = [e[0] for e in enc], [e[1] for e in enc]
    single = score_sequences(load_model(tiny_dir), seqs, starts, tok.pad_token_id, batch_size=3, progress=False)
    _, one_tokens = score_shared_context(load_model(tiny_dir), seqs, starts, SIZES, tok.pad_token_id, progress=False)
    assert one_tokens["tokens_shared"] < one_tokens["tokens_per_sequence"]  # the prompts are shared

    torch.multiprocessing.spawn(_worker, args=(2, str(tmp_path / "store"), str(tiny_dir), seqs, starts, str(tmp_path)),
                                nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r, res in enumerate(results):
        assert (res["rank"], res["world"]) == (r, 2)
        assert res["back"] == [x * 10 for x in range(11)]
        assert res["scores"] == pytest.approx(single, abs=1e-4)  # every rank holds every score, in input order
        assert res["shared"] == pytest.approx(single, abs=1e-4)
        assert res["tokens"] == one_tokens  # each question's context ran once, on one of the ranks
        assert res["n_texts"] == [2] * 9 and res["n_trunc"] == 0
        # rank r's share: prompts r, r + 2, ... (5 and 4), in batches of 2, each saved once and read back once
        assert sorted(i for batch in res["pieces"] for i in batch) == list(range(len(range(r, 9, 2))))
        assert len(res["pieces"]) == (3, 2)[r] and res["again"]
    assert results[0]["scores"] == results[1]["scores"] and results[0]["shared"] == results[1]["shared"]


def test_single_process_defaults(monkeypatch):
    from cream import distributed

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert not distributed.init()
    with distributed.collective():
        assert distributed.shard([1, 2, 3]) == [1, 2, 3] and distributed.gather([1, 2]) == [1, 2]
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    distributed.shutdown()  # nothing to leave: a no-op
    # srun: one task of four in this step
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "2")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (2, 4, False)


def test_trainer_world_size_and_steps(monkeypatch):
    from omegaconf import OmegaConf

    from cream.distributed import trainer_world_size
    from cream.training.datamodules import _EpochSeededSampler

    for var in ("RANK", "WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(var, raising=False)
    assert trainer_world_size(OmegaConf.create({"accelerator": "cpu", "devices": 1})) == 1
    assert trainer_world_size(OmegaConf.create({"accelerator": "cpu", "devices": 2, "num_nodes": 3})) == 6
    assert trainer_world_size(OmegaConf.create({"accelerator": "gpu", "devices": [0, 1]})) == 2
    # the sampler: rank r takes perm[r::world] of the same permutation, padded to equal lengths
    full = list(_EpochSeededSampler(7, seed=3))
    monkeypatch.setenv("WORLD_SIZE", "2")
    parts = []
    for r in range(2):
        monkeypatch.setenv("RANK", str(r))
        s = _EpochSeededSampler(7, seed=3)
        parts.append(list(s))
        assert len(s) == 4
    assert parts[0] == full[0::2] and parts[1] == full[1::2] + [full[0]]


def test_several_devices_need_a_launcher(monkeypatch):
    from omegaconf import OmegaConf

    from cream.distributed import check_launch
    from cream.errors import ConfigError

    for var in ("RANK", "WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(var, raising=False)
    check_launch(OmegaConf.create({"accelerator": "cpu", "devices": 1}))
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node 2"):
        check_launch(OmegaConf.create({"accelerator": "cpu", "devices": 2}))
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_launch(OmegaConf.create({"accelerator": "cpu", "devices": 2}))
