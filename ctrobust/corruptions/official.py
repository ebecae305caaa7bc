"""Official corrupted test sets (CIFAR-10-C, CIFAR-100-C) read from RobustBench's layout.

``<data-dir>/CIFAR-10-C/labels.npy`` and ``<corruption>.npy`` with 5 blocks of rows, one per
severity: severity s is rows ``(s-1)*N : s*N`` with N = rows / 5 (10,000 for the real files, whose
labels.npy repeats the N labels once per severity).
The files are memory-mapped so any test indices (the selection split too) can be read, which
robustbench's own loader, returning only the first n, cannot do. The download stays robustbench's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ctrobust.data.offline import offline
from ctrobust.errors import CtrobustError

DIR_NAMES = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}
ZENODO = {"cifar10": ("2535967", {"CIFAR-10-C.tar"}), "cifar100": ("3555552", {"CIFAR-100-C.tar"})}


def official_dir(dataset: str, data_dir: Path) -> Path:
    return data_dir / DIR_NAMES[dataset]


def ensure_official(dataset: str, data_dir: Path, download: bool = True) -> Path:
    """The directory of the official files; downloaded by robustbench when missing and online."""
    root = official_dir(dataset, data_dir)
    if (root / "labels.npy").is_file():
        return root
    if download and not offline():
        from ctrobust.compat.robustbench_import import import_robustbench

        import_robustbench()
        from robustbench.zenodo_download import zenodo_download

        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            zenodo_download(*ZENODO[dataset], save_dir=data_dir)
        except Exception as exc:  # requests/network errors: the message below says what to do
            raise CtrobustError(
                f"{DIR_NAMES[dataset]} not found at {root} and the download failed ({type(exc).__name__}); "
                f"put labels.npy and the 15 <corruption>.npy files there."
            ) from None
        if (root / "labels.npy").is_file():
            return root
    raise CtrobustError(f"{DIR_NAMES[dataset]} not found: put labels.npy and the 15 <corruption>.npy files in {root}.")


def load_official_cell(
    root: Path, corruption: str, severity: int, indices: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N x C x H x W float in [0, 1]) and labels of one (corruption, severity) cell."""
    labels = np.load(root / "labels.npy", mmap_mode="r")
    path = root / f"{corruption}.npy"
    if not path.is_file():
        raise CtrobustError(f"Missing {path}: the official set has one .npy file per corruption.")
    images = np.load(path, mmap_mode="r")
    n_total = len(images) // 5
    if len(images) != 5 * n_total or len(labels) not in (n_total, 5 * n_total):
        raise CtrobustError(
            f"{path} has {len(images)} rows and labels.npy {len(labels)}; expected 5 severities x N rows and N or 5N labels."
        )
    if max(indices, default=0) >= n_total:
        raise CtrobustError(f"{path} holds {n_total} images per severity; index {max(indices)} is beyond it.")
    rows = (severity - 1) * n_total + np.asarray(indices, dtype=np.int64)
    block = np.ascontiguousarray(images[rows])
    x = torch.from_numpy(block).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.from_numpy(np.asarray(labels[np.asarray(indices, dtype=np.int64)], dtype=np.int64))
    return x, y
