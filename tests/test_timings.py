"""timings.json keeps each stage's record from the invocation that computed it; invocations.jsonl lists every
invocation's ran and skipped stages (a pipeline of two fake stages, so it runs in a second)."""
import json
import shutil
import time

import pytest

from conftest import compose
from cream import pipeline
from cream.pipeline import Stage


def _write(ctx, folder, text: str):
    time.sleep(0.01)  # a measurable stage: its seconds are > 0
    (folder / "out.txt").write_text(text)
    return {"n": len(text)}


@pytest.fixture
def fake_plan(monkeypatch):
    stages = [Stage("a", _write, [], {"seed": 0}, {"text": "A"}),
              Stage("b", _write, ["a"], {"seed": 0}, {"text": "BB"})]
    monkeypatch.setattr(pipeline, "plan", lambda cfg: stages)
    return compose(["trainer=cpu"])


def _read(run_dir):
    timings = json.loads((run_dir / "timings.json").read_text())
    invocations = [json.loads(line) for line in (run_dir / "invocations.jsonl").read_text().splitlines()]
    return timings, invocations


def test_rerun_keeps_each_stage_record_and_logs_its_skips(fake_plan, tmp_path):
    run_dir = tmp_path / "run"
    pipeline.run(fake_plan, run_dir)
    first = (run_dir / "timings.json").read_bytes()
    timings, invocations = _read(run_dir)
    assert list(timings) == ["a", "b"] and all(r["ran"] and r["seconds"] >= 0.01 for r in timings.values())
    assert [(i["ran"], i["skipped"], i["finished"]) for i in invocations] == [(["a", "b"], [], True)]

    pipeline.run(fake_plan, run_dir)  # the same command again: everything is complete
    assert (run_dir / "timings.json").read_bytes() == first  # ran: true kept, seconds and memory too
    _, invocations = _read(run_dir)
    assert [(i["ran"], i["skipped"], i["finished"]) for i in invocations] == [(["a", "b"], [], True),
                                                                              ([], ["a", "b"], True)]

    (run_dir / "b" / "manifest.json").unlink()  # b is redone: its record is replaced, a's kept
    marked = json.loads(first)
    marked["b"]["seconds"] = -1.0  # a value no run writes: its replacement shows that the record was rewritten
    (run_dir / "timings.json").write_text(json.dumps(marked))
    pipeline.run(fake_plan, run_dir)
    timings, invocations = _read(run_dir)
    assert timings["a"] == json.loads(first)["a"]
    assert timings["b"]["ran"] and timings["b"]["seconds"] >= 0.01
    assert (invocations[-1]["ran"], invocations[-1]["skipped"]) == (["b"], ["a"])


def test_a_stage_copied_from_another_run_dir_is_recorded_as_not_ran(fake_plan, tmp_path):
    pipeline.run(fake_plan, tmp_path / "source")
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copytree(tmp_path / "source" / "a", copy / "a")  # as experiments/smollm2/run.sh starts SRLM from CREAM
    pipeline.run(fake_plan, copy)
    timings, _ = _read(copy)
    assert timings["a"]["ran"] is False and timings["b"]["ran"] is True
    source, _ = _read(tmp_path / "source")
    assert timings["a"]["seconds"] == source["a"]["seconds"]  # the manifest's figures (costs.py shows them once)
    pipeline.run(fake_plan, copy)
    assert _read(copy)[0] == timings


def test_an_interrupted_invocation_keeps_the_records_of_the_stages_it_finished(fake_plan, monkeypatch, tmp_path):
    def killed(ctx, folder, text):
        raise KeyboardInterrupt  # as a SIGINT (or a SIGKILL, which leaves no chance to write anything) in stage b

    stages = pipeline.plan(fake_plan)
    monkeypatch.setattr(pipeline, "plan",
                        lambda cfg: [stages[0], Stage("b", killed, ["a"], {"seed": 0}, {"text": "BB"})])
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(fake_plan, tmp_path)
    timings, invocations = _read(tmp_path)
    assert list(timings) == ["a"] and timings["a"]["ran"] is True
    assert [(i["ran"], i["skipped"], i["finished"]) for i in invocations] == [(["a"], [], False)]
    monkeypatch.setattr(pipeline, "plan", lambda cfg: stages)
    pipeline.run(fake_plan, tmp_path)  # resumed: a is skipped, but its record still says this run dir computed it
    after, invocations = _read(tmp_path)
    assert after["a"] == timings["a"] and after["b"]["ran"] is True
    assert [(i["ran"], i["skipped"], i["finished"]) for i in invocations] == [(["a"], [], False), (["b"], ["a"], True)]


def test_a_stage_run_in_pieces_records_the_time_of_every_attempt(fake_plan, monkeypatch, tmp_path):
    """b is interrupted twice after 0.3 s of work each, then completes: its record has its last attempt's seconds
    and, apart, the two earlier attempts' (each written when the attempt ended, and every 0.05 s while it ran)."""
    monkeypatch.setattr("cream.report.attempts.INTERVAL", 0.05)
    stages = pipeline.plan(fake_plan)

    def interrupted(ctx, folder, text):
        time.sleep(0.3)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "plan",
                        lambda cfg: [stages[0], Stage("b", interrupted, ["a"], {"seed": 0}, {"text": "BB"})])
    for n in (1, 2):
        with pytest.raises(KeyboardInterrupt):
            pipeline.run(fake_plan, tmp_path)
        records = sorted((tmp_path / "b" / ".attempts").glob("*.json"))
        assert [p.name for p in records] == [f"{k}.json" for k in range(1, n + 1)]
    kept = [json.loads(p.read_text()) for p in records]
    assert all(0.3 <= r["seconds"] < 2 and r["peak_rss_mb"] > 0 for r in kept), kept
    monkeypatch.setattr(pipeline, "plan", lambda cfg: stages)
    pipeline.run(fake_plan, tmp_path)
    timings, _ = _read(tmp_path)
    b = timings["b"]
    assert b["earlier_attempts"] == {"count": 2, "seconds": round(sum(r["seconds"] for r in kept), 3),
                                     "peak_rss_mb": max(r["peak_rss_mb"] for r in kept)}
    assert b["seconds"] < 0.3  # the last attempt alone: it only wrote the output
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["earlier_attempts"] == b["earlier_attempts"]
    assert not (tmp_path / "b" / ".attempts").exists() and "earlier_attempts" not in timings["a"]
