"""LLM-as-a-Judge: the prompt, score parsing, aggregation, and a JudgeRewarder run with a scripted model."""
from __future__ import annotations

import pytest

from cream.rewarders.judge import TEMPLATE, aggregate, parse_score, render_judge_prompt
from cream.stages.reward import reward_rows


def test_template_is_the_additive_5_point_prompt():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.startswith("Review the user's question and the corresponding response using the additive 5-point "
                           "scoring system")
    for phrase in ("Add 1 point if the response is relevant", "Add another point", "Award a third point",
                   "Grant a fourth point", "Bestow a fifth point",
                   "Briefly justify your total score, up to 100 words."):
        assert phrase in text
    assert 'Conclude with the score using the format: "Score: <total points>"' in text
    assert text.count("{instruction}") == 1 and text.count("{response}") == 1


def test_prompt_renders_instruction_and_response_in_place():
    instruction = "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide"
    response = "Plants take in carbon dioxide.\nAnswer: B"
    out = render_judge_prompt(f"  {instruction}\n", f"\n{response}  ")
    assert "{instruction}" not in out and "{response}" not in out
    assert f"User: {instruction}\n\n<response>{response}</response>" in out
    assert (out.index("Bestow a fifth point") < out.index(instruction) < out.index(response)
            < out.index('"Score: <total points>"'))


def test_custom_template():
    assert render_judge_prompt("Q?", "R.", template="[{instruction}|{response}]") == "[Q?|R.]"


@pytest.mark.parametrize("text, expected", [
    ("The response is relevant and answers the question.\nScore: 4", 4.0),
    ("Score: 5", 5.0),
    ("score: 0", 0.0),
    ("SCORE:3", 3.0),
    ("Score: 2\n...on reflection it deserves more.\nScore: 3", 3.0),          # the last one wins
    ("First pass Score: 1. Second pass Score: 4. Final Score: 2", 2.0),
    ("It is helpful and well organized. Score: 4/5", 4.0),
    ("Score: 3 out of 5", 3.0),
    ("The response earns 4 points.", None),                                 # not stated as the total
    ("This gets 1 point for relevance.", None),                             # a criterion, never the score
    ("**Score: 5**", 5.0),
    ("Score: **4**", 4.0),
    ("Total score of 3.", 3.0),
    ("The score is 2.", 2.0),
    ("Score: 3.5", 3.5),
    ("Score: 4.0", 4.0),
    ("I would rate it 4/5.", 4.0),
    ("The answer is correct. Answer: B", None),                              # no score at all
    ("", None),
    ("Score: excellent", None),
    ("Score: 7", None),                                                     # out of range
    ("Score: -1", None),
    ("Score: 10/10", None),                                                 # not out of 5
    ("Score: 8 out of 10", None),
    ("It deserves 6 points.", None),
    ("Score: 4\nScore: 9", None),                                           # the last one wins, and is invalid
    # the additive prompt's per-criterion lines and a closing total, no "Score:" line: the total, never a criterion
    ("- Relevant to the question (1 point): yes\n- Addresses a substantial portion (1 point): yes\n"
     "- Answers the basic elements (1 point): yes\n- Clearly written from an AI assistant's perspective (0 points): "
     "no\n- Impeccably tailored (0 points): no\nTotal points: 3", 3.0),
    ("Relevance: 1 point\nUsefulness: 0 points\nClarity: 0 points", None),    # criteria only: nothing
    ("Total: 4 points", 4.0),
    ("It earns a total of 2 points.", 2.0),
    ("**Total points:** 5", 5.0),
    ("Total points: 3\n(0 points for expert knowledge)", 3.0),              # a criterion after the total is not read
    ("Score: 4\nTotal points: 2", 2.0),                                      # the last statement of the total
    ("Total points: 6", None),
])
def test_parse_score(text, expected):
    assert parse_score(text) == expected


def test_aggregate_means_the_valid_scores_and_counts_failures():
    mean, failures, scores = aggregate(["Score: 4", "no idea", "Score: 2/5", "Score: 10/10"])
    assert mean == 3.0 and failures == 2 and scores == [4.0, None, 2.0, None]
    assert aggregate(["Score: 5"]) == (5.0, 0, [5.0])
    assert aggregate(["nothing", "Score: 7"]) == (None, 2, [None, None])
    mean, failures, _ = aggregate(["Score: 1", "Score: 2", "Score: 4"])
    assert mean == pytest.approx(7 / 3) and failures == 0


# --------------------------------------------------------------------------- JudgeRewarder, scripted model

def _cfg():
    from omegaconf import OmegaConf

    return OmegaConf.create({"seed": 0, "model": {"dtype": "float32", "trust_remote_code": False, "max_length": 64},
                             "trainer": {"accelerator": "cpu"}})


def _inputs(samples):
    """The reward stage's inputs with models named "M0", "M1" (the scripted judge reads the name); M1's
    log-probs (the DPO reference the stage records for any rewarder) are stubbed."""
    from cream.records import SampleRow
    from cream.rewarders.base import RewardInputs

    inputs = RewardInputs(_cfg(), [SampleRow.from_json(s) for s in samples], ["M0", "M1"])
    inputs._logps[1] = [0.0] * sum(len(s["responses"]) for s in samples)
    inputs.__dict__["_encoded"] = ([[1]] * len(inputs._logps[1]), [0] * len(inputs._logps[1]), 0)
    return inputs


def _scripted(monkeypatch, script):
    """Patch the judge's model loading and generation: ``script(k, prompt)`` returns the k-sample judgments."""
    import cream.rewarders.base as base
    import cream.rewarders.judge as judge

    calls = {"n": 0}

    class Tok:
        chat_template = None

    def fake_generate(model, tok, prompts, *, n, **kw):
        calls["n"] += 1
        return [script(model, p)[:n] for p in prompts], 0

    monkeypatch.setattr(base, "load_tokenizer", lambda path, trc=False: Tok())
    monkeypatch.setattr(base, "load_model", lambda path, dtype, trc=False: path)
    monkeypatch.setattr(judge, "generate", fake_generate)
    return calls


def test_judge_rewarder_with_a_scripted_model(monkeypatch):
    from cream.rewarders.judge import JudgeRewarder

    def script(model, prompt):
        good = "<response>good" in prompt
        if model == "M1":
            return ["Relevant. Score: 5", "Score: 4"] if good else ["Score: 1", "garbled"]
        return ["Score: 3", "Score: 3"] if good else ["Score: 2", "Score: 7"]

    calls = _scripted(monkeypatch, script)
    samples = [{"prompt_id": "p", "prompt": "raw", "instruction": "Q?", "responses": ["good one", "bad one"]}]
    rows = [r.to_json() for r in reward_rows(JudgeRewarder(k=2, forced_score=False), _inputs(samples), 1)]
    assert calls["n"] == 2  # M1 and M0 each judge once (one batch of all responses)
    (row,) = rows
    assert row["reward"] == [4.5, 1.0] and row["prev_reward"] == [3.0, 2.0]
    assert row["judge_scores"] == [[5.0, 4.0], [1.0, None]]
    assert row["judge_failures"] == 1 and row["judge_total"] == 4 and row["prev_judge_failures"] == 1
    assert row["judge_forced"] == [None, None]


def test_judge_rewarder_unparsable_forced_or_unscored(monkeypatch):
    import cream.rewarders.judge as judge
    from cream.rewarders.judge import JudgeRewarder

    _scripted(monkeypatch, lambda model, p: ["Score: 4", "Score: 4"] if "<response>ok" in p else ["hmm", "no score"])
    samples = [{"prompt_id": "p", "prompt": "raw", "instruction": "Q?", "responses": ["ok", "lost"]}]
    (row,) = [r.to_json() for r in reward_rows(JudgeRewarder(k=2, forced_score=False), _inputs(samples), 1)]
    assert row["reward"] == [4.0, None] and row["judge_failures"] == 2

    seen = []

    def fake_expected(model, tok, prefixes, **kw):
        seen.extend(prefixes)
        return [2.25] * len(prefixes)

    monkeypatch.setattr(judge, "expected_scores", fake_expected)
    (row,) = [r.to_json() for r in reward_rows(JudgeRewarder(k=2, forced_score=True), _inputs(samples), 1)]
    assert row["reward"] == [4.0, 2.25] and row["judge_forced"] == [None, 2.25]
    assert row["judge_scores"] == [[4.0, 4.0], [None, None]] and row["judge_failures"] == 2  # still counted as failures
    assert len(seen) == 2  # the unparsable response, judged by M1 and by M0: its first judgment + "Score:"
    assert all("<response>lost</response>" in p and p.endswith("hmm\nScore:") for p in seen)


def test_expected_scores_reads_the_judges_distribution(tiny_dir):
    from cream.models.loading import load_model, load_tokenizer
    from cream.rewarders.judge import expected_scores

    tok, model = load_tokenizer(tiny_dir), load_model(tiny_dir)
    values = expected_scores(model, tok, ["Rate it.\nScore:", "Another one. Score:"], max_length=64)
    assert len(values) == 2 and all(0 <= v <= 5 for v in values) and values[0] != values[1]
