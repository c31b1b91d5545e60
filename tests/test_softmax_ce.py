"""The loss is softmax + cross-entropy in its fused, stable form (the lecture's derivation)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnbench.train.engine import loss_fn


def naive_softmax_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−Σ t·log softmax(z), written out: exp, normalise, log."""
    exp = torch.exp(logits)
    probs = exp / exp.sum(dim=1, keepdim=True)
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return -(one_hot * torch.log(probs)).sum(dim=1).mean()


def test_equals_the_written_out_form_on_moderate_logits():
    torch.manual_seed(0)
    logits = torch.randn(16, 10, dtype=torch.float64) * 3
    targets = torch.randint(0, 10, (16,))
    assert loss_fn(logits, targets).item() == pytest.approx(
        naive_softmax_ce(logits, targets).item(), rel=1e-12)


def test_stays_finite_where_the_naive_form_overflows():
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]])
    targets = torch.tensor([2, 0])
    assert not math.isfinite(naive_softmax_ce(logits, targets).item())
    fused = loss_fn(logits, targets).item()
    assert math.isfinite(fused)
    assert fused == pytest.approx((1e4 + 2e4) / 2)  # log-sum-exp ≈ max logit


def test_gradient_wrt_logits_is_softmax_minus_target():
    torch.manual_seed(1)
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 3, 1, 4])
    loss_fn(logits, targets, "sum").backward()
    expected = torch.softmax(logits.detach(), 1) - F.one_hot(targets, 5).double()
    assert torch.allclose(logits.grad, expected)


def test_the_lecture_worked_example():
    # p = 0.775 for the true class; with log base 2 the loss is −log2(0.775) = 0.3677
    p_true = 0.775
    logits = torch.log(torch.tensor([[p_true, 0.15, 0.075]], dtype=torch.float64))
    nats = loss_fn(logits, torch.tensor([0])).item()
    assert nats / math.log(2) == pytest.approx(0.3677, abs=5e-5)
