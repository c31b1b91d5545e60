"""Every spelling of a CUDA device (`auto`, `cuda`, `cuda:N`, --workers) through every entry point
that makes a device current, on a fake `torch.cuda` that rejects what torch rejects: an
index-less `set_device` crashed every `cuda`/`auto` run on a real GPU, and no CPU test saw it."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.execute import local
from cnnbench.suite import validate_suite
from cnnbench.train.devices import resolve_device, spreads_over_gpus, worker_devices
from tests.helpers import fake_cuda
from tests.helpers.suites import TINY_SUITE


class Reached(CnnbenchError):
    """Raised where the entry point would first put data on the device: far enough."""


def _stop_at_data(monkeypatch) -> list[torch.device]:
    devices: list[torch.device] = []

    def prepare(config, device, data_dir=None):
        devices.append(device)
        raise Reached(f"data would go to {device}")

    monkeypatch.setattr(local, "prepare_data", prepare)
    return devices


def test_the_fake_rejects_what_torch_rejects(monkeypatch):
    fake = fake_cuda.install(monkeypatch, count=2)
    with pytest.raises(ValueError, match="specified index"):
        torch.cuda.set_device(torch.device("cuda"))
    torch.cuda.set_device(torch.device("cuda:1"))
    assert fake.made_current == [1]


@pytest.mark.parametrize(("requested", "resolved"), [
    ("auto", "cuda:0"), ("cuda", "cuda:0"), ("cuda:1", "cuda:1")])
def test_every_cuda_spelling_resolves_to_an_indexed_device(monkeypatch, requested, resolved):
    fake_cuda.install(monkeypatch, count=2)
    assert resolve_device(requested) == torch.device(resolved)


def test_cuda_without_an_index_is_the_current_gpu(monkeypatch):
    fake = fake_cuda.install(monkeypatch, count=2)
    fake.current = 1  # e.g. a process already put on GPU 1
    assert resolve_device("cuda") == torch.device("cuda:1")


def test_auto_without_cuda_is_the_cpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("requested", ["cuda:7", "cuda:1"])
def test_a_gpu_that_is_not_there_is_one_message(monkeypatch, requested):
    fake_cuda.install(monkeypatch, count=1)
    with pytest.raises(CnnbenchError, match=r"only 1 CUDA device\(s\) are visible"):
        resolve_device(requested)


@pytest.mark.parametrize("requested", ["auto", "cuda", "cuda:0", "cuda:1"])
def test_a_run_makes_its_indexed_gpu_current(monkeypatch, tmp_path, requested):
    from cnnbench import run_suite

    fake = fake_cuda.install(monkeypatch, count=2)
    reached = _stop_at_data(monkeypatch)
    suite = validate_suite({**TINY_SUITE, "device": requested})
    with pytest.raises(Reached):
        run_suite(suite, out=tmp_path / "out")
    index = int(requested[-1]) if requested[-1].isdigit() else 0
    assert fake.made_current == [index] and reached == [torch.device("cuda", index)]


def test_a_search_range_test_makes_its_indexed_gpu_current(monkeypatch, tmp_path):
    from cnnbench.execute.progress import PlainReporter
    from cnnbench.execute.starts import run_range_tests

    fake = fake_cuda.install(monkeypatch)
    _stop_at_data(monkeypatch)
    suite = validate_suite({**TINY_SUITE, "device": "cuda"})
    with pytest.raises(Reached):
        run_range_tests(suite, tmp_path, [object()], data_dir=None,
                        reporter=PlainReporter(print))
    assert fake.made_current == [0]


@pytest.mark.parametrize("requested", ["auto", "cuda", "cuda:0"])
def test_profile_makes_its_indexed_gpu_current(monkeypatch, requested):
    from cnnbench.tools import profile

    fake = fake_cuda.install(monkeypatch)

    def stop(*args, **kwargs):
        raise Reached("the model would be built")

    monkeypatch.setattr(profile, "create_model", stop)
    with pytest.raises(Reached):
        profile.profile_model("mlp", input_shape=(1, 8, 8), num_classes=3, batch_sizes=[2],
                              device=resolve_device(requested))
    assert fake.made_current == [0]


@pytest.mark.parametrize(("requested", "devices"), [
    ("cuda", ["cuda:0", "cuda:1"]), ("auto", ["cuda:0", "cuda:1"]),
    ("cuda:1", ["cuda:1", "cuda:1"])])
def test_workers_get_indexed_gpus(monkeypatch, requested, devices):
    fake_cuda.install(monkeypatch, count=2)
    got, _ = worker_devices(2, resolve_device(requested), 2, spread=spreads_over_gpus(requested))
    assert got == devices
    for name in got:  # what each worker process then makes current
        fake_cuda.FakeCuda(count=2).set_device(torch.device(name))


@pytest.mark.parametrize("requested", ["cuda", "auto", "cuda:1"])
def test_cli_run_on_each_spelling_reaches_the_data_on_an_indexed_gpu(monkeypatch, write_suite,
                                                                     tmp_path, requested):
    fake = fake_cuda.install(monkeypatch, count=2)
    _stop_at_data(monkeypatch)
    result = CliRunner().invoke(app, ["run", str(write_suite()), "--device", requested,
                                      "--out", str(tmp_path / "out")])
    index = requested[-1] if requested[-1].isdigit() else "0"
    assert f"data would go to cuda:{index}" in result.output, result.output
    assert "Traceback" not in result.output and fake.made_current == [int(index)]


def test_cli_a_gpu_that_is_not_there_exits_2_and_writes_nothing(monkeypatch, write_suite,
                                                               tmp_path):
    fake_cuda.install(monkeypatch, count=1)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(write_suite()), "--device", "cuda:7",
                                      "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "only 1 CUDA device(s) are visible" in result.output
    assert "Traceback" not in result.output and not out.exists()


# ─── the CUDA defaults: each one visible and switchable ───────────────────────────────────────


@pytest.fixture
def restore_math():
    precision = torch.get_float32_matmul_precision()
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32)
    yield
    torch.set_float32_matmul_precision(precision)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = flags


def test_tf32_is_on_by_default_on_cuda_and_a_key_turns_it_off(restore_math):
    from cnnbench.train.precision import use_cuda_defaults

    cuda = torch.device("cuda:0")  # flags only: nothing runs on a device
    assert use_cuda_defaults(cuda, None) is True
    assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.benchmark
    assert use_cuda_defaults(cuda, False) is False
    assert torch.get_float32_matmul_precision() == "highest"
    assert not torch.backends.cudnn.allow_tf32
    before = torch.get_float32_matmul_precision()
    assert use_cuda_defaults(torch.device("cpu"), None) is None  # off CUDA nothing changes
    assert torch.get_float32_matmul_precision() == before


def test_channels_last_by_default_for_conv_nets_alone_on_cuda():
    from cnnbench.models import create_model
    from cnnbench.train.precision import resolve_channels_last

    conv = create_model("resnet20", in_channels=3, num_classes=10, image_size=32)
    mlp = create_model("mlp", in_channels=3, num_classes=10, image_size=32)
    cuda, cpu = torch.device("cuda:0"), torch.device("cpu")
    assert resolve_channels_last(None, cuda, conv, "bf16") is True
    assert resolve_channels_last(None, cuda, conv, "fp32") is True
    assert resolve_channels_last(None, cuda, mlp, "fp32") is False
    assert resolve_channels_last(None, cuda, conv, "fp64") is False
    assert resolve_channels_last(None, cuda, conv, "fp32", stacked=True) is False
    assert resolve_channels_last(None, cpu, conv, "fp32") is False
    assert resolve_channels_last(False, cuda, conv, "fp32") is False  # the suite's key wins
    assert resolve_channels_last(True, cpu, mlp, "fp32") is True


def test_a_cpu_run_row_says_how_it_executed(tmp_path):
    from cnnbench import load_results, run_suite

    suite = validate_suite({**TINY_SUITE, "matrix": {"model": ["mlp"],
                                                     "optimizer": ["sgd"], "lr": [0.1]}})
    run_suite(suite, out=tmp_path / "out")
    runs, _ = load_results(tmp_path / "out")
    assert runs["status"].tolist() == ["ok"]
    assert runs["channels_last"].tolist() == [False] and runs["graphs"].tolist() == [False]
    assert runs["dropped_per_epoch"].tolist() == [0]
    assert runs["tf32"].isna().all() and runs["cudnn_benchmark"].isna().all()
