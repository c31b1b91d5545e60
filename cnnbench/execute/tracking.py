"""Live tracking (`cnnbench run … --track mlflow:URI`): a reporter that passes every event on to
the reporter it wraps and queues it for a background thread that logs to MLflow. Training never
waits on the store: events are queued without blocking, and the first failure of the store is
reported once, after which tracking stops and training goes on (`cnnbench export` fills the gap
later, matching runs by run_id). When a run ends, its stored result is exported over the live
one: the evaluation before the first epoch, and epochs of an earlier session of a resumed run,
are filled in, and the run is marked complete.

With `--workers N` the runs train in other processes, which report nothing here: export the
results folder after the suite instead."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnbench.errors import CnnbenchError
from cnnbench.execute.progress import PlainReporter
from cnnbench.suite import RunSpec

DRAIN_S = 60.0  # at the end of the suite, how long to wait for the store to catch up
STOP = object()


def parse_track(text: str) -> tuple[str, str]:
    """'mlflow:URI' → ('mlflow', URI); the only tracker so far is MLflow."""
    kind, _, uri = text.partition(":")
    if kind != "mlflow" or not uri:
        raise CnnbenchError(f"--track {text!r}: write it as mlflow:URI, e.g. "
                            "mlflow:sqlite:///mlflow.db or mlflow:http://localhost:5000")
    return kind, uri


class TrackingReporter(PlainReporter):
    """Wraps `inner`; logs the suite's runs to the MLflow store at `uri` from its own thread."""

    def __init__(self, inner: PlainReporter, uri: str, suite: str,
                 suite_file: Path | None = None) -> None:
        super().__init__(inner.stream)
        from cnnbench.outputs import check_mlflow_uri
        from cnnbench.render.exports import require

        require("mlflow", "mlflow", "--track mlflow:URI")  # the extra: checked before training
        check_mlflow_uri(uri, "--track mlflow:", paths=False)
        self.inner, self.uri, self.suite, self.suite_file = inner, uri, suite, suite_file
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.failed = False
        self.thread = threading.Thread(target=self._work, name="cnnbench-tracking", daemon=True)
        self.thread.start()

    # ── the reporter's events: passed on, then queued ──────────────────────────────────────
    def log(self, text: str) -> None:
        self.inner.log(text)

    def start(self, total: int, skipped: int) -> None:
        self.inner.start(total, skipped)

    def run_started(self, spec: RunSpec) -> None:
        self.inner.run_started(spec)
        self.events.put(("started", spec, None))

    def epoch(self, spec: RunSpec, epoch: int, row: dict[str, Any]) -> None:
        self.inner.epoch(spec, epoch, row)
        self.events.put(("epoch", spec, dict(row)))

    def run_finished(self, spec: RunSpec, summary: dict[str, Any],
                     history: Sequence[dict[str, Any]] = ()) -> None:
        self.inner.run_finished(spec, summary, history)
        self.events.put(("finished", spec, {"summary": dict(summary), "history": list(history)}))

    def finish(self) -> None:
        self.events.put((STOP, None, None))
        self.thread.join(DRAIN_S)
        if self.thread.is_alive() and not self.failed:
            self.inner.log(f"warning: MLflow tracking did not catch up within {DRAIN_S:.0f} s; "
                           "`cnnbench export DIR --mlflow URI` fills the gap")
        self.inner.finish()

    # ── the background thread ──────────────────────────────────────────────────────────────
    def _work(self) -> None:
        sink, live = None, {}
        while True:
            kind, spec, payload = self.events.get()
            if kind is STOP:
                return
            if self.failed:
                continue  # drop: training must not wait on a store that is gone
            try:
                if sink is None:
                    from cnnbench.render.exports.mlflow import MlflowSink

                    sink = MlflowSink(self.uri, self.suite)
                    if sink.parent_is_new and self.suite_file is not None:
                        sink.attach([self.suite_file])
                live = self._handle(sink, live, kind, spec, payload)
            except Exception as exc:  # any store failure: warn once, training goes on
                self.failed = True
                first = (str(exc).splitlines() or [""])[0][:200]
                self.inner.log(f"warning: MLflow tracking at {self.uri} failed "
                               f"({type(exc).__name__}: {first}); training goes on untracked; "
                               "`cnnbench export DIR --mlflow URI` fills the gap later")

    def _handle(self, sink, live: dict[str, str], kind: str, spec: RunSpec,
                payload: dict[str, Any] | None) -> dict[str, str]:
        from cnnbench.render.exports import records

        if kind == "started":
            row = {**spec.row(), **{f"hp_{k}": v for k, v in spec.hparams.items()}}
            row["hparams"] = None
            live[spec.run_id] = sink.start(spec.run_id, records.run_name(row),
                                           records.params(row))
        elif kind == "epoch" and spec.run_id in live:
            step = int(payload.get("step", 0))
            sink.log(live[spec.run_id], points=[
                (key, value, step) for key in records.HISTORY_METRICS
                if (value := records.number(payload.get(key))) is not None])
        elif kind == "finished" and spec.run_id in live:
            import pandas as pd

            live.pop(spec.run_id)
            history = pd.DataFrame(payload["history"], columns=None if payload["history"]
                                   else ["step"])
            sink.export(records.record(payload["summary"], history))
        return live
