"""Hand-built results with known answers, as DataFrames or as a results folder on disk."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from cnnbench.results.store import ResultStore


def run(model="mlp", optimizer="sgd", lr=0.1, seed=0, val_acc=0.9, test_acc=None,
        status="ok", **extra) -> dict:
    """One `runs` row; losses follow the accuracies so either metric can select."""
    test_acc = val_acc if test_acc is None else test_acc
    row = {"suite": "hand", "run_id": f"{model}-{optimizer}-{lr:g}-{seed}", "model": model,
           "optimizer": optimizer, "optimizer_name": optimizer, "lr": lr, "seed": seed,
           "batch": "128", "batch_size": 128, "dataset": "synthetic", "status": status,
           "val_acc": val_acc, "test_acc": test_acc, "val_loss": 1 - val_acc,
           "test_loss": 1 - test_acc, "s_per_epoch": 1.0, "train_s": 2.0,
           "time_to_target_s": math.nan}
    row.update(extra)
    return row


def runs(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def grid(optimizer: str, accs: dict[float, list[float | None]], model: str = "mlp",
         **extra) -> list[dict]:
    """Rows for one optimizer: lr → one accuracy per seed (None: that seed diverged)."""
    return [run(model, optimizer, lr, seed, val_acc=math.nan if acc is None else acc,
                status="diverged" if acc is None else "ok", **extra)
            for lr, values in accs.items() for seed, acc in enumerate(values)]


def history_for(frame: pd.DataFrame, epochs: int = 2) -> pd.DataFrame:
    """A history where each run climbs linearly to its final metrics, 1 s per epoch."""
    rows = []
    for r in frame.to_dict("records"):
        for epoch in range(epochs + 1):
            share = epoch / epochs
            acc = r["val_acc"] * share if not math.isnan(r["val_acc"]) else math.nan
            rows.append({"run_id": r["run_id"], "epoch": epoch, "step": 10 * epoch,
                         "samples": 1280 * epoch, "elapsed_s": float(epoch), "lr": r["lr"],
                         "train_loss": 1 - acc, "train_acc": acc, "val_loss": 1 - acc,
                         "val_acc": acc, "test_loss": 1 - acc, "test_acc": acc})
    return pd.DataFrame(rows)


def write(folder: Path, frame: pd.DataFrame, epochs: int = 2) -> Path:
    """Store hand-built runs (and a linear history) as a results folder."""
    store = ResultStore(folder)
    store.prepare()
    history = history_for(frame, epochs)
    for r in frame.to_dict("records"):
        store.write(r, history[history["run_id"] == r["run_id"]].to_dict("records"))
    return folder


def strip_columns(folder: Path, columns: list[str]) -> None:
    """Rewrite a folder's `runs` files without `columns`: a folder of a release before them."""
    import pyarrow.parquet as pq

    from cnnbench.results.files import table_files

    for path in table_files(folder, "runs"):
        table = pq.read_table(path)
        pq.write_table(table.drop_columns([c for c in columns if c in table.column_names]),
                       path)
