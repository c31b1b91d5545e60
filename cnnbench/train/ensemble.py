"""Several runs of one network trained at once, as one vectorized ensemble (`torch.func`).

The members differ only in lr, seed or optimizer hyper-parameter values (execute/grouping.py
decides who trains together). Each member is a plain `Trainer` — its own model, optimizer,
schedule, data-order generator and counters — so that its checkpoint, history and result row
are exactly what it would have had alone. What the members share is stacked (train/stacking.py):

- their parameters live as the rows of one tensor that every member's module holds views of;
  each step runs `functional_call` under `vmap` over them, every member on its own batch (one
  gather of all the members' batches from their own shuffled orders);
- one optimizer update steps every member whose optimizer class has a fused rule
  (optim/fused.py), with per-member hyper-parameters as tensors; a user's optimizer steps each
  of its members on its own. So a step's operations do not grow with the members;
- BatchNorm running statistics live in one stacked tensor per buffer that BatchNorm updates in
  place under `vmap`; the members' modules hold views of it.

Without dropout a member's numbers equal its sequential run's up to rounding (1e-12 in fp64);
dropout draws with `randomness="different"`, equal in distribution only. A member that diverges
is frozen and reported at once while the others go on. Times are shared out: a member's train
and eval time is the ensemble's divided by the members that trained in it, its wall time, step
times and peak memory the ensemble's divided by K (the ensemble's size).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call, vmap

from cnnbench.data import DeviceData
from cnnbench.results.schema import Status
from cnnbench.suite import RunSpec
from cnnbench.train import signals
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.engine import RunResult, TimedOut, build_outcome, resume_trainer, time_limit
from cnnbench.train.graphs import graph_step, graphs_supported
from cnnbench.train.machine import MachineProbe
from cnnbench.train.precision import autocast
from cnnbench.train.probes import MemoryProbe, NullTimer, SharedMemory, SharedTimer, StepTimer
from cnnbench.train.stacking import StackedOptimizers, StackedParams, stack_order
from cnnbench.train.trainer import Diverged, Trainer, loss_fn

MemberDone = Callable[[RunSpec, RunResult], None]


@dataclass
class Member:
    """One run inside the ensemble."""

    spec: RunSpec
    trainer: Trainer
    history: list[dict[str, Any]]
    resumed: dict[str, Any] | None
    checkpoint: Checkpoint | None
    started: float  # the run's start time (an earlier session's, when resumed)
    earlier_wall_s: float  # wall time of earlier sessions
    row: int = 0  # its row in the stacked parameters and optimizer state
    done: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.history) - 1


def _set_buffer(module: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    module.get_submodule(owner)._buffers[leaf] = value


class Ensemble:
    """Train `specs` (one network, one dataset, one batch size and schedule) as one ensemble;
    each member resumes from its own checkpoint when it has one and saves one per epoch."""

    def __init__(self, specs: list[RunSpec], data: DeviceData, *,
                 checkpoints: list[Checkpoint | None] | None = None, log=None) -> None:
        self.data, self.device, self.size = data, data.device, len(specs)
        checkpoints = checkpoints or [None] * len(specs)
        members: list[Member] = []
        for spec, checkpoint in zip(specs, checkpoints):
            trainer, resumed = resume_trainer(spec, data, checkpoint, log, stacked=True)
            members.append(Member(
                spec, trainer, list(resumed["history"]) if resumed else [], resumed, checkpoint,
                resumed["start_time"] if resumed else time.time(),
                resumed["wall_s"] if resumed else 0.0))
        # members that share a fused optimizer update sit in adjacent rows
        self.members = [members[i] for i in stack_order([m.trainer.optimizer for m in members])]
        for row, member in enumerate(self.members):
            member.row = row
        first = self.members[0]
        self.spec, self.precision, self.dtype = first.spec, first.trainer.precision, \
            first.trainer.dtype
        # the module `functional_call` runs: the architecture only, its tensors on meta
        self.base = copy.deepcopy(first.trainer.model).to("meta")
        self.params = StackedParams([m.trainer.model for m in self.members])
        self.optimizers = StackedOptimizers([m.trainer.optimizer for m in self.members],
                                            self.params)
        self._grad: tuple[torch.Tensor, list[int]] | None = None  # the last step's, by row
        self.param_names = [n for n, _ in first.trainer.model.named_parameters()]
        self.buffer_names = [n for n, _ in first.trainer.model.named_buffers()]
        self.buffers: dict[str, torch.Tensor] = {}
        self._stacked_for: tuple[int, ...] = ()
        self.grad_probe = "grad_norms" in first.spec.probes
        # graphs: true — every member's whole step captured once and replayed (CUDA only)
        self.graphs = bool(first.spec.train.get("graphs")) and graphs_supported(self.device)
        self._captured = graph_step(lambda xs, ys: self._device_step(self.members, xs, ys),
                                    self.device) if self.graphs else None
        for member in self.members:
            member.trainer.graphs = self.graphs
        self.timer = StepTimer(self.device) if "time" in first.spec.probes else NullTimer()
        self.machine = MachineProbe(self.device)  # shared: the members trained on one machine
        self.memory = MemoryProbe(self.device)
        for member in self.members:
            member.trainer.timer = SharedTimer(self.timer, self.size)
            member.trainer.machine = self.machine
        self._train_call = vmap(self._train_loss, in_dims=(0, 0, 0, 0), randomness="different")
        self._eval_call = vmap(self._eval_loss, in_dims=(0, 0, None, None),
                               randomness="different")
        self._wall_start = time.perf_counter()

    # ─── the vectorized passes ─────────────────────────────────────────────────────────────────

    def _logits(self, params, buffers, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def _train_loss(self, params, buffers, x, y):
        logits = self._logits(params, buffers, x)
        return loss_fn(logits, y), (logits.argmax(1) == y).sum()

    def _eval_loss(self, params, buffers, x, y):
        logits = self._logits(params, buffers, x)
        return loss_fn(logits, y, "sum"), (logits.argmax(1) == y).sum()

    def _rows(self, group: list[Member]) -> torch.Tensor | None:
        """The stack's rows of `group`, None when it is every member (a group lists its members
        in the ensemble's order: no gather)."""
        if len(group) == self.size:
            return None
        return torch.tensor([m.row for m in group], device=self.device)

    def _buffers(self, group: list[Member]) -> dict[str, torch.Tensor]:
        """The group's buffers stacked, once per group change (the members' modules then hold
        views of the stacked buffers)."""
        key = tuple(id(m) for m in group)
        if key != self._stacked_for and self.buffer_names:
            models = [dict(m.trainer.model.named_buffers()) for m in group]
            self.buffers = {n: torch.stack([b[n] for b in models]) for n in self.buffer_names}
            for k, member in enumerate(group):
                for name in self.buffer_names:
                    _set_buffer(member.trainer.model, name, self.buffers[name][k])
        self._stacked_for = key
        return self.buffers

    def step(self, group: list[Member], xs: torch.Tensor,
             ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step of every member of `group`; per-member summed losses and correct
        counts, on the device (with graphs, the captured step's own tensors: read them before
        the next step)."""
        for member in group:
            member.trainer.lr_used = member.trainer.optimizer.param_groups[0]["lr"]
        self.optimizers.refresh()  # a schedule's new lrs into the update's tensors
        if self._captured is not None and len(group) == self.size:
            losses, correct = self._captured(xs, ys)
        else:  # a group that changed (a member froze or waits): the eager step
            losses, correct = self._device_step(group, xs, ys)
        for member in group:
            member.trainer.scheduler.step()
        return losses, correct

    def _device_step(self, group: list[Member], xs: torch.Tensor,
                     ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's work on the device alone — what a CUDA graph captures."""
        leaves = self.params.leaves(self._rows(group))
        buffers = self._buffers(group)
        with autocast(self.device, self.precision, cache=not self.graphs):
            losses, correct = self._train_call(dict(zip(self.param_names, leaves)), buffers,
                                               xs.to(self.dtype), ys)
        # d(Σ_k loss_k)/dθ_k = dloss_k/dθ_k: each member gets its own run's gradient
        losses.sum().backward()
        grad, rows = self.params.gradient(leaves), [m.row for m in group]
        self.optimizers.step(grad, rows)
        self._grad = grad, rows
        if self.grad_probe:
            self.optimizers.bind_grads(grad, rows)
        return losses.detach() * ys.shape[1], correct

    def dry_step(self) -> None:
        """One training step of every member on its first batch (a memory measurement)."""
        self.base.train()
        xs, ys = next(self.data.stacked_train_batches(
            self.members[0].trainer.batch_size, [m.trainer.generator for m in self.members]))
        self.step(self.members, xs, ys)

    # ─── epochs ────────────────────────────────────────────────────────────────────────────────

    def _train_epoch(self, group: list[Member], on_done: MemberDone) -> dict[int, tuple]:
        """One epoch of `group`; returns {id(member): (train loss, train acc)} of the members
        that did not diverge (those are frozen and reported as they go). Each member's steps,
        guard reads and train_s follow `Trainer.train_epoch` exactly."""
        self.base.train()
        active = list(group)
        index = {id(m): i for i, m in enumerate(group)}
        loss_sum = torch.zeros(len(group), device=self.device, dtype=self.dtype)
        correct = torch.zeros(len(group), device=self.device, dtype=torch.long)
        batches = self.data.stacked_train_batches(group[0].trainer.batch_size,
                                                  [m.trainer.generator for m in group],
                                                  drop_last=group[0].trainer.drop_last)
        # which rows of the sums the active members fill (rebuilt when one freezes: a host list
        # turned into a CUDA tensor every step would synchronize every step)
        rows = torch.arange(len(group), device=self.device)
        start = time.perf_counter()
        self.machine.start()

        def share_s() -> float:  # a member's share of the epoch's time so far
            return (time.perf_counter() - start) / len(group)

        try:
            self.timer.data_start()
            for xs, ys in batches:
                if len(active) < len(group):  # the frozen members' batches are drawn, not used
                    xs, ys = xs.index_select(0, rows), ys.index_select(0, rows)
                self.timer.compute_start()
                step_loss, step_correct = self.step(active, xs, ys)
                frozen = self._guard(active, step_loss, ys.shape[1])
                signals.check()
                loss_sum.index_add_(0, rows, step_loss)
                correct.index_add_(0, rows, step_correct)
                for member, message in frozen:
                    active.remove(member)
                    member.trainer.train_s += share_s()  # its partial epoch, as alone
                    self._finish(member, Status.DIVERGED, message, on_done)
                if not active:
                    break
                if frozen:
                    rows = torch.tensor([index[id(m)] for m in active], device=self.device)
                self.timer.data_start()
        finally:  # stopped mid-epoch (signal, time limit): the partial epoch counts, as alone
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.machine.stop()
            share = share_s()
            for member in active:
                member.trainer.train_s += share
            self.timer.epoch_end()
        n = group[0].trainer.epoch_samples
        losses, corrects = loss_sum.tolist(), correct.tolist()
        results = {}
        for member in active:
            i = index[id(member)]
            try:  # the steps between two guard reads: their NaN is in the epoch's sum
                member.trainer.check_loss(losses[i] / n, f"(the epoch's mean) by step "
                                                         f"{member.trainer.steps}")
            except Diverged as exc:
                self._finish(member, Status.DIVERGED, str(exc), on_done)
                continue
            results[id(member)] = (losses[i] / n, corrects[i] / n)
        return results

    @staticmethod
    def _guard(active: list[Member], step_loss: torch.Tensor,
               batch: int) -> list[tuple[Member, str]]:
        """Count the step every member took and read the loss of those whose guard is due, all
        in one read; the members that diverged, with why."""
        due = []
        for k, member in enumerate(active):
            member.trainer.steps += 1
            member.trainer.samples += batch
            if member.trainer.guard_due():
                due.append(k)
        losses = step_loss.tolist() if due else []
        frozen = []
        for k in due:
            trainer = active[k].trainer
            try:
                trainer.check_loss(losses[k] / batch, f"at step {trainer.steps}")
            except Diverged as exc:
                frozen.append((active[k], str(exc)))
        diverged = {id(m) for m, _ in frozen}
        for member in active:
            trainer = member.trainer
            if trainer.steps == 1 and trainer.grad_norm_rows is not None and \
                    id(member) not in diverged:
                trainer.record_grad_norms(0)
        return frozen

    @torch.no_grad()
    def _scores(self, group: list[Member]) -> list[tuple[float, float, float, float]]:
        """Val and test loss and accuracy of each member of `group`, evaluated at once."""
        self.base.eval()
        params = dict(zip(self.param_names, self.params.stacked(self._rows(group))))
        self._buffers(group)
        batch = self.spec.train["eval_batch_size"]
        columns: list[list[float]] = []
        for split in (self.data.val, self.data.test):
            if split is None or len(split) == 0:
                columns += [[math.nan] * len(group)] * 2
                continue
            loss_sum = torch.zeros(len(group), device=self.device, dtype=self.dtype)
            correct = torch.zeros(len(group), device=self.device, dtype=torch.long)
            with autocast(self.device, self.precision):
                for x, y in self.data.eval_batches(split, batch):
                    part, hits = self._eval_call(params, self.buffers, x.to(self.dtype), y)
                    loss_sum += part
                    correct += hits
            columns += [[v / len(split) for v in loss_sum.tolist()],
                        [v / len(split) for v in correct.tolist()]]
        return list(zip(*columns))

    def _evaluate(self, group: list[Member], epoch: int, train: dict[int, tuple],
                  on_epoch) -> None:
        start = time.perf_counter()
        scores = self._scores(group)
        share_s = (time.perf_counter() - start) / len(group)
        for member, score in zip(group, scores):
            train_loss, train_acc = train.get(id(member), (math.nan, math.nan))
            member.history.append(member.trainer.evaluate_row(epoch, train_loss, train_acc,
                                                              score))
            member.trainer.eval_s += share_s
            if epoch == 0:
                continue
            if member.checkpoint is not None:
                self._save(member)
            if on_epoch is not None:
                on_epoch(member.spec, epoch, member.history[-1])

    def _wall_s(self, member: Member, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        return member.earlier_wall_s + (now - self._wall_start) / self.size

    def _save(self, member: Member) -> None:
        self.optimizers.export(member.row)
        state = member.trainer.state_dict()
        # parameters, buffers and optimizer state are views of the stacked tensors: clone, or
        # torch.save writes all K members'
        state["model"] = {k: v.clone() for k, v in state["model"].items()}
        state["optimizer"] = {**state["optimizer"], "state": {
            i: {k: v.clone() if torch.is_tensor(v) else v for k, v in entry.items()}
            for i, entry in state["optimizer"]["state"].items()}}
        member.checkpoint.save({"epoch": member.epochs_done, "start_time": member.started,
                                "history": member.history, "wall_s": self._wall_s(member),
                                "trainer": state})

    def _finish(self, member: Member, status: Status, message: str, on_done: MemberDone,
                now: float | None = None) -> None:
        """Report `member` as ended; `now`: the moment several members ended together (so that
        writing one's row does not count in the next one's wall time)."""
        member.done = True
        self.optimizers.export(member.row)
        if self._grad is not None and member.row in self._grad[1]:  # the memory probe's grads
            grad, rows = self._grad
            self.optimizers.bind_grads(grad[rows.index(member.row)].unsqueeze(0), [member.row])
        outcome = build_outcome(member.spec, self.data, member.trainer, member.history,
                                status=status, message=message, resumed=member.resumed,
                                started=member.started, wall_s=self._wall_s(member, now),
                                memory=SharedMemory(self.memory, self.size))
        on_done(member.spec, RunResult(outcome, member.history))

    def run(self, on_done: MemberDone, on_epoch=None) -> None:
        """Train every member to its last epoch; `on_done(spec, result)` once per member, as soon
        as it ends (diverged members mid-way). The members behind (resumed from an older
        checkpoint) train first until all are at the same epoch. A stop signal or the time
        limit (`time_limit_s` × K for the ensemble) ends every member still training."""
        if "memory" in self.spec.probes:
            self.memory.start()
        epochs = self.spec.train["epochs"]
        limit = self.spec.train.get("time_limit_s")
        self._wall_start = time.perf_counter()
        try:
            with time_limit(limit * self.size if limit else None):
                while live := [m for m in self.members if not m.done]:
                    fresh = [m for m in live if not m.history]
                    if fresh:
                        self._evaluate(fresh, 0, {}, on_epoch)
                    behind, now = min(m.epochs_done for m in live), time.perf_counter()
                    for member in [m for m in live if m.epochs_done >= epochs]:
                        self._finish(member, Status.OK, "", on_done, now)
                    if behind >= epochs:
                        break
                    group = [m for m in live if m.epochs_done == behind]
                    train = self._train_epoch(group, on_done)
                    self._evaluate([m for m in group if not m.done], behind + 1, train, on_epoch)
        except signals.Interrupted as exc:
            now = time.perf_counter()
            for member in [m for m in self.members if not m.done]:
                done = member.epochs_done
                self._finish(member, Status.INTERRUPTED, f"{exc} during epoch {done + 1}; re-run "
                             f"to resume after epoch {done}", on_done, now)
        except TimedOut as exc:
            now = time.perf_counter()
            for member in [m for m in self.members if not m.done]:
                self._finish(member, Status.TIMEOUT, str(exc), on_done, now)
