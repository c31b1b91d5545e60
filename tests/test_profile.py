"""`cnnbench profile`: tidy rows whose numbers agree with each other, and clear input errors."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.models import create_model
from cnnbench.models.shapes import parse_input
from cnnbench.tools.profile import input_for, profile_model
from cnnbench.train.flops import count_flops

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_profile_command_writes_tidy_rows(tmp_path):
    out = tmp_path / "profile.parquet"
    result = invoke("profile", "keras_cnn", "--input", "1x16x16", "--batch-sizes", "2,4",
                    "--warmup", "1", "--repeats", "3", "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    assert "keras_cnn" in result.output and "train" in result.output
    rows = pd.read_parquet(out)
    assert list(zip(rows["batch_size"], rows["phase"])) == [
        (2, "inference"), (2, "train"), (4, "inference"), (4, "train")]
    assert (rows["status"] == "ok").all()
    model = create_model("keras_cnn", in_channels=1, image_size=16)
    forward, training = count_flops(model, (1, 16, 16))
    assert (rows["params"] == sum(p.numel() for p in model.parameters())).all()
    per_sample = rows["phase"].map({"inference": forward, "train": training})
    assert (rows["flops_per_step"] == per_sample * rows["batch_size"]).all()
    step_s = rows["step_ms_median"] / 1e3
    assert rows["achieved_flops_per_s"].to_numpy() == pytest.approx(
        (rows["flops_per_step"] / step_s).to_numpy())
    assert (rows["step_ms_iqr"] >= 0).all() and (rows["peak_rss_bytes"] > 0).all()
    assert rows["mfu"].isna().all()  # no peak is known for a CPU


def test_profile_bf16_channels_last_and_csv(tmp_path):
    out = tmp_path / "p.csv"
    result = invoke("profile", "lenet5", "--batch-sizes", "2", "--warmup", "1", "--repeats", "2",
                    "--device", "cpu", "--precision", "bf16", "--channels-last", "--out", out)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out)
    assert rows["input"].tolist() == ["1x32x32"] * 2  # lenet5's native input
    assert (rows["precision"] == "bf16").all() and rows["channels_last"].all()


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "3x32"], "CHANNELSxHEIGHTxWIDTH"),
    (["--input", "3x32x16"], "square"),
    (["--precision", "fp8"], "choose one of: fp32, bf16, fp16"),
    (["--batch-sizes", "a,b"], "integers"),
    (["--out", "x.txt"], ".parquet or .csv"),
    (["--input", "1x8x8", "--dataset", "mnist-mini"], "not both"),
])
def test_profile_input_errors(args, message):
    result = invoke("profile", "mlp", *args)
    assert result.exit_code == 2 and message in result.output


def test_unknown_model_and_user_model_without_input():
    assert invoke("profile", "resnot").exit_code == 2
    result = invoke("profile", "tests.nothing:Net")
    assert result.exit_code == 2 and "--input" in result.output


def test_input_keeps_the_native_class_count_unless_told():
    assert input_for("alexnet", input="3x224x224") == ((3, 224, 224), 1000)
    assert input_for("keras_cnn", input="1x16x16") == ((1, 16, 16), 10)
    result = invoke("profile", "keras_cnn", "--input", "1x16x16", "--classes", "5",
                    "--batch-sizes", "2", "--warmup", "0", "--repeats", "1", "--device", "cpu")
    assert result.exit_code == 0, result.output
    model = create_model("keras_cnn", in_channels=1, image_size=16, num_classes=5)
    assert f"({sum(p.numel() for p in model.parameters()):,} parameters)" in result.output


def test_parse_input():
    assert parse_input("3x224x224") == (3, 224, 224)
    assert parse_input("1×28×28") == (1, 28, 28)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_profile_on_cuda(precision):
    rows = profile_model("keras_cnn", input_shape=(1, 28, 28), num_classes=10, batch_sizes=[64],
                         device=torch.device("cuda"), precision=precision, channels_last=True,
                         warmup=2, repeats=5)
    assert all(r["status"] == "ok" for r in rows)
    assert all(r["peak_cuda_allocated_bytes"] > 0 for r in rows)
