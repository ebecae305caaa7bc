"""The beta sweep with many betas per pass against one beta at a time, side by side in one run.

Times, on the same n points of the selection split and the same seed: APGD-CE (the selection
attack) at one beta; the 30-beta sweep run one beta at a time; and the same sweep with the betas
attacked together in batched passes (`ctrobust.attacks.batched`). Prints the ratios (target on a GPU:
30-beta batched sweep / one beta <= 5 for smallcnn) and checks that every beta's per-point
outcomes are the same both ways.

    .venv/bin/python benchmarks/sweep_batched.py --device cpu
    .venv/bin/python benchmarks/sweep_batched.py --device cuda --model paper:resnet18 --checkpoint rn18.pt
"""

from __future__ import annotations

import argparse
import time

import torch

from common import machine, sync_for
from ctrobust.api import evaluate
from ctrobust.attacks.batched import evaluate_betas, pairs_per_pass
from ctrobust.attacks.spec import AttackSpec
from ctrobust.ct import curvature_tuned
from ctrobust.data import load_test_set
from ctrobust.models import load_model
from ctrobust.plan.run_plan import resolve_ctu
from ctrobust.plan.selection import PAPER_BETAS
from ctrobust.threats import ThreatModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smallcnn")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--betas", type=int, default=30, help="the first K betas of the paper's grid 0.70..0.99")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--pairs", type=int, default=None, help="pairs per batched pass (default: from memory)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = sync_for(device)
    loaded = load_model(args.model, "fashion-mnist", args.checkpoint)
    ct = curvature_tuned(loaded.model.to(device), 1.0, impl=resolve_ctu().value)  # --ctu auto: $CTROBUST_CTU
    x, y = load_test_set("fashion-mnist")
    x, y = x[-args.n:].to(device), y[-args.n:].to(device)  # the end of the test set: not the eval split's first points
    spec, threat, eps, seed = AttackSpec("apgd-ce", args.steps), ThreatModel.LINF, 0.05, 0
    betas = list(PAPER_BETAS[: args.betas])
    pairs = args.pairs or pairs_per_pass(ct, x, y, device)
    print(f"sweep batching: {loaded.name}, n={args.n}, {len(betas)} betas, APGD-CE {args.steps} steps, Linf 0.05; "
          f"{pairs} pairs per pass ({pairs // args.n} betas); machine: {machine(device)}", flush=True)

    def one_beta() -> None:
        ct.beta = 0.85
        evaluate(ct, x, y, threat, eps, spec, seed, args.batch_size, device)

    def sequential() -> dict[float, torch.Tensor]:
        out = {}
        for beta in betas:
            ct.beta = beta
            out[beta] = evaluate(ct, x, y, threat, eps, spec, seed, args.batch_size, device).robust_correct
        return out

    def batched() -> dict[float, torch.Tensor]:
        res = evaluate_betas(ct, betas, x, y, threat, eps, spec, seed, args.batch_size, device, pairs)
        return {beta: r.robust_correct for beta, r in res.items()}

    # Warm-up: compile both CT units (one beta, one beta per sample) on a few points.
    ct.beta = 0.9
    evaluate(ct, x[:20], y[:20], threat, eps, spec, seed, 20, device)
    evaluate_betas(ct, betas[:2], x[:20], y[:20], threat, eps, spec, seed, 20, device, 40)
    timings = {}
    outcomes = {}
    for name, fn in (("one beta", one_beta), ("sequential", sequential), ("batched", batched)):
        sync()
        start = time.perf_counter()
        outcomes[name] = fn()
        sync()
        timings[name] = time.perf_counter() - start
        print(f"{name:<11} {timings[name]:8.2f} s", flush=True)
    same = sum(torch.equal(outcomes["sequential"][b], outcomes["batched"][b]) for b in betas)
    print(f"same per-point outcomes both ways: {same} of {len(betas)} betas")
    print(f"ratio {len(betas)}-beta sweep / one beta: batched {timings['batched'] / timings['one beta']:.2f}, "
          f"one at a time {timings['sequential'] / timings['one beta']:.2f}; "
          f"batched is {timings['sequential'] / timings['batched']:.2f}x faster than one at a time")


if __name__ == "__main__":
    main()
