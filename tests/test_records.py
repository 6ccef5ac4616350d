"""The typed rows of the iteration's files: round trips, older run dirs, bad rows named by file and line."""
import json

import pytest

from cream import artifacts
from cream.errors import ArtifactError
from cream.records import ConsistencyRow, PairRow, RewardRow, SampleRow, read_rows, write_rows


def test_rows_round_trip_through_their_files_with_the_keys_in_order(tmp_path):
    sample = SampleRow(prompt_id="p", benchmark="gsm8k", instruction="Q?", prompt="<q>", responses=["a", "b"],
                       finished=[True, False])
    reward = RewardRow("p", [1.0, None], [0.5, 0.25], [-3.0, -4.0], [2, 3], {"judge_total": 4, "prev_judge_total": 2})
    pair = PairRow(prompt_id="p", prompt="<q>", chosen="a", rejected="b", chosen_index=0, rejected_index=1,
                   reward_chosen=1.0, reward_rejected=0.0, ref_logp_chosen=-3.0, ref_logp_rejected=-4.0, c=0.75)
    for name, row in [("s", sample), ("r", reward), ("p", pair)]:
        write_rows(tmp_path / f"{name}.jsonl", [row, row])
        assert read_rows(tmp_path / f"{name}.jsonl", type(row)) == [row, row]
    assert list(artifacts.read_jsonl(tmp_path / "r.jsonl")[0]) == [
        "prompt_id", "reward", "prev_reward", "judge_total", "prev_judge_total", "ref_logp", "n_tokens"]
    assert list(artifacts.read_jsonl(tmp_path / "s.jsonl")[0]) == [
        "prompt_id", "benchmark", "instruction", "prompt", "responses", "finished"]


def test_an_older_rewards_file_with_policy_logp_is_read_as_ref_logp(tmp_path):
    f = tmp_path / "rewards.jsonl"
    f.write_text(json.dumps({"prompt_id": "p", "reward": [1, 2], "prev_reward": [2, 1], "base_logp": [0, 0],
                             "policy_logp": [-1.5, -2.5], "n_tokens": [3, 4]}) + "\n")
    (row,) = read_rows(f, RewardRow)
    assert row.ref_logp == [-1.5, -2.5] and row.columns == {"base_logp": [0, 0]}
    assert row.scored() == ([1, 2], [2, 1])


def test_scored_keeps_the_responses_both_models_scored():
    row = RewardRow("p", [1.0, None, 3.0, 4.0], [0.0, 1.0, None, 2.0], [0.0] * 4)
    assert row.scored() == ([1.0, 4.0], [0.0, 2.0])


@pytest.mark.parametrize("line, match", [
    ({"prompt_id": "p", "reward": [1.0], "prev_reward": [1.0]},
     r"rewards\.jsonl:2: a rewards\.jsonl row needs ref_logp"),
    ({"prompt_id": "p", "reward": [1.0, 2.0], "prev_reward": [1.0], "ref_logp": [0, 0]},
     r"rewards\.jsonl:2: .*one entry per response.*prev_reward=1"),
    ({"prompt_id": "p", "reward": 1.0, "prev_reward": [1.0], "ref_logp": [0]},
     r"rewards\.jsonl:2: .*reward must be a list"),
    ([1, 2], r"rewards\.jsonl:2: expected a JSON object"),
])
def test_a_bad_row_names_the_file_and_line(tmp_path, line, match):
    f = tmp_path / "rewards.jsonl"
    good = {"prompt_id": "q", "reward": [1.0], "prev_reward": [1.0], "ref_logp": [0.0]}
    f.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(ArtifactError, match=match):
        read_rows(f, RewardRow)


def test_a_pair_without_reference_logps_is_refused_with_the_fix(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"prompt_id": "p", "prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(ArtifactError,
                       match=r"pairs\.jsonl:1: .*needs ref_logp_chosen, ref_logp_rejected.*redo its stage"):
        read_rows(f, PairRow)


def test_consistency_rows_carry_the_measures_own_statistic():
    assert ConsistencyRow.of("p", 0.75, "tau").to_json() == {"prompt_id": "p", "c": 0.75, "tau": 0.5, "defined": True}
    assert ConsistencyRow.of("p", 0.25, "rho").to_json() == {"prompt_id": "p", "c": 0.25, "rho": -0.5, "defined": True}
    assert ConsistencyRow.of("p", 1.0, None).to_json() == {"prompt_id": "p", "c": 1.0, "defined": True}
    assert ConsistencyRow.of("p", None, "tau").to_json() == {"prompt_id": "p", "c": None, "tau": None, "defined": False}
    back = ConsistencyRow.from_json({"prompt_id": "p", "c": 0.25, "rho": -0.5, "defined": True})
    assert back == ConsistencyRow("p", 0.25, "rho", -0.5)
