"""One evaluation run: load model and data, choose beta on the selection split, score base and CT."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from ctrobust.cell import Scored
from ctrobust.config import EvalConfig
from ctrobust.ct import ct_coverage, curvature_tuned
from ctrobust.ct.fused import ctu_backend
from ctrobust.data import load_test_set, make_splits
from ctrobust.errors import CtrobustError
from ctrobust.models import load_model
from ctrobust.provenance import provenance
from ctrobust.scoring import CorruptionScorer, NormScorer, Scorer
from ctrobust.seeding import seed_everything
from ctrobust.selection import choose_beta
from ctrobust.store import Store
from ctrobust.threats import check_eps, default_eps, parse_threat

ProgressFn = Callable[[str], None]

OPTIMISTIC_NOTE = (
    "OPTIMISTIC: protocol 'paper' chose beta on the evaluation split itself and clipped CT up to the base; "
    "these numbers are biased upward (see NOTES fault 1)."
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CtrobustError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    return torch.device(name)


def planned_steps(cfg: EvalConfig) -> int:
    """Number of progress steps: one per beta, plus base and CT on the evaluation split."""
    return len(cfg.beta_grid()) + 2


RESULT_SETTINGS = (
    "model", "dataset", "checkpoint", "zoo_threat", "mean", "std", "threat", "eps", "attack", "aa_version", "steps",
    "restarts", "step_size", "corruptions", "severities", "select_attack", "select_steps", "betas", "protocol",
    "n_examples", "n_select", "seed", "batch_size",
)


def run_identity(cfg: EvalConfig) -> dict[str, Any]:
    """The settings that determine a run's numbers (not where files live, not the device, not output)."""
    settings = asdict(cfg)
    identity = {name: settings[name] for name in RESULT_SETTINGS}
    identity["betas"] = cfg.beta_grid()
    return identity


def weights_digest(model: torch.nn.Module) -> str:
    """Digest of every parameter and buffer: cells are reused only for the very same weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


class CellCache:
    """Looks each (stage, beta) cell up in the store before computing it, and stores it when done."""

    def __init__(self, store: Store | None, common: dict[str, Any], scorer: Scorer, device: torch.device) -> None:
        self.store, self.common, self.scorer = store, common, scorer
        self.prov = provenance(device)
        self.computed = self.reused = 0

    def get(self, stage: str, beta: float, compute: Callable[[], Scored]) -> Scored:
        identity = {**self.common, **self.scorer.cell_identity(stage), "beta": round(float(beta), 6)}
        if self.store is not None:
            hit = self.store.get_cell(identity)
            if hit is not None:
                self.reused += 1
                return hit
        scored = compute()
        self.computed += 1
        if self.store is not None:
            meta = {"seconds": scored.summary.get("seconds"), "versions": self.prov["versions"],
                    "device": self.prov["device"], "git_commit": self.prov["git_commit"]}
            self.store.put_cell(identity, scored, meta)
        return scored


def run_eval(
    cfg: EvalConfig, on_step: ProgressFn | None = None, store: Store | None = None, command: str | None = None
) -> dict[str, Any]:
    """Run the whole protocol and return the result as a JSON-ready dict.

    With a store, every cell is looked up before it is computed and written as soon as it is done,
    and the finished run is recorded with ``command``.
    """
    cfg.validate()
    step = on_step or (lambda _label: None)
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    threat = parse_threat(cfg.threat)
    mean, std = cfg.normalisation()
    loaded = load_model(
        cfg.model, cfg.dataset, cfg.checkpoint, threat=threat.value, zoo_threat=cfg.zoo_threat,
        model_dir=cfg.model_dir, trust_checkpoint=cfg.trust_checkpoint, mean=mean, std=std,
    )
    x_all, y_all = load_test_set(loaded.dataset, cfg.data_dir)
    splits = make_splits(len(x_all), cfg.n_examples, cfg.n_select, cfg.seed, cfg.protocol)
    model = loaded.model.to(device)

    coverage = ct_coverage(model, x_all[:2].to(device))
    if coverage.total == 0:
        raise CtrobustError(
            f"CT reaches no ReLU in {loaded.name}: it has no ReLU to smooth "
            f"(activations found: {coverage.describe_others()})."
        )

    seed_everything(cfg.seed)
    scorer: Scorer
    if threat.is_norm_bounded:
        eps = check_eps(cfg.eps) if cfg.eps is not None else default_eps(loaded.dataset, threat)
        scorer = NormScorer(cfg, threat, eps, x_all, y_all, splits, device)
    else:
        scorer = CorruptionScorer(cfg, loaded.dataset, x_all, y_all, splits, device, step)
    ct = curvature_tuned(model, 1.0, impl=cfg.ctu)
    common = {"model": loaded.name, "source": loaded.source, "weights": weights_digest(loaded.model),
              "preprocessing": loaded.preprocessing, "dataset": loaded.dataset, "seed": cfg.seed}
    cache = CellCache(store, common, scorer, device)

    select_curve: dict[float, float] = {}
    select_clean: dict[float, float] = {}
    for beta in cfg.beta_grid():
        step(f"select beta={beta:.2f}")
        scored = cache.get("select", beta, lambda b=beta: scorer.select(ct, b))
        select_curve[beta] = scored.robust_accuracy
        select_clean[beta] = scored.clean_accuracy
    beta = choose_beta(select_curve)

    step("base (ReLU) on eval split")
    base = cache.get("final", 1.0, lambda: scorer.final(ct, 1.0))
    step(f"CT beta={beta:.2f} on eval split")
    ct_res = cache.get("final", beta, lambda: scorer.final(ct, beta))

    ct_summary = dict(ct_res.summary)
    clipped = False
    if cfg.protocol == "paper" and ct_res.robust_accuracy < base.robust_accuracy:
        ct_summary = {**base.summary, "clipped_to_base_from": ct_res.robust_accuracy}
        clipped = True

    result = {
        "model": loaded.name,
        "dataset": loaded.dataset,
        "threat": threat.value,
        **scorer.settings,
        "attack": scorer.final_label,
        "select_attack": scorer.select_label,
        "seed": cfg.seed,
        "protocol": cfg.protocol,
        "optimistic": cfg.protocol == "paper",
        "note": OPTIMISTIC_NOTE if cfg.protocol == "paper" else None,
        "n_examples": len(splits.eval_indices),
        "n_select": len(splits.select_indices),
        "betas": cfg.beta_grid(),
        "select_curve": {f"{b:.4g}": acc for b, acc in select_curve.items()},
        "select_clean": {f"{b:.4g}": acc for b, acc in select_clean.items()},
        "beta": beta,
        "base": base.summary,
        "ct": {**ct_summary, "beta": beta, "clipped": clipped},
        "gain_points": 100.0 * (float(ct_summary["robust_accuracy"]) - base.robust_accuracy),  # type: ignore[arg-type]
        "per_example": {"base": base.per_example, "ct": ct_res.per_example},
        "eval_indices": splits.eval_indices,
        "select_indices": splits.select_indices,
        "ct_coverage": coverage.to_dict(),
        "model_source": {"source": loaded.source, "checkpoint": loaded.checkpoint, **loaded.preprocessing},
        "batch_size": cfg.batch_size,
        "ctu": ctu_backend(cfg.ctu, device),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "cells": {"computed": cache.computed, "reused": cache.reused},
        "provenance": cache.prov,
    }
    if store is not None:
        store.put_run(run_identity(cfg), result, command)
    return result
