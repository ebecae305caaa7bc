"""AutoAttack on images of any size: a crash inside pyautoattack never surfaces as a traceback (issue 37 item 3).

pyautoattack's Square starts its L2 and L1 attacks from windows tiled over the image that overrun some sizes
(12x12 single-channel images under L1: ``RuntimeError: output with shape [206, 1, 2, 1] doesn't match the
broadcast shape``). Those sizes are refused before any work, in one line naming the cause and what works; every
other size runs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from pyautoattack.square import SquareAttack

import ctrobust
from ctrobust.attacks.autoattack import square_init_problem
from ctrobust.errors import CtrobustError
from ctrobust.threats import ThreatModel, parse_threat

SIDES = [4, 12, 14, 18, 28, 32]
SMALL_EPS = {"linf": 0.003, "l2": 0.03, "l1": 0.1}  # small enough that points survive to Square


def _linear(channels: int, h: int, w: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * h * w, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def test_the_predicate_is_squares_own_behaviour() -> None:
    """Square itself (3 queries) crashes exactly where the predicate says, for sides 2 to 69, square and not."""
    shapes = [(h, w) for h in range(2, 70) for w in ((h, h + 3) if h > 6 else (h,))]
    for h, w in shapes:
        net = nn.Sequential(nn.Flatten(), nn.Linear(h * w, 10)).eval()
        x = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(0))
        y = net(x).argmax(1)
        for norm, threat in (("L2", ThreatModel.L2), ("L1", ThreatModel.L1)):
            try:
                SquareAttack(net, norm=norm, eps=0.01, n_queries=3, device="cpu", seed=0).perturb(x, y)
                crashed = False
            except (RuntimeError, ZeroDivisionError):
                crashed = True
            assert crashed == (square_init_problem(threat, (1, h, w)) is not None), (norm, h, w)


@pytest.mark.parametrize("threat", ["l2", "l1"])
@pytest.mark.parametrize("side", [4, 12, 14, 18])
def test_sizes_that_would_crash_square_are_refused_in_one_line(threat: str, side: int) -> None:
    net, x, y = _points(side)
    with pytest.raises(CtrobustError) as info:
        ctrobust.evaluate(net, x, y, threat, attack="autoattack", eps=SMALL_EPS[threat])
    message = str(info.value)
    assert "\n" not in message and f"{side}x{side}" in message and "--attack apgd-ce" in message
    assert ctrobust.evaluate(net, x, y, threat, attack="apgd-ce", eps=SMALL_EPS[threat]).counts.n == len(x)


@pytest.mark.slow
@pytest.mark.parametrize(("threat", "side"), [("linf", 4), ("linf", 12), ("l2", 5), ("l2", 28),
                                              ("l1", 6), ("l1", 28)])
def test_autoattack_runs_on_every_other_size(threat: str, side: int) -> None:
    assert square_init_problem(parse_threat(threat), (1, side, side)) is None
    net, x, y = _points(side)
    result = ctrobust.evaluate(net, x, y, threat, attack="autoattack", eps=SMALL_EPS[threat])
    assert result.counts.n == len(x) and result.counts.robust_correct > 0  # survivors: Square ran on them


def _points(side: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    net = _linear(1, side, side)
    x = torch.rand(4, 1, side, side, generator=torch.Generator().manual_seed(1))
    return net, x, net(x).argmax(1).detach()


def test_the_rand_version_has_no_square_and_is_not_refused() -> None:
    from ctrobust.attacks.autoattack import check_square_shape
    from ctrobust.attacks.spec import AttackSpec

    check_square_shape(AttackSpec("autoattack", version="rand"), ThreatModel.L1, (1, 12, 12))
    with pytest.raises(CtrobustError, match="Square"):
        check_square_shape(AttackSpec("autoattack"), ThreatModel.L1, (3, 12, 12))
