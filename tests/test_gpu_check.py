"""benchmarks/gpu_check.sh on a CPU: --prepare and --dry-run, the CIFAR conversion, and the
checks' logic (the figures themselves need the GPU)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_checks  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
ARCHIVE = "cifar10-jpeg.tar.gz"


def _script(*args: str, prepared: Path, shared: Path | None = None):
    env = {**os.environ, "GPU_CHECK_PREPARED": str(prepared), "GPU_CHECK_PYTHON": sys.executable}
    if shared is not None:
        env["GPU_CHECK_SHARED_DATA"] = str(shared)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=300)


pytestmark = pytest.mark.subprocess  # the script runs in bash; some checks start cnnbench


PACKAGES = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection",
            "typing-extensions", "pytest", "pluggy", "iniconfig", "packaging", "pygments"]


def _prepare(tmp_path: Path, shared_data: Path, seed: bool) -> Path:
    """--prepare from a copy of ../shared/data into a fresh folder; with `seed`, that folder
    already holds a wheel of each pinned version (--prepare then fetches nothing)."""
    from importlib.metadata import version

    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(shared_data / ARCHIVE, shared / ARCHIVE)
    folder = tmp_path / "prepared"
    (folder / "wheels").mkdir(parents=True)
    if seed:
        for name in PACKAGES:
            stem = name.replace("-", "_")
            (folder / "wheels" / f"{stem}-{version(name)}-py3-none-any.whl").write_bytes(b"")
    result = _script("--prepare", prepared=folder, shared=shared)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sha256 verified" in result.stdout and "MISSING" not in result.stdout
    return folder


def test_prepare_keeps_wheels_it_has_and_copies_the_archive(tmp_path, shared_data):
    folder = _prepare(tmp_path, shared_data, seed=True)
    assert len(list((folder / "wheels").iterdir())) == len(PACKAGES)  # nothing fetched again
    assert (folder / ARCHIVE).stat().st_size == (shared_data / ARCHIVE).stat().st_size
    result = _script("--dry-run", prepared=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = ("cifar-from-jpeg", "spellings", "epoch-graphs", "epoch", "ensemble",
             "ensemble-graphs", "profile-resnet50-bf16", "overhead-cuda", "showcase",
             "profile-resnet20-fp32-nchw", "profile-resnet50-bf16-graphs", "timer", "peaks",
             "resume", "fp16", "compile", "divergence", "workers", "bf16-channels-last",
             "cuda-tests")
    for step in steps:
        assert f"  {step} " in result.stdout
    # the headline figures first: the deadline skips what comes last
    positions = [result.stdout.index(f"  {step} ") for step in steps]
    assert positions == sorted(positions)
    assert "Traceback" not in result.stderr


@pytest.fixture
def prepared(tmp_path, shared_data) -> Path:
    """A folder prepared for real: the wheels downloaded from PyPI (needs the network)."""
    return _prepare(tmp_path, shared_data, seed=False)


@pytest.mark.slow
def test_prepare_downloads_wheels_for_the_gpu_image(prepared):
    wheels = {p.name.split("-")[0] for p in (prepared / "wheels").glob("*.whl")}
    assert {name.replace("-", "_") for name in PACKAGES} <= wheels
    core = next((prepared / "wheels").glob("pydantic_core-*.whl")).name
    assert "cp312" in core and "x86_64" in core
    assert sum(p.stat().st_size for p in prepared.rglob("*") if p.is_file()) < 64 * 2**20
    assert _script("--dry-run", prepared=prepared).returncode == 0


def test_dry_run_names_what_the_folder_lacks(tmp_path):
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "pydantic-2.0-py3-none-any.whl").write_bytes(b"")
    result = _script("--dry-run", prepared=tmp_path)
    assert result.returncode == 1
    assert "ok       pydantic-2.0" in result.stdout
    assert "MISSING  wheel of pydantic-core" in result.stdout
    assert f"MISSING  {ARCHIVE}" in result.stdout
    assert "run --prepare" in result.stderr


def test_run_without_cuda_fails_loudly_in_the_preflight(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    result = _script("--out", str(out), prepared=tmp_path / "none")
    assert result.returncode == 1
    assert "PREFLIGHT FAILED" in result.stderr and "no CUDA device" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check_logs.tar.gz",
                                                     "gpu_check_summary.txt"]


def test_unknown_argument_is_exit_2(tmp_path):
    result = _script("--bogus", prepared=tmp_path)
    assert result.returncode == 2 and "unknown argument '--bogus'" in result.stderr


# ─── CIFAR-10 from the JPEG archive ────────────────────────────────────────────────────────────


def test_cifar_conversion_reads_the_archive_in_its_order_and_sorts(tmp_path):
    from PIL import Image

    archive = tmp_path / "tiny.tar.gz"
    images = {}
    with tarfile.open(archive, "w:gz") as tar:
        # members deliberately out of sorted order: the stream is read forward only
        for split, cls, i in [("test", "truck", 1), ("train", "cat", 2), ("test", "airplane", 0),
                              ("train", "airplane", 1), ("train", "cat", 0)]:
            pixels = np.full((32, 32, 3), 40 * len(images), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=100)
            name = f"cifar10/{split}/{cls}/{i:04d}.jpg"
            info = tarfile.TarInfo(name)
            info.size = len(buffer.getvalue())
            tar.addfile(info, io.BytesIO(buffer.getvalue()))
            images[name] = int(pixels[0, 0, 0])
    out = tmp_path / "cifar-10-batches-bin"
    assert gpu_checks.convert_cifar(archive, out) == (3, 2)
    test = np.frombuffer((out / "test_batch.bin").read_bytes(), dtype=np.uint8).reshape(2, 3073)
    assert list(test[:, 0]) == [0, 9]  # sorted by name: airplane/0000 before truck/0001
    expected = [images["cifar10/test/airplane/0000.jpg"], images["cifar10/test/truck/0001.jpg"]]
    assert np.abs(test[:, 1].astype(int) - expected).max() <= 2  # JPEG is lossy
    train = np.frombuffer((out / "data_batch_1.bin").read_bytes(), dtype=np.uint8)
    assert sorted(train.reshape(3, 3073)[:, 0]) == [0, 3, 3]


# ─── the checks' claims, and the checks themselves at CPU sizes ────────────────────────────────


def test_claims():
    assert gpu_checks.timer_agrees(9.7, 10.0) and not gpu_checks.timer_agrees(2.0, 10.0)
    assert not gpu_checks.timer_agrees(0.0, 0.0)
    assert gpu_checks.peaks_isolated(alone=100, big=1000, after_big=100)
    assert not gpu_checks.peaks_isolated(alone=100, big=1000, after_big=1000)
    assert gpu_checks.loss_scale_moved([32768.0, 65536.0])  # halved, then doubled back
    assert not gpu_checks.loss_scale_moved([65536.0, 65536.0])
    assert not gpu_checks.loss_scale_moved([])


@pytest.fixture
def setup(tmp_path):
    return gpu_checks.Setup("cpu", tmp_path, small=True)


@pytest.mark.parametrize("check", ["timer", "divergence", "epoch", "epoch-graphs", "spellings"])
def test_checks_hold_on_cpu(setup, check):
    ok, detail = gpu_checks.CHECKS[check](setup)
    assert ok, detail


@pytest.mark.slow
@pytest.mark.signals  # resume sends SIGTERM to a run
@pytest.mark.parametrize("check", ["resume", "workers", "fp16", "compile",
                                   "bf16-channels-last", "showcase"])
def test_slow_checks_hold_on_cpu(setup, check):
    ok, detail = gpu_checks.CHECKS[check](setup)
    assert ok, detail
