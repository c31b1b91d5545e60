"""`cnnbench run --track mlflow:URI`: runs logged live to a real sqlite MLflow store while they
train; a store that fails is reported once and training goes on; export fills in after."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.execute.tracking import parse_track

pytest.importorskip("mlflow")


def test_live_tracking_logs_each_evaluation_and_export_adds_nothing(write_suite, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'live.db'}"
    suite = write_suite()
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "out"),
                                      "--track", f"mlflow:{uri}"])
    assert result.exit_code == 0, result.output
    assert "MLflow tracking" not in result.output  # no warning
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tiny").experiment_id
    found = client.search_runs([experiment])
    children = [r for r in found if "cnnbench.run_id" in r.data.tags]
    assert len(children) == 4 and len(found) == 5  # and the suite's parent run
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["cnnbench.status"] == "ok"
        assert child.data.params["optimizer"] in {"sgd", "adam"}
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "val_acc"))
        assert len(set(steps)) == 3 and steps[0] == 0  # epochs 0 (filled at the end), 1, 2
        assert "test_acc" in child.data.metrics
    parent = [r for r in found if r.data.tags.get("cnnbench.role") == "suite"][0]
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["suite.yaml"]

    again = CliRunner().invoke(app, ["export", str(tmp_path / "out"), "--mlflow", uri,
                                     "--no-figures"])
    assert again.exit_code == 0, again.output
    assert "0 run(s) created, 0 completed, 4 already there" in again.output
    assert len(client.search_runs([experiment])) == 5


def test_a_failing_store_warns_once_and_training_goes_on(write_suite, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")  # MLflow makes missing folders: block it
    uri = f"sqlite:///{tmp_path / 'a-file' / 'x.db'}"
    result = CliRunner().invoke(app, ["run", str(write_suite()), "--out", str(tmp_path / "out"),
                                      "--track", f"mlflow:{uri}"])
    assert result.exit_code == 0, result.output
    assert result.output.count("MLflow tracking at") == 1
    assert "training goes on untracked" in result.output
    assert "4 ok; 4 ran" in result.output


@pytest.mark.parametrize("text", ["mlflow", "wandb:project", "mlflow:"])
def test_track_names_what_it_takes(text):
    with pytest.raises(CnnbenchError, match="mlflow:URI"):
        parse_track(text)
