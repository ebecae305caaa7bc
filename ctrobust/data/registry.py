"""Datasets ctrobust can load, by name, with what a model needs to know about them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from ctrobust.data.cifar import CIFAR_MEAN, CIFAR_STD, load_cifar
from ctrobust.data.fashion_mnist import MEAN as FMNIST_MEAN
from ctrobust.data.fashion_mnist import STD as FMNIST_STD
from ctrobust.data.fashion_mnist import load_fashion_mnist
from ctrobust.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, load_imagenet
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
    input_size: tuple[int, int, int] = (3, 32, 32)


DATASETS: dict[str, Dataset] = {
    "fashion-mnist": Dataset("fashion-mnist", 10, FMNIST_MEAN, FMNIST_STD, load_fashion_mnist, (1, 32, 32)),
    "cifar10": Dataset("cifar10", 10, CIFAR_MEAN["cifar10"], CIFAR_STD["cifar10"], partial(load_cifar, "cifar10")),
    "cifar100": Dataset("cifar100", 100, CIFAR_MEAN["cifar100"], CIFAR_STD["cifar100"], partial(load_cifar, "cifar100")),
    "imagenet": Dataset("imagenet", 1000, IMAGENET_MEAN, IMAGENET_STD, load_imagenet, (3, 224, 224)),
}
ALIASES = {
    "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar-10": "cifar10", "cifar_10": "cifar10", "cifar-100": "cifar100", "cifar_100": "cifar100",
}


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
