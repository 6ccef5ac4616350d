"""logger=wandb: an offline wandb run beside the CSV logs, with the per-step and per-iteration metrics."""
import pytest

from conftest import read_results, run_cli

pytestmark = pytest.mark.slow


def test_wandb_offline_run_logs_metrics_and_never_the_key(tmp_path):
    run_dir = tmp_path / "run"
    run_cli(["+debug=smoke", "logger=wandb", f"hydra.run.dir={run_dir}"], cwd=tmp_path,
            env={"WANDB_MODE": "offline", "WANDB_API_KEY": "sekrit-key-0123456789abcdef0123456789abcdef01234567"})
    assert len(read_results(run_dir)) == 3
    runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    blob = runs[0].read_bytes()
    for key in (b"iter_1-dpo", b"rewards/margins", b"iter_1/consistency/mean", b"sample_pairs", b"eval/M2/eval/arc_easy"):
        assert key in blob, key
    for p in run_dir.rglob("*"):
        if p.is_file():
            assert b"sekrit-key" not in p.read_bytes(), p
    assert (run_dir / "iter_1" / "dpo" / "logs" / "metrics.csv").exists()  # CSV logs stay on
