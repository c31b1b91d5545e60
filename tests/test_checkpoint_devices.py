"""A checkpoint written on one device type (a GPU node) met by a run on another (a CPU node):
the run restarts from epoch 0 and says so, instead of failing as `error`."""

from __future__ import annotations

import io

import pytest
import torch

import cnnbench
from cnnbench.execute.local import prepare_data
from cnnbench.execute.progress import PlainReporter
from cnnbench.results.store import ResultStore
from cnnbench.suite import expand
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.engine import train
from cnnbench.train.trainer import DeviceMismatch, Trainer


def _gpu_checkpoint(spec, data, path) -> None:
    """A checkpoint as a CUDA run would leave it after epoch 1 (device type and a CUDA RNG
    state that a CPU generator cannot take)."""
    state = Trainer(spec, data).state_dict()
    state["device_type"], state["cuda_rng"] = "cuda", torch.zeros(16, dtype=torch.uint8)
    Checkpoint(path, spec.run_id).save({"epoch": 1, "start_time": 0.0, "wall_s": 5.0,
                                        "history": [{"epoch": 0}, {"epoch": 1}],
                                        "trainer": state})


def test_state_dict_records_its_device_and_refuses_another(write_suite):
    suite = cnnbench.load_suite(write_suite())
    spec = expand(suite)[0]
    data = prepare_data(suite.dataset_config, torch.device("cpu"))
    state = Trainer(spec, data).state_dict()
    assert state["device_type"] == "cpu"
    Trainer(spec, data).load_state_dict(state)  # same device type: restores
    with pytest.raises(DeviceMismatch, match="written on cuda, this run is on cpu"):
        Trainer(spec, data).load_state_dict({**state, "device_type": "cuda"})


def test_a_gpu_checkpoint_on_a_cpu_node_restarts_the_run(write_suite, tmp_path):
    suite = cnnbench.load_suite(write_suite())
    spec = expand(suite)[0]
    data = prepare_data(suite.dataset_config, torch.device("cpu"))
    path = tmp_path / "checkpoints" / f"{spec.run_id}.pt"
    path.parent.mkdir()
    _gpu_checkpoint(spec, data, path)
    said: list[str] = []
    result = train(spec, data, checkpoint=Checkpoint(path, spec.run_id), log=said.append)
    fresh = train(spec, data)
    assert result.outcome.status == "ok" and result.outcome.resumed_from_epoch is None
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    assert result.summary["test_loss"] == fresh.summary["test_loss"]  # a true restart
    assert said == [f"  the checkpoint was written on cuda, this run is on cpu: restarting run "
                    f"{spec.run_id} from epoch 0"]


def test_the_suite_says_it_restarted(write_suite, tmp_path):
    suite = cnnbench.load_suite(write_suite())
    spec = expand(suite)[0]
    out = tmp_path / "out"
    store = ResultStore(out)
    store.prepare()
    data = prepare_data(suite.dataset_config, torch.device("cpu"))
    store.checkpoint_path(spec.run_id).parent.mkdir()
    _gpu_checkpoint(spec, data, store.checkpoint_path(spec.run_id))
    log = io.StringIO()
    outcome = cnnbench.run_suite(suite, out, reporter=PlainReporter(log))
    assert outcome.statuses == {"ok": 4}
    assert "written on cuda, this run is on cpu: restarting" in log.getvalue()
