"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` or torchvision's download, padded to 32x32."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ctrobust.data.offline import offline
from ctrobust.errors import CtrobustError

SYSTEM_DIR_ENV = "CTROBUST_FASHION_MNIST_SYSTEM_DIR"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
MEAN = (0.2860,)
STD = (0.3530,)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, OSError, zlib.error) as exc:  # truncated or not gzip at all (BadGzipFile is an OSError)
        raise CtrobustError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); delete it and fetch it again "
            "(or reinstall dataset-fashion-mnist)."
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise CtrobustError(f"{path} is not an IDX file of unsigned bytes; delete it and fetch it again.")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise CtrobustError(f"{path} is truncated ({len(data) - offset} of {expected} bytes); fetch it again.")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _candidate_dirs(data_dir: Path) -> list[Path]:
    system = Path(os.environ.get(SYSTEM_DIR_ENV, SYSTEM_DIR))
    return [system, data_dir / "FashionMNIST" / "raw"]


def _download(data_dir: Path) -> None:
    """torchvision's real download into ``<data_dir>/FashionMNIST/raw``."""
    from torchvision.datasets import FashionMNIST

    for train in (True, False):
        FashionMNIST(root=str(data_dir), train=train, download=True)


def load_fashion_mnist(split: str, data_dir: Path, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images N x 1 x 32 x 32 float in [0, 1], labels N int64) for 'train' or 'test'."""
    image_stem, label_stem = FILES[split]
    for attempt in range(2):
        for directory in _candidate_dirs(data_dir):
            image_path, label_path = _find(directory, image_stem), _find(directory, label_stem)
            if image_path and label_path:
                images = torch.from_numpy(_read_idx(image_path).copy()).float().div_(255.0)
                labels = torch.from_numpy(_read_idx(label_path).astype(np.int64))
                if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
                    raise CtrobustError(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} "
                                        "labels: the files do not belong together; put the matching pair there.")
                images = F.pad(images.unsqueeze(1), (2, 2, 2, 2))
                return images, labels
        if attempt == 0 and download and not offline():
            try:
                _download(data_dir)
            except Exception as exc:  # network errors come in many types; the message says what to do
                raise CtrobustError(
                    "Fashion-MNIST not found and the download failed "
                    f"({type(exc).__name__}). Install it with `apt-get install dataset-fashion-mnist` "
                    f"(files in {SYSTEM_DIR}) or put the four idx .gz files in {data_dir / 'FashionMNIST' / 'raw'}."
                ) from None
    raise CtrobustError(
        "Fashion-MNIST not found. Install it with `apt-get install dataset-fashion-mnist` "
        f"(files in {SYSTEM_DIR}) or put the four idx .gz files in {data_dir / 'FashionMNIST' / 'raw'}."
    )
