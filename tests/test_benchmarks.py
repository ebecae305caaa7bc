"""The benchmarks measure what they claim: their WRN-28-10 is RobustBench's `Standard` architecture."""

from __future__ import annotations

import sys

import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

from wrn import WideResNet2810  # noqa: E402


def test_benchmark_wrn_is_robustbench_standard() -> None:
    from ctrobust.compat.robustbench_import import import_robustbench

    import_robustbench()
    from robustbench.model_zoo.architectures.wide_resnet import WideResNet

    reference = WideResNet(depth=28, widen_factor=10).eval()
    ours = WideResNet2810().eval()
    ref_state = reference.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref_state.items()}
    ours.load_state_dict(ref_state)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
