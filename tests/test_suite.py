"""Suite schema, YAML errors with file:line, --set overrides, matrix expansion and run_id."""

from __future__ import annotations

import math

import pytest

from cnnbench.errors import SuiteError
from cnnbench.suite import LogGrid, compute_run_id, expand, load_suite
from tests.helpers.suites import TINY_SUITE


def test_log_grid_is_geometric_and_includes_both_ends():
    values = LogGrid(log=(1e-4, 1.0), num=5).values()
    assert values == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    ratios = {round(b / a, 9) for a, b in zip(values, values[1:])}
    assert ratios == {10.0}
    assert LogGrid(log=(0.01, 0.01), num=1).values() == [0.01]
    three = LogGrid(log=(1e-3, 1e-1), num=3).values()
    assert math.isclose(three[1], 1e-2)


def test_expand_crosses_model_optimizer_lr_and_seed(write_suite):
    suite = load_suite(write_suite(seeds=[0, 1]))
    specs = expand(suite)
    assert len(specs) == 1 * 2 * 2 * 2
    assert {(s.optimizer, s.lr, s.seed) for s in specs} == {
        (o, lr, seed) for o in ("sgd", "adam") for lr in (0.01, 0.1) for seed in (0, 1)}
    assert specs == sorted(specs, key=lambda s: (s.model, s.optimizer, s.lr, str(s.batch_size),
                                                 s.seed))
    assert specs[0].hparams["lr"] == specs[0].lr


def test_per_optimizer_grid_overrides_the_matrix_grid(write_suite):
    matrix = {"model": ["mlp"], "lr": [0.1],
              "optimizer": ["sgd", {"name": "adam", "lr": {"log": [1e-4, 1e-2], "num": 3}},
                            {"name": "sgd", "label": "heavy", "momentum": 0.99}]}
    specs = expand(load_suite(write_suite(matrix=matrix)))
    by_label = {}
    for s in specs:
        by_label.setdefault(s.optimizer, []).append(s.lr)
    assert by_label["sgd"] == [0.1]
    assert by_label["heavy"] == [0.1]
    assert by_label["adam"] == pytest.approx([1e-4, 1e-3, 1e-2])
    heavy = next(s for s in specs if s.optimizer == "heavy")
    assert heavy.optimizer_name == "sgd" and heavy.hparams["momentum"] == 0.99


def test_exclude_and_include(write_suite):
    path = write_suite(exclude=[{"optimizer": "adam", "lr": 0.1}],
                       include=[{"model": "keras_cnn", "optimizer": "adam", "lr": 0.003}])
    specs = expand(load_suite(path))
    combos = {(s.model, s.optimizer, s.lr) for s in specs}
    assert ("mlp", "adam", 0.1) not in combos
    assert ("mlp", "adam", 0.01) in combos
    assert ("keras_cnn", "adam", 0.003) in combos
    assert len(specs) == 4


@pytest.mark.parametrize(("sections", "where", "words"), [
    ({"exclude": [{"colour": "red"}]}, "exclude[0].colour", "unknown key 'colour'"),
    ({"exclude": [{}]}, "exclude[0]", "needs at least one of: model, optimizer, lr"),
    ({"exclude": [{"model": "mlpp"}]}, "exclude[0].model", "unknown model 'mlpp' — did you mean"),
    ({"exclude": [{"lr": -1}]}, "exclude[0].lr", "greater than 0"),
    ({"include": [{"model": "mlp"}]}, "include[0].optimizer", "Field required"),
    ({"include": [{"model": "lenet5x", "optimizer": "sgd"}]}, "include[0].model",
     "unknown model 'lenet5x'"),
    ({"include": [{"model": "mlp", "optimizer": "adamm"}]}, "include[0].optimizer",
     "unknown optimizer 'adamm' — did you mean 'adam'"),
    ({"include": [{"model": "mlp", "optimizer": "sgd", "batch_size": 0}]},
     "include[0].batch_size", "greater than or equal to 1"),
])
def test_include_and_exclude_errors_name_file_line_and_key(write_suite, sections, where, words):
    path = write_suite(**sections)
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    message = str(error.value)
    lines = path.read_text().splitlines()
    line = lines.index(next(iter(sections)) + ":") + 2  # the entry's first line
    key = where.rpartition(".")[2]
    if "[" not in key and words != "Field required":  # the error points at the key itself
        line += next(i for i, text in enumerate(lines[line - 1:]) if f"{key}:" in text)
    assert f"{path}:{line}: {where}" in message and words in message


def test_include_takes_an_optimizer_label_or_name(write_suite):
    matrix = {"model": ["mlp"], "optimizer": [{"name": "sgd", "label": "heavy",
                                               "momentum": 0.9}], "lr": [0.1]}
    path = write_suite(matrix=matrix, include=[{"model": "mlp", "optimizer": "heavy", "lr": 0.01},
                                               {"model": "mlp", "optimizer": "adam"}])
    specs = {(s.optimizer, s.lr): s for s in expand(load_suite(path))}
    assert specs[("heavy", 0.01)].hparams["momentum"] == 0.9
    assert ("adam", 0.1) in specs  # no lr of its own: the matrix grid


def test_matrix_batch_size_axis(write_suite):
    matrix = {"model": ["mlp"], "optimizer": ["sgd"], "lr": [0.1], "batch_size": ["full", 1, 32]}
    specs = expand(load_suite(write_suite(matrix=matrix)))
    assert sorted(str(s.batch_size) for s in specs) == ["1", "32", "full"]


def test_run_id_is_stable_and_depends_on_the_resolved_run(write_suite):
    a = expand(load_suite(write_suite()))
    b = expand(load_suite(write_suite(name="other-name")))  # the suite's name is not identity
    assert [s.run_id for s in a] == [s.run_id for s in b]
    assert len({s.run_id for s in a}) == len(a)
    assert all(len(s.run_id) == 12 for s in a)
    assert compute_run_id(a[0]) == a[0].run_id
    epochs = expand(load_suite(write_suite(), overrides=["train.epochs=3"]))
    assert not {s.run_id for s in a} & {s.run_id for s in epochs}


def test_overrides_set_any_key(write_suite):
    suite = load_suite(write_suite(), overrides=["train.epochs=1", "seeds=3",
                                                 "dataset.val_size=10", "matrix.lr=[0.5]"])
    assert suite.train.epochs == 1 and suite.seed_list == [0, 1, 2]
    assert suite.dataset_config.val_size == 10
    assert {s.lr for s in expand(suite)} == {0.5}
    short = load_suite(write_suite(dataset="mnist-mini"), overrides=["dataset.val_size=100"])
    assert short.dataset_config.name == "mnist-mini" and short.dataset_config.val_size == 100
    search = {"search": {"log": [0.01, 0.1], "num": 3}}  # lr: a grid or a search (a union)
    searched = load_suite(write_suite(matrix={**TINY_SUITE["matrix"], "lr": search}),
                          overrides=["matrix.lr.search.max_runs=9", "matrix.lr.search.num=2"])
    assert searched.matrix.lr.search.max_runs == 9 and searched.matrix.lr.search.num == 2


@pytest.mark.parametrize("override, fragment", [
    ("train.epoch=2", "unknown key 'epoch' — did you mean 'epochs'?"),
    ("train.epochs=abc", "--set 'train.epochs=abc': train.epochs: Input should be a valid integer"),
    ("nonsense", "key.path=value"),
    ("matrix.model.5=mlp", "has no item 5"),
])
def test_bad_overrides_are_suite_errors(write_suite, override, fragment):
    with pytest.raises(SuiteError, match=None) as info:
        load_suite(write_suite(), overrides=[override])
    assert fragment in str(info.value)


def test_unknown_key_names_file_line_and_suggestion(write_suite):
    path = write_suite(text="name: t\ndataset: synthetic\ntrain:\n  epochz: 2\n"
                            "matrix:\n  model: [mlp]\n  optimizer: [sgd]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert f"{path}:4" in message and "train.epochz" in message
    assert "did you mean 'epochs'?" in message and "valid:" in message


def test_unknown_optimizer_suggests_close_names(write_suite):
    path = write_suite(text="name: t\ndataset: synthetic\nmatrix:\n  model: [mlp]\n"
                            "  optimizer: [sgd, adamm]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert f"{path}:5: matrix.optimizer[1]" in message
    assert "unknown optimizer 'adamm' — did you mean 'adam'" in message and "known:" in message


def test_optimizer_keys_are_checked_against_its_signature(write_suite):
    matrix = {"model": ["mlp"], "optimizer": [{"name": "adam", "momentum": 0.9}], "lr": [0.1]}
    with pytest.raises(SuiteError, match="takes no 'momentum'; valid: .*betas"):
        load_suite(write_suite(matrix=matrix))


@pytest.mark.parametrize("text, fragment", [
    ("name: t\ndataset: synthetic\nmatrix: {model: [mlp], optimizer: [sgd]\n", "YAML syntax"),
    ("- just\n- a list\n", "a suite is a YAML mapping"),
    ("name: t\ndataset: synthetic\ntrain: {batch_size: big}\nmatrix: {model: [mlp], "
     "optimizer: [sgd]}\n", "train.batch_size"),
    ("name: t\ndataset: synthetic\nmatrix: {model: [], optimizer: [sgd]}\n", "matrix.model"),
    ("name: t\ndataset: synthetic\nmatrix: {model: [mlp], optimizer: [sgd], lr: {log: [0, 1], "
     "num: 3}}\n", "matrix.lr"),
    ("name: t\ndataset: imagenette\nmatrix: {model: [mlp], optimizer: [sgd]}\n",
     "unknown dataset 'imagenette'"),
    ("name: t\ndataset: synthetic\nmatrix: {model: [resnet9000], optimizer: [sgd]}\n",
     "unknown model 'resnet9000'"),
    ("name: t\ndataset: synthetic\ndevice: gpu\nmatrix: {model: [mlp], optimizer: [sgd]}\n",
     "device"),
    ("name: t\ndataset: synthetic\nmatrix: {model: [mlp], optimizer: [sgd, sgd]}\n",
     "used twice"),
])
def test_invalid_suites_raise_suite_error(write_suite, text, fragment):
    with pytest.raises(SuiteError) as info:
        expand(load_suite(write_suite(text=text)))
    assert fragment in str(info.value)


def test_missing_and_directory_suite_files(tmp_path):
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(SuiteError, match="is a directory"):
        load_suite(tmp_path)


def test_probes_do_not_change_the_run_id(write_suite):
    plain = expand(load_suite(write_suite(probes=["time"])))
    probed = expand(load_suite(write_suite(probes=["time", "memory", "flops", "grad_norms"])))
    assert [s.run_id for s in plain] == [s.run_id for s in probed]
