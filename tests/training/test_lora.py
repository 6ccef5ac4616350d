"""model.lora: adapters start as the identity (the policy at step 0 is M_t, whose log-probs the reward step
recorded as the DPO reference) and the saved, merged M_{t+1} is the trained LoRA model."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import compose

LORA = "model.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}"


def _pairs(tok):
    from cream.models.tokens import encode_pair

    prompts = ["Which gas do plants take in?", "Natalia sold 48 clips in April.", "Think step by step.", "Answer:"]
    good, bad = ["carbon dioxide", "Answer: 72", "48 + 24 = 72", "B"], ["oxygen", "neon", "helium neon", "D"]
    pairs = []
    for p, g, b in zip(prompts, good, bad):
        pairs.append({"prompt": p, "chosen": g, "rejected": b})
    seqs = [encode_pair(tok, x["prompt"], x[k], 64, 32) for x in pairs for k in ("chosen", "rejected")]
    return pairs, [s[0] for s in seqs], [s[1] for s in seqs]


def test_lora_starts_as_reference_and_merged_model_is_the_trained_one(tiny_dir, tmp_path):
    from hydra.utils import instantiate

    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import score_sequences
    from cream.records import PairRow
    from cream.training.datamodules import PreferenceDataModule
    from cream.training.dpo_module import DPOModule
    from cream.training.trainer import make_trainer, prepare_model, save_model

    cfg = compose(["trainer=cpu", LORA])
    tok = load_tokenizer(tiny_dir)
    pairs, seqs, starts = _pairs(tok)
    # what the reward step records: M_t's log-probs of every response (the DPO reference)
    reference = score_sequences(load_model(tiny_dir), seqs, starts, tok.pad_token_id, progress=False)
    for i, p in enumerate(pairs):
        p["ref_logp_chosen"], p["ref_logp_rejected"] = reference[2 * i], reference[2 * i + 1]

    model = prepare_model(cfg, load_model(tiny_dir))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    step0 = score_sequences(model, seqs, starts, tok.pad_token_id, progress=False)
    assert step0 == pytest.approx(reference, abs=1e-6)  # B = 0: the adapted model is M_t

    dm = PreferenceDataModule(tok, [PairRow.from_json(p) for p in pairs], [1.0] * len(pairs), batch_size=2,
                              max_length=64, max_prompt_length=32, seed=0)
    module = DPOModule(model, instantiate(cfg.loss), lr=5e-2, total_steps=dm.steps(3))
    trainer = make_trainer(cfg, tmp_path / "dpo", max_epochs=3)
    trainer.fit(module, datamodule=dm)
    trained = score_sequences(model, seqs, starts, tok.pad_token_id, progress=False)
    assert max(abs(a - b) for a, b in zip(trained, reference)) > 1e-3  # the adapters learned something

    save_model(trainer, model, tok, tmp_path / "model")
    saved = load_model(tmp_path / "model")
    assert not any("lora" in n for n, _ in saved.named_parameters())  # full weights, no adapters
    merged = score_sequences(saved, seqs, starts, tok.pad_token_id, progress=False)
    assert merged == pytest.approx(trained, abs=1e-4)
    # only the adapted projections changed
    base = dict(load_model(tiny_dir).named_parameters())
    changed = {n for n, p in saved.named_parameters() if not torch.equal(p, base[n])}
    assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)


def test_lora_is_recorded_by_training_stages_only_when_set():
    from cream.pipeline import Context, plan

    for overrides, want in (([], False), ([LORA], True)):
        stages = {s.name: s for s in plan(Context(compose(overrides), Path("run")))}
        assert ("model.lora" in stages["sft"].config) is want and ("model.lora" in stages["iter_1/dpo"].config) is want
        assert "model.lora" not in stages["iter_1/sample"].config


def test_lora_unknown_key():
    from cream.errors import ConfigError
    from cream.training.lora import config

    with pytest.raises(ConfigError, match="rank"):
        config({"rank": 8})


@pytest.mark.slow
def test_lora_runs_the_smoke_pipeline(tmp_path):
    """The whole smoke pipeline with LoRA: every saved M_k is full weights (no adapter tensors), the
    training stages record model.lora, and DPO moved the merged weights away from M_1."""
    import json

    from safetensors.torch import load_file

    from conftest import read_results, run_cli

    run_cli(["debug=smoke", LORA, f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    assert [r["model"] for r in read_results(tmp_path)] == ["M0", "M1", "M2"]
    m1 = load_file(str(tmp_path / "sft" / "model" / "model.safetensors"))
    m2 = load_file(str(tmp_path / "iter_1" / "dpo" / "model" / "model.safetensors"))
    assert m1.keys() == m2.keys() and not [k for k in m2 if "lora" in k]
    moved = {k for k in m2 if not torch.equal(m1[k], m2[k])}
    assert moved and all(("q_proj" in k or "v_proj" in k) for k in moved)  # only the adapted layers changed
    for stage in ("sft", "iter_1/dpo"):
        manifest = json.loads((tmp_path / stage / "manifest.json").read_text())
        assert manifest["config"]["model.lora"]["r"] == 4
