"""How a suite's progress is shown: live rich bars on a terminal, one plain line per event
elsewhere (cluster logs, pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cnnbench.results.schema import Status
from cnnbench.suite import RunSpec


def describe(spec: RunSpec) -> str:
    return (f"{spec.model} {spec.optimizer} lr={spec.lr:g} bs={spec.batch_size} "
            f"seed={spec.seed} [{spec.run_id}]")


class PlainReporter:
    """One line per event on stderr, each with a timestamp: readable in a Slurm log."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.total = self.index = 0

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def start(self, total: int, skipped: int) -> None:
        self.total, self.index = total, 0  # an lr search starts once per round
        self.log(f"{total} run(s) to do" + (f", {skipped} already finished (skipped; --rerun "
                                            "to force)" if skipped else ""))

    def run_started(self, spec: RunSpec) -> None:
        self.index += 1
        self.log(f"run {self.index}/{self.total}: {describe(spec)}")

    def epoch(self, spec: RunSpec, epoch: int, row: dict[str, Any]) -> None:
        self.log(f"  epoch {epoch}/{spec.train['epochs']}: train_loss={row['train_loss']:.4f} "
                 f"val_acc={row['val_acc']:.4f}")

    def run_finished(self, spec: RunSpec, summary: dict[str, Any],
                     history: Sequence[dict[str, Any]] = ()) -> None:
        """A run ended and was written: its `runs` record and its history rows."""
        extra = f" — {summary['message']}" if summary.get("message") else ""
        self.log(f"  {summary['status']}: test_acc={summary.get('test_acc', float('nan')):.4f} "
                 f"wall={summary.get('wall_s', 0):.1f}s{extra}")

    def finish(self) -> None:
        pass


class RichReporter(PlainReporter):
    """A live progress bar over runs, and one over the current run's epochs."""

    def __init__(self, console: Console) -> None:
        super().__init__(console.file)
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                 transient=False)
        self.suite_task = self.run_task = None

    def start(self, total: int, skipped: int) -> None:
        if skipped:
            self.console.print(f"{skipped} run(s) already finished: skipped (--rerun to force)")
        self.progress.start()
        self.suite_task = self.progress.add_task("suite", total=total)

    def run_started(self, spec: RunSpec) -> None:
        if self.run_task is not None:
            self.progress.remove_task(self.run_task)
        self.run_task = self.progress.add_task(f"  {describe(spec)}", total=spec.train["epochs"])

    def epoch(self, spec: RunSpec, epoch: int, row: dict[str, Any]) -> None:
        self.progress.update(self.run_task, completed=epoch)

    def run_finished(self, spec: RunSpec, summary: dict[str, Any],
                     history: Sequence[dict[str, Any]] = ()) -> None:
        self.progress.advance(self.suite_task)
        if summary["status"] != Status.OK:
            self.progress.console.print(f"[yellow]{summary['status']}[/]: {describe(spec)} — "
                                        f"{summary.get('message', '')}")

    def finish(self) -> None:
        if self.run_task is not None:
            self.progress.remove_task(self.run_task)
        self.progress.stop()


def make_reporter(console: Console) -> PlainReporter:
    return RichReporter(console) if console.is_terminal else PlainReporter(console.file)
