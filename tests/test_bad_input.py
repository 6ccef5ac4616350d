"""Bad input: one clear message naming the file, line or key and what to do; nothing written is lost.

(Data-file cases — malformed line, missing field, label outside the choices, SIQA label files, unknown
benchmark or split — are in test_benchmarks.py; loss/weight validation in test_losses.py.)
"""
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from conftest import compose, run_cli, stage_mtimes
from cream.artifacts import read_jsonl
from cream.config import validate_config
from cream.data.benchmarks import load_benchmark
from cream.data.pool import seed_set
from cream.errors import ArtifactError, ConfigError, DataError, ModelLoadError, NoPairsError, PoolError
from cream.models.loading import load_model, load_tokenizer
from cream.models.tokens import encode_pair


@pytest.mark.parametrize("override, key", [
    ("data.n_prompts=0", "data.n_prompts"),          # an empty prompt pool
    ("sampling.n=1", "sampling.n"),                   # N < 2: no pair possible
    ("loss.beta=0", "loss.beta"),
    ("loss.beta=-0.1", "loss.beta"),
    ("pipeline.iterations=0", "pipeline.iterations"),
    ("sampling.top_p=1.5", "sampling.top_p"),
    ("model.max_prompt_length=300", "model.max_prompt_length"),
    ("sft.lr=0", "sft.lr"),
    ("data.benchmarks=[arc_easy,mmlu]", "data.benchmarks"),
    ("eval.splits.arc_easy=dev", "eval.splits.arc_easy"),
])
def test_invalid_config_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(compose([override]))


def test_pool_too_small_says_how_many_are_needed():
    with pytest.raises(PoolError, match=r"data\.n_seed=5000.*lower them or point data\.dir"):
        seed_set(compose(["data.n_seed=5000"]))


def test_missing_data_dir_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as e:
        load_benchmark("arc_easy", "train", data_dir=tmp_path / "nope")
    msg = str(e.value)
    assert "nope" in msg and "ARC-Easy-Train.jsonl" in msg and "data.dir" in msg and "allenai/ai2_arc" in msg
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        load_benchmark("arc_easy", "train", data_dir=tmp_path / "file")


def test_corrupted_artifact_names_file_and_line(tmp_path):
    p = tmp_path / "rewards.jsonl"
    p.write_text('{"prompt_id": "a", "reward": [1, 2]}\n{"prompt_id": "b", "rew\n')
    with pytest.raises(ArtifactError, match=r"rewards\.jsonl:2"):
        read_jsonl(p)


def test_unknown_model_offline_fails_fast(monkeypatch):
    """Offline, an unknown hub id is an error at once: no connection is even attempted (so no retries)."""
    import socket

    attempts = []

    def connect(self, address):
        attempts.append(address)
        raise OSError("no network in this test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", connect)
    with pytest.raises(ModelLoadError, match=r"model\.name_or_path='no-such-org/no-such-model'.*HF_HUB_OFFLINE"):
        load_model("no-such-org/no-such-model")
    assert attempts == []


def test_truncated_weights_name_the_folder(tiny_dir, tmp_path):
    bad = tmp_path / "model"
    shutil.copytree(tiny_dir, bad)
    w = bad / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=str(bad)):
        load_model(bad)


def test_tokenizer_without_pad_token_falls_back_to_eos(tiny_dir, tmp_path, caplog):
    tok = load_tokenizer(tiny_dir)
    tok.pad_token = None
    tok.save_pretrained(tmp_path / "tok")
    cfg = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    cfg.pop("pad_token", None)
    (tmp_path / "tok" / "tokenizer_config.json").write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING):
        tok2 = load_tokenizer(tmp_path / "tok")
    assert tok2.pad_token == tok2.eos_token
    assert "no pad token" in caplog.text


def test_long_prompts_are_truncated_by_the_stated_rule_and_counted(tiny_dir):
    from cream.sampling.hf import generate

    tok, model = load_tokenizer(tiny_dir), load_model(tiny_dir)
    long_prompt = "carbon dioxide " * 100 + "END"
    ids, start, truncated = encode_pair(tok, long_prompt, "B", max_length=48, max_prompt_length=32)
    assert truncated and start == 32  # the prompt keeps its last 32 tokens
    assert tok.decode(ids[:start]).endswith("END")
    _, n = generate(model, tok, [long_prompt, "short"], max_new_tokens=2, max_prompt_length=32, progress=False)
    assert n == 1


def test_corrupted_checkpoint_is_a_clear_error(tiny_dir, tmp_path):
    from cream.training.datamodules import SFTDataModule
    from cream.training.sft_module import SFTModule
    from cream.training.trainer import fit, make_trainer

    out = tmp_path / "sft"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    tok = load_tokenizer(tiny_dir)
    dm = SFTDataModule(tok, ["q\n"], ["a"], batch_size=1, max_length=16, max_prompt_length=8, seed=0)
    trainer = make_trainer(compose([]), out, 1)
    with pytest.raises(ArtifactError,
                       match=r"last\.ckpt: the training checkpoint is corrupted or truncated.*Delete it"):
        fit(trainer, SFTModule(load_model(tiny_dir), lr=1e-3), dm, out)
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == b"PK\x03\x04 truncated"  # left for the user to inspect


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tiny_dir, tmp_path):
    from cream.errors import TrainingDiverged
    from cream.method.losses import SigmoidLoss
    from cream.records import PairRow
    from cream.training.datamodules import PreferenceDataModule
    from cream.training.dpo_module import DPOModule
    from cream.training.trainer import fit, make_trainer

    class NanAfterTwoSteps(SigmoidLoss):
        calls = 0

        def pair_loss(self, h):
            NanAfterTwoSteps.calls += 1
            return super().pair_loss(h) * (float("nan") if NanAfterTwoSteps.calls > 4 else 1.0)

    tok = load_tokenizer(tiny_dir)
    pairs = [{"prompt": f"q{i}\n", "chosen": "good", "rejected": "bad", "ref_logp_chosen": -5.0,
              "ref_logp_rejected": -5.0}
             for i in range(6)]
    dm = PreferenceDataModule(tok, [PairRow.from_json(p) for p in pairs], [1.0] * 6, batch_size=2, max_length=32,
                              max_prompt_length=16, seed=0)
    out = tmp_path / "dpo"
    trainer = make_trainer(compose(["trainer.cream.checkpoint_every_n_steps=1"]), out, 1)
    with pytest.raises(TrainingDiverged, match=r"DPO loss is nan at step 2.*last good checkpoint"):
        fit(trainer, DPOModule(load_model(tiny_dir), NanAfterTwoSteps(beta=0.1), lr=1e-3, total_steps=3), dm, out)
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_every_reward_tied_is_a_clear_error_and_keeps_the_rewards(tmp_path):
    from cream.pipeline import Context
    from cream.stages import pairs

    it = tmp_path / "iter_1"
    for sub in ("sample", "reward", "consistency", "pairs"):
        (it / sub).mkdir(parents=True)
    (it / "sample" / "samples.jsonl").write_text(json.dumps({"prompt_id": "p", "prompt": "q",
                                                             "responses": ["a", "b"]}) + "\n")
    rewards = it / "reward" / "rewards.jsonl"
    # a judge that never produced a score leaves every reward None: the same situation
    rewards.write_text(json.dumps({"prompt_id": "p", "reward": [None, None], "prev_reward": [None, None],
                                   "policy_logp": [0, 0]}) + "\n")
    (it / "consistency" / "consistency.jsonl").write_text(json.dumps({"prompt_id": "p", "c": None}) + "\n")
    with pytest.raises(NoPairsError, match=r"rewards\.jsonl: the rewards tie for every one of the 1 prompts"):
        pairs.run(Context(compose([]), tmp_path), it / "pairs", t=1)
    assert rewards.exists() and not (it / "pairs" / "pairs.jsonl").exists()


# ----------------------------------------------------------------- through the command line (slow)

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("bad") / "run"
    run_cli(["debug=smoke", f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    return run_dir


def _snapshot(run_dir: Path) -> dict:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*")
            if p.is_file() and ".hydra.accepted" not in p.parts and not p.name.endswith(".log")}


@pytest.mark.slow
def test_run_dir_from_a_different_config_is_refused_and_untouched(finished_run):
    before = _snapshot(finished_run)
    proc = run_cli(["debug=smoke", "sft.lr=0.5", f"hydra.run.dir={finished_run}"], cwd=finished_run.parent, check=False)
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "this stage was made with another config" in out and "sft.lr: 0.002 -> 0.5" in out
    assert "pipeline.on_config_change=redo" in out
    assert _snapshot(finished_run) == before


@pytest.mark.slow
def test_invalid_value_on_an_existing_run_dir_changes_nothing(finished_run):
    before = _snapshot(finished_run)
    proc = run_cli(["debug=smoke", "sampling.n=1", f"hydra.run.dir={finished_run}"],
                   cwd=finished_run.parent, check=False)
    assert proc.returncode == 2 and "sampling.n=1: must be >= 2" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert _snapshot(finished_run) == before


@pytest.mark.slow
def test_truncated_model_in_a_run_dir_is_detected_and_recomputed(finished_run, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run, run_dir)
    w = run_dir / "sft" / "model" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    before = stage_mtimes(run_dir)
    run_cli(["debug=smoke", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    after = stage_mtimes(run_dir)
    assert after["sft"] != before["sft"] and after["base"] == before["base"]
    stale = list((run_dir / "_stale").glob("sft-*/model/model.safetensors"))
    assert stale and stale[0].stat().st_size == 100  # the damaged output is kept aside, not deleted
    assert (run_dir / "results.jsonl").read_text() == (finished_run / "results.jsonl").read_text()


@pytest.mark.slow
def test_unknown_group_option_lists_the_choices(tmp_path):
    proc = run_cli(["regularizer=cream_typo", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    err = proc.stderr + proc.stdout
    assert "regularizer/cream_typo" in err and "cream_avg" in err and "cream_dyn" in err
    assert not (tmp_path / "r" / "base").exists()


@pytest.mark.slow
def test_unknown_model_id_offline_from_the_cli(tmp_path):
    """(That no connection is attempted offline is checked in-process by test_unknown_model_offline_fails_fast.)"""
    proc = run_cli(["model=local", "model.name_or_path=no-such-org/no-such-model", f"hydra.run.dir={tmp_path / 'r'}"],
                   cwd=tmp_path, check=False, env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and "no-such-org/no-such-model" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_all_rewards_tied_from_the_cli(tmp_path):
    # greedy sampling makes the N responses identical, so every prompt's rewards tie
    proc = run_cli(["debug=smoke", "sampling.temperature=0", f"hydra.run.dir={tmp_path / 'r'}"],
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "the rewards tie for every one of the 16 prompts" in proc.stdout + proc.stderr
    assert (tmp_path / "r" / "iter_1" / "reward" / "manifest.json").exists()  # what was computed is kept


@pytest.mark.slow
def test_real_model_without_data_dir_from_the_cli(tmp_path):
    # no silent sample data: stops before any stage, naming data.dir and the key that allows the sample
    proc = run_cli(["model=local", "model.name_or_path=/some/instruct-model", f"hydra.run.dir={tmp_path / 'r'}"],
                   cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "data.dir=None" in out and "data.allow_sample=true" in out
    assert "Traceback" not in out and not (tmp_path / "r" / "base").exists()


@pytest.mark.slow
def test_malformed_prompts_file_from_the_cli(tmp_path):
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"messages": [{"role": "user", "content": ""}]}\n')
    proc = run_cli(["data.pool=file", f"data.prompts={bad}", f"hydra.run.dir={tmp_path / 'r'}"],
                   cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and f"{bad}:2: field 'messages[0].content': expected non-empty text" in out
    assert "Traceback" not in out and not (tmp_path / "r" / "base").exists()
