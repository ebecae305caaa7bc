"""CIFAR-10/100 test sets from torchvision's python-format files, without its md5 check.

torchvision's ``CIFAR10(download=False)`` checks every file's md5, which refuses any file that is
not the official one (a test fixture included). The files are read here directly, at the same
paths torchvision uses; when they are missing, torchvision's real download fetches them.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ctrobust.data.offline import offline
from ctrobust.errors import CtrobustError

LAYOUT = {
    "cifar10": ("cifar-10-batches-py", {"test": ["test_batch"], "train": [f"data_batch_{i}" for i in range(1, 6)]},
                b"labels"),
    "cifar100": ("cifar-100-python", {"test": ["test"], "train": ["train"]}, b"fine_labels"),
}
CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}


def _download(name: str, data_dir: Path) -> None:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    cls(root=str(data_dir), train=False, download=True)


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as fh:
            entry = pickle.load(fh, encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError) as exc:
        raise CtrobustError(f"{path} is not a CIFAR python-format batch ({type(exc).__name__}); fetch it again.") from None
    return data, labels


def load_cifar(name: str, split: str, data_dir: Path, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(images N x 3 x 32 x 32 float in [0, 1], labels) of CIFAR-10 or CIFAR-100."""
    folder, files, label_key = LAYOUT[name]
    root = data_dir / folder
    paths = [root / f for f in files[split]]
    if not all(p.is_file() for p in paths) and download and not offline():
        try:
            _download(name, data_dir)
        except Exception as exc:  # network errors come in many types; the message says what to do
            raise CtrobustError(
                f"{name} not found at {root} and the download failed ({type(exc).__name__}); "
                f"put the python-format files ({', '.join(files[split])}) there or pass --data-dir."
            ) from None
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise CtrobustError(f"{name} not found: put {missing[0].name} at {missing[0]} (or pass --data-dir).")
    parts = [_read_batch(p, label_key) for p in paths]
    x = torch.from_numpy(np.concatenate([p[0] for p in parts])).float().div_(255.0)
    y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return x, y


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels") -> None:
    """Write images (N x 3 x 32 x 32 uint8) in the CIFAR python format (for tests and fixtures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump({label_key: labels.tolist(), b"data": images.reshape(len(images), -1)}, fh)
