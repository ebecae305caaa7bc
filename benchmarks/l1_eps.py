"""How the Fashion-MNIST L1 default eps was chosen: APGD-CE robust accuracy of the shipped ReLU model by eps.

The same rule as Linf 0.05 and L2 1.0 (docs/protocol.md, "Why these eps"): an eps where the original model
keeps 10-20% robust accuracy under APGD-CE, so a gain or a loss from CT can show. 500 test points drawn
with seed 0, APGD-CE 20 steps, seed 0. Usage: python benchmarks/l1_eps.py
"""

from __future__ import annotations

import platform
import time

import torch

from ctrobust.attacks.evaluation import attack_and_check
from ctrobust.attacks.spec import AttackName, AttackSpec
from ctrobust.data import load_test_set
from ctrobust.models import load_model
from ctrobust.threats import ThreatModel

EPS_GRID = (5.0, 6.0, 7.0, 8.0, 10.0)


def main() -> None:
    model = load_model("smallcnn", "fashion-mnist").model.eval()
    x, y = load_test_set("fashion-mnist")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:500]
    x, y = x[idx], y[idx]
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for eps in EPS_GRID:
        start = time.perf_counter()
        res = attack_and_check(model, x, y, ThreatModel.L1, eps, AttackSpec(AttackName.APGD_CE, steps=20), 0, 250)
        print(f"L1 eps {eps:g}: clean {res.clean_accuracy:.3f}, APGD-CE robust {res.robust_accuracy:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
