"""Threat models, their names as users type them, and the default eps per dataset."""

from __future__ import annotations

import math
from enum import StrEnum

from ctrobust.datasets import DatasetName, parse_dataset
from ctrobust.errors import CtrobustError, unknown_name_error


class ThreatModel(StrEnum):
    """Threat models; the value is the name RobustBench (and pyautoattack, for norms) uses."""

    LINF = "Linf"
    L2 = "L2"
    L1 = "L1"
    CORRUPTIONS = "corruptions"

    @property
    def is_norm_bounded(self) -> bool:
        return self is not ThreatModel.CORRUPTIONS

    @property
    def cli_name(self) -> str:
        return self.value.lower()


THREAT_CHOICES = [t.cli_name for t in ThreatModel]
# The RobustBench zoo's leaderboards, spelt as ThreatModel spells them (its names are ours).
ZOO_THREATS = ("Linf", "L2", "corruptions")
FMNIST_L1_EPS = 6.0  # the shipped ReLU model keeps 17.8% under APGD-CE (benchmarks/l1_eps.py)

# Standard eps: RobustBench's for CIFAR/ImageNet under Linf/L2; Croce and Hein's 12 for CIFAR-10 under L1.
# Fashion-MNIST: chosen where the shipped ReLU model keeps 10-20% under APGD-CE (docs/protocol.md, "Why these eps").
DEFAULT_EPS: dict[tuple[DatasetName, ThreatModel], float] = {
    (DatasetName.CIFAR10, ThreatModel.LINF): 8 / 255,
    (DatasetName.CIFAR10, ThreatModel.L2): 0.5,
    (DatasetName.CIFAR100, ThreatModel.LINF): 8 / 255,
    (DatasetName.CIFAR100, ThreatModel.L2): 0.5,
    (DatasetName.IMAGENET, ThreatModel.LINF): 4 / 255,
    (DatasetName.IMAGENET, ThreatModel.L2): 3.0,
    (DatasetName.FASHION_MNIST, ThreatModel.LINF): 0.05,
    (DatasetName.FASHION_MNIST, ThreatModel.L2): 1.0,
    (DatasetName.CIFAR10, ThreatModel.L1): 12.0,
    (DatasetName.FASHION_MNIST, ThreatModel.L1): FMNIST_L1_EPS,
}


def parse_threat(name: str) -> ThreatModel:
    """Accept 'linf', 'Linf', 'L2', 'l2' (any case)."""
    for threat in ThreatModel:
        if name.strip().lower() == threat.cli_name:
            return threat
    raise unknown_name_error("threat model", name, THREAT_CHOICES)


def default_eps(dataset: str, threat: ThreatModel) -> float:
    try:
        return DEFAULT_EPS[(parse_dataset(dataset), threat)]
    except KeyError:
        raise CtrobustError(f"No default eps for {dataset} under {threat.value}; pass --eps.") from None


def check_eps(eps: float, threat: ThreatModel | None = None) -> float:
    """Return eps, or raise when it is not a positive finite float (or, under L1, beyond any image's size)."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise CtrobustError(f"Expected `eps` to be a positive float, but got {eps!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise CtrobustError(f"Expected `eps` to be a positive float, but got {eps!r}.")
    if threat is ThreatModel.L1 and value > MAX_L1_EPS:
        raise CtrobustError(f"L1 eps {value:g} is beyond any image's range (pixels lie in [0, 1]; an L1 ball of radius "
                            f"{MAX_L1_EPS:g} holds every image up to 1000x1000x3 pixels): no point can be robust.")
    if threat is not ThreatModel.L1 and value > MAX_EPS:
        raise CtrobustError(
            f"eps {value:g} is beyond any image's range (pixels lie in [0, 1]; an L2 ball of radius {MAX_EPS:g} "
            "holds every image up to 1000x1000x3 pixels): no point can be robust. Use an eps below 1 for Linf."
        )
    return value


MAX_EPS = 1733.0  # sqrt(1000 * 1000 * 3): the largest L2 distance between two images of that size
MAX_L1_EPS = 3_000_000.0  # 1000 * 1000 * 3: the largest L1 distance
