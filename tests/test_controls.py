"""The controls (reward section, regularizer.min_c, dpo.rpo_alpha): their checks, what the stages record, and
smoke runs with every switch on whose artifacts are checked against the formulas."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import compose, read_results, run_cli
from cream.config import validate_config
from cream.errors import ConfigError
from cream.pipeline import plan
from cream.report.diagnostics import DIAGNOSTICS
from cream.stages.context import Context


@pytest.mark.parametrize("override, message", [
    ("reward.length=sqrt", "reward.length='sqrt': must be none, per_token or penalty"),
    ("reward.length_alpha=-0.1", "reward.length_alpha=-0.1: must be >= 0"),
    ("reward.length_alpha_rule=grid", "reward.length_alpha_rule='grid': must be fixed or balance"),
    ("reward.first_consistency=none", "reward.first_consistency='none': must be official, same_scale or skip"),
    ("dpo.rpo_alpha=-1", "dpo.rpo_alpha=-1.0: must be >= 0"),
    ("regularizer.min_c=1.5", "regularizer.min_c=1.5: must lie in [0, 1]"),
    ("dpo.micro_batch_size=3", "dpo.micro_batch_size=3: must divide dpo.batch_size=16"),
    ("dpo.micro_batch_size=0", "dpo.micro_batch_size=0: must divide dpo.batch_size=16"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        validate_config(compose([override]))
    assert str(e.value).startswith(message), str(e.value)


def test_per_token_only_for_a_summed_reward():
    validate_config(compose(["reward.length=per_token"]))
    with pytest.raises(ConfigError, match="reward.length='per_token': per_token divides a reward summed"):
        validate_config(compose(["rewarder=judge", "reward.length=per_token"]))
    validate_config(compose(["rewarder=judge", "reward.length=penalty", "reward.length_alpha=0.01"]))


def _configs(overrides):
    return {s.name: s.config for s in plan(Context(compose(["pipeline.iterations=2", *overrides]), Path("run")))}


def test_stages_record_the_controls_only_when_on():
    off = _configs([])
    for name, config in off.items():  # run dirs made before the controls keep their stage configs
        assert not any(k.startswith("reward.") for k in config), name
        assert not {"rpo_alpha", "micro_batch_size"} & set(config.get("dpo") or {}), name
        assert "min_c" not in (config.get("regularizer") or {}), name
    on = _configs(["reward.length=penalty", "reward.drop_truncated=true", "reward.first_consistency=skip",
                   "regularizer.min_c=0.5", "dpo.rpo_alpha=1.0", "dpo.micro_batch_size=4"])
    assert on["iter_1/dpo"]["dpo"]["micro_batch_size"] == 4
    assert on["iter_1/reward"]["reward.length"] == "penalty" and on["iter_2/reward"]["reward.drop_truncated"] is True
    assert "reward.length_alpha" not in on["iter_1/reward"]  # still at its default
    assert on["iter_1/dpo"]["reward.first_consistency"] == "skip" and "reward.first_consistency" not in on["iter_2/dpo"]
    assert on["iter_1/dpo"]["dpo"]["rpo_alpha"] == 1.0 and on["iter_2/dpo"]["regularizer"]["min_c"] == 0.5
    same = _configs(["reward.first_consistency=same_scale"])
    assert same["iter_1/reward"]["reward.first_consistency"] == "same_scale"
    assert "reward.first_consistency" not in same["iter_2/reward"]
    assert "reward.first_consistency" not in same["iter_1/dpo"]


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_smoke_with_every_switch_on(tmp_path):
    """Length penalty with DICE's balance, truncated responses dropped, C = 1 at t = 1, min_c, rpo_alpha."""
    run = tmp_path / "run"
    run_cli(["debug=smoke", "reward.length=penalty", "reward.length_alpha_rule=balance", "reward.drop_truncated=true",
             "reward.first_consistency=skip", "regularizer.min_c=0.5", "dpo.rpo_alpha=1.0", f"hydra.run.dir={run}"],
            cwd=tmp_path)
    rows = read_results(run)
    assert set(rows[2]["diagnostics"]) == set(DIAGNOSTICS) and rows[0]["diagnostics"] is None
    samples = _jsonl(run / "iter_1/sample/samples.jsonl")
    rewards = _jsonl(run / "iter_1/reward/rewards.jsonl")
    reward = json.loads((run / "iter_1/reward/manifest.json").read_text())["summary"]
    cut = sum(not f for s in samples for f in s["finished"])
    assert reward["n_truncated_dropped"] == cut > 0
    assert reward["n_prompts_lt2"] == sum(sum(s["finished"]) < 2 for s in samples)
    alpha = reward["length_alpha"]
    for s, r in zip(samples, rewards):
        for f, x, raw, n in zip(s["finished"], r["reward"], r["raw_reward"], r["n_tokens"]):
            assert x is None if not f else x == pytest.approx(raw - alpha * n)
    pairs = _jsonl(run / "iter_1/pairs/pairs.jsonl")
    by_id = {r["prompt_id"]: r for r in rewards}
    lengths = [(by_id[p["prompt_id"]]["n_tokens"][p["chosen_index"]],
                by_id[p["prompt_id"]]["n_tokens"][p["rejected_index"]])
               for p in pairs]
    diag = rows[2]["diagnostics"]
    assert diag["chosen_length"] == pytest.approx(sum(a for a, _ in lengths) / len(lengths))
    assert diag["chosen_length"] <= diag["rejected_length"]  # the balance rule's promise
    assert diag["truncation_rate"] == pytest.approx(cut / sum(len(s["finished"]) for s in samples))
    dpo = json.loads((run / "iter_1/dpo/manifest.json").read_text())["summary"]
    assert dpo["mean_weight"] == 1.0 and dpo["train/nll_loss"] > 0  # C = 1 at t = 1; the NLL term logged
    metrics = (run / "metrics.csv").read_text()
    assert "iter/diagnostics/truncation_rate" in metrics and "iter/reward/length_alpha" in metrics


@pytest.mark.slow
def test_smoke_per_token_same_scale_and_floor(tmp_path):
    """Per-token reward, M0 ranked on the reward's scale at t = 1, per-pair C floored at 0.5."""
    run = tmp_path / "run"
    run_cli(["debug=smoke", "reward.length=per_token", "reward.first_consistency=same_scale", "regularizer=cream_dyn",
             "regularizer.min_c=0.5", f"hydra.run.dir={run}"], cwd=tmp_path)
    rewards = _jsonl(run / "iter_1/reward/rewards.jsonl")
    for r in rewards:
        assert r["reward"] == pytest.approx([x / n for x, n in zip(r["raw_reward"], r["n_tokens"])])
        assert r["prev_reward"] == pytest.approx([b / n for b, n in zip(r["base_logp"], r["n_tokens"])])
    pairs = _jsonl(run / "iter_1/pairs/pairs.jsonl")
    mean_c = json.loads((run / "iter_1/consistency/summary.json").read_text())["mean"]
    weights = [max(p["c"] if p["c"] is not None else mean_c, 0.5) for p in pairs]
    dpo = json.loads((run / "iter_1/dpo/manifest.json").read_text())["summary"]
    assert dpo["mean_weight"] == pytest.approx(sum(weights) / len(weights)) and min(weights) >= 0.5
    assert set(read_results(run)[2]["diagnostics"]) == set(DIAGNOSTICS)


def test_no_pairs_left_after_dropping_truncated_responses_says_why(tmp_path):
    from cream.errors import NoPairsError
    from cream.pipeline import Context
    from cream.stages import pairs

    it = tmp_path / "iter_1"
    for sub in ("sample", "reward", "consistency", "pairs"):
        (it / sub).mkdir(parents=True)
    (it / "sample" / "samples.jsonl").write_text(json.dumps(
        {"prompt_id": "p", "prompt": "q", "responses": ["a", "b"], "finished": [False, True]}) + "\n")
    (it / "reward" / "rewards.jsonl").write_text(json.dumps(
        {"prompt_id": "p", "reward": [None, 1.0], "prev_reward": [None, 0.5], "ref_logp": [0, 0],
         "n_tokens": [3, 2]}) + "\n")
    (it / "reward" / "manifest.json").write_text(json.dumps({"summary": {"n_truncated_dropped": 1,
                                                                         "n_prompts_lt2": 1}}))
    (it / "consistency" / "consistency.jsonl").write_text(json.dumps({"prompt_id": "p", "c": None}) + "\n")
    with pytest.raises(NoPairsError,
                       match=r"reward.drop_truncated=true dropped 1 responses cut at sampling.max_new_tokens "
                             r"and left 1 prompts with fewer than 2"):
        pairs.run(Context(compose(["reward.drop_truncated=true"]), tmp_path), it / "pairs", t=1)
    assert not (it / "pairs" / "pairs.jsonl").exists()


def test_drop_truncated_refuses_samples_without_finished_flags(tmp_path):
    """A samples file without ``finished`` (an older version's, or hand-made) would drop nothing: the reward stage
    names the file, line and prompt before it scores anything, and writes nothing."""
    from cream.errors import ArtifactError
    from cream.stages import reward

    it = tmp_path / "iter_1"
    (it / "sample").mkdir(parents=True)
    (it / "reward").mkdir()
    rows = [{"prompt_id": "p1", "prompt": "q", "responses": ["a", "b"], "finished": [False, True]},
            {"prompt_id": "p2", "prompt": "q", "responses": ["a", "b"]}]
    (it / "sample" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ArtifactError, match=r"samples.jsonl, line 2 \(prompt p2\): no `finished` flags"):
        reward.run(Context(compose(["reward.drop_truncated=true"]), tmp_path), it / "reward", t=1)
    assert list((it / "reward").iterdir()) == []
