"""The fused (compiled) CT unit: same values and gradients as the formula, no recompiles across betas,
only its input kept for backward, and the eager fallback when compilation fails."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ctrobust.ct import curvature_tuned, fused
from ctrobust.ct.errors import CTError
from ctrobust.ct.fused import FusedCTU, ctu_backend
from ctrobust.ct.unit import ctu

BETAS = [0.0, 0.3, 0.7, 0.9, 0.99, 0.999]


def _points() -> torch.Tensor:
    torch.manual_seed(0)
    # spans both sides of softplus' threshold (x / (1 - beta) > 20) and the flat tails
    return torch.cat([torch.randn(2000) * 3, torch.linspace(-60, 60, 241)]).double()


@pytest.mark.parametrize("beta", BETAS)
def test_fused_values_and_gradients_equal_the_formula_in_float64(beta: float) -> None:
    x_ref = _points().requires_grad_(True)
    x_fused = _points().requires_grad_(True)
    ref = ctu(x_ref, beta)
    out = FusedCTU(beta, 0.5)(x_fused)
    assert torch.allclose(out, ref, rtol=1e-10, atol=1e-12)
    weights = torch.linspace(-1, 1, len(ref), dtype=torch.float64)
    (ref * weights).sum().backward()
    (out * weights).sum().backward()
    assert torch.allclose(x_fused.grad, x_ref.grad, rtol=1e-9, atol=1e-12)
    assert ctu_backend("fused") == "fused (torch.compile)"


def test_a_beta_sweep_does_not_recompile() -> None:
    from torch._dynamo.utils import counters

    x = torch.randn(4, 8, 5, 5, requires_grad=True)
    FusedCTU(0.9, 0.5)(x).sum().backward()  # compiled (or already compiled) here
    before = counters["stats"]["unique_graphs"]
    for beta in [0.70 + 0.01 * k for k in range(30)]:
        FusedCTU(beta, 0.5)(torch.randn(3, 8, 7, 7, requires_grad=True)).sum().backward()
    assert counters["stats"]["unique_graphs"] == before


def _saved_bytes(fn, x: torch.Tensor) -> int:  # type: ignore[no-untyped-def]
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(storages.values())


def test_fused_unit_keeps_no_more_for_backward_than_relu() -> None:
    x = torch.randn(16, 32, 16, 16)
    relu = _saved_bytes(torch.relu, x.clone().requires_grad_(True))
    fused_bytes = _saved_bytes(FusedCTU(0.9, 0.5), x.clone().requires_grad_(True))
    eager = _saved_bytes(lambda t: ctu(t, 0.9), x.clone().requires_grad_(True))
    # one activation-sized tensor each (ReLU its output, the CTU its input); the CTU adds the 0-dim beta and c
    assert relu == x.numel() * 4 and relu <= fused_bytes <= relu + 64
    assert eager >= 2 * relu  # the composed formula keeps intermediates: what fusing removes


def test_curvature_tuned_fused_matches_eager_on_a_network() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    x = torch.rand(4, 3, 8, 8)
    outs, grads = [], []
    for impl in ("eager", "fused"):
        xx = x.clone().requires_grad_(True)
        ct = curvature_tuned(net, 0.85, impl=impl)
        out = ct(xx)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append(xx.grad)
    assert torch.allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert torch.equal(curvature_tuned(net, 1.0, impl="fused")(x), net(x))  # beta = 1 is the original


def test_when_compilation_fails_the_eager_unit_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(*args: object, **kwargs: object) -> object:
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(fused, "_COMPILED", fused._Compiled())
    monkeypatch.setattr(torch, "compile", broken_compile)
    x = torch.randn(100)
    with pytest.warns(UserWarning, match="torch.compile of the CT unit failed"):
        out = FusedCTU(0.8, 0.5)(x)
    assert torch.equal(out, ctu(x, 0.8))
    assert ctu_backend("fused").startswith("eager (torch.compile failed: RuntimeError: no C++ compiler found")
    assert ctu_backend("eager") == "eager"


def test_impl_names_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CTError, match="implementation"):
        curvature_tuned(nn.ReLU(), 0.9, impl="cuda-graph")
    monkeypatch.setenv("CTROBUST_CTU", "eager")
    assert curvature_tuned(nn.ReLU(), 0.9).impl == "fused"  # ct/ reads no environment: auto is fused


def test_the_environment_chooses_the_unit_only_through_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    from ctrobust.errors import CtrobustError
    from ctrobust.plan.run_plan import CtuImpl, resolve_ctu

    monkeypatch.setenv("CTROBUST_CTU", "eager")
    assert resolve_ctu() is CtuImpl.EAGER
    assert resolve_ctu("fused") is CtuImpl.FUSED  # an explicit --ctu wins over the environment
    monkeypatch.delenv("CTROBUST_CTU")
    assert resolve_ctu(CtuImpl.AUTO) is CtuImpl.FUSED
    monkeypatch.setenv("CTROBUST_CTU", "nonsense")
    with pytest.raises(CtrobustError, match=r"\$CTROBUST_CTU"):
        resolve_ctu()
    with pytest.raises(CtrobustError, match="--ctu"):
        resolve_ctu("graph")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")


@cuda
@pytest.mark.parametrize("beta", BETAS)
def test_cuda_kernels_equal_the_formula_in_float64(beta: float) -> None:
    x_ref = _points().cuda().requires_grad_(True)
    x_fused = _points().cuda().requires_grad_(True)
    ref = ctu(x_ref, beta)
    out = FusedCTU(beta, 0.5)(x_fused)
    assert torch.allclose(out, ref, rtol=1e-10, atol=1e-12)
    weights = torch.linspace(-1, 1, len(ref), dtype=torch.float64, device="cuda")
    (ref * weights).sum().backward()
    (out * weights).sum().backward()
    assert torch.allclose(x_fused.grad, x_ref.grad, rtol=1e-9, atol=1e-12)
    assert ctu_backend("fused", "cuda") == "fused (CUDA kernels)"


@cuda
def test_cuda_kernels_in_float32_on_a_network_match_the_cpu_formula() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()
    x = torch.rand(16, 3, 8, 8) * 4 - 2
    results = []
    for impl, device in (("eager", "cpu"), ("fused", "cuda")):
        xx = x.clone().to(device).requires_grad_(True)
        out = curvature_tuned(net.to(device), 0.85, impl=impl)(xx)
        out.square().sum().backward()
        results.append((out.detach().cpu(), xx.grad.cpu()))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-3, atol=1e-5)
    x_cuda = torch.randn(64, 32, 16, 16, device="cuda")
    relu = _saved_bytes(torch.relu, x_cuda.clone().requires_grad_(True))
    assert _saved_bytes(FusedCTU(0.9, 0.5), x_cuda.clone().requires_grad_(True)) == relu  # the input alone


@cuda
def test_when_the_cuda_kernels_fail_torch_compile_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.cuda.jiterator as jiterator

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("nvrtc: error: failed to open libnvrtc-builtins.so")

    monkeypatch.setattr(fused, "_CUDA", fused._CudaKernels())
    monkeypatch.setattr(jiterator, "_create_jit_fn", broken)
    x = torch.randn(1000, device="cuda", dtype=torch.float64)
    with pytest.warns(UserWarning, match="CUDA kernels of the CT unit failed"):
        out = FusedCTU(0.8, 0.5)(x)
    assert torch.allclose(out, ctu(x, 0.8), rtol=1e-10, atol=1e-12)
    assert ctu_backend("fused", "cuda") == "fused (torch.compile)"


def test_a_per_sample_backend_builds_its_backward_on_a_batch_of_its_own_shape() -> None:
    """Found on the first GPU run: the backward was built on a one-element probe, which a beta with one row per
    sample cannot broadcast to, so the per-sample CUDA kernels always fell back to torch.compile (78 s to compile
    on an H200, and different float rounding from the one-beta kernels). The same build, with CPU functions
    that broadcast as the CUDA kernels do, must keep its kernels."""

    class ExpandingBackend(fused._Backend):
        name, fallback, label = "test kernels", "nothing", "test kernels"

        def _build(self):  # type: ignore[no-untyped-def]
            return (lambda x, beta, c: fused._ctu_forward(x, beta.expand_as(x), torch.tensor(c)),
                    lambda x, grad, beta, c: fused._ctu_backward(x, grad, beta.expand_as(x), torch.tensor(c)))

    backend = ExpandingBackend()
    x = torch.randn(6, 3, 4, 4, requires_grad=True)
    betas = torch.linspace(0.7, 0.95, 6).view(-1, 1, 1, 1)
    out = backend(x, betas, 0.5)
    assert backend.failed is None and out is not None
    out.sum().backward()
    expected = torch.stack([ctu(x[i].detach(), float(b), 0.5) for i, b in enumerate(betas.flatten())])
    assert torch.allclose(out, expected, atol=1e-6)
