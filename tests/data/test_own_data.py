"""Your own data: prompts, a conversational seed set and eval sets from files; bad records stop with the
file, line and field; no silent sample data with a real model; sft.skip."""
from __future__ import annotations

import json

import pytest

from conftest import compose, read_results, run_cli
from cream.config import validate_config
from cream.data.benchmarks import load_benchmark
from cream.data.custom import load_conversations, load_eval_file, load_prompts
from cream.data.pool import eval_sets, seed_conversations
from cream.errors import ConfigError, DataError
from cream.evaluation.answers import is_correct


def _jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


U = lambda text: {"role": "user", "content": text}  # noqa: E731
A = lambda text: {"role": "assistant", "content": text}  # noqa: E731


def test_prompts_file_all_three_shapes(tmp_path):
    p = _jsonl(tmp_path / "mine.jsonl", [
        {"prompt": "Plain text?"},
        {"id": "x", "prompt": [{"role": "system", "content": "Be kind."}, U("Chat prompt?")]},
        "",  # blank lines are skipped
        {"messages": [U("First?"), A("One."), U("Second?"), A("Two.")]},  # turns after the last user turn dropped
    ])
    got = load_prompts(p)
    assert [x.id for x in got] == ["mine-0", "x", "mine-2"] and {x.source for x in got} == {"mine"}
    assert got[0].messages == (U("Plain text?"),)
    assert got[1].messages == ({"role": "system", "content": "Be kind."}, U("Chat prompt?"))
    assert got[2].messages == (U("First?"), A("One."), U("Second?"))


def test_prompts_from_a_datasets_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"prompt": "a?"}, {"prompt": "b?"}]).save_to_disk(str(tmp_path / "ds"))
    assert [x.messages[0]["content"] for x in load_prompts(tmp_path / "ds")] == ["a?", "b?"]
    datasets.DatasetDict({"test": datasets.Dataset.from_list([{"prompt": "a?"}])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"dd holds the splits \['test'\]; a `train` split"):
        load_prompts(tmp_path / "dd")


@pytest.mark.parametrize("record, match", [
    ('{"prompt": "ok"', r"p\.jsonl:2: malformed JSON line"),
    ({"text": "no prompt"}, r"p\.jsonl:2: missing field 'prompt' .* or 'messages'"),
    ({"prompt": ""}, r"p\.jsonl:2: field 'prompt': empty text"),
    ({"prompt": [U("q?"), A("a.")]}, r"p\.jsonl:2: field 'prompt': a prompt must end with a user turn"),
    ({"messages": [{"role": "bot", "content": "x"}]}, r"p\.jsonl:2: field 'messages\[0\]\.role': 'bot' is not one of"),
    ({"messages": [U("a"), U("b")]}, r"p\.jsonl:2: field 'messages\[1\]\.role': 'user' where 'assistant' is expected"),
    ({"messages": [{"role": "user"}]},
     r"p\.jsonl:2: field 'messages\[0\]': expected an object with 'role' and 'content'"),
    ({"messages": [U("q"), A("a")], "id": "p-0"}, r"p\.jsonl: field 'id': 'p-0' appears more than once"),
    ([1, 2], r"p\.jsonl:2: expected a JSON object"),
])
def test_bad_prompt_records(tmp_path, record, match):
    with pytest.raises(DataError, match=match):
        load_prompts(_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}, record]))


def test_seed_file(tmp_path):
    p = _jsonl(tmp_path / "seed.jsonl",
               [{"messages": [U("q1"), A("a1"), U("q2")]}, {"id": 7, "messages": [U("q"), A("a")]}])
    # the first conversation is cut after its last assistant turn
    assert load_conversations(p) == [{"id": "seed-0", "messages": [U("q1"), A("a1")]},
                                     {"id": "7", "messages": [U("q"), A("a")]}]
    cfg = compose(["data.seed.source=file", f"data.seed.path={p}", "data.seed.limit=1"])
    assert seed_conversations(cfg) == load_conversations(p)[:1]


@pytest.mark.parametrize("record, match", [
    ({"prompt": "q"}, r"s\.jsonl:2: missing field 'messages'"),
    ({"messages": [U("q")]}, r"s\.jsonl:2: field 'messages': no assistant turn"),
    ({"messages": [A("a")]}, r"s\.jsonl:2: field 'messages\[0\]\.role': 'assistant' where 'user' is expected"),
    ({"messages": [U("q"), A(5)]}, r"s\.jsonl:2: field 'messages\[1\]\.content': expected non-empty text"),
    ({"messages": []}, r"s\.jsonl:2: field 'messages': expected a non-empty list"),
])
def test_bad_seed_records(tmp_path, record, match):
    with pytest.raises(DataError, match=match):
        load_conversations(_jsonl(tmp_path / "s.jsonl", [{"messages": [U("q"), A("a")]}, record]))


def test_eval_file_multiple_choice_and_numeric(tmp_path):
    mc = _jsonl(tmp_path / "mc.jsonl", [
        {"question": "Colour of the sky?", "choices": ["green", "blue"], "answer": "B"},
        {"question": "Largest?", "choices": ["1", "3", "2"], "answer": "3", "id": "q2"},  # a choice's text
        {"question": "Smallest?", "choices": ["1", "3"], "answer": "A"},
    ])
    num = _jsonl(tmp_path / "num.jsonl",
                 [{"question": "2+2?", "answer": 4}, {"question": "Half of 3?", "answer": "1.5"}])
    ex = load_eval_file("mine", mc) + load_eval_file("sums", num)
    assert [(e.id, e.benchmark, e.labels, e.answer) for e in ex] == [
        ("mine-0", "mine", ("A", "B"), "B"), ("q2", "mine", ("A", "B", "C"), "B"), ("mine-2", "mine", ("A", "B"), "A"),
        ("sums-0", "sums", None, "4"), ("sums-1", "sums", None, "1.5")]
    assert is_correct(ex[0], "The sky is blue.\nAnswer: B") and not is_correct(ex[0], "Answer: A")
    assert is_correct(ex[3], "So 4.\nAnswer: 4") and is_correct(ex[4], "Answer: 1.5")
    cfg = compose([f"data.eval_files={{mine: {mc}, sums: {num}}}", "eval.limit=2"])
    sets = eval_sets(cfg)
    assert list(sets) == ["arc_easy", "mine", "sums"] and [e.id for e in sets["mine"]] == ["mine-0", "q2"]
    assert [e.id for e in sets["arc_easy"]] == [e.id for e in load_benchmark("arc_easy", "test")[:2]]


def test_an_eval_file_mixing_kinds_is_refused_at_the_config_check(tmp_path):
    """Log-likelihood scoring is for multiple choice only: a mixed file would be scored on part of its records (or
    crash at eval/M0), so it is refused before anything runs, naming the file and line of the first odd record."""
    p = _jsonl(tmp_path / "e.jsonl", [{"question": "Sky?", "choices": ["green", "blue"], "answer": "B"},
                                      {"question": "2+2?", "answer": 4}])
    with pytest.raises(DataError, match=rf"{p}:2: a numeric \(no 'choices'\) record in data.eval_files.mine"):
        validate_config(compose([f"data.eval_files={{mine: {p}}}"]))


@pytest.mark.parametrize("overrides, selector", [
    (["data.prompts={f}"], "data.pool=file"),
    (["data.pool=paper", "data.prompts={f}"], "data.pool=file"),
    (["data.seed.path={f}"], "data.seed.source=file"),
])
def test_a_path_its_selector_does_not_read_is_refused_before_anything_is_written(tmp_path, overrides, selector):
    f = _jsonl(tmp_path / "mine.jsonl", [{"prompt": "Hi?"}])
    from cream.config import check

    with pytest.raises(ConfigError, match=f"does not read it: add {selector} to use it"):
        check(compose([o.format(f=f) for o in overrides]))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = run_cli(["debug=smoke", *(o.format(f=f) for o in overrides)], cwd=cwd, check=False)
    assert proc.returncode == 2 and selector in proc.stderr and "Traceback" not in proc.stderr
    assert list(cwd.iterdir()) == []  # exit 2 before the run dir


def test_oasst_reads_its_seed_path(tmp_path):
    from cream.config import check_data_selectors

    check_data_selectors(compose(["data.seed.source=oasst", f"data.seed.path={tmp_path}"]))  # no error: it is read


@pytest.mark.parametrize("record, match", [
    ({"choices": ["a", "b"], "answer": "A"}, r"e\.jsonl:2: field 'question': missing"),
    ({"question": "q", "choices": ["a", "b"]}, r"e\.jsonl:2: missing field 'answer'"),
    ({"question": "q", "choices": ["a"], "answer": "A"}, r"e\.jsonl:2: field 'choices': expected a list of 2-5"),
    ({"question": "q", "choices": ["a", "b"], "answer": "C"},
     r"e\.jsonl:2: field 'answer': 'C' is neither a letter A/B"),
    ({"question": "q", "answer": "four"}, r"e\.jsonl:2: field 'answer': 'four' is not a number"),
    ({"question": "q", "answer": True}, r"e\.jsonl:2: field 'answer': expected a number"),
])
def test_bad_eval_records(tmp_path, record, match):
    with pytest.raises(DataError, match=match):
        load_eval_file("e", _jsonl(tmp_path / "e.jsonl", [{"question": "q", "answer": 1}, record]))


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(DataError, match=r"data\.prompts: .*nope\.jsonl does not exist"):
        load_prompts(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- config checks

REAL = ["model=local", "model.name_or_path=/some/model"]


def test_real_model_without_data_dir_stops_naming_data_dir(tmp_path):
    with pytest.raises(ConfigError,
                       match=r"data\.dir=None: model\.name_or_path='/some/model'.*data\.allow_sample=true"):
        validate_config(compose(REAL))
    with pytest.raises(ConfigError, match=r"data\.dir"):
        validate_config(compose(["experiment=cream_llama3_8b"]))
    validate_config(compose([*REAL, "data.allow_sample=true"]))  # on purpose
    validate_config(compose([*REAL, "data.dir=/full/releases"]))
    validate_config(compose([]))  # the tiny default keeps the shipped sample
    # nothing read from benchmark files: own prompts, seed set and eval sets only
    p = _jsonl(tmp_path / "p.jsonl", [{"prompt": "q?"}])
    s = _jsonl(tmp_path / "s.jsonl", [{"messages": [U("q?"), A("a.")]}])
    e = _jsonl(tmp_path / "e.jsonl", [{"question": "q?", "answer": 1}])
    validate_config(compose([*REAL, "data.pool=file", f"data.prompts={p}", "data.seed.source=file",
                             f"data.seed.path={s}", "eval.benchmarks=[]", f"data.eval_files={{mine: {e}}}"]))


def test_own_files_are_checked_before_anything_runs(tmp_path):
    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine"}, {"text": "no prompt"}])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: missing field 'prompt'"):
        validate_config(compose(["data.pool=file", f"data.prompts={bad}"]))
    with pytest.raises(DataError, match=r"bad\.jsonl:1: missing field 'messages'"):
        validate_config(compose(["data.seed.source=file", f"data.seed.path={bad}"]))
    with pytest.raises(DataError, match=r"bad\.jsonl:1: field 'question': missing"):
        validate_config(compose([f"data.eval_files={{mine: {bad}}}"]))
    with pytest.raises(DataError, match=r"nope.*does not exist.*oasst1"):
        validate_config(compose(["data.seed.source=oasst", f"data.seed.path={tmp_path / 'nope'}"]))


@pytest.mark.parametrize("override, key", [
    (["data.pool=file"], "data.prompts"),
    (["data.seed.source=file"], "data.seed.path"),
    (["data.seed.source=oasst"], "data.seed.path"),
    (["data.pool=paper", "data.n_prompts=0"], "data.n_prompts"),
    (["data.n_prompts=null"], "data.n_prompts"),
    (["data.eval_files={arc_easy: e.jsonl}"], "data.eval_files.arc_easy"),
    (["eval.benchmarks=[]"], "eval.benchmarks"),                         # nothing to evaluate
    (["sft.skip=true"], "sft.skip"),                                      # implicit reward: r_1 = 0 everywhere
    (["sft.skip=true", "rewarder=self_reward_head"], "sft.skip"),
])
def test_bad_data_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(compose(override))


def test_sft_skip_accepts_epochs_zero_with_a_judge():
    validate_config(compose(["sft.skip=true", "sft.epochs=0", "rewarder=judge"]))


# --------------------------------------------------------------------------- end to end (slow)

@pytest.mark.slow
def test_smoke_pipeline_on_own_prompts_and_seed_set(tmp_path):
    prompts = _jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Which number comes after {i}?"} for i in range(10)]
                     + [{"id": "chat", "messages": [U("Name a colour."), A("Blue."), U("Another one?")]}])
    seed = _jsonl(tmp_path / "seed.jsonl", [{"messages": [U(f"What is {i} plus 1?"), A(f"It is {i + 1}."),
                                                          U("And plus 2?"), A(f"It is {i + 2}.")]} for i in range(12)])
    evalf = _jsonl(tmp_path / "eval.jsonl", [{"question": f"What is {i} plus 1?", "answer": i + 1} for i in range(6)])
    run_dir = tmp_path / "run"
    run_cli(["debug=smoke", "data.pool=file", f"data.prompts={prompts}", "data.seed.source=file",
             f"data.seed.path={seed}", "eval.benchmarks=[]", f"data.eval_files={{sums: {evalf}}}",
             f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    rows = read_results(run_dir)
    assert [r["model"] for r in rows] == ["M0", "M1", "M2"] and all(set(r["eval"]) == {"sums"} for r in rows)
    sft = json.loads((run_dir / "sft" / "manifest.json").read_text())["summary"]
    assert sft["n_examples"] == 12 and sft["seed_source"] == "file" and sft["steps"] == 2  # 12 / batch 16, 2 epochs
    samples = [json.loads(x) for x in (run_dir / "iter_1" / "sample" / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["prompt_id"] for s in samples) == sorted([f"prompts-{i}" for i in range(10)] + ["chat"])
    chat = next(s for s in samples if s["prompt_id"] == "chat")
    assert chat["prompt"] == "Name a colour.\nBlue.</s>Another one?\n" and chat["instruction"] == "Another one?"
    assert not (run_dir / "iter_1" / "sample" / "labels.jsonl").exists()  # own prompts carry no labels
    assert len((run_dir / "eval" / "M2" / "predictions.jsonl").read_text().splitlines()) == 6


@pytest.mark.slow
def test_smoke_pipeline_with_sft_skipped(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(["debug=smoke", "sft.skip=true", "rewarder=judge", "rewarder.k=1", "rewarder.max_new_tokens=8",
                    "data.n_prompts=4", "eval.limit=16", "eval.modes=[loglik]", f"hydra.run.dir={run_dir}"],
                   cwd=tmp_path)
    rows = read_results(run_dir)
    assert [r["model"] for r in rows] == ["M0", "M1", "M2"]
    assert rows[1]["note"] == "sft skipped: M1 = M0" and "M1: sft skipped: M1 = M0" in proc.stdout
    # the same model
    assert set(rows[1]["eval_acc_norm"]) == {"arc_easy"} and rows[1]["eval_acc_norm"] == rows[0]["eval_acc_norm"]
    summary = json.loads((run_dir / "sft" / "manifest.json").read_text())["summary"]
    assert summary["skipped"] is True and summary["steps"] == 0 and not (run_dir / "sft" / "logs").exists()
    from safetensors.torch import load_file

    m0 = load_file(run_dir / "base" / "model" / "model.safetensors")
    m1 = load_file(run_dir / "sft" / "model" / "model.safetensors")
    assert m0.keys() == m1.keys() and all((m0[k] == m1[k]).all() for k in m0)
    assert (run_dir / "iter_1" / "dpo" / "model" / "model.safetensors").exists()
