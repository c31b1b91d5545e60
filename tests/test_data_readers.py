"""Readers of the official formats, on small files written here, and on ../shared/data."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnbench.data import DATASETS
from cnnbench.data.cifar import load_pickle
from cnnbench.data.idx import SPLITS, read_idx
from cnnbench.data.imagefolder import read_image_folder
from cnnbench.errors import CnnbenchError
from cnnbench.suite import DatasetConfig
from tests.helpers.data import cifar_arrays, idx_bytes, write_mnist

# ─── IDX ───────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_gzipped_and_raw_idx(tmp_path, gz):
    arrays = write_mnist(tmp_path / "mnist", gz=gz)
    data = DATASETS.get("mnist")(DatasetConfig(name="mnist", download=False), tmp_path)
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(data.x_train[:, 0], arrays[SPLITS[0]])
    np.testing.assert_array_equal(data.y_test, arrays[SPLITS[3]])
    assert data.y_train.dtype == np.int64


def test_torchvision_raw_layout_is_accepted(tmp_path):
    arrays = write_mnist(tmp_path / "FashionMNIST" / "raw", gz=False)
    data = DATASETS.get("fashion-mnist")(DatasetConfig(name="fashion-mnist", download=False),
                                         tmp_path)
    np.testing.assert_array_equal(data.y_train, arrays[SPLITS[1]])
    assert data.classes[0] == "T-shirt/top"


def test_missing_idx_without_download_says_which_files_where(tmp_path):
    with pytest.raises(CnnbenchError) as err:
        DATASETS.get("kmnist")(DatasetConfig(name="kmnist", download=False), tmp_path)
    message = str(err.value)
    assert str(tmp_path / "kmnist") in message
    assert "train-images-idx3-ubyte.gz" in message and "bdb82020997e1d708af4cf47b453dcf7" in message


def test_truncated_idx_is_an_error(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28)))[:-5])
    with pytest.raises(CnnbenchError, match="header says 4×28×28"):
        read_idx(path)


def test_real_mnist_test_set(shared_data):
    folder = shared_data / "mnist"
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    # the content is the original one, whatever gzip wrapper it came in (md5 from the README)
    raw = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == "27ae3e4e09519cfbb04c329615203637"
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                            1009]


# ─── CIFAR ─────────────────────────────────────────────────────────────────────────────────────


def test_cifar10_binary_version(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    expected_x, expected_y = [], []
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        x, y, _ = cifar_arrays(4, 10, seed=i)
        records = np.concatenate([y[:, None].astype(np.uint8), x.reshape(4, -1)], axis=1)
        records.tofile(folder / name)
        expected_x.append(x)
        expected_y.append(y)
    (folder / "batches.meta.txt").write_text("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\n"
                                             "horse\nship\ntruck\n\n")
    data = DATASETS.get("cifar10")(DatasetConfig(name="cifar10", download=False), tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(data.x_train, np.concatenate(expected_x[:5]))
    np.testing.assert_array_equal(data.y_test, expected_y[5])
    assert data.classes[-1] == "truck" and len(data.classes) == 10


def test_cifar100_binary_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    for name, seed in (("train.bin", 0), ("test.bin", 1)):
        x, fine, coarse = cifar_arrays(6, 100, seed)
        fine = fine * 7 % 100  # fine labels beyond the coarse range, so a mix-up shows
        records = np.concatenate([coarse[:, None], fine[:, None], x.reshape(6, -1)], axis=1)
        records.astype(np.uint8).tofile(folder / name)
    (folder / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)))
    (folder / "coarse_label_names.txt").write_text("\n".join(f"coarse{i}" for i in range(20)))
    fine = DATASETS.get("cifar100")(DatasetConfig(name="cifar100", download=False), tmp_path)
    coarse = DATASETS.get("cifar100-coarse")(DatasetConfig(name="cifar100-coarse",
                                                           download=False), tmp_path)
    x, fine_y, coarse_y = cifar_arrays(6, 100, 0)
    np.testing.assert_array_equal(fine.y_train, fine_y * 7 % 100)
    np.testing.assert_array_equal(coarse.y_train, coarse_y)
    np.testing.assert_array_equal(fine.x_train, x)
    assert len(fine.classes) == 100 and len(coarse.classes) == 20


def _python_batch(x: np.ndarray, labels: dict) -> dict:
    # the originals were pickled by Python 2: bytes keys, data as (N, 3072) uint8
    return {b"batch_label": b"batch", b"data": x.reshape(len(x), -1),
            **{k.encode(): list(map(int, v)) for k, v in labels.items()},
            b"filenames": [b"img.png"] * len(x)}


def test_cifar10_and_cifar100_python_versions(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x, y, _ = cifar_arrays(3, 10, seed=i)
        (folder / name).write_bytes(pickle.dumps(_python_batch(x, {"labels": y}), protocol=2))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in
                                                                         names]}, protocol=2))
    data = DATASETS.get("cifar10")(DatasetConfig(name="cifar10", download=False), tmp_path)
    assert data.x_train.shape == (15, 3, 32, 32) and data.classes == tuple(names)
    np.testing.assert_array_equal(data.x_test, cifar_arrays(3, 10, seed=5)[0])

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, seed in (("train", 0), ("test", 1)):
        x, fine, coarse = cifar_arrays(5, 100, seed)
        batch = _python_batch(x, {"fine_labels": fine * 3, "coarse_labels": coarse})
        (folder / name).write_bytes(pickle.dumps(batch, protocol=5))  # numpy's newer reduce
    (folder / "meta").write_bytes(pickle.dumps(
        {"fine_label_names": [f"f{i}" for i in range(100)],
         "coarse_label_names": [f"c{i}" for i in range(20)]}))
    fine = DATASETS.get("cifar100")(DatasetConfig(name="cifar100", download=False), tmp_path)
    coarse = DATASETS.get("cifar100-coarse")(DatasetConfig(name="cifar100-coarse",
                                                           download=False), tmp_path)
    np.testing.assert_array_equal(fine.y_test, cifar_arrays(5, 100, 1)[1] * 3)
    np.testing.assert_array_equal(coarse.y_train, cifar_arrays(5, 100, 0)[2])
    assert coarse.classes[19] == "c19"


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    x, y, _ = cifar_arrays(2, 10, 0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = _python_batch(x, {"labels": y})
        batch[b"payload"] = _Exploit(marker)
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(CnnbenchError, match="refusing to load posix.system"):
        DATASETS.get("cifar10")(DatasetConfig(name="cifar10", download=False), tmp_path)
    assert not marker.exists()
    # and the same file is a real exploit for the plain unpickler (so the test can fail)
    pickle.loads((folder / "test_batch").read_bytes())
    assert marker.exists()


def test_restricted_unpickler_refuses_builtins(tmp_path):
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({"data": print}))
    with pytest.raises(CnnbenchError, match="refusing to load builtins.print"):
        load_pickle(path)


def test_cifar_missing_without_download_says_what_to_unpack(tmp_path):
    with pytest.raises(CnnbenchError, match="cifar-10-binary.tar.gz .md5 c32a1d4ab5d03f1284b"):
        DATASETS.get("cifar10")(DatasetConfig(name="cifar10", download=False), tmp_path)


# ─── image folders ─────────────────────────────────────────────────────────────────────────────


def write_folder(root: Path, counts: dict[str, int], size=(12, 10), fmt="png") -> None:
    rng = np.random.default_rng(0)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i:03d}.{fmt}")


def test_image_folder_with_train_and_test(tmp_path):
    write_folder(tmp_path / "imgs" / "train", {"cat": 3, "dog": 4})
    write_folder(tmp_path / "imgs" / "test", {"cat": 2, "dog": 1}, fmt="jpg")
    data = read_image_folder(tmp_path / "imgs", image_size=8, cache_dir=tmp_path / "cache")
    assert data.classes == ("cat", "dog")
    assert data.x_train.shape == (7, 3, 8, 8) and data.x_test.shape == (3, 3, 8, 8)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1, 1] and data.y_test.tolist() == [0, 0, 1]


def test_image_folder_native_size_pixels_and_grey(tmp_path):
    write_folder(tmp_path / "imgs", {"a": 1, "b": 1}, size=(6, 5))
    data = read_image_folder(tmp_path / "imgs", test_fraction=0.5, cache_dir=tmp_path / "c")
    assert data.x_train.shape == (1, 3, 5, 6)
    original = np.asarray(Image.open(tmp_path / "imgs" / "a" / "000.png"))
    both = np.concatenate([data.x_train, data.x_test])[np.argsort(
        np.concatenate([data.y_train, data.y_test]))]
    np.testing.assert_array_equal(both[0], original.transpose(2, 0, 1))  # png is lossless
    grey = read_image_folder(tmp_path / "imgs", test_fraction=0.5, channels=1,
                             cache_dir=tmp_path / "c")
    assert grey.x_train.shape == (1, 1, 5, 6)


def test_image_folder_split_fraction_is_stratified_and_cached(tmp_path):
    write_folder(tmp_path / "imgs", {"a": 10, "b": 20, "c": 10}, size=(4, 4))
    cache = tmp_path / "cache"
    data = read_image_folder(tmp_path / "imgs", test_fraction=0.25, cache_dir=cache)
    assert np.bincount(data.y_test).tolist() == [2, 5, 3] or \
        np.bincount(data.y_test).tolist() == [3, 5, 2]
    assert len(data.y_train) == 30
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    again = read_image_folder(tmp_path / "imgs", test_fraction=0.25, cache_dir=cache)
    np.testing.assert_array_equal(again.x_test, data.x_test)
    # a changed image makes a new cache entry, never a stale read
    time.sleep(0.01)
    write_folder(tmp_path / "imgs", {"a": 1}, size=(4, 4))
    os.utime(tmp_path / "imgs" / "a" / "000.png")
    read_image_folder(tmp_path / "imgs", test_fraction=0.25, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2


def test_image_folder_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNBENCH_DATA", str(tmp_path))
    with pytest.raises(CnnbenchError, match="set dataset.root"):
        DATASETS.get("imagefolder")(DatasetConfig(name="imagefolder"), tmp_path)
    with pytest.raises(CnnbenchError, match="is not a folder"):
        read_image_folder(tmp_path / "nope", cache_dir=tmp_path)
    write_folder(tmp_path / "one", {"only": 2})
    with pytest.raises(CnnbenchError, match="at least 2 class sub-folders"):
        read_image_folder(tmp_path / "one", cache_dir=tmp_path)
    write_folder(tmp_path / "bad", {"a": 1, "b": 1})
    (tmp_path / "bad" / "a" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(CnnbenchError, match="cannot read .*broken.jpg"):
        read_image_folder(tmp_path / "bad", cache_dir=tmp_path)


@pytest.mark.slow
def test_real_cifar10_jpeg_folder(shared_data, tmp_path):
    with tarfile.open(shared_data / "cifar10-jpeg.tar.gz") as tar:
        tar.extractall(tmp_path / "cifar10", filter="data")
    data = read_image_folder(tmp_path / "cifar10", cache_dir=tmp_path / "cache")
    assert data.x_train.shape == (50_000, 3, 32, 32) and data.x_test.shape == (10_000, 3, 32, 32)
    assert np.bincount(data.y_train).tolist() == [5000] * 10
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    assert data.classes == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck")


@pytest.mark.slow  # walking the 60,000 members of the archive takes ~10 s on a busy machine
def test_real_cifar10_jpegs_subset(shared_data, tmp_path):
    with tarfile.open(shared_data / "cifar10-jpeg.tar.gz") as tar:
        members = [m for m in tar if m.isfile() and int(Path(m.name).stem) < 3]
        tar.extractall(tmp_path / "cifar10", members=members, filter="data")
    data = read_image_folder(tmp_path / "cifar10", cache_dir=tmp_path / "cache")
    assert data.x_train.shape == (30, 3, 32, 32) and data.x_test.shape == (30, 3, 32, 32)
    assert data.classes[0] == "airplane"
    assert data.y_train.tolist() == np.repeat(range(10), 3).tolist()
    assert 40 < data.x_train.mean() < 200  # decoded photos, not blank arrays
