"""The GPU check's Python half: `benchmarks/gpu_check.sh` runs one subcommand per check with the
GPU image's python3. Each check trains through cnnbench's own API, prints one line of detail
last and exits 1 when its claim does not hold. Every check takes --device and --small, so that
its logic also runs on a CPU in seconds (tests/test_gpu_check.py); only the figures need a GPU.

    python benchmarks/gpu_checks.py cifar ARCHIVE DEST      # the JPEG archive → binary batches
    python benchmarks/gpu_checks.py CHECK --work DIR [--device cuda] [--cifar ROOT] [--small]
    python benchmarks/gpu_checks.py profile MODEL CSV [cnnbench profile options]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()
INITIAL_LOSS_SCALE = 65536.0  # torch.amp.GradScaler's init_scale
SCALE_GROWTH_STEPS = 2000  # its growth_interval: the scale doubles after this many good steps


# ─── CIFAR-10 from the JPEG archive ────────────────────────────────────────────────────────────


def convert_cifar(archive: Path, out: Path) -> tuple[int, int]:
    """Write the JPEG ImageFolder copy of CIFAR-10 in the official binary layout (per image one
    label byte then the R, G, B planes of 32×32; 5 train batches of 10,000 and test_batch).

    The archive is read in its own order — a .tar.gz read out of order re-decompresses from the
    start at every backward seek (75 ms an image) — and the records are sorted afterwards."""
    from PIL import Image

    records: dict[str, list[tuple[str, bytes]]] = {"train": [], "test": []}
    with tarfile.open(archive, "r|gz") as tar:  # a stream: forward only, by construction
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in records:
                continue
            image = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read()))
                               .convert("RGB"))
            label = CLASSES.index(parts[-2])
            records[parts[-3]].append(
                (member.name, bytes([label]) + image.transpose(2, 0, 1).tobytes()))
    for split in records.values():
        split.sort()
    rng = np.random.default_rng(0)  # the official batches are shuffled across classes too
    train = [records["train"][i][1] for i in rng.permutation(len(records["train"]))]
    out.mkdir(parents=True, exist_ok=True)
    for b in range(math.ceil(len(train) / 10000)):
        (out / f"data_batch_{b + 1}.bin").write_bytes(b"".join(train[b * 10000:(b + 1) * 10000]))
    (out / "test_batch.bin").write_bytes(b"".join(r for _, r in records["test"]))
    (out / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n")
    return len(train), len(records["test"])


# ─── What each check claims (pure: tested on their own) ────────────────────────────────────────


def timer_agrees(steps_s: float, train_s: float, tolerance: float = 0.05) -> bool:
    """The events' step times add up to the epoch's wall-clock train time. Events recorded on an
    idle GPU would sum to the CPU's queueing time instead, far below it."""
    return train_s > 0 and abs(steps_s - train_s) <= tolerance * train_s


def peaks_isolated(alone: int, big: int, after_big: int, slack: float = 0.05) -> bool:
    """A small run's peak after a big one in the same process is its peak alone, not the big's."""
    return after_big < big and after_big <= alone * (1 + slack)


def loss_scale_moved(scales: list[float]) -> bool:
    """The GradScaler's scale, read at each epoch's end, left its initial value at some point
    (the final value alone could be back at it: one halving, then one doubling)."""
    return any(scale != INITIAL_LOSS_SCALE for scale in scales)


class ScaleRecorder:
    """Stands in for a run's checkpoint: nothing to resume, and each epoch's saved state gives
    the loss scale at that epoch's end."""

    def __init__(self) -> None:
        self.scales: list[float] = []

    def load(self) -> None:
        return None

    def save(self, state: dict[str, Any]) -> None:
        self.scales.append(float(state["trainer"]["scaler"]["scale"]))


# ─── Running runs ──────────────────────────────────────────────────────────────────────────────


@dataclass
class Setup:
    device: str
    work: Path
    cifar: str | None = None  # a folder with cifar-10-batches-bin/; else synthetic images
    small: bool = False  # CPU-test sizes

    def synthetic(self, train_size: int, **keys: Any) -> dict[str, Any]:
        if self.small:
            return {"name": "synthetic", "channels": 1, "image_size": 8, "num_classes": 3,
                    "train_size": min(train_size, 240), "test_size": 30, "val_size": 24, **keys}
        return {"name": "synthetic", "channels": 3, "image_size": 32, "num_classes": 10,
                "train_size": train_size, "test_size": 1000, "val_size": 1000, **keys}

    def cifar10(self, **keys: Any) -> dict[str, Any]:
        if self.cifar is None or self.small:
            return self.synthetic(45000, **keys)
        return {"name": "cifar10", "root": self.cifar, "download": False, "val_size": 5000,
                **keys}

    def model(self, name: str) -> Any:
        return {"name": "mlp", "hidden": 16} if self.small else name

    def suite(self, name: str, dataset: dict, model: str, train: dict, optimizers: list,
              lrs: list[float], probes: list[str] | None = None) -> dict[str, Any]:
        return {"name": name, "dataset": dataset, "train": train, "device": self.device,
                "matrix": {"model": [self.model(model)], "optimizer": optimizers, "lr": lrs},
                "probes": probes or ["time", "memory", "flops"]}


def _run_suite(setup: Setup, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a suite in this process; its rows, in run_id order."""
    import cnnbench
    from cnnbench.suite import validate_suite

    out = setup.work / doc["name"]
    cnnbench.run_suite(validate_suite(doc), out=out, rerun=True)
    runs, _ = cnnbench.load_results(out)
    return runs.sort_values("run_id").to_dict("records")


def _cli(setup: Setup, doc: dict[str, Any], *args: str) -> subprocess.Popen:
    """`cnnbench run` on the suite in a child process (its output to the child's log)."""
    path = setup.work / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    log = open(setup.work / f"{doc['name']}.log", "a")  # noqa: SIM115  (closed by the child)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, "-m", "cnnbench", "run", str(path), "--out",
                             str(setup.work / doc["name"]), *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _mib(value: Any) -> str:
    return "—" if value is None or value != value else f"{value / 2**20:.0f} MiB"


# ─── The checks ────────────────────────────────────────────────────────────────────────────────


def check_timer(setup: Setup) -> tuple[bool, str]:
    """One ResNet-20 epoch on CIFAR-10: the events' step times sum to train_s within 5%."""
    doc = setup.suite("gpu-timer", setup.cifar10(), "resnet20",
                      {"epochs": 1, "batch_size": 16 if setup.small else 128},
                      [{"name": "sgd", "momentum": 0.9}], [0.1 if not setup.small else 0.01])
    r = _run_suite(setup, doc)[0]
    ok = r["status"] == "ok" and timer_agrees(r["steps_s"], r["train_s"])
    mfu = r.get("mfu")
    return ok, (f"{r['status']}: steps sum {r['steps_s']:.2f} s vs train_s {r['train_s']:.2f} s "
                f"({100 * (r['steps_s'] / r['train_s'] - 1):+.1f}%), val_acc {r['val_acc']:.3f}, "
                f"{r['samples_per_s']:,.0f} samples/s, step {r['step_ms_median']:.2f} ms "
                f"(p90 {r['step_ms_p90']:.2f}), peak {_mib(r['peak_cuda_allocated_bytes'])} "
                f"+ data {_mib(r['data_bytes'])}, MFU "
                + ("—" if mfu is None or mfu != mfu else f"{mfu:.1%}"))


def check_peaks(setup: Setup) -> tuple[bool, str]:
    """Small, big, small again in one process: the second small run's peak is the first's."""
    import torch

    from cnnbench.execute.local import prepare_data
    from cnnbench.suite import expand, validate_suite
    from cnnbench.train.engine import train

    def spec(model: str, batch: int):
        doc = setup.suite("gpu-peaks", setup.synthetic(8192), model,
                          {"epochs": 1, "batch_size": batch}, ["sgd"], [0.01], ["memory"])
        return expand(validate_suite(doc))[0]

    small, big = spec("keras_cnn", 32), spec("resnet20", 1024)
    data = prepare_data(validate_suite(
        setup.suite("gpu-peaks", setup.synthetic(8192), "keras_cnn", {}, ["sgd"], [0.01])
    ).dataset_config, torch.device(setup.device))
    key = "peak_cuda_allocated_bytes" if setup.device.startswith("cuda") else "peak_rss_bytes"
    rows = [train(s, data).summary for s in (small, big, small)]
    alone, large, after = (r[key] for r in rows)
    reserved = [r.get("peak_cuda_reserved_bytes") for r in rows]
    ok = all(r["status"] == "ok" for r in rows) and peaks_isolated(alone, large, after)
    return ok, (f"{key}: small alone {_mib(alone)}, big {_mib(large)}, small after big "
                f"{_mib(after)}; reserved {', '.join(map(_mib, reserved))}; data "
                f"{_mib(rows[0]['data_bytes'])} (baseline {_mib(rows[0]['cuda_baseline_bytes'])})")


def check_resume(setup: Setup) -> tuple[bool, str]:
    """SIGTERM once the first checkpoint is written; the re-run resumes from it and ends ok."""
    import cnnbench
    from cnnbench.train.signals import EXIT_INTERRUPTED

    epochs = 30
    doc = setup.suite("gpu-resume", setup.synthetic(20000), "keras_cnn",
                      {"epochs": epochs, "batch_size": 64}, ["sgd"], [0.01], ["time"])
    out = setup.work / doc["name"]
    first = _cli(setup, doc)
    deadline = time.time() + 120
    while first.poll() is None and time.time() < deadline:
        if list((out / "checkpoints").glob("*.pt")):
            break
        time.sleep(0.02)
    if first.poll() is not None:
        return False, f"the run ended (exit {first.returncode}) before any SIGTERM"
    first.send_signal(signal.SIGTERM)
    code = first.wait(timeout=120)
    second = _cli(setup, doc)
    second_code = second.wait(timeout=300)
    runs, history = cnnbench.load_results(out)
    r = runs.iloc[0]
    resumed = r["resumed_from_epoch"]
    ok = (code == EXIT_INTERRUPTED and second_code == 0 and r["status"] == "ok"
          and resumed == resumed and resumed >= 1 and r["epochs_done"] == epochs
          and len(history) == epochs + 1)
    return ok, (f"SIGTERM: exit {code}; re-run: exit {second_code}, {r['status']}, resumed from "
                f"epoch {resumed}, {r['epochs_done']}/{epochs} epochs, {len(history)} history "
                "rows")


def check_fp16(setup: Setup) -> tuple[bool, str]:
    """An fp16 run past the GradScaler's growth interval: the loss scale has moved."""
    import torch

    from cnnbench.execute.local import prepare_data
    from cnnbench.suite import expand, validate_suite
    from cnnbench.train.engine import train

    steps = SCALE_GROWTH_STEPS + 200
    batch = 4 if setup.small else 32
    train_size = 240 if setup.small else 16384
    epochs = math.ceil(steps / math.ceil(train_size / batch))
    suite = validate_suite(setup.suite(
        "gpu-fp16", setup.synthetic(train_size), "keras_cnn",
        {"epochs": epochs, "batch_size": batch, "precision": "fp16"},
        [{"name": "sgd", "momentum": 0.9}], [0.01], ["time"]))
    data = prepare_data(suite.dataset_config, torch.device(setup.device))
    recorder = ScaleRecorder()
    r = train(expand(suite)[0], data, checkpoint=recorder).summary
    ok = r["status"] == "ok" and loss_scale_moved(recorder.scales)
    moves, last = [], INITIAL_LOSS_SCALE
    for epoch, scale in enumerate(recorder.scales, 1):
        if scale != last:
            moves.append(f"{scale:g} by epoch {epoch}")
        last = scale
    return ok, (f"{r['status']} after {r['steps']} steps in {epochs} epochs: loss scale "
                f"{INITIAL_LOSS_SCALE:g} → {' → '.join(moves) or 'unchanged'} (final "
                f"{r.get('loss_scale')}), step {r['step_ms_median']:.2f} ms")


def check_compile(setup: Setup) -> tuple[bool, str]:
    """One `compile: true` run (run with TORCH_LOGS=recompiles: the log shows each recompile),
    its last batch partial: compile time apart from train_s."""
    doc = setup.suite("gpu-compile", setup.synthetic(10000), "resnet20",
                      {"epochs": 2, "batch_size": 16 if setup.small else 128, "compile": True},
                      [{"name": "sgd", "momentum": 0.9}], [0.05])
    r = _run_suite(setup, doc)[0]
    ok = r["status"] == "ok" and r["compile_s"] > 0 and r["train_s"] > 0
    return ok, (f"{r['status']}: compile {r['compile_s']:.1f} s apart; train {r['train_s']:.2f} s, "
                f"{r['samples_per_s']:,.0f} samples/s, step {r['step_ms_median']:.2f} ms")


def check_divergence(setup: Setup) -> tuple[bool, str]:
    """A huge lr diverges mid-epoch; a full-batch run going NaN within 20 steps (fewer than the
    guard's 25-step cadence on CUDA) ends `diverged`, never `ok`."""
    mini = setup.suite("gpu-diverge", setup.synthetic(4096), "keras_cnn",
                       {"epochs": 3, "batch_size": 64}, ["sgd"], [1e4], ["time"])
    full = setup.suite("gpu-diverge-full", setup.synthetic(2048), "keras_cnn",
                       {"epochs": 20, "batch_size": "full", "divergence_factor": 1e300,
                        "eval_batch_size": 512}, ["sgd"], [1e30], ["time"])
    a, b = _run_suite(setup, mini)[0], _run_suite(setup, full)[0]
    ok = (a["status"] == b["status"] == "diverged" and a["samples_per_s"] > 0
          and any(word in b["message"] for word in ("nan", "inf")))
    return ok, (f"mini-batch lr 1e4: {a['status']} ({a['message']}, {a['steps']} steps, "
                f"{a['samples_per_s']:,.0f} samples/s); full batch lr 1e30: {b['status']} "
                f"({b['message']})")


def check_workers(setup: Setup) -> tuple[bool, str]:
    """`--workers 2` on one device: every run ok, and on one GPU the sharing is said."""
    import cnnbench

    doc = setup.suite("gpu-workers", setup.synthetic(4096), "keras_cnn",
                      {"epochs": 2, "batch_size": 64}, ["sgd"], [0.001, 0.01, 0.03, 0.1])
    code = _cli(setup, doc, "--workers", "2").wait(timeout=300)
    runs, _ = cnnbench.load_results(setup.work / doc["name"])
    log = (setup.work / f"{doc['name']}.log").read_text()
    warned = "share 1 GPU" in log
    one_gpu = setup.device.startswith("cuda") and _cuda_count() == 1
    ok = code == 0 and len(runs) == 4 and (runs["status"] == "ok").all() and (
        warned or not one_gpu)
    counts = {str(k): int(v) for k, v in runs["status"].value_counts().items()}
    return ok, (f"exit {code}: {counts}, devices "
                f"{sorted(set(runs['device']))}, sharing warned: {warned}")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count()


def check_bf16_channels_last(setup: Setup) -> tuple[bool, str]:
    """bf16 autocast with channels_last on ResNet-20 through the engine: trains, learns."""
    doc = setup.suite("gpu-bf16-cl", setup.cifar10(subset=10000), "resnet20",
                      {"epochs": 2, "batch_size": 16 if setup.small else 128,
                       "precision": "bf16", "channels_last": True},
                      [{"name": "sgd", "momentum": 0.9}], [0.05])
    r = _run_suite(setup, doc)[0]
    chance = 1 / (3 if setup.small else 10)
    ok = r["status"] == "ok" and r["precision"] == "bf16" and r["val_acc"] > chance
    return ok, (f"{r['status']}: val_acc {r['val_acc']:.3f} (chance {chance:.2f}), "
                f"{r['samples_per_s']:,.0f} samples/s, step {r['step_ms_median']:.2f} ms, "
                f"peak {_mib(r['peak_cuda_allocated_bytes'])}")


def check_spellings(setup: Setup) -> tuple[bool, str]:
    """Every CUDA spelling through the CLI, as a user types it: `--device auto`, `cuda`,
    `cuda:0`, `--execution ensemble`, `--workers 2`, and `profile --device cuda`. Each must exit
    0 with no traceback, and every row must say what was asked: the indexed device, and
    `execution=ensemble` for the ensemble (typer < 0.29 once dropped the flag silently)."""
    import cnnbench

    cuda = setup.device.startswith("cuda")
    resolved = "cuda:0" if cuda else "cpu"
    spellings = ["auto", "cuda", "cuda:0"] if cuda else ["auto", "cpu"]
    doc = setup.suite("gpu-spellings", setup.synthetic(2048), "keras_cnn",
                      {"epochs": 1, "batch_size": 64}, ["sgd", "adam"], [0.01, 0.1], ["time"])
    cases = [(f"--device {d}", ["--device", d], "sequential") for d in spellings]
    cases += [("--execution ensemble", ["--execution", "ensemble"], "ensemble"),
              ("--workers 2", ["--workers", "2"], "sequential")]
    failures, seen = [], []
    for label, args, execution in cases:
        name = f"gpu-spellings-{len(seen)}"
        case = {**doc, "name": name}
        code = _cli(setup, case, *args, "--rerun").wait(timeout=300)
        log = (setup.work / f"{name}.log").read_text()
        runs, _ = cnnbench.load_results(setup.work / name) if code == 0 else (None, None)
        said = "no rows" if runs is None else (
            f"{sorted(set(runs['device']))} {sorted(set(runs['execution']))}")
        seen.append(f"{label}: exit {code}, {said}")
        if (code != 0 or "Traceback" in log or runs is None
                or set(runs["device"]) != {resolved} or set(runs["execution"]) != {execution}
                or (runs["status"] != "ok").any()):
            failures.append(label)
    profile = subprocess.run([sys.executable, "-m", "cnnbench", "profile", "mlp", "--device",
                              setup.device.split(":")[0], "--batch-sizes", "32", "--warmup",
                              "1", "--repeats", "2"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    seen.append(f"profile --device {setup.device.split(':')[0]}: exit {profile.returncode}")
    if profile.returncode != 0 or "Traceback" in profile.stderr:
        failures.append("profile")
    return not failures, ("; ".join(seen) + (f" — FAILED: {', '.join(failures)}"
                                             if failures else ""))


def check_epoch(setup: Setup, graphs: bool) -> tuple[bool, str]:
    """The ResNet-20 CIFAR-10 epoch (batch 128, fp32, sequential), the second of two so that
    the first pays cuDNN's autotuning and the capture: s/epoch and samples/s."""
    doc = setup.suite(f"gpu-epoch-{'graphs' if graphs else 'eager'}", setup.cifar10(),
                      "resnet20", {"epochs": 2, "batch_size": 16 if setup.small else 128,
                                   **({"graphs": True} if graphs else {})},
                      [{"name": "sgd", "momentum": 0.9}], [0.05], ["time"])
    import cnnbench

    rows = _run_suite(setup, doc)
    _, history = cnnbench.load_results(setup.work / doc["name"])
    r = rows[0]
    elapsed = history.sort_values("epoch")["elapsed_s"].tolist()
    second = elapsed[-1] - elapsed[-2]
    ok = r["status"] == "ok" and bool(r["graphs"]) == (graphs and setup.device != "cpu")
    samples = r["samples"] / r["epochs_done"]
    return ok, (f"{r['status']}: epoch 2 {second:.2f} s ({samples / second:,.0f} samples/s), "
                f"epoch 1 {elapsed[1]:.2f} s, graphs {r['graphs']}, channels_last "
                f"{r['channels_last']}, tf32 {r['tf32']}, dropped/epoch "
                f"{r['dropped_per_epoch']}, val_acc {r['val_acc']:.3f}")


def check_showcase(setup: Setup) -> tuple[bool, str]:
    """suites/lecture/degradation_gpu.yaml at full CIFAR-10 through the CLI: its minutes, and
    the lecture's claim — plain56 ends with a higher training loss than plain20, resnet56 at
    most 2 % above resnet20's."""
    import cnnbench

    path = ROOT / "suites" / "lecture" / "degradation_gpu.yaml"
    doc = yaml.safe_load(path.read_text())
    if setup.small:  # the logic only: tiny data, two epochs (one of warm-up)
        doc["dataset"] = setup.synthetic(240)
        doc["train"] = {**doc["train"], "epochs": 2, "batch_size": 16}
    elif setup.cifar is not None:
        doc["dataset"] = {**doc["dataset"], "root": setup.cifar, "download": False}
    doc["device"] = setup.device
    start = time.perf_counter()
    code = _cli(setup, doc, "--rerun").wait(timeout=900)
    minutes = (time.perf_counter() - start) / 60
    if code != 0:
        return False, f"cnnbench run exited {code} after {minutes:.1f} min"
    runs, _ = cnnbench.load_results(setup.work / doc["name"])
    loss = dict(zip(runs["model"], runs["train_loss"]))
    acc = dict(zip(runs["model"], runs["test_acc"]))
    # docs/lecture.md's rule: resnet56 at most 2 % above resnet20
    claim = loss["plain56"] > loss["plain20"] and loss["resnet56"] <= loss["resnet20"] * 1.02
    return (claim or setup.small), (
        f"{minutes:.1f} min for {len(runs)} runs × {doc['train']['epochs']} epochs; train loss "
        + ", ".join(f"{m} {loss[m]:.3f}" for m in ("plain20", "plain56", "resnet20", "resnet56"))
        + "; test acc " + ", ".join(f"{m} {acc[m]:.3f}" for m in ("plain20", "plain56",
                                                                  "resnet20", "resnet56"))
        + f"; claim {'holds' if claim else 'does NOT hold'}")


def check_epoch_eager(setup: Setup) -> tuple[bool, str]:
    """The ResNet-20 CIFAR-10 epoch, steps launched one kernel at a time (the default)."""
    return check_epoch(setup, graphs=False)


def check_epoch_graphs(setup: Setup) -> tuple[bool, str]:
    """The ResNet-20 CIFAR-10 epoch with `graphs: true` (goal on an H200: ≤ 2 s)."""
    return check_epoch(setup, graphs=True)


CHECKS = {"spellings": check_spellings, "epoch": check_epoch_eager,
          "epoch-graphs": check_epoch_graphs,
          "showcase": check_showcase,
          "timer": check_timer, "peaks": check_peaks, "resume": check_resume,
          "fp16": check_fp16, "compile": check_compile, "divergence": check_divergence,
          "workers": check_workers, "bf16-channels-last": check_bf16_channels_last}


def profile(model: str, csv: Path, options: list[str]) -> tuple[bool, str]:
    """`cnnbench profile` on CUDA into `csv`; the line: its largest batch's training row."""
    import pandas as pd

    command = [sys.executable, "-m", "cnnbench", "profile", model, *options, "--device", "cuda",
               "--warmup", "10", "--repeats", "30", "--out", str(csv)]
    if subprocess.run(command).returncode != 0:
        return False, f"cnnbench profile {model} failed"
    rows = pd.read_csv(csv)
    d = rows[rows.phase == "train"].iloc[-1]
    mfu = "—" if pd.isna(d.get("mfu")) else f"{d.mfu:.1%}"
    return d.status == "ok", (f"train bs {d.batch_size}: {d.samples_per_s:,.0f} samples/s, "
                              f"{d.step_ms_median:.2f} ms, MFU {mfu}, peak "
                              f"{_mib(d.get('peak_cuda_allocated_bytes'))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prof = sub.add_parser("profile", help="cnnbench profile on CUDA, summarised in one line")
    prof.add_argument("model")
    prof.add_argument("csv", type=Path)
    cifar = sub.add_parser("cifar", help="convert the CIFAR-10 JPEG archive")
    cifar.add_argument("archive", type=Path)
    cifar.add_argument("dest", type=Path)
    for name in CHECKS:
        check = sub.add_parser(name, help=CHECKS[name].__doc__.splitlines()[0])
        check.add_argument("--work", type=Path, required=True)
        check.add_argument("--device", default="cuda")
        check.add_argument("--cifar", default=None)
        check.add_argument("--small", action="store_true")
    args, rest = parser.parse_known_args(argv)
    if args.command == "profile":
        ok, detail = profile(args.model, args.csv, rest)
        print(("" if ok else "FAILED: ") + detail, flush=True)
        return 0 if ok else 1
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "cifar":
        start = time.perf_counter()
        train, test = convert_cifar(args.archive, args.dest)
        print(f"{train} train and {test} test images in {time.perf_counter() - start:.1f} s")
        return 0 if (train, test) == (50000, 10000) else 1
    args.work.mkdir(parents=True, exist_ok=True)
    ok, detail = CHECKS[args.command](Setup(args.device, args.work, args.cifar, args.small))
    print(("" if ok else "FAILED: ") + detail, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
