"""Datasets as tensors in [0, 1], and the disjoint evaluation / selection splits."""

from ctrobust.data.registry import DATASETS, Dataset, canonical_dataset, load_test_set
from ctrobust.data.splits import Splits, make_splits

__all__ = ["DATASETS", "Dataset", "Splits", "canonical_dataset", "load_test_set", "make_splits"]
