"""Target 3: ctrobust's AutoAttack path against pyautoattack called directly, same model, data and seed.

ctrobust adds a clean pass before and a re-check of every claimed adversarial after; the flags must be
identical and the time within a few percent. Runs both in turns (direct, ctrobust, direct, ...).

    .venv/bin/python benchmarks/attack_overhead.py --n 200
    .venv/bin/python benchmarks/attack_overhead.py --device cuda --n 1000 --model wrn
"""

from __future__ import annotations

import argparse
import time

import torch
from pyautoattack import AutoAttack

from common import device_arg, machine, setup_device, wrn_28_10
from ctrobust.api import evaluate
from ctrobust.data import load_test_set
from ctrobust.models import load_model


def direct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int, bs: int,
           device: torch.device) -> torch.Tensor:
    adversary = AutoAttack(model, eps=eps, norm="Linf", seed=seed, version="standard", device=device)
    adversary.apgd_targeted.n_target_classes = 9
    adversary.fab.n_target_classes = 9
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=bs)
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    device_arg(parser)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", choices=["smallcnn", "wrn"], default="smallcnn")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    device = setup_device(args)
    if args.model == "smallcnn":
        model = load_model("smallcnn").model
        x, y = load_test_set("fashion-mnist")
        eps = 0.05
    else:  # random weights: almost nothing is robust, so this times APGD-CE's first pass mostly
        model = wrn_28_10()
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(args.n, 3, 32, 32, generator=g), torch.randint(0, 10, (args.n,), generator=g)
        eps = 8 / 255
    model = model.to(device).eval()
    x, y = x[: args.n].to(device), y[: args.n].to(device)
    print(f"AutoAttack standard, Linf eps {eps:.4g}, {args.model}, n={args.n}, seed 0; machine: {machine(device)}")
    times: dict[str, list[float]] = {"direct": [], "ctrobust": []}
    flags: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name in ("direct", "ctrobust"):
            start = time.perf_counter()
            if name == "direct":
                flags[name] = direct(model, x, y, eps, 0, args.batch_size, device)
            else:
                flags[name] = evaluate(model, x, y, "linf", eps, "autoattack", seed=0, batch_size=args.batch_size,
                                       device=device).robust_correct
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    d, c = min(times["direct"]), min(times["ctrobust"])
    print("all times (s): " + "; ".join(f"{k} " + ", ".join(f"{t:.2f}" for t in v) for k, v in times.items()))
    same = bool(torch.equal(flags["direct"], flags["ctrobust"]))
    print(f"robust accuracy: direct {flags['direct'].float().mean():.4f}, ctrobust {flags['ctrobust'].float().mean():.4f}")
    print(f"identical robust flags: {same}")
    print(f"time (best of {args.repeats}): direct {d:.2f} s, ctrobust {c:.2f} s, ratio ctrobust/direct {c / d:.3f}")
    print(f"images/s: direct {args.n / d:.1f}, ctrobust {args.n / c:.1f}")


if __name__ == "__main__":
    main()
