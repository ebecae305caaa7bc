"""CT reaches every kind of ReLU, leaves other activations and the original model alone."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ctrobust import ct_coverage, ctu, curvature_tuned

BETA = 0.8


class EveryRelu(nn.Module):
    """One linear layer followed by each ReLU spelling; ``act`` says which one to use."""

    def __init__(self, act: str) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.act = act
        self.relu = nn.ReLU()
        self.relu_inplace = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        match self.act:
            case "module":
                return self.relu(h)
            case "module_inplace":
                return self.relu_inplace(h)
            case "F.relu":
                return F.relu(h)
            case "F.relu_inplace":
                return F.relu(h, inplace=True)
            case "F.relu_":
                return F.relu_(h)
            case "torch.relu":
                return torch.relu(h)
            case "torch.relu_":
                torch.relu_(h)  # return value ignored on purpose
                return h
            case "Tensor.relu":
                return h.relu()
            case "Tensor.relu_":
                h.relu_()
                return h
            case "built_in_forward":
                return nn.ReLU(inplace=True)(h)
        raise AssertionError(self.act)


KINDS = ["module", "module_inplace", "F.relu", "F.relu_inplace", "F.relu_", "torch.relu", "torch.relu_",
         "Tensor.relu", "Tensor.relu_", "built_in_forward"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_relu_spelling_becomes_ctu(kind: str) -> None:
    torch.manual_seed(0)
    model = EveryRelu(kind)
    x = torch.randn(16, 8)
    want = ctu(model.lin(x), BETA)
    got = curvature_tuned(model, BETA, impl="eager")(x)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, torch.relu(model.lin(x)), atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_flow_through_every_spelling(kind: str) -> None:
    torch.manual_seed(0)
    model = EveryRelu(kind)
    x = torch.randn(16, 8, requires_grad=True)
    curvature_tuned(model, BETA, impl="eager")(x).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    ctu(model.lin(xr), BETA).sum().backward()
    assert torch.allclose(x.grad, xr.grad, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_beta_one_is_the_original_function(kind: str) -> None:
    torch.manual_seed(0)
    model = EveryRelu(kind)
    x = torch.randn(16, 8)
    assert torch.equal(curvature_tuned(model, 1.0, impl="eager")(x), model(x))


def test_original_model_unchanged_and_weights_shared() -> None:
    torch.manual_seed(0)
    model = EveryRelu("module")
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(4, 8)
    out_before = model(x)
    ct = curvature_tuned(model, BETA, impl="eager")
    ct(x)
    assert torch.equal(model(x), out_before)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert ct.model.lin.weight.data_ptr() == model.lin.weight.data_ptr()
    assert list(model.modules())[1:] == [model.lin, model.relu, model.relu_inplace]


def test_beta_changes_without_rebuild() -> None:
    torch.manual_seed(0)
    model = EveryRelu("F.relu")
    x = torch.randn(4, 8)
    ct = curvature_tuned(model, 0.7, impl="eager")
    out_07 = ct(x)
    ct.beta = 0.95
    assert torch.allclose(ct(x), ctu(model.lin(x), 0.95), atol=1e-6)
    assert not torch.allclose(out_07, ct(x))
    with pytest.raises(ValueError):
        ct.beta = 1.5


@pytest.mark.parametrize("act", [nn.LeakyReLU(), nn.SiLU(), nn.GELU(), nn.ELU(), nn.Softplus(), nn.Tanh()])
def test_other_activations_left_alone(act: nn.Module) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), act)
    x = torch.randn(4, 8)
    assert torch.equal(curvature_tuned(model, BETA, impl="eager")(x), model(x))
    cov = ct_coverage(model, x)
    assert cov.total == 0
    assert type(act).__name__ in cov.other_activation_modules.values()


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.r1 = nn.ReLU()
        self.r2 = nn.ReLU()
        self.g = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.r2(self.r1(self.a(x)))
        y = F.relu(x)
        x = y + x.relu()
        return F.silu(self.g(x))


def test_coverage_counts_by_kind() -> None:
    cov = ct_coverage(Mixed(), torch.randn(2, 4))
    assert (cov.module_calls, cov.functional_calls) == (2, 2)
    assert cov.relu_modules == ["r1", "r2"]
    assert len(cov.functional_sites) == 2 and all("test_curvature_tuned.py" in s for s in cov.functional_sites)
    assert cov.other_activations == {"gelu": 1, "silu": 1}
    assert cov.other_activation_modules == {"g": "GELU"}
