"""The architecture zoo: exact parameter counts, published FLOPs, every model trainable at the
sizes it supports, and user models given as `module:callable`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.models import MODEL_INFO, count_parameters, create_model
from cnnbench.models.cifar_resnet import Block
from cnnbench.models.layers import UpsampleToMin
from cnnbench.models.shapes import parse_input
from cnnbench.render.listing import dataset_input
from cnnbench.train.flops import count_flops, model_cost

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = (3, 224, 224)

# ZFNet from the paper's layer table: weights + biases per layer, 3 channels in, 1000 classes
ZFNET_PARAMS = (
    (96 * 3 * 7 * 7 + 96)            # conv1 96@7×7
    + (256 * 96 * 5 * 5 + 256)       # conv2 256@5×5
    + (384 * 256 * 3 * 3 + 384)      # conv3 384@3×3
    + (384 * 384 * 3 * 3 + 384)      # conv4 384@3×3
    + (256 * 384 * 3 * 3 + 256)      # conv5 256@3×3
    + (256 * 6 * 6 * 4096 + 4096)    # FC6 on the 6×6×256 map
    + (4096 * 4096 + 4096)           # FC7
    + (4096 * 1000 + 1000)           # FC8
)

# (input shape, classes) -> exact count; published figures (torchvision's for the ImageNet nets,
# He et al.'s 0.27M … 1.7M for the CIFAR nets, exact here)
PARAMS = {
    "mlp": ((1, 28, 28), 10, 101_770),
    "keras_cnn": ((1, 28, 28), 10, 34_826),
    "lenet5": ((1, 32, 32), 10, 61_706),
    "alexnet": (IMAGENET, 1000, 61_100_840),
    "zfnet": (IMAGENET, 1000, ZFNET_PARAMS),
    "vgg11": (IMAGENET, 1000, 132_863_336),
    "vgg13": (IMAGENET, 1000, 133_047_848),
    "vgg16": (IMAGENET, 1000, 138_357_544),
    "vgg19": (IMAGENET, 1000, 143_667_240),
    "vgg11_bn": (IMAGENET, 1000, 132_868_840),
    "vgg13_bn": (IMAGENET, 1000, 133_053_736),
    "vgg16_bn": (IMAGENET, 1000, 138_365_992),
    "vgg19_bn": (IMAGENET, 1000, 143_678_248),
    "resnet18": (IMAGENET, 1000, 11_689_512),
    "resnet34": (IMAGENET, 1000, 21_797_672),
    "resnet50": (IMAGENET, 1000, 25_557_032),
    "resnet101": (IMAGENET, 1000, 44_549_160),
    "resnet152": (IMAGENET, 1000, 60_192_808),
    "resnet20": ((3, 32, 32), 10, 269_722),
    "resnet32": ((3, 32, 32), 10, 464_154),
    "resnet44": ((3, 32, 32), 10, 658_586),
    "resnet56": ((3, 32, 32), 10, 853_018),
    "resnet110": ((3, 32, 32), 10, 1_727_962),
    "plain20": ((3, 32, 32), 10, 269_722),
    "plain32": ((3, 32, 32), 10, 464_154),
    "plain44": ((3, 32, 32), 10, 658_586),
    "plain56": ((3, 32, 32), 10, 853_018),
    "plain110": ((3, 32, 32), 10, 1_727_962),
}
# one model of each family trains at every size in the default run; the rest are `slow`
FAST = {"mlp", "keras_cnn", "lenet5", "alexnet", "zfnet", "vgg11", "resnet18", "resnet20",
        "plain20"}


def _maybe_slow(names):
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


def test_every_registered_model_is_checked_here():
    assert set(PARAMS) == set(MODEL_INFO)


def test_zfnet_count_from_the_layer_table():
    assert ZFNET_PARAMS == 62_357_608


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_exact_parameter_count(name):
    shape, classes, expected = PARAMS[name]
    with torch.device("meta"):  # shapes only: the count is exact, the build instant
        model = create_model(name, in_channels=shape[0], num_classes=classes,
                             image_size=shape[1])
    assert count_parameters(model) == expected


def _train_step(model: nn.Module, shape: tuple[int, int, int], classes: int) -> None:
    """Forward and backward on a batch of 2 (batch norm needs 2 samples on a 1×1 map)."""
    x = torch.randn(2, *shape)
    logits = model(x)
    assert logits.shape == (2, classes)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", _maybe_slow(sorted(PARAMS)))
def test_trains_on_mnist_and_cifar_shapes(name):
    _train_step(create_model(name, in_channels=1, num_classes=10, image_size=28), (1, 28, 28), 10)
    _train_step(create_model(name, in_channels=3, num_classes=100, image_size=32),
                (3, 32, 32), 100)


IMAGENET_MODELS = sorted(n for n, i in MODEL_INFO.items() if i.native_input == IMAGENET)


@pytest.mark.parametrize("name", [n for n in IMAGENET_MODELS if n in FAST])
def test_forward_at_224(name):
    model = create_model(name, in_channels=3, num_classes=1000, image_size=224).eval()
    with torch.no_grad():
        assert model(torch.randn(1, *IMAGENET)).shape == (1, 1000)


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_trains_at_224(name):
    model = create_model(name, in_channels=3, num_classes=1000, image_size=224)
    assert count_parameters(model) == PARAMS[name][2]
    _train_step(model, IMAGENET, 1000)


def test_small_inputs_are_upsampled_to_the_minimum_side():
    up = UpsampleToMin(63)
    assert up(torch.zeros(1, 1, 28, 28)).shape == (1, 1, 63, 63)
    big = torch.zeros(1, 3, 64, 80)
    assert up(big) is big


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 16, 8, 8)
    block = Block(16, 32, 2, residual=True)
    short = block.shortcut(x)
    assert short.shape == (2, 32, 4, 4)
    assert torch.equal(short[:, 8:24], x[:, :, ::2, ::2])
    assert short[:, :8].abs().sum() == 0 and short[:, 24:].abs().sum() == 0
    block.eval()
    plain = Block(16, 32, 2, residual=False).eval()
    plain.load_state_dict(block.state_dict())
    assert torch.allclose(plain(x), torch.relu(block.body(x)))
    assert torch.allclose(block(x), torch.relu(block.body(x) + short))


def test_init_is_seeded_and_he_normal():
    torch.manual_seed(0)
    a = create_model("resnet20", in_channels=3, num_classes=10, image_size=32)
    torch.manual_seed(0)
    b = create_model("resnet20", in_channels=3, num_classes=10, image_size=32)
    torch.manual_seed(1)
    c = create_model("resnet20", in_channels=3, num_classes=10, image_size=32)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.stem[0][0].weight, c.stem[0][0].weight)
    conv = a.stages[-1].body[0][0].weight  # 64@3×3 over 32 channels: fan-out 64·9
    assert conv.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)


# ─── FLOPs ───────────────────────────────────────────────────────────────────────────────────


def test_flops_count_a_multiply_add_as_two():
    layer = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    expected = 2 * (4 * 6 * 6 * 2 * 3 * 3) + 2 * (4 * 6 * 6 * 5)
    assert count_flops(layer, (2, 8, 8), backward=False)[0] == expected
    assert layer.training  # the mode is restored


@pytest.mark.parametrize("name, multiply_adds", [("resnet34", 3.6e9), ("resnet50", 3.8e9),
                                                   ("vgg19", 19.6e9)])
def test_flops_match_he_et_al(name, multiply_adds):
    cost = model_cost(name, IMAGENET, 1000)
    assert cost.flops / 2 == pytest.approx(multiply_adds, rel=0.05)


class ReadsData(nn.Module):
    """A model whose forward reads a tensor's value: it cannot run on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = float(x.abs().max().item() + 1)
        return self.fc(x.flatten(1)) * scale


def test_model_cost_falls_back_to_cpu_for_models_that_read_data():
    cost = model_cost("tests.test_models_zoo:ReadsData", (1, 2, 2), 3)
    assert (cost.parameters, cost.flops) == (4 * 3 + 3, 2 * 4 * 3)


# ─── cnnbench list models ────────────────────────────────────────────────────────────────────


def test_input_and_dataset_shapes():
    assert parse_input("3x32x32") == (3, 32, 32)
    assert parse_input("1×28×28") == (1, 28, 28)
    assert dataset_input("mnist-mini") == ((1, 28, 28), 10)
    for bad in ("32x32", "3x32x16"):
        with pytest.raises(CnnbenchError, match="CxHxW|square"):
            parse_input(bad)


def test_list_models_at_a_dataset_input():
    result = CliRunner().invoke(app, ["list", "models", "--family", "vgg",
                                      "--dataset", "mnist-mini"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "multiply-add counted as 2" in result.output
    row = next(line for line in result.output.splitlines() if "│ vgg19 " in line)
    assert "143,667,240" in row and "39.3 G" in row  # native
    cost = model_cost("vgg19", (1, 28, 28), 10)
    assert f"{cost.parameters:,}" in row and "1.03 G" in row  # at 1×28×28, 10 classes
    assert "upsamples to 32²" in row


def test_list_models_at_an_input_and_class_count():
    result = CliRunner().invoke(app, ["list", "models", "--family", "lenet", "--input", "1x28x28",
                                      "--classes", "5"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "1×28×28 input, 5 classes" in result.output
    row = next(line for line in result.output.splitlines() if "│ lenet5 " in line)
    five_classes = create_model("lenet5", in_channels=1, num_classes=5, image_size=28)
    assert f"{count_parameters(five_classes):,}" in row and "61,706" in row


def test_list_models_marks_inputs_a_model_cannot_take():
    result = CliRunner().invoke(app, ["list", "models", "--family", "keras", "--input", "1x8x8"],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "│ keras_cnn " in line)
    assert "34,826" in row and row.count("fails") == 2


@pytest.mark.parametrize("args, message", [
    (["--input", "3x32"], "CxHxW"),
    (["--dataset", "nope"], "unknown dataset"),
    (["--family", "nope"], "unknown model family"),
    (["--input", "3x32x32", "--dataset", "mnist-mini"], "not both"),
    (["--classes", "5"], "--classes goes with"),
])
def test_list_models_rejects_bad_options(args, message):
    result = CliRunner().invoke(app, ["list", "models", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.slow
def test_list_models_shows_every_model():
    result = CliRunner().invoke(app, ["list", "models", "--input", "3x32x32"],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name, (_, _, count) in PARAMS.items():
        assert f"│ {name} " in result.output and f"{count:,}" in result.output


# ─── user models ─────────────────────────────────────────────────────────────────────────────

USER_SUITE = """\
name: user
dataset: {{name: mnist-mini, val_size: 100, subset: 200}}
train: {{epochs: 1, batch_size: 100}}
seeds: 1
device: cpu
matrix: {{model: [{model}], optimizer: [sgd], lr: [0.1]}}
"""

CONSOLE_SCRIPT = "import sys\nfrom cnnbench.cli import main\nsys.exit(main())\n"


def _run_like_console_script(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI as the `cnnbench` console script does: its own folder, not the working
    directory, is first on sys.path."""
    script = cwd.parent / "bin" / "cnnbench_script.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(CONSOLE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "mynets.py").write_text(
        "import torch.nn as nn\n"
        "def small(in_channels, num_classes, width=4):\n"
        "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(width), nn.ReLU(),\n"
        "                         nn.Linear(width, num_classes))\n"
        "def broken(width=4):\n"
        "    raise ValueError(f'width {width} is not allowed')\n"
    )
    (folder / "badimport.py").write_text("import no_such_package_xyz\n")
    return folder


@pytest.mark.subprocess
def test_user_model_in_the_working_directory_runs(project):
    (project / "suite.yaml").write_text(USER_SUITE.format(model="{name: 'mynets:small', width: 8}"))
    result = _run_like_console_script(project, "run", "suite.yaml", "--out", "out")
    assert result.returncode == 0, result.stderr
    assert "mynets:small" in result.stdout


@pytest.mark.parametrize("model, expected", [
    ("'mynets:broken'", ["mynets:broken", "mynets.py", "ValueError", "width 4 is not allowed"]),
    ("'badimport:Net'", ["badimport", "ModuleNotFoundError", "no_such_package_xyz"]),
    ("'mynets:missing'", ["mynets", "has no attribute 'missing'"]),
])
def test_broken_user_model_fails_before_any_run(project, monkeypatch, model, expected):
    monkeypatch.chdir(project)  # the CLI puts the working directory on sys.path…
    monkeypatch.setattr(sys, "path", list(sys.path))  # …for this test only
    for name in ("mynets", "badimport"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    (project / "suite.yaml").write_text(USER_SUITE.format(model=model))
    result = CliRunner().invoke(app, ["run", "suite.yaml", "--out", "out"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())
    for part in expected:
        assert part in message
    assert not list((project / "out").glob("runs/*"))  # nothing ran


def test_example_suite_with_a_user_model(tmp_path):
    result = CliRunner().invoke(app, ["validate", str(ROOT / "suites" / "user_model.yaml")])
    assert result.exit_code == 0, result.output
    model = create_model("examples.tiny_net:TinyNet", in_channels=1, num_classes=10,
                         image_size=28, width=4)
    _train_step(model, (1, 28, 28), 10)
