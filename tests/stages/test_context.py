"""The stage contract: each stage declares its stale-making keys and whether every rank runs it; the
Context builds the rewarder once and knows where each M_k is."""
from pathlib import Path

import pytest

from conftest import compose
from cream.stages import base, consistency, dpo, evaluate, pairs, reward, rewarder, sample, sft
from cream.stages.context import WORLD, Context


@pytest.mark.parametrize("module, every_rank", [
    (base, False), (sft, True), (rewarder, False), (sample, True), (reward, True), (consistency, False),
    (pairs, False), (dpo, True), (evaluate, True)])
def test_every_stage_declares_its_contract(module, every_rank):
    ctx = Context(compose(), Path("run"))
    assert module.EVERY_RANK is every_rank
    keys = module.stale_keys(ctx, t=1)
    assert all(isinstance(k, str) for k in keys) and "seed" in ctx.stale_config(keys)


def test_the_rewarder_is_built_once():
    ctx = Context(compose(["rewarder=reward_model"]), Path("run"))
    assert ctx.rewarder is ctx.rewarder and ctx.rewarder.trains


def test_dpo_records_the_training_processes_only_when_several():
    from cream.pipeline import plan

    one = {s.name: s.config for s in plan(Context(compose(), Path("run")))}
    assert WORLD not in one["iter_1/dpo"]
    two = {s.name: s.config for s in plan(Context(compose(["trainer.devices=2"]), Path("run")))}
    assert two["iter_1/dpo"][WORLD] == 2
    assert {k: v for k, v in two["iter_1/dpo"].items() if k != WORLD} == one["iter_1/dpo"]
    assert all((WORLD in c) == name.endswith("/dpo") for name, c in two.items())


@pytest.mark.parametrize("overrides, m0", [
    ([], "run/base/model"),                                                    # the tiny model, built
    (["model=local", "model.name_or_path=/models/m"], "/models/m"),            # a folder, used as it is
    (["model=smollm2_135m"], "run/base/model")])                               # a GGUF checkpoint, converted
def test_where_m0_is(overrides, m0):
    ctx = Context(compose(overrides), Path("run"))
    assert ctx.model_path(0) == m0 and ctx.model_path(1) == "run/sft/model"
    assert ctx.model_path(3) == "run/iter_2/dpo/model"
