"""The datasets ctrobust knows, by name, and the spellings users type for them (torch-free: the plan,
the CLI's help and the schema read it; ``data/registry.py`` maps each to its loader and normalisation)."""

from __future__ import annotations

from enum import StrEnum

from ctrobust.errors import unknown_name_error


class DatasetName(StrEnum):
    FASHION_MNIST = "fashion-mnist"
    CIFAR10 = "cifar10"
    CIFAR100 = "cifar100"
    IMAGENET = "imagenet"


ALIASES: dict[str, DatasetName] = {
    "fashion_mnist": DatasetName.FASHION_MNIST, "fashionmnist": DatasetName.FASHION_MNIST,
    "fmnist": DatasetName.FASHION_MNIST, "cifar-10": DatasetName.CIFAR10, "cifar_10": DatasetName.CIFAR10,
    "cifar-100": DatasetName.CIFAR100, "cifar_100": DatasetName.CIFAR100,
}
DATASET_CHOICES = [d.value for d in DatasetName]


def parse_dataset(name: str) -> DatasetName:
    """'fashion-mnist', 'FMNIST', 'cifar-10', ... (any case) as the dataset's one name; a name the plan resolved
    already is returned as it is."""
    if isinstance(name, DatasetName):
        return name
    key = str(name).strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    try:
        return DatasetName(key)
    except ValueError:
        raise unknown_name_error("dataset", str(name), DATASET_CHOICES) from None
