"""The lr search: rounds replayed from hand-made results (no training), its bad input, and real
tiny runs through the CLI — local, resumed and sharded."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import cnnbench
from cnnbench.cli import app
from cnnbench.errors import SuiteError
from cnnbench.render.report import Report
from cnnbench.suite import Suite, load_suite
from cnnbench.suite.search import confirm_seeds, search_state
from tests.helpers.suites import TINY_SUITE

runner = CliRunner()


def _suite(write_suite, search: dict, **sections):
    matrix = {**TINY_SUITE["matrix"], "optimizer": ["sgd"], "lr": {"search": search}}
    return load_suite(write_suite(matrix=matrix, **sections))


def _score(peak: float, diverge_above: float):
    """A bell in log10(lr) around `peak`; runs above `diverge_above` diverge; seeds add ±0.001."""
    def score(lr: float, seed: int) -> tuple[str, float]:
        if lr > diverge_above:
            return "diverged", math.nan
        return "ok", 0.9 - 0.1 * math.log10(lr / peak) ** 2 + 0.001 * (seed % 2)
    return score


def _simulate(suite, score, rounds: int = 40):
    """Run the search against `score` instead of training; the rows and the final state."""
    rows: list[dict] = []
    for _ in range(rounds):
        state = search_state(suite, pd.DataFrame(rows) if rows else None)
        if state.finished:
            return pd.DataFrame(rows), state
        for spec in state.current:
            status, acc = score(spec.lr, spec.seed)
            rows.append({**spec.row(), "status": status, "val_acc": acc,
                         "test_acc": acc, "val_loss": 1 - acc, "test_loss": 1 - acc})
    raise AssertionError("the search did not finish")


def test_a_poor_start_grid_expands_refines_and_confirms(write_suite):
    suite = _suite(write_suite, {"log": [1.0e-4, 1.0e-3], "num": 3, "expand": 6, "refine": 2,
                                 "confirm": 3}, seeds=1)
    rows, state = _simulate(suite, _score(peak=0.1, diverge_above=1.0))
    (group,) = state.groups
    assert group.stop == "converged" and group.edge == ""
    assert math.isclose(group.best_lr, 0.1, rel_tol=0.01)
    # the start grid's half-decade steps up to 1e-1, then refined midpoints at an eighth decade
    assert sorted(rows["lr"].unique())[-1] == pytest.approx(10 ** -0.5)
    assert {round(math.log10(lr) * 8) for lr in rows["lr"]} >= {-9, -8, -7}
    at_best = rows[rows["lr"] == group.best_lr]
    assert sorted(at_best["seed"]) == [0, 1, 2]  # confirmed with 3 seeds
    assert rows["round"].min() == 1 and rows["round"].max() == len(state.rounds)
    assert (rows[rows["round"] == 1]["lr"].tolist()
            == pytest.approx([1e-4, 10 ** -3.5, 1e-3]))
    again = search_state(suite, rows)  # a pure function: any process replays the same rounds
    assert [[s.run_id for s in r] for r in again.rounds] == [
        [s.run_id for s in r] for r in state.rounds]
    report = Report(rows.assign(s_per_epoch=1.0, train_s=1.0))
    assert report.best["best_lr"].iloc[0] == group.best_lr  # the report's protocol agrees


def test_expansion_stops_where_every_seed_diverged_and_the_report_says_so(write_suite):
    suite = _suite(write_suite, {"values": [0.01, 0.03], "expand": 4, "refine": 0,
                                 "confirm": 2}, seeds=[0, 1])
    rows, state = _simulate(suite, _score(peak=10.0, diverge_above=0.2))
    (group,) = state.groups
    assert group.best_lr == pytest.approx(0.09)  # 0.27 diverged: one spacing beyond 0.09
    assert group.edge == "bounded by divergence"
    assert rows["lr"].max() == pytest.approx(0.27) and group.expanded["high"] == 2
    warnings = Report(rows.assign(s_per_epoch=1.0, train_s=1.0)).warnings()
    assert any("bounded by divergence" in w for w in warnings)
    assert not any("widen the grid" in w for w in warnings)


def test_expand_budget_spent_leaves_the_best_on_the_edge(write_suite):
    suite = _suite(write_suite, {"log": [1.0e-4, 1.0e-3], "num": 2, "expand": 1, "refine": 1,
                                 "confirm": 1})
    rows, state = _simulate(suite, _score(peak=1.0, diverge_above=100.0))
    (group,) = state.groups
    assert group.best_lr == pytest.approx(1e-2) and "expand (1) spent" in group.edge
    assert len(rows) == 4  # 2 start points, 1 beyond, 1 midpoint below the best


def test_every_point_diverged_reports_no_best_lr(write_suite):
    suite = _suite(write_suite, {"log": [0.1, 1.0], "num": 2, "expand": 2, "confirm": 3})
    rows, state = _simulate(suite, _score(peak=1.0, diverge_above=0.0))
    (group,) = state.groups
    assert group.best_lr is None and group.stop == "every run diverged or failed"
    assert len(rows) == 4  # the start grid and 2 points below it; no refine, no confirm
    report = Report(rows.assign(s_per_epoch=1.0, train_s=1.0))
    assert any("has no best lr" in w for w in report.warnings())


def test_budgets_stop_the_search_and_say_so(write_suite):
    search = {"log": [1.0e-4, 1.0e-3], "num": 3, "expand": 6, "refine": 2, "confirm": 3}
    rows, state = _simulate(_suite(write_suite, {**search, "max_runs": 7}),
                            _score(peak=0.1, diverge_above=1.0))
    assert len(rows) == 7 and state.groups[0].stop == "stopped by its max_runs"
    matrix = {**TINY_SUITE["matrix"], "optimizer": ["sgd", "adam"], "lr": {"search": search}}
    suite = load_suite(write_suite(matrix=matrix, max_runs=10))
    rows, state = _simulate(suite, _score(peak=0.1, diverge_above=1.0))
    assert len(rows) == 10
    assert {g.stop for g in state.groups} == {"stopped by the suite's max_runs"}
    with pytest.raises(SuiteError, match="max_runs: 5 is below round 1's 6"):
        search_state(load_suite(write_suite(matrix=matrix, max_runs=5)))


def test_confirm_seeds_extend_the_suites_own():
    suite = Suite.model_validate({**TINY_SUITE, "seeds": [3, 1]})
    assert confirm_seeds(suite, 4) == [3, 1, 0, 2] and confirm_seeds(suite, 1) == [3]


@pytest.mark.parametrize(("search", "message"), [
    ({"log": [1e-4, 1e-2], "num": 3, "expand": -1}, "expand: Input should be greater than or "
                                                    "equal to 0"),
    ({"log": [1e-4, 1e-2], "refine": 7}, "refine: Input should be less than or equal to 6"),
    ({"log": [1e-4, 1e-2], "confirm": 0}, "confirm: Input should be greater than or equal to 1"),
    ({"log": [1e-4, 1e-2], "num": 1}, "num: Input should be greater than or equal to 2"),
    ({"values": [0.1]}, "values: List should have at least 2 items"),
    ({"log": [1e-2, 1e-2]}, "needs low < high"),
    ({"num": 3}, "give the start grid as one of"),
    ({"log": [1e-4, 1e-2], "expnad": 2}, "unknown key 'expnad' — did you mean 'expand'?"),
])
def test_bad_search_keys_are_exit_2_with_file_and_line(write_suite, search, message):
    path = write_suite(matrix={**TINY_SUITE["matrix"], "lr": {"search": search}})
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and message in result.output
    assert f"{path}:" in result.output and "Traceback" not in result.output


def test_the_schema_documents_the_search_keys():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert all(key in result.output for key in ('"SearchSpec"', '"expand"', '"refine"',
                                                 '"confirm"', '"max_runs"', '"start"'))
    assert "the group's lr range test" in result.output  # what start: auto means


TINY_SEARCH = {"log": [0.003, 0.03], "num": 2, "expand": 1, "refine": 1, "confirm": 2}


def test_a_search_runs_round_after_round_and_resumes(write_suite, tmp_path):
    path = write_suite(matrix={**TINY_SUITE["matrix"], "optimizer": ["sgd"],
                               "lr": {"search": TINY_SEARCH}})
    plan = runner.invoke(app, ["plan", str(path)])
    assert plan.exit_code == 0 and "2 run(s)" in plan.output
    assert "later rounds depend on its results" in plan.output
    out = tmp_path / "out"
    first = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert first.exit_code == 0, first.output
    runs, _ = cnnbench.load_results(out)
    state = search_state(load_suite(path), runs)
    assert state.finished and len(state.rounds) >= 3
    assert sorted(runs["run_id"]) == sorted(s.run_id for s in state.specs)
    assert runs["round"].max() == len(state.rounds)
    again = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert again.exit_code == 0 and f"0 ran, {len(runs)} skipped" in again.output
    status = runner.invoke(app, ["status", str(out), "--suite", str(path)])
    assert f"lr search: {len(state.rounds)} round(s) so far, finished" in status.output
    rerun = runner.invoke(app, ["run", str(path), "--out", str(out), "--rerun"])
    assert rerun.exit_code == 2 and "fresh --out" in rerun.output


def test_shards_take_turns_through_the_rounds(write_suite, tmp_path):
    path = write_suite(matrix={**TINY_SUITE["matrix"], "lr": {"search": TINY_SEARCH}})
    out = tmp_path / "out"
    for _ in range(20):  # each pass: shard 1's share, then shard 2's (it finishes the round)
        for k in (1, 2):
            result = runner.invoke(app, ["run", str(path), "--out", str(out), "--shard",
                                         f"{k}/2"])
            assert result.exit_code == 0, result.output
        state = search_state(load_suite(path), cnnbench.load_results(out)[0])
        if state.finished:
            break
    assert state.finished
    local = tmp_path / "local"
    assert runner.invoke(app, ["run", str(path), "--out", str(local)]).exit_code == 0
    # one process or two shards in turn: the same rounds, hence the same runs
    assert sorted(cnnbench.load_results(local)[0]["run_id"]) == sorted(
        cnnbench.load_results(out)[0]["run_id"])


def test_lr_find_draws_the_curve_and_suggests_a_start_grid(tmp_path):
    figure = tmp_path / "lr_find.png"
    result = runner.invoke(app, ["lr-find", "mlp", "--dataset", "synthetic", "--steps", "30",
                                 "--lr-max", "1000", "--device", "cpu", "--out", str(figure)])
    assert result.exit_code == 0, result.output
    assert figure.stat().st_size > 0 and "suggested start grid" in result.output
    grid = result.output.split("lr: ")[-1].splitlines()[0]
    suite_text = yaml_suite_with(grid)
    assert suite_text["matrix"]["lr"]["search"]["num"] == 5  # pasted into a suite, it loads
    bad = runner.invoke(app, ["lr-find", "mlp", "--lr-min", "1", "--lr-max", "0.1"])
    assert bad.exit_code == 2 and "below --lr-max" in bad.output


def yaml_suite_with(grid: str) -> dict:
    import yaml

    data = {**TINY_SUITE, "matrix": {**TINY_SUITE["matrix"], "lr": yaml.safe_load(grid)}}
    Suite.model_validate(data)
    return data


def test_range_test_grows_the_lr_geometrically():
    from cnnbench.execute.local import prepare_data
    from cnnbench.suite import DatasetConfig
    from cnnbench.tools.lr_find import range_test

    config = DatasetConfig(**{**TINY_SUITE["dataset"], "val_size": 0})
    data = prepare_data(config, torch.device("cpu"))
    test = range_test("mlp", data, "sgd", lr_min=1e-4, lr_max=1e-2, steps=9, batch_size=16)
    assert test.lrs == pytest.approx([1e-4 * 10 ** (i / 4) for i in range(9)])
    assert not test.stopped_early and test.min_loss_lr in test.lrs
    low, high, num = test.start_grid
    assert high == pytest.approx(test.min_loss_lr, rel=1e-2) and low == pytest.approx(high / 100)
