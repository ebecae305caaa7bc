"""Many betas in one batched pass: each (point, beta) pair is its own example, with the one-beta numbers."""

from __future__ import annotations

import pytest
import torch

from ctrobust.api import evaluate
from ctrobust.attacks.batched import evaluate_betas
from ctrobust.attacks.spec import AttackSpec
from ctrobust.ct import curvature_tuned
from ctrobust.models import load_model
from ctrobust.plan.selection import survivors, sweep_schedule
from ctrobust.threats import ThreatModel

# its module-scoped fixture is built once: pytest-xdist keeps this file's tests on one worker
pytestmark = pytest.mark.xdist_group("test_batched_betas")

BETAS = [0.7, 0.85, 1.0]


@pytest.fixture(scope="module")
def smallcnn() -> torch.nn.Module:
    return load_model("smallcnn").model


@pytest.mark.parametrize("impl", ["eager", "fused"])
def test_per_sample_betas_give_each_beta_its_own_function(smallcnn, fmnist_test, impl: str) -> None:  # type: ignore[no-untyped-def]
    x = fmnist_test[0][:16]
    ct = curvature_tuned(smallcnn, 1.0, impl=impl)
    stacked = torch.cat([x] * len(BETAS)).requires_grad_(True)
    before = ct(x).detach()
    with ct.betas_per_sample([b for b in BETAS for _ in range(len(x))]):
        out = ct(stacked)
    assert torch.equal(ct(x).detach(), before)  # after the block the model runs at its own beta again
    (grad,) = torch.autograd.grad(out.square().sum(), stacked)
    for k, beta in enumerate(BETAS):
        ct.beta = beta
        single = x.clone().requires_grad_(True)
        alone = ct(single)
        (alone_grad,) = torch.autograd.grad(alone.square().sum(), single)
        rows = slice(k * len(x), (k + 1) * len(x))
        assert torch.equal(out[rows].detach(), alone.detach())  # bit for bit, beta = 1 exactly ReLU
        assert torch.equal(grad[rows], alone_grad)


def test_gradients_do_not_mix_between_pairs(smallcnn, fmnist_test) -> None:  # type: ignore[no-untyped-def]
    """The loss of one (point, beta) pair has zero gradient on every other pair's input."""
    x = fmnist_test[0][:4]
    ct = curvature_tuned(smallcnn, 1.0, impl="eager")
    stacked = torch.cat([x, x]).requires_grad_(True)  # the same points at two betas
    with ct.betas_per_sample([0.7] * 4 + [0.9] * 4):
        logits = ct(stacked)
    for i in range(len(stacked)):
        (grad,) = torch.autograd.grad(logits[i].logsumexp(0), stacked, retain_graph=True)
        per_pair = grad.flatten(1).abs().sum(1)
        assert per_pair[i] > 0
        assert torch.count_nonzero(per_pair) == 1, f"pair {i}'s loss reached other pairs: {per_pair.tolist()}"


@pytest.mark.parametrize(("threat", "eps"), [(ThreatModel.LINF, 0.05), (ThreatModel.L2, 1.0)])
def test_batched_sweep_equals_one_beta_at_a_time(smallcnn, fmnist_test, threat: ThreatModel, eps: float) -> None:  # type: ignore[no-untyped-def]
    x, y = fmnist_test[0][:60], fmnist_test[1][:60]
    ct = curvature_tuned(smallcnn, 1.0, impl="eager")
    spec = AttackSpec("apgd-ce", 4)
    # Passes of 70 pairs cut through the betas' blocks and through the one-beta runs' batches of 25.
    together = evaluate_betas(ct, BETAS, x, y, threat, eps, spec, 7, 25, torch.device("cpu"), max_pairs=70)
    for beta in BETAS:
        ct.beta = beta
        alone = evaluate(ct, x, y, threat, eps, spec, seed=7, batch_size=25)
        assert torch.equal(together[beta].clean_correct, alone.clean_correct)
        assert torch.equal(together[beta].robust_correct, alone.robust_correct), beta
        # The images agree to float rounding: a convolution's arithmetic depends on the batch's size
        # (a one-beta batch of 10 points against a pass of 70 pairs), measured up to 1.8e-7 under L2 on an
        # Intel CPU. On an AMD EPYC one point of the 60 (beta 0.85, L2) moved 2.2e-3: the rounding flipped one
        # of APGD's step-size halvings, so its path differs while its outcome (asserted above) does not.
        apart = (together[beta].x_adv - alone.x_adv).flatten(1).abs().amax(1) > 1e-5
        assert int(apart.sum()) <= (1 if threat is ThreatModel.L2 else 0), beta


def test_successive_halving_schedule() -> None:
    assert sweep_schedule(500, 31, halving=False) == [500]
    assert sweep_schedule(500, 31, halving=True) == [55, 166, 500]
    assert sweep_schedule(100, 31, halving=True) == [100]  # a rung of 33 points would be too noisy
    assert survivors({0.7: 0.1, 0.8: 0.3, 0.9: 0.3, 1.0: 0.2}) == [0.8, 0.9]  # the best third, ties kept
    assert survivors({0.7: 0.5, 0.8: 0.5, 0.9: 0.1}) == [0.8]  # a tie goes to the larger beta


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")
def test_per_sample_cuda_kernels_equal_one_beta_kernels_cuda(smallcnn, fmnist_test) -> None:  # type: ignore[no-untyped-def]
    x, y = fmnist_test[0][:60].cuda(), fmnist_test[1][:60].cuda()
    ct = curvature_tuned(smallcnn.cuda(), 1.0, impl="fused")
    spec = AttackSpec("apgd-ce", 4)
    together = evaluate_betas(ct, BETAS, x, y, ThreatModel.LINF, 0.05, spec, 7, 25, torch.device("cuda"), max_pairs=70)
    for beta in BETAS:
        ct.beta = beta
        alone = evaluate(ct, x, y, "linf", 0.05, spec, seed=7, batch_size=25)
        assert torch.equal(together[beta].robust_correct, alone.robust_correct), beta
