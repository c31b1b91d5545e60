"""What the command line and notebooks share: one function per command, each returning data (the
CLI renders it). Heavy modules (torch, pandas, matplotlib) are imported inside the functions
that need them, so that light commands start fast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.errors import CnnbenchError

if TYPE_CHECKING:  # annotations only; nothing here imports what imports this module
    import pandas as pd

    from cnnbench.execute.progress import PlainReporter
    from cnnbench.render.report import Report
    from cnnbench.results.compaction import Compaction
    from cnnbench.results.schema import SuiteOutcome
    from cnnbench.results.status import SuiteStatus
    from cnnbench.suite import RunSpec, Suite


def load(suite_file: str | Path, overrides: list[str] | None = None,
         device: str | None = None) -> tuple[Suite, list[str]]:
    """The validated suite (`--set` overrides and `--device` applied) and its warnings
    (include/exclude entries that change nothing)."""
    from cnnbench.packaged import resolve_suite
    from cnnbench.suite import load_suite, suite_warnings

    overrides = list(overrides or [])
    if device is not None:
        overrides.append(f"device={device}")
    suite = load_suite(resolve_suite(suite_file), overrides)
    return suite, suite_warnings(suite)


def suites() -> list[dict[str, Any]]:
    """The packaged suites: name (what `run NAME` takes), suite name, run count, description.
    Counts come from the suites' index (`packaged.INDEX`, kept true by a test), so listing
    them loads neither pydantic nor torch."""
    from cnnbench.packaged import description, packaged_suites, read_index

    index = read_index()
    return [{"name": name, "suite": index.get(name, {}).get("suite"),
             "runs": index.get(name, {}).get("runs"), "description": description(path)}
            for name, path in packaged_suites().items()]


def suite_index() -> dict[str, dict[str, Any]]:
    """What the suites' index should hold: each packaged suite's name and run count (round 1
    for an lr search), computed by loading and expanding it."""
    from cnnbench.packaged import packaged_suites
    from cnnbench.suite import expand

    index = {}
    for name, path in packaged_suites().items():
        suite, _ = load(path)
        index[name] = {"suite": suite.name, "runs": len(expand(suite))}
    return index


def init(name: str, folder: str | Path = ".") -> Path:
    """Write the commented starter suite NAME.yaml into `folder` (refusing to overwrite)."""
    from cnnbench.packaged import write_starter

    return write_starter(name, Path(folder))


def results_dir(suite: Suite, out: str | Path | None) -> Path:
    """`--out`, else results/<suite name>."""
    return Path(out) if out is not None else Path("results") / suite.name


def select_shard(specs: list[RunSpec], shard: str | None) -> tuple[list[RunSpec], str | None]:
    """The runs of `--shard K/N`, or of the Slurm array task we run in, else all of them; with
    a line saying which share was taken (None: all)."""
    from cnnbench.suite.shards import parse_shard, shard_from_env
    from cnnbench.suite.shards import shard as take

    if shard is not None:
        (k, n), source = parse_shard(shard), "--shard"
    elif (found := shard_from_env()) is not None:
        (k, n), source = found, "Slurm array task (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT)"
    else:
        return specs, None
    mine = take(specs, k, n)
    return mine, f"shard {k}/{n} from {source}: {len(mine)} of {len(specs)} run(s)"


def finished(out: str | Path) -> dict[str, str]:
    """run_id → status of the runs already finished in a results folder (none: empty)."""
    if not Path(out).is_dir():  # nothing run yet: no need to import the store (pandas)
        return {}
    from cnnbench.results.store import ResultStore

    store = ResultStore(out)
    return store.finished_ids() if store.runs_dir.is_dir() else {}


def main_rank() -> bool:
    """False in the ranks other than 0 that torchrun or srun started: rank 0 speaks for all."""
    from cnnbench.execute.runner import is_main_rank

    return is_main_rank()


@dataclass(frozen=True)
class SuiteRun:
    """What `run` came to: the outcome and the results of the runs it was asked for."""

    outcome: SuiteOutcome
    runs: pd.DataFrame
    history: pd.DataFrame


def run(suite: Suite, specs: list[RunSpec], out: Path, *, reporter: PlainReporter,
        **options: Any) -> SuiteRun:
    """Train `specs` (skipping finished ones; `options` as `run_suite`'s) and load their
    results."""
    from cnnbench.execute.runner import run_suite
    from cnnbench.results.loading import load_results

    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        outcome = run_suite(suite, out, specs=specs, reporter=reporter, **options)
    except CnnbenchError:  # bad input found at the start (data not there, …): nothing written
        _remove_empty(out, created)
        raise
    runs, history = load_results(outcome.out)
    return SuiteRun(outcome, runs[runs["run_id"].isin({s.run_id for s in specs})], history)


def first_round(suite: Suite, out: Path) -> list[RunSpec]:
    """Round 1's runs (every run of a suite without lr searches); a `start: auto` search's
    start grid where `out` records its lr range test."""
    from cnnbench.suite import expand
    from cnnbench.suite.starts import read_starts

    return expand(suite, read_starts(out))


def range_tests(suite: Suite) -> int:
    """How many lr range tests the suite's `start: auto` searches start from."""
    from cnnbench.suite.search import range_tests as tests

    return len(tests(suite))


def searches(suite: Suite) -> bool:
    """Whether any lr of the suite is a search (`{search: ...}`), run round after round."""
    from cnnbench.suite.search import has_search

    return has_search(suite)


def run_search(suite: Suite, out: Path, *, shard: str | None, reporter: PlainReporter,
               **options: Any) -> tuple[SuiteRun, Any]:
    """Run the lr search's rounds not yet finished (this shard's share of each with `--shard`
    or in a Slurm array task; `options` as `run_suite`'s) and load the results of every round;
    with the search's state after (`execute.rounds.SearchRun`)."""
    from cnnbench.execute.rounds import run_rounds
    from cnnbench.results.loading import load_results
    from cnnbench.suite.shards import parse_shard, shard_from_env

    share = parse_shard(shard) if shard is not None else shard_from_env()
    done = run_rounds(suite, out, reporter=reporter, shard=share, **options)
    runs, history = load_results(out)
    if not runs.empty:  # empty: every group stopped before round 1 (no range test start)
        runs = runs[runs["run_id"].isin({s.run_id for s in done.state.specs})]
    return SuiteRun(done.outcome, runs, history), done


def _remove_empty(out: Path, created: list[Path]) -> None:
    """Remove the folders this call created under and above `out`, where they hold no file."""
    if not out.is_dir() or any(p.is_file() for p in out.rglob("*")):
        return
    for folder in sorted(out.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()
    for folder in created:  # out first, then its parents, deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty: something else lives there now
            break


def status(results: Path, suite_file: Path | None, overrides: list[str] | None,
           shards: int | None) -> tuple[SuiteStatus, dict[str, Any]]:
    """Where a suite stands, with the record `submit` left (job id, shards), if any. Without
    `suite_file`, the run_ids `submit` recorded per shard are counted (no suite loaded, no
    torch imported); failing those, the suite copy `submit` made is used when there is one."""
    from cnnbench.execute.slurm import SUITE_COPY, read_record
    from cnnbench.results.status import suite_status
    from cnnbench.suite import expand

    record = read_record(results) or {}
    recorded = record.get("shard_run_ids")
    if suite_file is None and not overrides and recorded and shards in (None, len(recorded)):
        return suite_status(results, shard_ids=recorded), record  # as submitted: no suite
    if suite_file is None and (results / SUITE_COPY).exists():
        suite_file = results / SUITE_COPY
        overrides = [*record.get("overrides", []), *(overrides or [])]
    suite = load(suite_file, overrides)[0] if suite_file is not None else None
    specs = expand(suite) if suite is not None else None
    if suite is not None and searches(suite):  # every round so far, the current one last
        from cnnbench.execute.rounds import load_state

        state = load_state(suite, results)
        specs = state.specs
        record = {**record, "rounds": len(state.rounds), "search_finished": state.finished,
                  "range_tests_pending": len(state.pending)}
    return suite_status(results, specs, shards or record.get("shards")), record


def report(results: Path, **options: Any) -> tuple[Report, pd.DataFrame, pd.DataFrame]:
    """The report of a results folder (`options` as `Report`'s), with its runs and history."""
    from cnnbench.render.report import Report
    from cnnbench.results.loading import load_results

    runs, history = load_results(results)
    if runs.empty:
        raise CnnbenchError(f"no finished runs in {str(results)!r}")
    return Report(runs, history, **options), runs, history


def compare(dir_a: Path, dir_b: Path, metric: str, *, factor: float = 1.05,
            allow_contended: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The common runs of two results folders side by side (`analysis.compare`); a time
    changed only beyond `factor` (and significant). Runs timed on a shared machine make it a
    CnnbenchError unless `allow_contended`; returns the table and notes for the reader."""
    from cnnbench.analysis import compare as compare_runs
    from cnnbench.analysis.timing import timing
    from cnnbench.render.summary import allow_contended_moot
    from cnnbench.results.loading import load_results

    runs_a, _ = load_results(dir_a)
    runs_b, _ = load_results(dir_b)
    for runs in (runs_a, runs_b):
        if not runs.empty and metric not in runs:
            raise CnnbenchError(f"unknown metric {metric!r}; try test_acc, test_loss, val_acc")
    if runs_a.empty or runs_b.empty:
        raise CnnbenchError("one of the folders holds no finished runs: nothing to compare")
    if not factor > 1:
        raise CnnbenchError(f"--factor must be > 1 (1.05 = 5%), not {factor:g}")
    notes = []
    for folder, runs in ((dir_a, runs_a), (dir_b, runs_b)):
        found = timing(runs)
        if not found.known and allow_contended:
            notes.append(allow_contended_moot(folder))
        elif found.contended and not allow_contended:
            shown = ", ".join(found.contended[:5]) + (" …" if len(found.contended) > 5 else "")
            raise CnnbenchError(
                f"{len(found.contended)} run(s) of {folder} trained on a shared machine "
                f"(timing: contended: {shown}): their times would rank the machine, not the "
                "runs. Re-time them (`cnnbench run SUITE --retime`) or pass --allow-contended")
        elif found.contended:
            notes.append(f"{len(found.contended)} run(s) of {folder} were timed on a shared "
                         "machine (--allow-contended): their time ratios are the machine's")
    return compare_runs(runs_a, runs_b, metric=metric, factor=factor), notes


def grad_norms(results: Path, epochs: list[int] | None
               ) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
    """The grad_norms probe by depth: (first-vs-last summary, per-layer profile, the epochs to
    draw — default 0 and the last)."""
    from cnnbench.results.loading import load_grad_norms, load_results
    from cnnbench.tools.gradients import depth_profile, depth_summary

    runs, _ = load_results(results)
    profile = depth_profile(load_grad_norms(results), runs)
    chosen = epochs or sorted({0, int(profile["epoch"].max())})
    missing = sorted(set(chosen) - set(profile["epoch"]))
    if missing:
        raise CnnbenchError(f"--epochs: no gradient norms recorded at epoch(s) {missing}; "
                            f"recorded: {sorted(profile['epoch'].unique().tolist())}")
    return depth_summary(profile), profile, chosen


def compact_results(results: Path) -> Compaction:
    """Fold a results folder's parts into one consolidated file per table."""
    from cnnbench.results.compaction import compact

    return compact(results)


def upgrade_results(results: Path) -> tuple[int, int]:
    """Rewrite the older-version run files of a results folder: (files rewritten, version)."""
    from cnnbench.results.schema import SCHEMA_VERSION
    from cnnbench.results.upgrade import upgrade

    return upgrade(results), SCHEMA_VERSION


def profile(model: str, *, dataset: str | None, input: str | None, classes: int | None,
            data_dir: str | None, device: str, **options: Any) -> list[dict[str, Any]]:
    """`tools.profile.profile_model` at the input of `--input` or `--dataset` (else the
    model's native one)."""
    from cnnbench.tools.profile import input_for, profile_model
    from cnnbench.train.devices import resolve_device

    shape, default_classes = input_for(model, dataset=dataset, input=input, data_dir=data_dir)
    return profile_model(model, input_shape=shape, num_classes=classes or default_classes,
                         device=resolve_device(device), **options)


@dataclass(frozen=True)
class Exported:
    """What `export` wrote: MLflow run counts (None: not asked) and TensorBoard folders."""

    mlflow: Any
    tensorboard: list[Path]


def export(results: Path, *, mlflow: str | None = None, tensorboard: Path | None = None,
           suite_file: Path | None = None, figures: bool = True) -> Exported:
    """A results folder into an MLflow store (runs matched by run_id: nothing is made twice)
    and/or TensorBoard event files. The suite file (default: the copy `submit` made, if any)
    and, with `figures`, the report's figures become artifacts of the suite's MLflow run."""
    import tempfile

    from cnnbench.execute.slurm import SUITE_COPY
    from cnnbench.outputs import check_mlflow_uri, check_output_folder
    from cnnbench.results.loading import load_results

    if mlflow is None and tensorboard is None:
        raise CnnbenchError("export needs a target: --mlflow URI and/or --tensorboard LOGDIR")
    if suite_file is not None and not Path(suite_file).is_file():
        raise CnnbenchError(f"--suite {str(suite_file)!r}: no such file")
    if tensorboard is not None:
        check_output_folder(tensorboard, "--tensorboard")
    if mlflow is not None:
        check_mlflow_uri(mlflow, "--mlflow")
    runs, history = load_results(results)
    if runs.empty:
        raise CnnbenchError(f"no finished runs in {str(results)!r}")
    counts, folders = None, []
    if tensorboard is not None:
        from cnnbench.render.exports.tensorboard import export_tensorboard

        folders = export_tensorboard(tensorboard, runs, history)
    if mlflow is not None:
        from cnnbench.render.exports.mlflow import export_mlflow

        if suite_file is None and (results / SUITE_COPY).is_file():
            suite_file = results / SUITE_COPY
        with tempfile.TemporaryDirectory(prefix="cnnbench-figures-") as tmp:

            def draw() -> list[Path]:
                from cnnbench.render.plots import write_figures
                from cnnbench.render.report import Report

                return [p for p in write_figures(Report(runs, history), runs, history, tmp)
                        if p.suffix == ".png"]

            counts = export_mlflow(mlflow, runs, history, suite_file=suite_file,
                                   figures=draw if figures else None)
    return Exported(counts, folders)


def lr_find(model: str, *, dataset: str, optimizer: str, device: str, data_dir: str | None,
            out: Path, **options: Any) -> tuple[Any, Path]:
    """The lr range test (`tools.lr_find.range_test`) and its figure, written to `out`."""
    from cnnbench.execute.local import prepare_data
    from cnnbench.optim import OPTIMIZERS
    from cnnbench.suite import DatasetConfig
    from cnnbench.tools.lr_find import draw, range_test
    from cnnbench.train.devices import resolve_device

    OPTIMIZERS.get(optimizer)  # an unknown name: a clear error, before any data loads
    data = prepare_data(DatasetConfig(name=dataset), resolve_device(device), data_dir)
    test = range_test(model, data, optimizer, **options)
    return test, draw(test, f"lr range test: {model} / {optimizer} on {dataset}", out)
