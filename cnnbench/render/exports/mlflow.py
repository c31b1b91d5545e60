"""Runs into MLflow: an experiment per suite, one parent run for the suite, one child run per
cnnbench run (params, the history as metrics with their step, final metrics and probes, tags,
and the suite file and figures as the parent's artifacts).

Runs are matched by the `cnnbench.run_id` tag, so exporting again creates nothing new: a
complete run is left alone, an incomplete one (live tracking that lost its store part-way)
gets the params, points and tags it lacks. Needs the `[mlflow]` extra (mlflow-skinny, with
SQLAlchemy for `sqlite:///…` stores)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from cnnbench.render.exports import require
from cnnbench.render.exports.records import RunRecord, finished_state, records

RUN_ID_TAG, ROLE_TAG, COMPLETE_TAG = "cnnbench.run_id", "cnnbench.role", "cnnbench.complete"
PARENT_TAG = "mlflow.parentRunId"
BATCH = 1000  # MLflow takes at most 1000 metrics (and 100 params or tags) per log_batch


def _mlflow():
    return require("mlflow", "mlflow", "MLflow export and tracking")


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a `sqlite:///` file (MLflow's own default,
    ./mlruns, would land in whatever folder the command ran from); else the store decides."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/:memory:"):
        return (Path(parsed.path[1:] if parsed.path.startswith("//") else parsed.path)
                .resolve().parent / "mlartifacts").as_uri()
    return None


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class ExportCount:
    created: int
    filled: int
    unchanged: int


class MlflowSink:
    """One suite's experiment in one MLflow store: its parent run and child runs by run_id."""

    def __init__(self, uri: str, suite: str) -> None:
        mlflow = _mlflow()
        self.entities = mlflow.entities
        self.client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(suite)
        self.experiment = found.experiment_id if found else self.client.create_experiment(
            suite, artifact_location=artifact_root(uri))
        self.suite = suite
        self.children = {run.data.tags[RUN_ID_TAG]: run for run in self._search(
            f"tags.`{RUN_ID_TAG}` != ''")}
        parents = self._search(f"tags.`{ROLE_TAG}` = 'suite'")
        self.parent_is_new = not parents
        self.parent = parents[0].info.run_id if parents else self.client.create_run(
            self.experiment, run_name=suite, tags={ROLE_TAG: "suite", "cnnbench.suite": suite}
        ).info.run_id

    def _search(self, filter_string: str) -> list:
        out, token = [], None
        while True:
            page = self.client.search_runs([self.experiment], filter_string, max_results=1000,
                                           page_token=token)
            out += list(page)
            token = page.token
            if not token:
                return out

    # ── writing one run ────────────────────────────────────────────────────────────────────
    def start(self, run_id: str, name: str, params: dict[str, str],
              start_ms: int | None = None) -> str:
        """The MLflow run of `run_id` (made, with `params`, if there is none yet)."""
        if run_id in self.children:
            return self.children[run_id].info.run_id
        run = self.client.create_run(self.experiment, start_time=start_ms, run_name=name,
                                     tags={RUN_ID_TAG: run_id, PARENT_TAG: self.parent,
                                           "cnnbench.suite": self.suite})
        self.log(run.info.run_id, params=params)
        self.children[run_id] = self.client.get_run(run.info.run_id)
        return run.info.run_id

    def log(self, mlflow_id: str, *, points: Sequence[tuple[str, float, int]] = (),
            params: dict[str, str] | None = None, tags: dict[str, str] | None = None,
            timestamp_ms: int = 0) -> None:
        entities = self.entities
        metrics = [entities.Metric(key, value, timestamp_ms, step) for key, value, step in points]
        for part in _chunks(metrics, BATCH):
            self.client.log_batch(mlflow_id, metrics=part)
        for part in _chunks([entities.Param(k, v) for k, v in (params or {}).items()], 100):
            self.client.log_batch(mlflow_id, params=part)
        for part in _chunks([entities.RunTag(k, v) for k, v in (tags or {}).items()], 100):
            self.client.log_batch(mlflow_id, tags=part)

    def finish(self, mlflow_id: str, record: RunRecord, *, complete: bool) -> None:
        """The final metrics (at the last step), tags and end state of a run."""
        finals = [(k, v, record.last_step) for k, v in record.finals_not_in_history().items()]
        self.log(mlflow_id, points=finals, tags={**record.tags, **(
            {COMPLETE_TAG: "true"} if complete else {})}, timestamp_ms=record.end_ms or 0)
        self.client.set_terminated(mlflow_id, finished_state(record.status), record.end_ms)

    def export(self, record: RunRecord) -> str:
        """Write `record` (created / filled / unchanged)."""
        existing = self.children.get(record.run_id)
        if existing is not None and existing.data.tags.get(COMPLETE_TAG) == "true":
            return "unchanged"
        mlflow_id = self.start(record.run_id, record.name, record.params, record.start_ms)
        points = record.points
        if existing is not None:  # fill the gap: only what the store lacks
            existing = self.client.get_run(mlflow_id)  # as it is now, not as first found
            have = existing.data.params
            self.log(mlflow_id, params={k: v for k, v in record.params.items() if k not in have})
            logged = {(key, m.step) for key in existing.data.metrics
                      for m in self.client.get_metric_history(mlflow_id, key)}
            points = [p for p in points if (p[0], p[2]) not in logged]
        self.log(mlflow_id, points=points, timestamp_ms=record.start_ms or 0)
        self.finish(mlflow_id, record, complete=True)
        return "filled" if existing is not None else "created"

    def attach(self, files: Iterable[Path], folder: str | None = None) -> None:
        """Files (the suite, figures) as artifacts of the parent run."""
        for path in files:
            self.client.log_artifact(self.parent, str(path), folder)


def export_mlflow(uri: str, runs: pd.DataFrame, history: pd.DataFrame, *,
                  suite_file: Path | None = None,
                  figures: Callable[[], Iterable[Path]] | None = None) -> ExportCount:
    """Export a results folder's runs into the MLflow store at `uri`; the suite file and the
    figures (drawn by `figures`, only when a run was added or completed) are attached to the
    suite's parent run."""
    suites = sorted(runs["suite"].astype(str).unique())
    counts = {"created": 0, "filled": 0, "unchanged": 0}
    for suite in suites:
        sink = MlflowSink(uri, suite)
        for rec in records(runs[runs["suite"].astype(str) == suite], history):
            counts[sink.export(rec)] += 1
        if sink.parent_is_new or counts["created"] + counts["filled"]:
            sink.attach([suite_file] if suite_file is not None else [])
            sink.attach(figures() if figures is not None else [], "figures")
    return ExportCount(**counts)
