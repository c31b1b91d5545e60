"""The probes measure what they claim: step statistics, per-run peak memory, FLOPs, gradient
norms, and the summary columns of a run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from cnnbench import load_grad_norms, load_results, run_suite
from cnnbench.execute.local import prepare_data
from cnnbench.suite import expand, validate_suite
from cnnbench.train.engine import train
from cnnbench.train.flops import count_flops
from cnnbench.train.probes import (
    MemoryProbe,
    StepTimer,
    peak_flops_per_s,
    peak_rss_bytes,
    reset_peak_rss,
)
from cnnbench.train.trainer import Trainer
from tests.helpers.suites import TINY_SUITE

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
PROBES = ["time", "memory", "flops"]


def _suite(**sections):
    return validate_suite({**TINY_SUITE, **sections})


@pytest.fixture
def data():
    return prepare_data(_suite().dataset_config, torch.device("cpu"))


# ─── time ──────────────────────────────────────────────────────────────────────────────────────


class FakeClock:
    """Returns the scripted times, one per call."""

    def __init__(self, times: list[float]) -> None:
        self.times = iter(times)

    def __call__(self) -> float:
        return next(self.times)


def test_step_statistics_from_a_fake_clock():
    # 5 steps; step i waits data[i] ms for its batch and computes compute[i] ms
    data = [50.0, 1.0, 2.0, 3.0, 4.0]
    compute = [500.0, 10.0, 20.0, 30.0, 40.0]
    times, now = [], 0.0
    for d, c in zip(data, compute):
        times += [now, now + d]  # data_start, compute_start
        now += d + c
    times.append(now)  # the data_start after the last step ends it
    timer = StepTimer(torch.device("cpu"), clock=FakeClock([t / 1e3 for t in times]),
                      warmup_steps=1)
    for _ in data:
        timer.data_start()
        timer.compute_start()
    timer.data_start()
    timer.epoch_end()
    stats = timer.summary()
    steps = [11.0, 22.0, 33.0, 44.0]  # warm-up step (550 ms) left out
    assert stats["warmup_steps"] == 1 and stats["warmup_s"] == pytest.approx(0.55)
    assert stats["step_ms_median"] == pytest.approx(27.5)
    assert stats["step_ms_p90"] == pytest.approx(steps[2] + 0.7 * (steps[3] - steps[2]))
    assert stats["data_ms_median"] == pytest.approx(2.5)
    assert stats["compute_ms_median"] == pytest.approx(25.0)
    assert stats["data_s"] == pytest.approx(sum(data) / 1e3)


def test_warm_up_never_takes_more_than_half_the_steps():
    timer = StepTimer(torch.device("cpu"), clock=FakeClock([0, 0, 1, 1, 3]), warmup_steps=5)
    for _ in range(2):
        timer.data_start()
        timer.compute_start()
    timer.data_start()
    timer.epoch_end()
    assert timer.summary()["warmup_steps"] == 1
    assert timer.summary()["step_ms_median"] == pytest.approx(2000.0)


def test_samples_per_s_and_step_times_agree_with_the_clock(data):
    spec = expand(_suite(probes=PROBES, train={"epochs": 2, "batch_size": 16}))[0]
    trainer = Trainer(spec, data)
    trainer.run([])
    n, steps = len(data.train), trainer.steps
    assert trainer.samples == 2 * n and steps == 2 * math.ceil(n / 16)
    assert len(trainer.timer.step_ms) == steps
    # the steps tile the training loop: their sum is the train time, less loop set-up
    assert sum(trainer.timer.step_ms) / 1e3 == pytest.approx(trainer.train_s, rel=0.25, abs=0.02)
    summary = train(spec, data).summary
    assert summary["samples_per_s"] == pytest.approx(summary["samples"] / summary["train_s"])
    assert summary["train_s"] + summary["eval_s"] <= summary["wall_s"]
    assert 0 <= summary["data_s"] <= summary["train_s"]
    assert summary["step_ms_median"] <= summary["step_ms_p90"]
    assert summary["step_ms_median"] / 1e3 * (steps - summary["warmup_steps"]) <= (
        summary["train_s"] * 1.5)


def test_probes_off_leave_their_columns_out(data):
    summary = train(expand(_suite(probes=[]))[0], data).summary
    for column in ("step_ms_median", "peak_rss_bytes", "flops_per_sample", "param_bytes"):
        assert column not in summary
    assert summary["samples_per_s"] > 0  # wall/train/eval times are always there


# ─── memory ────────────────────────────────────────────────────────────────────────────────────

HOG = """
import torch
import torch.nn as nn

HOG_BYTES = 500 * 2**20
_done = False


class Hog(nn.Module):
    \"\"\"An MLP whose very first forward call (in this process) holds 500 MB for a moment.\"\"\"

    def __init__(self, in_channels=1, num_classes=3, image_size=8):
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        global _done
        if not _done:
            _done = True
            hog = torch.ones(HOG_BYTES // 4)  # ones, not empty: the pages are touched
            x = x + hog[0] - 1
            del hog
        return self.fc(x.flatten(1))
"""


@pytest.mark.skipif(not reset_peak_rss(), reason="needs /proc/self/clear_refs (Linux)")
def test_peak_rss_is_per_run(tmp_path, monkeypatch):
    (tmp_path / "hog_models.py").write_text(HOG)
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = _suite(matrix={"model": ["hog_models:Hog"], "optimizer": ["sgd"], "lr": [0.1]},
                   seeds=[0, 1], train={"epochs": 1, "batch_size": 32})
    run_suite(suite, tmp_path / "out")
    runs, _ = load_results(tmp_path / "out")
    first, second = runs.sort_values("seed")["peak_rss_bytes"].tolist()
    assert first - second > 450 * 2**20  # run 0 saw the 500 MB; run 1 started from a reset


def test_memory_probe_resets_the_peak():
    probe = MemoryProbe(torch.device("cpu"))
    big = torch.ones(100 * 2**20 // 4)
    del big
    probe.start()
    after = probe.summary()["peak_rss_bytes"]
    if after is None:
        pytest.skip("peak RSS cannot be reset on this system")
    assert after < peak_rss_bytes() + 50 * 2**20
    assert probe.summary()["peak_cuda_allocated_bytes"] is None


def test_parameter_gradient_and_optimizer_bytes(data):
    specs = {s.optimizer: s for s in expand(_suite(probes=PROBES)) if s.lr == 0.01}
    summary = train(specs["sgd"], data).summary  # mlp hidden 16 on 1×8×8, 3 classes
    params = 8 * 8 * 16 + 16 + 16 * 3 + 3
    assert summary["param_bytes"] == summary["grad_bytes"] == 4 * params
    assert summary["optimizer_state_bytes"] == 0  # plain SGD keeps no state
    # exp_avg and exp_avg_sq per parameter, plus one scalar step counter per tensor
    assert train(specs["adam"], data).summary["optimizer_state_bytes"] == 2 * 4 * params + 4 * 4


@pytest.mark.cuda
@needs_cuda
def test_cuda_peak_memory_is_per_run():
    device = torch.device("cuda")
    probe = MemoryProbe(device)
    probe.start()
    block = torch.ones(64 * 2**20 // 4, device=device)
    del block
    assert probe.summary()["peak_cuda_allocated_bytes"] >= 64 * 2**20
    probe.start()
    assert probe.summary()["peak_cuda_allocated_bytes"] < 64 * 2**20


@pytest.mark.cuda
@needs_cuda
def test_cuda_step_timer_reads_events_once_per_epoch():
    device = torch.device("cuda")
    timer = StepTimer(device, warmup_steps=0)
    cycles = 50_000_000  # tens of milliseconds of GPU spinning per step
    for _ in range(3):
        timer.data_start()
        timer.compute_start()
        torch.cuda._sleep(cycles)
    timer.data_start()
    assert timer.step_ms == []  # nothing read before the epoch ends
    torch.cuda.synchronize()
    timer.epoch_end()
    assert len(timer.step_ms) == 3 and min(timer.step_ms) > 1.0
    assert max(timer.data_ms) < min(timer.step_ms)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_run_reports_its_probes(precision):
    suite = _suite(device="cuda", probes=PROBES,
                   train={"epochs": 1, "batch_size": 16, "precision": precision,
                          "channels_last": True})
    data = prepare_data(suite.dataset_config, torch.device("cuda"))
    summary = train(expand(suite)[0], data).summary
    assert summary["status"] == "ok"
    assert summary["peak_cuda_allocated_bytes"] >= summary["param_bytes"]
    # both peaks are above the run's start; the data allocated before it is the baseline's
    assert summary["peak_cuda_reserved_bytes"] >= 0
    assert summary["cuda_baseline_bytes"] >= summary["data_bytes"]
    assert summary["step_ms_median"] > 0


# ─── FLOPs ─────────────────────────────────────────────────────────────────────────────────────


def test_flops_of_a_linear_layer():
    forward, training = count_flops(nn.Linear(300, 20), (300,))
    assert forward == 2 * 300 * 20  # a multiply-add counts as 2
    assert training == 2 * forward  # backward: the weight gradient only (the input needs none)


def test_flops_leave_the_model_and_random_streams_alone():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Dropout(0.5), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    forward, _ = count_flops(model, (3, 8, 8))
    assert forward == 2 * (8 * 3 * 9 * 6 * 6) + 2 * (8 * 6 * 6 * 10)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_run_reports_flops_and_achieved_rate(data):
    spec = next(s for s in expand(_suite(probes=PROBES)) if s.optimizer == "sgd")
    summary = train(spec, data).summary
    per_sample = 2 * (8 * 8 * 16 + 16 * 3)
    assert summary["flops_per_sample"] == per_sample
    # backward: weight gradients of both layers, input gradient of the second
    assert summary["train_flops_per_step"] == 16 * (per_sample + 2 * 8 * 8 * 16 + 2 * 2 * 16 * 3)
    assert summary["achieved_flops_per_s"] == pytest.approx(
        summary["train_flops_per_step"] / 16 * summary["samples"] / summary["train_s"])
    assert summary["mfu"] is None and summary["peak_flops_per_s"] is None  # a CPU


@pytest.mark.parametrize(("name", "precision", "tflops"), [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.5),
    ("NVIDIA H100 PCIe", "bf16", 756),
    ("NVIDIA H200", "fp16", 989.5),
    ("NVIDIA A100-SXM4-80GB", "fp32", 156),  # fp32 convolutions run in TF32 by default
    ("NVIDIA L4", "bf16", 121),
    ("NVIDIA L40S", "bf16", 362),
    ("NVIDIA GeForce RTX 4090", "fp16", 165.2),
    ("Tesla V100-SXM2-16GB", "fp32", 15.7),
    ("Tesla V100-SXM2-16GB", "bf16", None),  # no bf16 on Volta
    ("x86_64", "fp32", None),
])
def test_peak_table(name, precision, tflops):
    peak = peak_flops_per_s(name, precision)
    assert peak == (None if tflops is None else pytest.approx(tflops * 1e12))


# ─── gradient norms ────────────────────────────────────────────────────────────────────────────


def test_grad_norms_table(tmp_path):
    matrix = {"model": [{"name": "mlp", "hidden": 16}], "optimizer": ["sgd"], "lr": [0.1]}
    run_suite(_suite(probes=["grad_norms"], matrix=matrix), tmp_path / "out")
    table = load_grad_norms(tmp_path / "out")
    assert list(table.columns) == ["run_id", "epoch", "step", "layer", "ndim", "grad_norm"]
    assert sorted(table["epoch"].unique()) == [0, 1, 2]  # epoch 0: the first step's gradient
    first = table[table["epoch"] == 0]
    assert list(first["layer"]) == ["1.weight", "1.bias", "3.weight", "3.bias"]  # model order
    assert list(first["ndim"]) == [2, 1, 2, 1]
    assert (table["grad_norm"] > 0).all()
    assert table.loc[table["epoch"] == 0, "step"].unique().tolist() == [1]
    runs, history = load_results(tmp_path / "out")
    assert "grad_norms" not in runs and len(history) == 3  # the table lives beside the run
    run_suite(_suite(matrix=matrix), tmp_path / "plain")
    assert load_grad_norms(tmp_path / "plain").empty


# ─── precision and layout ──────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("train_keys", [{"precision": "bf16"}, {"precision": "fp16"},
                                        {"channels_last": True}])
def test_precision_and_layout_keys_train_on_cpu(data, train_keys):
    suite = _suite(matrix={"model": ["keras_cnn"], "optimizer": ["adam"], "lr": [1e-3]},
                   dataset={**TINY_SUITE["dataset"], "image_size": 12},
                   train={"epochs": 1, "batch_size": 16, **train_keys})
    data = prepare_data(suite.dataset_config, torch.device("cpu"))
    summary = train(expand(suite)[0], data).summary
    assert summary["status"] == "ok" and math.isfinite(summary["train_loss"])
    assert summary["precision"] == train_keys.get("precision", "fp32")


def test_unset_execution_keys_keep_run_ids():
    plain, explicit = expand(_suite()), expand(_suite(train={"epochs": 2, "batch_size": 16,
                                                             "precision": None}))
    assert [s.run_id for s in plain] == [s.run_id for s in explicit]


def test_bad_precision_is_a_suite_error(write_suite):
    from cnnbench.errors import SuiteError
    from cnnbench.suite import load_suite

    with pytest.raises(SuiteError, match="precision"):
        load_suite(write_suite(), overrides=["train.precision=fp8"])
    with pytest.raises(SuiteError, match="probes"):
        load_suite(write_suite(), overrides=["probes=[time, gradnorms]"])


@pytest.mark.slow
def test_compiled_model_trains(data):
    suite = _suite(matrix={"model": [{"name": "mlp", "hidden": 16}], "optimizer": ["sgd"],
                           "lr": [0.1]}, train={"epochs": 1, "batch_size": 16, "compile": True})
    summary = train(expand(suite)[0], data).summary
    assert summary["status"] == "ok" and summary["warmup_s"] > 0


def test_a_model_flops_cannot_count_keeps_its_run(data, tmp_path, monkeypatch):
    (tmp_path / "opaque_models.py").write_text(
        "import torch.nn as nn\n\n"
        "class Opaque(nn.Module):\n"
        "    def __init__(self, in_channels=1, num_classes=3, image_size=8):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)\n\n"
        "    def forward(self, x):\n"
        "        scale = float(x.abs().max().item() > 0)  # data-dependent: no meta tensors\n"
        "        return self.fc(x.flatten(1)) * scale\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = _suite(matrix={"model": ["opaque_models:Opaque"], "optimizer": ["sgd"], "lr": [0.1]})
    summary = train(expand(suite)[0], data).summary
    assert summary["status"] == "ok" and summary["flops_per_sample"] is None
    assert summary["achieved_flops_per_s"] is None


def test_time_to_target_excludes_evaluation(data):
    # train_loss is first known after epoch 1, where any finite loss meets this target
    suite = _suite(train={"epochs": 2, "batch_size": 16,
                          "target": {"metric": "train_loss", "value": 1e9}})
    result = train(expand(suite)[0], data)
    first = result.history[1]
    assert result.summary["time_to_target_s"] == first["elapsed_s"]
    # the training seconds of epoch 1 only: neither evaluation is on that clock
    assert result.summary["time_to_target_s"] < result.summary["train_s"]
    assert result.summary["time_to_target_s"] + result.summary["eval_s"] < result.summary["wall_s"]
