"""`cnnbench grad-norms`: per-layer gradient norms against depth, from the grad_norms probe."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.tools.gradients import depth_profile, depth_summary

runner = CliRunner()


def _norms(run_id: str, epoch: int, values: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": run_id, "epoch": epoch, "step": 1 + 10 * epoch,
                          "layer": layer, "ndim": ndim, "grad_norm": norm}
                         for layer, ndim, norm in values])


def test_depth_keeps_weight_tensors_in_model_order_and_summarises_them():
    norms = pd.concat([
        _norms("a", 0, [("conv1.weight", 4, 0.01), ("bn1.weight", 1, 9.0), ("conv1.bias", 1, 9.0),
                        ("conv2.weight", 4, 0.1), ("fc.weight", 2, 2.0), ("fc.bias", 1, 9.0)]),
        _norms("b", 0, [("conv1.weight", 4, 1.0), ("fc.weight", 2, 0.5)]),
    ])
    runs = pd.DataFrame({"run_id": ["a", "b"], "model": ["plain", "resnet"],
                         "optimizer": ["sgd", "sgd"], "lr": [0.1, 0.1], "seed": [0, 0]})
    profile = depth_profile(norms, runs)
    plain = profile[profile["label"] == "plain"]
    assert list(plain["layer"]) == ["conv1.weight", "conv2.weight", "fc.weight"]
    assert list(plain["depth"]) == [1, 2, 3]
    summary = depth_summary(profile).set_index("run")
    assert summary.loc["plain", "weight_layers"] == 3
    assert summary.loc["plain", "first_over_last"] == pytest.approx(0.005)
    assert summary.loc["plain", "min"] == 0.01 and summary.loc["plain", "median"] == 0.1
    assert summary.loc["resnet", "first_over_last"] == pytest.approx(2.0)
    runs["lr"] = [0.1, 0.01]  # an axis that varies between models only: the model says it
    assert set(depth_profile(norms, runs)["label"]) == {"plain", "resnet"}
    runs["model"] = ["plain", "plain"]  # within one model: the axis joins the label
    assert set(depth_profile(norms, runs)["label"]) == {"plain lr=0.1", "plain lr=0.01"}
    with pytest.raises(CnnbenchError, match="add grad_norms to the suite's probes"):
        depth_profile(norms.iloc[:0], runs)


def test_grad_norms_command_on_a_real_run(write_suite, tmp_path):
    suite = write_suite(probes=["time", "grad_norms"],
                        matrix={"model": [{"name": "mlp", "hidden": 16}, "lenet5"],
                                "optimizer": ["sgd"], "lr": [0.1]},
                        dataset={"name": "synthetic", "channels": 1, "image_size": 32,
                                 "num_classes": 3, "train_size": 48, "test_size": 16,
                                 "val_size": 16})
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(suite), "--out", str(out)]).exit_code == 0

    table = runner.invoke(app, ["grad-norms", str(out), "--plot", str(tmp_path / "figs")])
    assert table.exit_code == 0, table.output
    assert "lenet5" in table.output and "mlp" in table.output and "first/last" in table.output
    assert (tmp_path / "figs" / "grad_norms.png").stat().st_size > 10_000
    assert (tmp_path / "figs" / "grad_norms.svg").exists()

    csv = runner.invoke(app, ["grad-norms", str(out), "--format", "csv"])
    summary = pd.read_csv(pd.io.common.StringIO(csv.output))
    assert sorted(summary["epoch"].unique()) == [0, 1, 2]
    lenet = summary[summary["run"] == "lenet5"]
    assert (lenet["weight_layers"] == 5).all()  # C1, C3, C5, F6, output
    assert (summary["first"] > 0).all()

    markdown = runner.invoke(app, ["grad-norms", str(out), "--format", "markdown"])
    assert markdown.output.startswith("| run | epoch |")

    bad = runner.invoke(app, ["grad-norms", str(out), "--plot", str(tmp_path), "--epochs", "7"])
    assert bad.exit_code == 2 and "no gradient norms recorded at epoch(s) [7]" in bad.output
    assert "first/last" not in bad.output  # refused before the table is written
    typo = runner.invoke(app, ["grad-norms", str(out), "--epochs", "a"])
    assert typo.exit_code == 2 and "--epochs 'a': give integers" in typo.output
    plain = tmp_path / "plain"
    runner.invoke(app, ["run", str(suite), "--out", str(plain), "--set", "probes=[time]"])
    missing = runner.invoke(app, ["grad-norms", str(plain)])
    assert missing.exit_code == 2 and "add grad_norms" in missing.output
