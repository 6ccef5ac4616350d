"""The shipped lm-eval task files, without lm-eval: each points at release files that exist, its loader reads
the same questions as ``cream.data.benchmarks``, and its Jinja prompt, choices and target render to what
``cream.evaluation.lm_eval_format`` scores (the full check against lm-eval: test_lm_eval_crosscheck.py)."""
from __future__ import annotations

import ast
import importlib.util

import jinja2
import pytest
import yaml

from cream.data.benchmarks import SAMPLE_DIR, load_benchmark
from cream.evaluation import lm_eval_format
from cream.evaluation.lm_eval_tasks import DIR, TASKS

BENCHMARK = {"cream_arc_easy": "arc_easy", "cream_arc_challenge": "arc_challenge", "cream_openbookqa": "obqa",
             "cream_social_iqa": "siqa"}


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _task(name: str) -> dict:
    return yaml.load((DIR / f"{name}.yaml").read_text(), Loader=_Loader)


def _release():
    spec = importlib.util.spec_from_file_location("release", DIR / "release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _render(template: str, doc: dict):
    return jinja2.Environment().from_string(template).render(**doc)


def test_every_task_file_is_listed_and_shipped():
    assert sorted(p.stem for p in DIR.glob("*.yaml")) == sorted(TASKS)
    assert "evaluation/lm_eval_tasks/*.yaml" in (DIR.parents[2] / "setup.cfg").read_text()


@pytest.mark.parametrize("task", TASKS)
def test_task_reads_the_projects_questions_in_its_format(task):
    cfg = _task(task)
    assert cfg["task"] == task and cfg["custom_dataset"] == "release.load" and cfg["output_type"] == "multiple_choice"
    data = _release().load(data_dir=str(SAMPLE_DIR), version=1.0, **cfg["dataset_kwargs"])
    assert set(data) == set(cfg["dataset_kwargs"]["data_files"])
    split = cfg.get("test_split") or cfg["validation_split"]
    docs = list(data[split])
    examples = load_benchmark(BENCHMARK[task], "test" if split == "test" else "validation")
    assert len(docs) == len(examples) > 0
    text = cfg["doc_to_text"]
    template = text if "{{" in text else "{{" + text + "}}"
    for doc, ex in zip(docs, examples):
        assert _render(template, doc) == lm_eval_format.context(ex)
        choices = ast.literal_eval(_render(cfg["doc_to_choice"], doc))  # as lm-eval reads a rendered list
        assert [cfg.get("target_delimiter", " ") + c for c in choices] == lm_eval_format.continuations(ex)
        assert ex.labels[int(_render(cfg["doc_to_target"], doc))] == ex.answer
    assert [m["metric"] for m in cfg["metric_list"]] == ["acc", "acc_norm"]


def test_loader_names_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        _release().load(layout="arc", data_files={"test": "arc_easy/ARC-Easy-Test.jsonl"})
    with pytest.raises(FileNotFoundError, match="ARC-Easy-Test.jsonl"):
        _release().load(data_dir=str(tmp_path), layout="arc", data_files={"test": "arc_easy/ARC-Easy-Test.jsonl"})
    (tmp_path / "siqa").mkdir()
    (tmp_path / "siqa" / "dev.jsonl").write_text('{"context": "c", "question": "q", "answerA": "a", "answerB": "b", '
                                                 '"answerC": "c"}\n')
    (tmp_path / "siqa" / "dev-labels.lst").write_text("1\n2\n")
    with pytest.raises(ValueError, match="dev-labels.lst: 2 labels for the 1 records"):
        _release().load(data_dir=str(tmp_path), layout="siqa", data_files={"validation": "siqa/dev.jsonl"})
