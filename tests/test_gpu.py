"""The GPU paths (marker ``gpu``; CI has no GPU and deselects them): trainer=gpu (bf16-mixed) runs the smoke
pipeline with every inference stage on the device, and bf16 scoring agrees with float32 on the CPU."""
from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import read_results, run_cli

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_smoke_pipeline_on_gpu_bf16(tmp_path):
    run_cli(["debug=smoke", "trainer=gpu", f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    assert [r["model"] for r in read_results(tmp_path)] == ["M0", "M1", "M2"]
    dpo = json.loads((tmp_path / "iter_1" / "dpo" / "manifest.json").read_text())
    assert dpo["summary"]["steps"] >= 1 and math.isfinite(dpo["summary"]["train/loss"])
    assert dpo["config"]["trainer.precision"] == "bf16-mixed"


def test_bf16_scores_match_float32(tiny_dir):
    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import score_sequences
    from cream.models.tokens import encode_pair

    tok = load_tokenizer(tiny_dir)
    enc = [encode_pair(tok, f"Question {i}: which gas do plants take in?\n", "carbon dioxide" + " yes" * i, 128, 96)
           for i in range(8)]
    seqs, starts = [e[0] for e in enc], [e[1] for e in enc]
    cpu = score_sequences(load_model(tiny_dir), seqs, starts, tok.pad_token_id, progress=False)
    gpu = score_sequences(load_model(tiny_dir, "bfloat16").cuda(), seqs, starts, tok.pad_token_id, progress=False)
    for a, b in zip(cpu, gpu):
        assert abs(a - b) <= 0.02 * abs(a) + 0.5, (a, b)  # bf16 keeps ~3 significant digits per token
