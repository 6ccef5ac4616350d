"""Real SLURM jobs on the local single-node cluster (../shared/slurm-local): a Hydra sweep through the
submitit launcher (conf/launcher/slurm.yaml), the sbatch script slurm/single_node.sbatch, and requeue in
the middle of training on both paths: the requeued run resumes (stages finished before the requeue are
not recomputed) and ends with the same results.jsonl as a run that was not requeued.

The cluster has 2 CPUs: every job asks for 1 CPU, so at most two run at once; the tests pair their jobs
so that both CPUs are busy."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, read_results, stage_mtimes

pytestmark = pytest.mark.slurm

START = Path(__file__).resolve().parents[2] / "shared" / "slurm-local" / "start.sh"
BIN = Path(sys.executable).parent
ENV = {"CREAM_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "WANDB_MODE": "offline", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
# the GPU-cluster defaults of conf/launcher/slurm.yaml, brought down to the local 2-CPU test cluster
LAUNCHER = ["launcher=slurm", "trainer=cpu", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10"]
SBATCH = ["--partition=debug", "--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=1",
          "--mem=2G", "--time=10"]
# the smoke pipeline with SFT checkpointed every step; the requeue tests stop SFT after its third step with
# CREAM_FAULT=...:HANG (cream/faults.py) and requeue the job while it waits there: no race with SFT's end
LONG = ["debug=smoke", "sft.epochs=3", "trainer.cream.checkpoint_every_n_steps=1"]
HANG = "sft:step=3:HANG"
MODELS = ["M0", "M1", "M2"]
WAIT = 300  # seconds, for any one job (a smoke pipeline takes ~30-50 s here)


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Start (idempotent) the local cluster; its partition."""
    if not START.exists():
        pytest.skip(f"no local SLURM cluster: {START} is absent")
    proc = subprocess.run([str(START)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"{START} failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        pytest.skip("sbatch/scontrol not on PATH after starting the local SLURM cluster")
    return "debug"


# ---------------------------------------------------------------------------------------------- helpers

def job_info(job_id: str) -> dict[str, str]:
    """`scontrol show job` as a dict (finished jobs stay visible for MinJobAge = 10 min)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait_for(what: str, cond, timeout: float = WAIT, every: float = 0.2, on_timeout=None):
    deadline = time.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f"\n{on_timeout()}" if on_timeout else ""))
        time.sleep(every)  # polling a condition (a job's state, a file) that nothing here can be notified of


def start_now_when_requeued(job_id: str) -> dict[str, str]:
    """A requeued job waits ~2 min (BeginTime) before it may start again; lift that for the test."""
    def requeued():
        info = job_info(job_id)
        assert not finished(job_id), f"job {job_id} ended {info.get('JobState')} instead of being requeued"
        return info.get("JobState") == "PENDING" and int(info.get("Restarts", 0)) >= 1 and info

    info = wait_for(f"job {job_id} back in the queue", requeued, timeout=60, every=0.1)
    # wait for a condition SLURM cannot be asked about: slurmd refuses a relaunch whose credential is not newer
    # (1 s resolution) than the requeue's revocation ("Job credential revoked": the job FAILS); SLURM's own
    # delay is for that, ours only needs the clock to pass 2 s
    time.sleep(2)  # (the clock condition just above)
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "starttime=now"], check=True, capture_output=True)
    return info


def finished(job_id: str) -> dict[str, str] | None:
    info = job_info(job_id)
    return info if info.get("JobState") in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                                             "BOOT_FAIL", "DEADLINE"} else None  # PREEMPTED: requeued, not final


def sbatch(script: str, args: list[str], cwd: Path, env: dict | None = None, sbatch_args: list[str] = ()) -> str:
    proc = subprocess.run(["sbatch", "--parsable", *SBATCH, *sbatch_args, str(ROOT / "slurm" / script), *args],
                          cwd=cwd, capture_output=True, text=True, env={**os.environ, **ENV, **(env or {})}, check=True)
    return proc.stdout.strip().split(";")[0]


def wait_job(job_id: str, log: Path) -> dict[str, str]:
    info = wait_for(f"job {job_id}", lambda: finished(job_id), every=0.5,
                    on_timeout=lambda: log.read_text()[-3000:] if log.exists() else "(no log)")
    assert info["JobState"] == "COMPLETED", f"job {job_id} ended {info['JobState']}:\n{log.read_text()[-4000:]}"
    return info


def check_rows(run_dir: Path) -> list[dict]:
    rows = read_results(run_dir)
    assert [r["model"] for r in rows] == MODELS, rows
    return rows


def numbers(rows: list[dict]) -> list:
    """Every number of results.jsonl rows, in order (the comparison is exact: same seed, CPU, 1 thread)."""
    def walk(x):
        if isinstance(x, dict):
            return [(k, walk(v)) for k, v in sorted(x.items())]
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x
    return walk(rows)


def assert_sft_resumed(run_dir: Path) -> None:
    """SFT went on from its last.ckpt: the resumed attempt's log starts after step 0 (the first attempt's
    rows, as far as they were flushed, are kept in metrics.attempt1.csv); a restart from scratch would
    log 0, 1, 2, ... again."""
    def steps(name: str) -> list[int]:
        with open(run_dir / "sft" / "logs" / name, newline="") as f:
            return [int(row["step"]) for row in csv.DictReader(f) if row.get("step")]

    first = steps("metrics.attempt1.csv") if (run_dir / "sft" / "logs" / "metrics.attempt1.csv").exists() else []
    resumed = steps("metrics.csv")
    assert not first or first[0] == 0, first[:10]
    assert resumed and resumed[0] > 0, f"SFT restarted from step 0: {resumed[:10]}"


def launch_sweep(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "cream-train"), "-m", *LAUNCHER, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **ENV, **(env or {})})


def array_jobs(sweep: Path) -> list[str]:
    """SLURM ids (<array>_<task>) of the jobs the launcher submitted for this sweep."""
    folder = sweep / ".submitit"
    return sorted(p.name for p in folder.iterdir() if re.fullmatch(r"\d+_\d+", p.name)) if folder.exists() else []


def stop(proc: subprocess.Popen, sweep: Path) -> None:
    """Test failed half-way: end the launcher process (ours, by pid) and cancel its jobs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    for job in array_jobs(sweep):
        subprocess.run(["scancel", job], capture_output=True)


def finish_sweep(proc: subprocess.Popen, timeout: float = 2 * WAIT) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"cream-train -m failed ({proc.returncode}):\n{out[-5000:]}"
    return out


# ------------------------------------------------------------------------------------------------ tests

def test_launcher_sweep(slurm_cluster, tmp_path):
    """`cream-train -m launcher=slurm regularizer=none,cream_avg`: a 2-task job array, both pipelines finish."""
    sweep = tmp_path / "sweep"
    proc = launch_sweep([f"hydra.sweep.dir={sweep}", "regularizer=none,cream_avg", "debug=smoke"], tmp_path)
    try:
        finish_sweep(proc)
    except BaseException:
        stop(proc, sweep)
        raise
    jobs = array_jobs(sweep)
    assert len(jobs) == 2 and len({j.split("_")[0] for j in jobs}) == 1, f"not one 2-task array: {jobs}"
    for num, regularizer in [(0, "none"), (1, "cream_avg")]:
        run_dir = sweep / str(num)
        check_rows(run_dir)
        assert f"regularizer={regularizer}" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    # the two regularizers trained different M2s from the same M1
    rows0, rows1 = read_results(sweep / "0"), read_results(sweep / "1")
    assert rows0[:2] == rows1[:2]


@pytest.fixture(scope="module")
def sbatch_reference(slurm_cluster, tmp_path_factory):
    """slurm/single_node.sbatch, LONG pipeline, not requeued; submitted now, waited on by who needs it."""
    cwd = tmp_path_factory.mktemp("sbatch_ref")
    run_dir = cwd / "run"
    job = sbatch("single_node.sbatch", LONG, cwd, env={"RUN_DIR": str(run_dir)})
    state: dict = {}

    def result() -> Path:
        if not state:
            state["info"] = wait_job(job, cwd / f"slurm-cream-{job}.out")
        return run_dir

    yield result
    if not state:  # never waited on (tests deselected or failed): do not leave it running
        subprocess.run(["scancel", job], capture_output=True)


@pytest.mark.parametrize("how", ["signal", "scontrol"])
def test_sbatch_requeue_resumes(sbatch_reference, tmp_path, how):
    """Requeued mid-SFT, either by USR1 to the batch script (what --signal=B:USR1@120 sends before the time
    limit: the trap runs `scontrol requeue`) or by `scontrol requeue <job>` from outside (an admin, a
    preemption: SLURM kills the job and queues it again). Either way the job restarts in the same default
    run dir runs/<job name>-<job id>, skips the finished stages, resumes SFT and ends with the reference's
    results."""
    job = sbatch("single_node.sbatch", LONG, tmp_path, env={"CREAM_FAULT": HANG})
    log = tmp_path / f"slurm-cream-{job}.out"
    run_dir = tmp_path / "runs" / f"cream-{job}"
    try:
        wait_for("SFT stopped by the fault after step 3", lambda: (run_dir / "sft" / ".fault_fired").exists(),
                 on_timeout=lambda: log.read_text()[-3000:] if log.exists() else "(no log)")
        assert (run_dir / "sft" / "checkpoints" / "last.ckpt").exists()
        before = stage_mtimes(run_dir)
        assert {"base", "eval/M0"} <= set(before) and "sft" not in before, before
        if how == "signal":
            subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)
        else:
            subprocess.run(["scontrol", "requeue", job], check=True)
        start_now_when_requeued(job)
        info = wait_job(job, log)
    except BaseException:
        subprocess.run(["scancel", job], capture_output=True)
        raise
    assert int(info["Restarts"]) == 1
    text = log.read_text()
    assert "(restart 1)" in text and ("requeueing" in text or how == "scontrol"), text[-3000:]
    after = stage_mtimes(run_dir)
    for name, mtime in before.items():
        assert after[name] == mtime, f"{name} was recomputed after the requeue"
    assert not (run_dir / "_stale").exists()
    assert_sft_resumed(run_dir)
    assert numbers(check_rows(run_dir)) == numbers(check_rows(sbatch_reference()))


def test_sbatch_single_node(sbatch_reference):
    """slurm/single_node.sbatch runs the whole (smoke) pipeline with the default trainer into RUN_DIR."""
    run_dir = sbatch_reference()
    check_rows(run_dir)
    timings = json.loads((run_dir / "timings.json").read_text())
    assert all(t["ran"] for t in timings.values()), timings  # one attempt, nothing skipped


def test_launcher_requeue_resumes(slurm_cluster, tmp_path):
    """A 2-job sweep of the same pipeline (seed=0,0); job 0 gets USR2 mid-SFT, the signal SLURM sends
    `signal_delay_s` before the time limit: submitit counts a time-out, requeues it (max_num_timeout of
    conf/launcher/slurm.yaml), the job resumes in its run dir and both jobs end with the same results."""
    sweep = tmp_path / "sweep"
    proc = launch_sweep([f"hydra.sweep.dir={sweep}", "seed=0,0", *LONG], tmp_path, env={"CREAM_FAULT": f"0/{HANG}"})
    run_dir = sweep / "0"
    try:
        wait_for("SFT of job 0 stopped by the fault after step 3", lambda: (run_dir / "sft" / ".fault_fired").exists())
        assert (run_dir / "sft" / "checkpoints" / "last.ckpt").exists() and proc.poll() is None
        before = stage_mtimes(run_dir)
        assert {"base", "eval/M0"} <= set(before) and "sft" not in before, before
        job = next(j for j in array_jobs(sweep) if j.endswith("_0"))
        subprocess.run(["scancel", "--signal=USR2", job], check=True)  # job steps only, as SLURM does
        start_now_when_requeued(job)
        finish_sweep(proc)
    except BaseException:
        stop(proc, sweep)
        raise
    assert int(job_info(job)["Restarts"]) == 1
    log = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text()
    assert "timed-out" in log and "Exiting gracefully after preemption/timeout" in log, log[-3000:]
    after = stage_mtimes(run_dir)
    for name, mtime in before.items():
        assert after[name] == mtime, f"{name} was recomputed after the requeue"
    assert_sft_resumed(run_dir)
    assert numbers(check_rows(run_dir)) == numbers(check_rows(sweep / "1"))
