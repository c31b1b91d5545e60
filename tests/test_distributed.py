"""Data-parallel runs (train.distributed, --nproc, torchrun): 2 gloo processes on a CPU give the
gradient of the whole global batch; the CLI under torchrun and its own launch write one row per
run (rank 0's); SIGTERM and resume, a rank that dies, and the bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import cnnbench
from cnnbench.errors import CnnbenchError
from cnnbench.suite import expand
from cnnbench.train.signals import EXIT_INTERRUPTED
from tests.helpers import fake_cuda
from tests.helpers.distributed import free_port, rank_first_epoch, train_first_epoch
from tests.helpers.slurm import cluster_up
from tests.helpers.suites import TINY_SUITE, slow_model

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[1]
DYING = "tests.helpers.distributed:DiesOnRankOne"


def _suite(write_suite, model="mlp", **train):
    return cnnbench.load_suite(write_suite(
        matrix={"model": [model], "optimizer": ["sgd"], "lr": [0.1]},
        train={"epochs": 1, "batch_size": 72, **train}, probes=["time"]))


def _data_parallel_weights(suite, spec, tmp_path: Path) -> dict[str, torch.Tensor]:
    out = tmp_path / "rank0.pt"
    mp.spawn(rank_first_epoch, args=(2, free_port(), suite, spec, str(out)), nprocs=2)
    return torch.load(out, weights_only=True)


def test_two_processes_take_the_step_of_one_process_with_the_whole_batch(write_suite, tmp_path):
    # the tiny suite trains on 72 images: a batch of 72 is one step, 36 images a rank
    suite = _suite(write_suite, {"name": "mlp", "hidden": 16})
    spec = expand(suite)[0]
    alone = train_first_epoch(suite, spec)
    parallel = _data_parallel_weights(suite, spec, tmp_path)
    assert alone.keys() == parallel.keys()
    for key in alone:
        torch.testing.assert_close(parallel[key], alone[key], rtol=1e-5, atol=1e-6)
    torch.manual_seed(spec.seed)  # the weights the step started from
    initial = cnnbench.create_model("mlp", in_channels=1, num_classes=3, image_size=8, hidden=16)
    assert any(not torch.allclose(initial.state_dict()[k], alone[k]) for k in alone)


@pytest.mark.slow  # the lecture page measures it too (docs/lecture.md, section 8)
def test_with_batchnorm_each_rank_normalises_its_own_slice(write_suite, tmp_path):
    # BatchNorm's batch statistics are of 36 images a rank, not of the 72: another gradient
    suite = _suite(write_suite, "resnet20")
    spec = expand(suite)[0]
    alone = train_first_epoch(suite, spec)
    parallel = _data_parallel_weights(suite, spec, tmp_path)
    weights = [k for k, v in alone.items() if v.is_floating_point() and "running" not in k]
    assert any(not torch.allclose(parallel[k], alone[k], rtol=1e-5, atol=1e-6) for k in weights)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnbench", *args], env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _plain(write_suite, **sections):
    return write_suite(**{"train": {"epochs": 2, "batch_size": 16}, "probes": ["time"],
                          **sections})


@pytest.mark.subprocess
def test_the_cli_under_torchrun_writes_one_row_per_run_from_rank_0(write_suite, tmp_path):
    suite = _plain(write_suite)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", "-m", "cnnbench", "run", str(suite),
                           "--out", str(out)], env=_env(), capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("best learning rate per model") == 1  # rank 0 reports, alone
    assert "data-parallel over 2 processes (gloo, started by torchrun)" in done.stderr
    runs, history = cnnbench.load_results(out)
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    assert set(runs["execution"]) == {"distributed"}
    assert set(runs["world_size"]) == {2} and set(runs["rank_batch_size"]) == {8}
    assert len(history) == 4 * 3 and not history.duplicated(["run_id", "epoch"]).any()


@pytest.mark.slow  # the dying-rank tests launch with --nproc in the default run
@pytest.mark.subprocess
def test_nproc_launches_the_ranks_itself_and_matches_one_process(write_suite, tmp_path):
    suite = _plain(write_suite)
    alone = _cli("run", str(suite), "--out", str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stderr
    spread = _cli("run", str(suite), "--out", str(tmp_path / "ddp"), "--nproc", "2")
    assert spread.returncode == 0, spread.stderr[-3000:]
    assert "started by cnnbench" in spread.stderr
    one, _ = cnnbench.load_results(tmp_path / "alone")
    two, _ = cnnbench.load_results(tmp_path / "ddp")
    one, two = one.set_index("run_id").sort_index(), two.set_index("run_id").sort_index()
    assert list(one.index) == list(two.index)  # the same runs, the same run_ids
    for metric in ("train_loss", "val_loss", "test_loss"):  # no BatchNorm: one trajectory
        assert (one[metric] - two[metric]).abs().max() < 1e-4, metric
    assert set(two["world_size"]) == {2}


@pytest.mark.subprocess
@pytest.mark.signals
def test_sigterm_interrupts_every_rank_and_a_rerun_resumes_from_rank_0s_checkpoint(
        write_suite, tmp_path):
    model = slow_model(tmp_path, sleep_s=0.1)
    suite = write_suite(matrix={"model": [model], "optimizer": ["sgd"], "lr": [0.1]},
                        train={"epochs": 4, "batch_size": 16}, probes=["time"])
    out = tmp_path / "out"
    env = {**_env(), "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    proc = subprocess.Popen([sys.executable, "-m", "cnnbench", "run", str(suite), "--out",
                             str(out), "--nproc", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not any(out.glob("checkpoints/*.pt")):
        assert time.time() < deadline and proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr[-3000:]
    runs, _ = cnnbench.load_results(out)
    assert list(runs["status"]) == ["interrupted"]
    again = subprocess.run([sys.executable, "-m", "cnnbench", "run", str(suite), "--out",
                            str(out), "--nproc", "2"], env=env, capture_output=True, text=True,
                           timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from the checkpoint of epoch" in again.stderr
    runs, history = cnnbench.load_results(out)
    assert list(runs["status"]) == ["ok"] and runs["resumed_from_epoch"].iloc[0] >= 1
    assert len(history) == 5 and not history.duplicated(["run_id", "epoch"]).any()


@pytest.mark.subprocess
@pytest.mark.parametrize("how, said", [
    ("raise", "rank 1: RuntimeError: rank one's data is cursed"),
    ("kill", "rank 1 died (signal SIGKILL)"),
])
def test_a_rank_that_dies_ends_its_run_as_error_naming_it_and_the_suite_goes_on(
        write_suite, tmp_path, how, said):
    suite = write_suite(matrix={"model": [{"name": DYING, "how": how}, "mlp"],
                                "optimizer": ["sgd"], "lr": [0.1]},
                        train={"epochs": 1, "batch_size": 16,
                               "distributed": {"timeout_s": 30}}, probes=["time"])
    out = tmp_path / "out"
    done = _cli("run", str(suite), "--out", str(out), "--nproc", "2")
    assert done.returncode == 1, done.stderr[-3000:]  # a run failed; no traceback, no hang
    assert "Traceback" not in done.stdout
    runs, _ = cnnbench.load_results(out)
    by_model = runs.set_index("model")
    assert by_model.loc[DYING, "status"] == "error"
    assert said in by_model.loc[DYING, "message"]
    assert by_model.loc["mlp", "status"] == "ok"  # the next run trained in a fresh launch


@pytest.mark.parametrize("sections, said", [
    ({"train": {"batch_size": 15, "distributed": {"world_size": 2}}},
     "batch size 15 is the global batch and does not split evenly over world_size 2"),
    ({"train": {"batch_size": "full", "distributed": {"world_size": 2}}},
     "train.distributed splits mini-batches"),
    ({"execution": "ensemble", "train": {"distributed": {"world_size": 2}}},
     "drop one of them (execution: sequential, or no train.distributed)"),
    ({"train": {"distributed": {"world_size": 2, "backend": "nccl"}}},
     "backend nccl needs CUDA devices"),
    ({"train": {"distributed": {"world_size": 2, "sync_bn": True}}},
     "sync_bn: true needs CUDA devices"),
])
def test_bad_distributed_settings_are_one_message_and_exit_2(write_suite, tmp_path, sections,
                                                               said):
    from typer.testing import CliRunner

    from cnnbench.cli import app

    suite = write_suite(**sections)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())
    assert "Traceback" not in result.output and not out.exists()


def test_more_ranks_than_gpus_is_refused_before_anything_starts(write_suite, tmp_path,
                                                                 monkeypatch):
    from cnnbench.execute.distributed import check_devices

    fake_cuda.install(monkeypatch, count=2)
    suite = cnnbench.load_suite(write_suite(device="cuda",
                                            train={"distributed": {"world_size": 4}}))
    with pytest.raises(CnnbenchError, match="only 2 CUDA device"):
        check_devices(suite, 4)
    assert check_devices(suite, 2).type == "cuda"


def test_the_suite_and_the_launcher_must_agree_on_the_world_size(write_suite, monkeypatch):
    from cnnbench.execute.distributed import world_size

    suite = cnnbench.load_suite(write_suite(train={"distributed": {"world_size": 4}}))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(CnnbenchError, match="world_size is 4 but torchrun started 2"):
        world_size(suite)
    plain = cnnbench.load_suite(write_suite(data={**TINY_SUITE}))
    assert world_size(plain) == 2  # no world_size in the suite: the launcher's


def test_srun_tasks_export_torchs_variables(monkeypatch):
    from cnnbench.train.distributed import launched

    # what the export writes must not outlive the test (later runs would wait for 4 ranks)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert launched() is None
    slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
             "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "77", "SLURM_NNODES": "2",
             "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu1,gpu2", "SLURM_JOB_NUM_NODES": "2",
             "SLURM_STEP_NODELIST": "gpu1,gpu2", "SLURM_TASKS_PER_NODE": "2(x2)"}
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    launch = launched()
    assert (launch.rank, launch.world_size, launch.local_rank, launch.launcher) == (3, 4, 1,
                                                                                  "srun")
    assert os.environ["MASTER_ADDR"] == "gpu1" and int(os.environ["MASTER_PORT"]) >= 20000
    assert os.environ["LOCAL_WORLD_SIZE"] == "2"
    port = os.environ["MASTER_PORT"]
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")  # in a `cnnbench submit` job: submitit's
    launch = launched()
    assert (launch.rank, launch.world_size, launch.launcher) == (3, 4, "srun")
    assert os.environ["MASTER_ADDR"] == "gpu1" and os.environ["MASTER_PORT"] == port
    monkeypatch.delenv("SUBMITIT_EXECUTOR")
    monkeypatch.setenv("SLURM_STEP_ID", "batch")  # the batch script: one process, not a rank
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key)
    assert launched() is None


def test_linear_scaling_warms_up_to_the_scaled_lr(write_suite):
    from cnnbench.optim.schedules import create_schedule

    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=0.1)
    schedule = create_schedule({"name": "constant", "linear_scaling": {"reference_batch": 256,
                                                                       "warmup_epochs": 2}},
                               opt, epochs=4, steps_per_epoch=2, batch_size=1024)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    # from the grid's 0.1 to 0.1 × 1024/256 over 2 epochs (4 steps), then the schedule's
    assert lrs == pytest.approx([0.1, 0.175, 0.25, 0.325, 0.4, 0.4, 0.4, 0.4])
    assert opt.defaults["lr"] == 0.1  # the row's lr stays the grid's
    small = torch.optim.SGD(params, lr=0.1)
    create_schedule({"name": "constant", "linear_scaling": True}, small, epochs=6,
                    steps_per_epoch=2, batch_size=128)
    assert small.param_groups[0]["lr"] == pytest.approx(0.05)  # below 256: scaled down, no ramp
    with pytest.raises(CnnbenchError, match="warmup_epochs"):
        create_schedule({"name": "constant", "linear_scaling": {"warmup_epochs": 9}}, small,
                        epochs=4, steps_per_epoch=2, batch_size=512)


def test_submit_asks_slurm_for_one_task_per_rank(write_suite, tmp_path):
    pytest.importorskip("submitit")
    from typer.testing import CliRunner

    from cnnbench.cli import app

    suite = write_suite(train={"epochs": 1, "batch_size": 16, "distributed": {"world_size": 4}})
    result = CliRunner().invoke(app, ["submit", str(suite), "--out", str(tmp_path / "out"),
                                      "--nodes", "2", "--gpus-per-task", "1", "--dry-run"])
    assert result.exit_code == 0, result.output
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --gpus-per-task=1"):
        assert line in result.output, line
    uneven = CliRunner().invoke(app, ["submit", str(suite), "--out", str(tmp_path / "out"),
                                      "--nodes", "3", "--dry-run"])
    assert uneven.exit_code == 2 and "do not spread evenly" in uneven.output


def _slurm_env() -> dict[str, str]:
    return {**_env(), "OMP_NUM_THREADS": "1"}


@pytest.mark.subprocess
@pytest.mark.skipif(not cluster_up(), reason="no Slurm cluster up (sbatch/sinfo)")
def test_srun_starts_the_ranks_and_cnnbench_picks_them_up(write_suite, tmp_path):
    suite = _plain(write_suite, train={"epochs": 1, "batch_size": 16})
    out = tmp_path / "out"
    done = subprocess.run(["srun", "--ntasks", "2", "--cpus-per-task", "1", "--partition",
                           "debug", "--time", "5", sys.executable, "-m", "cnnbench", "run",
                           str(suite), "--out", str(out)], env=_slurm_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "started by srun" in done.stderr
    runs, _ = cnnbench.load_results(out)
    assert len(runs) == 4 and set(runs["status"]) == {"ok"} and set(runs["world_size"]) == {2}


@pytest.mark.subprocess
@pytest.mark.skipif(not cluster_up(), reason="no Slurm cluster up (sbatch/sinfo)")
def test_a_submitted_distributed_suite_trains_each_run_over_its_tasks(write_suite, tmp_path):
    suite = _plain(write_suite, train={"epochs": 1, "batch_size": 16,
                                       "distributed": {"world_size": 2}})
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "cnnbench", "submit", str(suite), "--out",
                           str(out), "--partition", "debug", "--time", "00:10:00",
                           "--cpus-per-task", "1", "--mem", "1G", "--shards", "1"],
                          env=_slurm_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    job = json.loads((out / "submit.json").read_text())["job_id"]
    deadline = time.time() + 240
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True,
                         text=True).stdout.strip():
        assert time.time() < deadline, f"Slurm job {job} still queued"
        time.sleep(0.2)
    runs, _ = cnnbench.load_results(out)
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    assert set(runs["execution"]) == {"distributed"} and set(runs["world_size"]) == {2}
