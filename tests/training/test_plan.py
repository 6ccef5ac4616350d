"""plan=true: the plan's numbers against a hand calculation for a small config; the paper layouts."""
from __future__ import annotations

import pytest

from conftest import compose, run_cli

SMALL = ["model.tiny.vocab_size=100", "model.tiny.hidden_size=8", "model.tiny.intermediate_size=16",
         "model.tiny.num_layers=2",
         "model.tiny.num_heads=2", "sft.batch_size=2", "dpo.batch_size=1", "model.max_length=10",
         "model.max_prompt_length=6",
         "sampling.max_new_tokens=3", "sampling.n=4", "sampling.batch_size=2", "debug=smoke"]


def test_small_config_by_hand():
    from cream.training.plan import make_plan

    plan = make_plan(compose(SMALL))
    # parameters: embeddings V h = 800 (tied head); a layer: q, k, v, o 4 h^2 = 256, MLP 3 h i = 384, 2 norms 2h = 16
    assert (plan.params, plan.trainable) == (800 + 2 * 656 + 8, 2120)
    dpo = plan.stages["dpo"]
    # DPO: 2 rows (chosen, rejected) of min(10, 6 + 3 + 1) = 10 tokens; 2 x (3 + 1) scored tokens
    assert (dpo["rows"], dpo["seq"], dpo["scored"]) == (2, 10, 8)
    m = dpo["memory"]
    # 32-true on one device: b_p = b_c = 4
    assert (m["weights"], m["compute"], m["gradients"], m["optimizer"]) == (8480, 0, 8480, 16960)
    # a layer, per token: norms 4h x 4 = 128; (6h + 4i + s) x 4 = (48 + 64 + 10) x 4 = 488; log-sum-exp 4H = 8: 624
    layer = 20 * 624
    # head: 8 scored tokens x (12 V + 4h) = 8 x 1232; final norm 2 x 20 tokens x 4h = 1280
    assert m["activations"] == 2 * layer + 8 * 1232 + 1280
    # checkpointing: the 2 layers' inputs (20 tokens x 4h each) + one layer recomputed + head
    assert m["activations_ckpt"] == 2 * 20 * 32 + layer + 8 * 1232 + 1280
    # peak: weights + optimizer + max(gradients, activations + V h 4 (the tied head's gradient))
    assert m["peak"] == 8480 + 16960 + (2 * layer + 8 * 1232 + 1280 + 3200)
    # DPO's head in chunks of N_c positions: 12 V bytes for N_c of the 8, the head's input 4h for all 8
    from cream.training.plan import layout, model_arch, training_memory

    cfg = compose(SMALL)
    args = (model_arch(cfg)[0], plan.params, plan.trainable, layout(cfg), 2, 10, 8)
    chunked = training_memory(*args, at_once=3)
    assert m["activations"] - chunked["activations"] == (8 - 3) * 1200
    assert training_memory(*args, at_once=100) == training_memory(*args) == m
    sft = plan.stages["sft"]
    assert (sft["rows"], sft["seq"], sft["scored"]) == (2, 10, 20)  # SFT: every position gets logits
    # steps: smoke seed set 32 examples, SFT 2 epochs of batch 2: 32; DPO at most 16 prompts, batch 1: 16
    assert plan.data["seed"] == 32 and plan.data["prompts"] == [16]
    assert plan.steps["sft"] == 32 and plan.steps["dpo"] == [16]
    # tokens sampled: 16 prompts x n 4 x 3 new tokens; KV cache: 2 L kv_dim 4 B x 2 prompts x 4 x (6 + 3) tokens
    assert plan.sampling["tokens"] == [192]
    assert plan.sampling["kv_cache"] == 2 * 2 * 8 * 4 * 2 * 4 * 9


def test_fsdp_mixed_by_hand():
    """FSDP full shard on 4 ranks, bf16-mixed: float32 masters sharded, bf16 gathers of root + 2 layers."""
    from cream.training.plan import make_plan

    plan = make_plan(compose([*SMALL, "trainer=fsdp", "trainer.devices=4", "trainer.accelerator=cpu"]), overhead_gb=0)
    m = plan.stages["dpo"]["memory"]
    assert (m["weights"], m["gradients"], m["optimizer"]) == (2120, 2120, 4240)  # 16 P / 4 in all
    assert m["compute"] == (808 + 2 * 656) * 2  # root (embeddings + final norm) and 2 layers in bf16
    # a layer, per token: norms 4h x 4 = 128; (6h + 4i + 3h autocast copies + s) x 2 = (48 + 64 + 24 + 10) x 2; 4H
    layer = 20 * (128 + 292 + 8)
    assert m["activations"] == 2 * layer + 8 * (12 * 100 + 8 * 2) + 2 * 20 * 8 * 4
    assert plan.steps["global_batch"] == {"sft": 8, "dpo": 4} and plan.steps["dpo"] == [4]  # 16 prompts / (1 x 4 ranks)


def test_lora_counts_only_the_adapters():
    from cream.training.plan import make_plan

    plan = make_plan(compose([*SMALL, "model.lora={r: 2, target_modules: [q_proj, v_proj]}"]))
    # r (in + out) per adapted matrix: 2 x (8 + 8) x 2 matrices x 2 layers
    assert plan.trainable == 128 and plan.params == 2120 + 128
    m = plan.stages["dpo"]["memory"]
    assert (m["weights"], m["gradients"], m["optimizer"]) == (2120 * 4 + 128 * 4, 128 * 4, 2 * 128 * 4)


def test_paper_models_from_the_table():
    from cream.training.plan import make_plan

    p3 = make_plan(compose(["experiment=cream_llama3_8b", "trainer=fsdp", "trainer.devices=8"]))
    p2 = make_plan(compose(["experiment=cream_llama2_7b", "trainer=fsdp", "trainer.devices=8"]))
    assert p3.params == 8_030_261_248 and p2.params == 6_738_415_616  # the published sizes
    assert p3.stages["dpo"]["memory"]["optimizer"] == 2 * 4 * 8_030_261_248 / 8


def test_unknown_model_is_a_clear_error():
    from cream.errors import PlanError
    from cream.training.plan import make_plan

    with pytest.raises(PlanError, match="model.name_or_path='org/unknown'.*config.json"):
        make_plan(compose(["model=local", "model.name_or_path=org/unknown"]))


def test_cli_plan_prints_and_runs_nothing(tmp_path):
    proc = run_cli(["experiment=cream_llama3_8b", "trainer=fsdp", "trainer.devices=8",
                    "trainer.accumulate_grad_batches=1", "trainer.cream.activation_checkpointing=true", "plan=true",
                    f"hydra.run.dir={tmp_path / 'run'}"],
                   cwd=tmp_path)
    out = proc.stdout
    assert "parameters   8.030 B" in out and "FSDP FULL_SHARD on 8 ranks" in out
    assert "global batch sft 32, dpo 32" in out and "fits         yes" in out
    assert not (tmp_path / "run" / "base").exists()  # nothing ran


def test_local_folder_params_match_the_loaded_model(tiny_dir):
    """A local folder: its config.json on the meta device counts exactly the parameters from_pretrained loads."""
    from cream.models.loading import load_model
    from cream.training.plan import make_plan

    plan = make_plan(compose(["model=local", f"model.name_or_path={tiny_dir}", "debug=smoke"]))
    model = load_model(tiny_dir)
    assert plan.params == sum(p.numel() for p in model.parameters())
    assert plan.arch.tied and plan.arch.vocab_size == model.config.vocab_size
