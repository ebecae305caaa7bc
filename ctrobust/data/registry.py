"""Datasets ctrobust can load, by name, with what a model needs to know about them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ctrobust.data.fashion_mnist import MEAN as FMNIST_MEAN
from ctrobust.data.fashion_mnist import STD as FMNIST_STD
from ctrobust.data.fashion_mnist import load_fashion_mnist
from ctrobust.data.paths import resolve_data_dir
from ctrobust.errors import unknown_name_error


@dataclass(frozen=True)
class Dataset:
    """A dataset's name, class count and the normalisation its models apply inside themselves."""

    name: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    loader: Callable[[str, Path], tuple[torch.Tensor, torch.Tensor]]


DATASETS: dict[str, Dataset] = {
    "fashion-mnist": Dataset("fashion-mnist", 10, FMNIST_MEAN, FMNIST_STD, load_fashion_mnist),
}
ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}


def canonical_dataset(name: str) -> Dataset:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise unknown_name_error("dataset", name, DATASETS)
    return DATASETS[key]


def load_test_set(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return canonical_dataset(name).loader("test", resolve_data_dir(data_dir))


def load_train_set(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return canonical_dataset(name).loader("train", resolve_data_dir(data_dir))
