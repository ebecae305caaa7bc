"""Disjoint evaluation and selection splits of a test set.

The evaluation split is the first n test points (RobustBench's convention). Beta is chosen on
a seeded random sample of the other test points, so it is never chosen on what it is reported on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctrobust.errors import CtrobustError


@dataclass(frozen=True)
class Splits:
    eval_indices: list[int]
    select_indices: list[int]


def make_splits(n_total: int, n_examples: int, n_select: int, seed: int, protocol: str = "heldout") -> Splits:
    """Index lists for evaluation and beta selection; ``protocol='paper'`` selects on the eval split."""
    if n_examples <= 0 or n_select <= 0:
        raise CtrobustError(f"Expected --n-examples and --n-select to be positive, got {n_examples} and {n_select}.")
    eval_indices = list(range(min(n_examples, n_total)))
    if n_examples > n_total:
        raise CtrobustError(f"--n-examples {n_examples} exceeds the {n_total} test points.")
    if protocol == "paper":
        return Splits(eval_indices, list(eval_indices))
    pool = n_total - n_examples
    if n_select > pool:
        raise CtrobustError(
            f"--n-select {n_select} needs that many test points beyond the {n_examples} evaluation points, "
            f"but only {pool} remain; lower --n-select or --n-examples."
        )
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(pool, generator=gen)[:n_select] + n_examples
    return Splits(eval_indices, sorted(int(i) for i in chosen))
