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
from ctrobust.datasets import DatasetName, parse_dataset


@dataclass(frozen=True)
class Dataset:
    """A dataset's name, class count and the normalisation its models apply inside themselves."""

    name: DatasetName
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    loader: Callable[[str, Path], tuple[torch.Tensor, torch.Tensor]]
    input_size: tuple[int, int, int] = (3, 32, 32)


DATASETS: dict[DatasetName, Dataset] = {
    DatasetName.FASHION_MNIST: Dataset(DatasetName.FASHION_MNIST, 10, FMNIST_MEAN, FMNIST_STD, load_fashion_mnist,
                                       (1, 32, 32)),
    DatasetName.CIFAR10: Dataset(DatasetName.CIFAR10, 10, CIFAR_MEAN["cifar10"], CIFAR_STD["cifar10"],
                                 partial(load_cifar, "cifar10")),
    DatasetName.CIFAR100: Dataset(DatasetName.CIFAR100, 100, CIFAR_MEAN["cifar100"], CIFAR_STD["cifar100"],
                                  partial(load_cifar, "cifar100")),
    DatasetName.IMAGENET: Dataset(DatasetName.IMAGENET, 1000, IMAGENET_MEAN, IMAGENET_STD, load_imagenet,
                                  (3, 224, 224)),
}


def canonical_dataset(name: str) -> Dataset:
    """The dataset of a name as users type it (any case, the usual aliases)."""
    return DATASETS[parse_dataset(name)]


def load_test_set(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return canonical_dataset(name).loader("test", resolve_data_dir(data_dir))


def load_train_set(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return canonical_dataset(name).loader("train", resolve_data_dir(data_dir))
