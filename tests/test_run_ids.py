"""Expansion's fast run ids (a combination's identity JSON with the lr and seed put in) are the
ids `compute_run_id` gives the same specs, on every packaged suite and on odd lrs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnbench.suite import compute_run_id, expand, load_suite, validate_suite
from cnnbench.suite.expand import make_spec, matrix_combos

SUITES = sorted((Path(__file__).resolve().parents[1] / "suites").rglob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_packaged_suites_ids_are_compute_run_id(path):
    specs = expand(load_suite(path))
    assert specs and all(s.run_id == compute_run_id(s) for s in specs)


def test_odd_lrs_and_seeds_take_the_same_ids():
    suite = validate_suite({"name": "ids", "dataset": "synthetic", "seeds": [0, 7],
                            "matrix": {"model": ["mlp"], "optimizer": ["sgd"],
                                       "lr": [1, 1e-300, 0.1, 3.0e20]}})
    specs = expand(suite)
    assert len(specs) == 8 and all(s.run_id == compute_run_id(s) for s in specs)
    combo = matrix_combos(suite)[0][0]
    spec = make_spec(suite, combo, 0.5, 3, round=2)
    assert spec.round == 2 and spec.run_id == compute_run_id(spec)
