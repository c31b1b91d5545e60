"""An ensemble's members as the rows of stacked tensors, and one optimizer update for all of them.

`StackedParams` holds every member's parameters in one `[K, N]` tensor (N: a member's parameter
count); each member's module holds views of its row, so its checkpoint, evaluation and result
row read the numbers the ensemble trains — nothing is stacked or copied per step.
`StackedOptimizers` steps the members: those whose optimizer class has a fused rule
(optim/fused.py) in one update per class and setting, with per-member hyper-parameters as
tensors; the others (a user's optimizer) each through its own `step()` on views of the
ensemble's gradient. The members' `optimizer.state` hold views of the stacked state too;
`export` writes the counters (the step) back before anything reads the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cnnbench.optim.fused import FusedRule, Rows, rule_for, settings, structure_key


class StackedParams:
    """The parameters of `models` (one architecture) as the rows of one tensor."""

    def __init__(self, models: list[nn.Module]) -> None:
        named = list(models[0].named_parameters())
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.offsets = [0]
        for size in self.sizes[:-1]:
            self.offsets.append(self.offsets[-1] + size)
        first = named[0][1]
        self.flat = torch.empty(len(models), sum(self.sizes), device=first.device,
                                dtype=first.dtype)
        for k, model in enumerate(models):
            for p, view in zip(model.parameters(), self.row_views(k)):
                view.copy_(p.detach())
                p.data = view  # the member's parameter is now its row of `flat`

    @property
    def width(self) -> int:
        return self.flat.shape[1]

    def row_views(self, k: int) -> list[Tensor]:
        """Member `k`'s parameters as views of its row."""
        return self.split(self.flat[k])

    def split(self, t: Tensor) -> list[Tensor]:
        """`t` (`[…, N]`: one row, the stack, a row of AggMo's velocities) as views shaped like
        the parameters, its leading dimensions kept."""
        lead = t.shape[:-1]
        return [t[..., o:o + n].view(*lead, *shape)
                for o, n, shape in zip(self.offsets, self.sizes, self.shapes)]

    def stacked(self, rows: Tensor | None) -> list[Tensor]:
        """The parameters of the members at `rows` (all when None), `[S, *shape]` each: views
        of `flat` for all members, of a gathered copy else."""
        return self.split(self.flat if rows is None else self.flat.index_select(0, rows))

    def leaves(self, rows: Tensor | None) -> list[Tensor]:
        """`stacked(rows)` as leaves that the backward pass fills."""
        return [t.detach().requires_grad_() for t in self.stacked(rows)]

    def gradient(self, leaves: list[Tensor]) -> Tensor:
        """The leaves' gradients as one `[S, N]` tensor (one concatenation)."""
        return torch.cat([leaf.grad.view(leaf.shape[0], -1) for leaf in leaves], dim=1)


@dataclass
class _Fused:
    """Members that share one fused update: `rows` (a contiguous range of the stack)."""

    rule: FusedRule
    start: int
    stop: int
    flags: dict[str, Any]
    state: dict[str, Tensor]
    counters: dict[str, Tensor]
    hp_key: tuple = ()
    hp: dict[str, Tensor] | None = None


class StackedOptimizers:
    """The optimizer step of every member, fused where its class has a rule. `optimizers[k]`
    steps the parameters of row k of `params`; members that share a rule and its settings must
    be adjacent rows (the ensemble orders them so)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer], params: StackedParams) -> None:
        self.optimizers, self.params = optimizers, params
        self.fused: list[_Fused] = []
        self.alone: list[int] = []  # rows whose optimizer steps on its own
        k = 0
        while k < len(optimizers):
            rule = rule_for(optimizers[k])
            if rule is None:
                self.alone.append(k)
                k += 1
                continue
            key = structure_key(optimizers[k])
            stop = k + 1
            while stop < len(optimizers) and structure_key(optimizers[stop]) == key:
                stop += 1
            self.fused.append(self._stack_state(rule, k, stop))
            k = stop
        self.refresh()
        for group in self.fused:
            for row in range(group.start, group.stop):
                self.export(row)
                # the fused update stands for this optimizer's step(): its schedule must not
                # warn that it steps before the optimizer
                optimizers[row]._opt_called = True  # type: ignore[attr-defined]

    def _stack_state(self, rule: FusedRule, start: int, stop: int) -> _Fused:
        """The members' state (empty, or restored from their checkpoints) stacked."""
        group = settings(self.optimizers[start])
        size, flat = stop - start, self.params.flat
        velocities = rule.velocity_count(group)
        shape = (size, velocities, self.params.width) if velocities else (size,
                                                                           self.params.width)
        initial = rule.initial(group)
        state = {key: torch.full(shape, float(initial.get(key, 0.0)), device=flat.device,
                                 dtype=flat.dtype) for key in rule.state_keys(group)}
        counters = {name: torch.zeros(size, 1, dtype=torch.float64, device=flat.device)
                    for name in rule.counters}
        for local, optimizer in enumerate(self.optimizers[start:stop]):
            first = optimizer.state.get(next(iter(optimizer.param_groups[0]["params"])), {})
            for name, (read, _) in rule.counters.items():
                counters[name][local] = read(first)
            for p, views in zip(optimizer.param_groups[0]["params"],
                                zip(*[self.params.split(t[local]) for t in state.values()])):
                saved = optimizer.state.get(p, {})
                for key, view in zip(state, views):
                    if torch.is_tensor(saved.get(key)):
                        view.copy_(saved[key])
        decay = any(o.param_groups[0].get("weight_decay", 0) for o in self.optimizers[start:stop])
        return _Fused(rule, start, stop, {**dict(rule.structure(group)), "decay": decay}, state,
                      counters)

    def export(self, row: int) -> None:
        """Write member `row`'s state into its own optimizer, as it would hold it alone: views of
        the stacked tensors, the counters as the class keeps them."""
        for group in self.fused:
            if not group.start <= row < group.stop:
                continue
            local = row - group.start
            optimizer = self.optimizers[row]
            # torch's state before the first step: none, unless the class fills it at once
            empty = (group.counters["step"][local].item() == 0
                     and not group.rule.initial(settings(optimizer)))
            views = zip(*[self.params.split(t[local]) for t in group.state.values()]) \
                if group.state else [()] * len(self.params.sizes)
            for p, per_key in zip(optimizer.param_groups[0]["params"], views):
                if empty:
                    optimizer.state.pop(p, None)
                    continue
                entry = dict(zip(group.state, per_key))
                for name, (_, write) in group.rule.counters.items():
                    if write is not None:
                        entry[name] = write(group.counters[name][local].item())
                optimizer.state[p] = entry

    @torch.no_grad()
    def refresh(self) -> None:
        """The members' hyper-parameters into the update's float64 `[S, 1]` columns, in place
        (a captured update reads them where they are); called before every step, written only
        when one changed (a schedule moves the lr)."""
        for group in self.fused:
            values = [group.rule.hparams(o.param_groups[0])
                      for o in self.optimizers[group.start:group.stop]]
            key = tuple(tuple(v.values()) for v in values)
            if key == group.hp_key:
                continue
            columns = {name: torch.tensor([v[name] if isinstance(v[name], tuple)
                                           else (v[name],) for v in values],
                                          dtype=torch.float64) for name in values[0]}
            if group.hp is None:
                group.hp = {k: v.to(self.params.flat.device) for k, v in columns.items()}
            else:
                for name, column in columns.items():
                    group.hp[name].copy_(column)
            group.hp_key = key

    @torch.no_grad()
    def step(self, grad: Tensor, rows: list[int]) -> None:
        """One update of the members at `rows` (rows of the stack, in `grad`'s row order)."""
        position = {row: i for i, row in enumerate(rows)}
        for group in self.fused:
            mine = [r for r in range(group.start, group.stop) if r in position]
            if not mine:
                continue
            hp = group.hp
            first = position[mine[0]]
            if len(mine) == group.stop - group.start and mine == rows[first:first + len(mine)]:
                # every member steps: the update works on the stack in place
                group.rule.update(Rows(self.params.flat[group.start:group.stop],
                                       grad[first:first + len(mine)], group.state,
                                       group.counters, hp, group.flags))
                continue
            self._step_some(group, grad, mine, [position[r] for r in mine], hp)
        for row in self.alone:
            if row in position:
                optimizer = self.optimizers[row]
                for p, g in zip(optimizer.param_groups[0]["params"],
                                self.params.split(grad[position[row]])):
                    p.grad = g
                optimizer.step()

    def _step_some(self, group: _Fused, grad: Tensor, mine: list[int], at: list[int],
                   hp: dict[str, Tensor]) -> None:
        """The update of some of `group`'s members (the others frozen or waiting): gathered,
        stepped and written back."""
        device = self.params.flat.device
        stack_rows = torch.tensor(mine, device=device)
        local = stack_rows - group.start
        p = self.params.flat.index_select(0, stack_rows)
        state = {k: v.index_select(0, local) for k, v in group.state.items()}
        counters = {k: v.index_select(0, local) for k, v in group.counters.items()}
        group.rule.update(Rows(p, grad.index_select(0, torch.tensor(at, device=device)), state,
                               counters, {k: v.index_select(0, local) for k, v in hp.items()},
                               group.flags))
        self.params.flat.index_copy_(0, stack_rows, p)
        for source, target in ((state, group.state), (counters, group.counters)):
            for key, value in source.items():
                target[key].index_copy_(0, local, value)

    def bind_grads(self, grad: Tensor, rows: list[int]) -> None:
        """Give each member at `rows` its gradient as views (what the grad-norm probe and the
        memory probe read from its own parameters)."""
        for i, row in enumerate(rows):
            for p, g in zip(self.optimizers[row].param_groups[0]["params"],
                            self.params.split(grad[i])):
                p.grad = g


def stack_order(optimizers: list[torch.optim.Optimizer]) -> list[int]:
    """An order of the members in which those sharing a fused update are adjacent: by their
    first appearance (a suite's order kept within each)."""
    first: dict[Any, int] = {}
    keys = []
    for i, optimizer in enumerate(optimizers):
        key = structure_key(optimizer)
        key = ("alone", i) if key is None else key
        keys.append(first.setdefault(key, len(first)))
    return sorted(range(len(optimizers)), key=lambda i: (keys[i], i))
