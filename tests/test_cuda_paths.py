"""The CUDA paths, checked on CPU where the logic allows: the timer's stream, the divergence
guard at the GPU's cadence, fp16 with a closure optimizer, per-run peak memory, throughput of
runs stopped mid-epoch, compile per run, workers per GPU and the peak table."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.execute.local import prepare_data
from cnnbench.suite import expand, validate_suite
from cnnbench.train import precision, probes, trainer
from cnnbench.train.devices import worker_devices
from cnnbench.train.engine import train
from cnnbench.train.probes import MemoryProbe, StepTimer, peak_flops_per_s
from tests.helpers.suites import TINY_SUITE

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _spec(**train_keys):
    matrix = train_keys.pop("matrix", {"model": ["mlp"], "optimizer": ["sgd"], "lr": [1e4]})
    return expand(validate_suite({**TINY_SUITE, "matrix": matrix,
                                  "train": {"epochs": 5, "batch_size": 16, **train_keys}}))[0]


@pytest.fixture
def data():
    return prepare_data(validate_suite(TINY_SUITE).dataset_config, torch.device("cpu"))


# ─── 1. the timer records on the run's device ─────────────────────────────────────────────────


class _Event:
    recorded: list = []

    def __init__(self, enable_timing: bool) -> None:
        pass

    def record(self, stream=None) -> None:
        self.recorded.append(stream)


def test_cuda_timer_records_on_the_run_devices_stream(monkeypatch):
    streams = {}
    monkeypatch.setattr(torch.cuda, "current_stream",
                        lambda device=None: streams.setdefault(str(device), object()))
    monkeypatch.setattr(torch.cuda, "Event", _Event)
    _Event.recorded = []
    timer = StepTimer(torch.device("cuda:1"))
    timer.data_start()
    timer.compute_start()
    assert _Event.recorded == [streams["cuda:1"]] * 2  # never the default (current) device's


@pytest.mark.cuda
@needs_cuda
def test_cuda_timer_stream_is_the_devices():
    device = torch.device(f"cuda:{torch.cuda.device_count() - 1}")
    assert StepTimer(device).stream.device == device


def test_a_process_running_runs_makes_their_device_current(monkeypatch, tmp_path):
    # each --workers process runs its share through run_sequential with its own device
    from cnnbench import run_suite
    from cnnbench.execute import local

    used = []
    monkeypatch.setattr(local, "use_device", used.append)
    suite = validate_suite({**TINY_SUITE, "matrix": {"model": ["mlp"], "optimizer": ["sgd"],
                                                     "lr": [0.1]}, "train": {"epochs": 1}})
    run_suite(suite, out=tmp_path / "out")
    assert used == [torch.device("cpu")]


# ─── 2. the divergence guard at the GPU's cadence ─────────────────────────────────────────────


@pytest.fixture
def gpu_cadence(monkeypatch):
    """The guard reads the loss every 25 steps, as on CUDA."""
    monkeypatch.setattr(trainer, "check_interval", lambda device: 25)


def test_full_batch_nan_run_shorter_than_the_cadence_diverges(data, gpu_cadence):
    # 20 full-batch epochs = 20 steps < 25; only non-finite losses count (factor 1e300)
    summary = train(_spec(epochs=20, batch_size="full", divergence_factor=1e300), data).summary
    assert summary["status"] == "diverged" and "nan" in summary["message"]
    assert summary["steps"] < 20


def test_the_start_loss_is_the_first_steps_at_any_cadence(data, gpu_cadence):
    # lr 1e4 explodes at step 2; the guard's next read (step 25) is past the 5-step epoch, so
    # the epoch's summed loss is what catches it, against the first step's loss
    summary = train(_spec(), data).summary
    assert summary["status"] == "diverged"
    assert "(the epoch's mean) by step 5" in summary["message"]
    assert "its start 1.16" in summary["message"]  # the loss at initialisation, not step 25's


# ─── 3. fp16 with an optimizer that needs a closure ───────────────────────────────────────────


def test_fp16_with_lbfgs_is_rejected_at_validation(write_suite):
    suite = write_suite(name="fp16.yaml", text="name: t\ndataset: synthetic\ntrain:\n"
                        "  precision: fp16\nmatrix:\n  model: [mlp]\n  optimizer: [sgd, lbfgs]\n")
    result = CliRunner().invoke(app, ["validate", str(suite)])
    assert result.exit_code == 2
    assert "fp16.yaml:4: train.precision: fp16 trains through a GradScaler" in result.output
    assert "matrix.optimizer[1] 'lbfgs'" in result.output and "Traceback" not in result.output
    bf16 = write_suite(name="bf16.yaml", text=suite.read_text().replace("fp16", "bf16"))
    assert CliRunner().invoke(app, ["validate", str(bf16)]).exit_code == 0
    included = write_suite(name="include.yaml", text="name: t\ndataset: synthetic\ntrain:\n"
                           "  precision: fp16\nmatrix:\n  model: [mlp]\n  optimizer: [sgd]\n"
                           "include:\n  - {model: mlp, optimizer: lbfgs, lr: 1.0}\n")
    result = CliRunner().invoke(app, ["validate", str(included)])
    assert result.exit_code == 2 and "include[0] 'lbfgs' needs one" in result.output


# ─── 6. per-run CUDA peak memory ──────────────────────────────────────────────────────────────


class FakeCudaMemory:
    """The allocator's counters, scripted: `cached` blocks vanish on reset (empty_cache)."""

    def __init__(self, allocated: int, cached: int) -> None:
        self.now, self.cached = allocated, cached
        self.peak = self.peak_res = allocated + cached

    def reset(self) -> None:
        self.cached = 0
        self.peak, self.peak_res = self.now, self.now

    def use(self, nbytes: int) -> None:
        self.peak = max(self.peak, self.now + nbytes)
        self.peak_res = max(self.peak_res, self.now + self.cached + nbytes)

    def allocated(self) -> int:
        return self.now

    def reserved(self) -> int:
        return self.now + self.cached

    def peak_allocated(self) -> int:
        return self.peak

    def peak_reserved(self) -> int:
        return self.peak_res


def test_cuda_peak_is_the_runs_own_above_its_baseline():
    memory = FakeCudaMemory(allocated=300, cached=5000)  # 300 B of data, an earlier run's cache
    probe = MemoryProbe(torch.device("cuda"), cuda=memory)
    probe.start()
    memory.use(1000)
    summary = probe.summary()
    assert summary["peak_cuda_allocated_bytes"] == 1000
    assert summary["peak_cuda_reserved_bytes"] == 1000  # the old cache was handed back first
    assert summary["cuda_baseline_bytes"] == 300
    probe.start()  # the next run: a smaller peak is not hidden by the first one's
    memory.use(10)
    assert probe.summary()["peak_cuda_allocated_bytes"] == 10


def test_data_bytes_column(data):
    summary = train(_spec(epochs=1, matrix={"model": ["mlp"], "optimizer": ["sgd"],
                                            "lr": [0.1]}), data).summary
    splits = [data.train, data.val, data.test]
    assert summary["data_bytes"] == sum(t.numel() * t.element_size()
                                        for s in splits for t in (s.x, s.y))
    assert summary["cuda_baseline_bytes"] is None  # CPU


@pytest.mark.cuda
@needs_cuda
def test_second_run_in_a_process_does_not_carry_the_firsts_peak():
    device = torch.device("cuda")
    probe = MemoryProbe(device)
    probe.start()
    block = torch.ones(256 * 2**20 // 4, device=device)
    del block
    probe.start()
    small = torch.ones(2**20 // 4, device=device)
    summary = probe.summary()
    del small
    assert summary["peak_cuda_reserved_bytes"] < 64 * 2**20


# ─── 7. throughput of runs stopped mid-epoch ──────────────────────────────────────────────────


def test_run_diverged_mid_epoch_keeps_its_partial_epoch_time(data):
    summary = train(_spec(), data).summary  # diverges at step 2 of 5, in epoch 1
    assert summary["status"] == "diverged" and summary["epochs_done"] == 0
    assert 0 < summary["steps"] < math.ceil(len(data.train) / 16)
    assert summary["train_s"] > 0  # the partial epoch, not 0 (and samples/s not infinite/NaN)
    assert summary["samples_per_s"] == pytest.approx(summary["samples"] / summary["train_s"])
    assert summary["steps_s"] <= summary["train_s"]


def test_seconds_per_epoch_counts_whole_epochs_only(data):
    spec = _spec(epochs=30, divergence_factor=1e300,
                 matrix={"model": ["mlp"], "optimizer": ["sgd"], "lr": [30.0]})  # inf in epoch 3
    result = train(spec, data)
    summary = result.summary
    assert summary["status"] == "diverged" and summary["epochs_done"] >= 1
    whole = result.history[-1]["elapsed_s"]  # train_s when the last whole epoch ended
    assert whole < summary["train_s"]
    assert summary["s_per_epoch"] == pytest.approx(whole / summary["epochs_done"])


# ─── 8. compile: true, per run ────────────────────────────────────────────────────────────────


@pytest.fixture
def graphs(monkeypatch):
    """A backend that runs the graphs eagerly and counts how many dynamo compiled."""
    compiled: list[int] = []

    def backend(graph_module, example_inputs):
        compiled.append(1)
        return graph_module.forward

    monkeypatch.setattr(precision, "COMPILE_BACKEND", backend)
    return compiled


def test_compile_resets_per_run_so_many_runs_of_one_model_stay_compiled(data, graphs):
    # 10 runs of mlp with different widths: without the reset, dynamo's recompile limit (8,
    # per code object) sends runs 9 and 10 back to eager without a word
    counts = []
    for hidden in range(4, 14):
        before = len(graphs)
        spec = _spec(epochs=1, compile=True, matrix={
            "model": [{"name": "mlp", "hidden": hidden}], "optimizer": ["sgd"], "lr": [0.1]})
        summary = train(spec, data).summary
        assert summary["status"] == "ok" and summary["compile_s"] > 0
        counts.append(len(graphs) - before)
    assert all(count > 0 for count in counts) and len(set(counts)) == 1


def test_the_last_partial_batch_does_not_recompile(data, graphs):
    # 72 train images in batches of 20: 3 full and a partial one of 12; evaluation batches of
    # 24 (val) and 30 (test). One graph trains (grad on, train mode) and one evaluates; without
    # the dynamic batch dimension a new size would compile a third
    spec = _spec(epochs=2, batch_size=20, compile=True,
                 matrix={"model": ["mlp"], "optimizer": ["sgd"], "lr": [0.1]})
    assert train(spec, data).summary["status"] == "ok"
    assert len(graphs) == 2


def test_compile_time_is_outside_train_s_and_samples_per_s(data, graphs):
    spec = _spec(epochs=2, compile=True, matrix={"model": ["mlp"], "optimizer": ["sgd"],
                                                 "lr": [0.1]})
    summary = train(spec, data).summary
    timed = summary["samples"] - 16  # the compiling first step's batch counts apart
    assert summary["samples_per_s"] == pytest.approx(timed / summary["train_s"])
    assert summary["steps_s"] >= summary["compile_s"]  # the timer keeps it, as warm-up


# ─── 10. workers per GPU ──────────────────────────────────────────────────────────────────────


def test_workers_round_robin_over_gpus_and_warn_when_they_share():
    cuda0 = torch.device("cuda:0")
    assert worker_devices(2, cuda0, 2, spread=True) == (["cuda:0", "cuda:1"], None)
    devices, warning = worker_devices(3, cuda0, 2, spread=True)
    assert devices == ["cuda:0", "cuda:1", "cuda:0"] and "3 workers share 2 GPU(s)" in warning
    devices, warning = worker_devices(2, torch.device("cuda:1"), 4, spread=False)
    assert devices == ["cuda:1", "cuda:1"] and "share 1 GPU" in warning
    assert worker_devices(3, torch.device("cpu"), 0, spread=False) == (["cpu"] * 3, None)


# ─── 11. the peak table ───────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("name", "tflops"), [
    ("NVIDIA H100 NVL", 835.5), ("NVIDIA H200 NVL", 835.5), ("NVIDIA H200", 989.5),
    ("NVIDIA H100 80GB HBM3", 989.5), ("NVIDIA H100 PCIe", 756)])
def test_nvl_parts_have_their_own_peak(name, tflops):
    assert peak_flops_per_s(name, "bf16") == pytest.approx(tflops * 1e12)
    assert probes.peak_flops_per_s(name, "fp16") == pytest.approx(tflops * 1e12)
