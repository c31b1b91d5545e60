"""Suites: what the user wrote, checked and expanded. The schema (pydantic), loading with
file:line errors and `--set` overrides, the matrix expanded into sorted `RunSpec`s with their
run_ids, and the pure K/N sharding of them."""

from cnnbench.suite.expand import RunSpec, compute_run_id, expand, matrix_combos, suite_warnings
from cnnbench.suite.loading import apply_override, load_suite, validate_suite
from cnnbench.suite.schema import DatasetConfig, LogGrid, OptimizerEntry, Suite, TrainConfig
from cnnbench.suite.shards import parse_shard, shard, shard_from_env

__all__ = ["DatasetConfig", "LogGrid", "OptimizerEntry", "RunSpec", "Suite", "TrainConfig",
           "apply_override", "compute_run_id", "expand", "load_suite", "matrix_combos",
           "parse_shard", "shard", "shard_from_env", "suite_warnings", "validate_suite"]
