"""APGD-CE at many betas in one batched pass: each (point, beta) pair is an independent example.

Why: the beta sweep attacks the same selection points at K betas. Run one beta at a time, a small
model leaves a GPU idle between launches (the sweep is launch-bound); run as one batch of K x n
pairs, each pair with its own beta (``CurvatureTuned.betas_per_sample``), the same work fills the
device.

The results are those of :func:`ctrobust.attacks.evaluation.attack_and_check` at each beta, pair by pair:
APGD's steps, step sizes and checkpoints are per example, the model is in eval mode (no statistic
mixes samples), and each pair starts where the one-beta run starts it: its random start is drawn
as pyautoattack draws it for that beta's batch (seeded, same shape), then passed in as ``x_init``.
A test checks the equality and that no gradient crosses between pairs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from pyautoattack.autopgd_base import APGDAttack

from ctrobust.attacks.evaluation import EvalResult, _predict, checked_result
from ctrobust.attacks.norms import NORM_BALLS
from ctrobust.attacks.spec import AttackSpec
from ctrobust.ct.apply import CurvatureTuned
from ctrobust.threats import ThreatModel

# Bytes of device memory per pair and per input element, measured for smallcnn and ResNet-18
# (activations kept for backward, float32); the pass size is the free memory over this, halved.
CPU_PAIRS_PER_PASS = 4096  # on a CPU the work is compute-bound: larger passes gain nothing


def supports(spec: AttackSpec, threat: ThreatModel) -> bool:
    """An attack whose entry batches betas (APGD-CE, the default selection attack) with one restart, under a norm
    whose APGD random start can be drawn outside APGD (``NormBall.apgd_start``); others run beta by beta."""
    return spec.entry.batches_betas and spec.restarts == 1 and NORM_BALLS[threat].apgd_start is not None


@dataclass
class _Pairs:
    """The (point, beta) pairs still to attack, in the order they are concatenated."""

    x: list[torch.Tensor]
    y: list[torch.Tensor]
    start: list[torch.Tensor]
    beta: list[float]
    where: list[tuple[float, torch.Tensor]]  # (beta, positions in the split) of each block


def pairs_per_pass(ct: CurvatureTuned, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> int:
    """How many pairs one pass may hold: measured on the device (one forward and backward of a probe
    batch), half the free memory over the bytes per pair; on a CPU a fixed size."""
    if device.type != "cuda":
        return CPU_PAIRS_PER_PASS
    probe = min(64, len(x))
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    xp = x[:probe].to(device).clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(ct(xp), y[:probe].to(device))
    torch.autograd.grad(loss, xp)
    per_pair = max((torch.cuda.max_memory_allocated(device) - before) / probe, 1.0)
    free, _total = torch.cuda.mem_get_info(device)
    return max(probe, int(0.5 * free / per_pair))


def evaluate_betas(ct: CurvatureTuned, betas: list[float], x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                   eps: float, spec: AttackSpec, seed: int, batch_size: int, device: torch.device,
                   max_pairs: int | None = None) -> dict[float, EvalResult]:
    """APGD-CE on (x, y) at every beta of ``betas``, as ``evaluate`` gives at each, in passes of pairs."""
    if not supports(spec, threat):
        raise ValueError(f"batched betas support APGD-CE with one restart, not {spec.label()}")
    start_time = time.perf_counter()
    ct.eval()
    x, y = x.to(device), y.to(device)
    attack = APGDAttack(ct, n_iter=spec.steps or 20, norm=threat.value, n_restarts=1, eps=eps, seed=seed,
                        loss="ce", device=device)
    attack.init_hyperparam(x)
    clean: dict[float, torch.Tensor] = {}
    pairs = _Pairs([], [], [], [], [])
    for beta in betas:
        ct.beta = beta
        clean[beta] = _predict(ct, x, batch_size) == y
        _add_pairs(pairs, ct, attack, x, y, clean[beta], beta, eps, threat, seed, batch_size)
    candidates = {beta: x.clone() for beta in betas}
    _attack_pairs(pairs, ct, attack, candidates, max_pairs or pairs_per_pass(ct, x, y, device))
    seconds = (time.perf_counter() - start_time) / max(len(betas), 1)
    results = {}
    for beta in betas:
        ct.beta = beta
        results[beta] = checked_result(ct, x, y, clean[beta], candidates[beta], eps, threat, spec, seed, seconds,
                                       {"batched_betas": len(betas)})
    return results


def _add_pairs(pairs: _Pairs, ct: CurvatureTuned, attack: APGDAttack, x: torch.Tensor, y: torch.Tensor,
               clean: torch.Tensor, beta: float, eps: float, threat: ThreatModel, seed: int, batch_size: int) -> None:
    """One beta's pairs, in the one-beta run's batches, each with the random start APGD would draw for it."""
    idx = torch.nonzero(clean).flatten()
    for i in range(0, len(idx), batch_size):
        part = idx[i : i + batch_size]
        xb, yb = x[part], y[part]
        with torch.no_grad():  # APGD attacks the points the model still classifies correctly
            keep = torch.nonzero(ct(xb).argmax(1) == yb).flatten()
        if keep.numel() == 0:
            continue
        torch.random.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.random.manual_seed(seed)
        xk = xb[keep]
        pairs.x.append(xk)
        pairs.y.append(yb[keep])
        start = NORM_BALLS[threat].apgd_start
        assert start is not None  # supports() said so
        pairs.start.append(start(xk, eps, attack.normalize))
        pairs.beta += [beta] * len(keep)
        pairs.where.append((beta, part[keep]))


def _attack_pairs(pairs: _Pairs, ct: CurvatureTuned, attack: APGDAttack, candidates: dict[float, torch.Tensor],
                  max_pairs: int) -> None:
    """Attack every pair, ``max_pairs`` at a time, and write each success into its beta's candidates."""
    if not pairs.x:
        return
    x, y, start = torch.cat(pairs.x), torch.cat(pairs.y), torch.cat(pairs.start)
    adversarial = x.clone()
    for i in range(0, len(x), max_pairs):
        window = slice(i, i + max_pairs)
        with ct.betas_per_sample(pairs.beta[window]):
            _best, robust, _loss, adv = attack.attack_single_run(x[window], y[window], x_init=start[window])
        fooled = robust == 0
        adversarial[window][fooled] = adv[fooled].detach()
    offset = 0
    for beta, positions in pairs.where:
        block = adversarial[offset : offset + len(positions)]
        candidates[beta][positions] = block
        offset += len(positions)
