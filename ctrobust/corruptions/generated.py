"""Corrupted images for datasets with no official corrupted set (Fashion-MNIST), generated and cached.

Generation uses ``imagecorruptions-imaug`` (ImageNet-C's parameters, not CIFAR-10-C's). Each image
is corrupted with numpy's and Python's generators seeded from (seed, image index, corruption,
severity), so an image's corrupted version does not depend on which other images were asked for.
Results are cached per cell under ``<data-dir>/corruptions/<dataset>/...`` and reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

from ctrobust.corruptions.names import CORRUPTIONS
from ctrobust.errors import CtrobustError

log = logging.getLogger("ctrobust.corruptions")

MIN_SIZE = 32  # imagecorruptions needs at least 32 x 32
SEEDED_BY_ARGUMENT = frozenset({"glass_blur", "impulse_noise"})  # their own generators, not numpy's global one


def image_seed(seed: int, index: int, corruption: str, severity: int) -> int:
    digest = hashlib.sha256(f"{seed}/{index}/{corruption}/{severity}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def corrupt_images(images: np.ndarray, indices: Sequence[int], corruption: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt uint8 images (N x H x W grayscale or N x H x W x 3) one by one, deterministically."""
    from imagecorruptions import corrupt

    if images.shape[1] < MIN_SIZE or images.shape[2] < MIN_SIZE:
        raise ValueError(f"imagecorruptions needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {images.shape[1:3]}")
    out = np.empty_like(images)
    for k, (img, index) in enumerate(zip(images, indices, strict=True)):
        s = image_seed(seed, int(index), corruption, severity)
        np.random.seed(s)
        random.seed(s)
        kwargs = {"seed": s} if corruption in SEEDED_BY_ARGUMENT else {}
        result = np.asarray(corrupt(img, corruption_name=corruption, severity=severity, **kwargs))
        if images.ndim == 3 and result.ndim == 3:  # grayscale comes back as 3 channels
            result = result.mean(axis=2)
        out[k] = np.clip(np.rint(result), 0, 255).astype(np.uint8)
    return out


def _cache_version() -> str:
    try:
        return "imagecorruptions-imaug-" + metadata.version("imagecorruptions-imaug")
    except metadata.PackageNotFoundError:
        return "imagecorruptions-unknown"


class GeneratedCorruptions:
    """A cache of generated cells for one dataset and seed, filled on demand (in parallel)."""

    def __init__(self, dataset: str, images: np.ndarray, cache_dir: Path, seed: int, workers: int | None = None) -> None:
        self.dataset = dataset
        self.images = images  # all test images, uint8, N x H x W (grayscale) or N x H x W x 3
        self.seed = seed
        self.root = cache_dir / "corruptions" / dataset / _cache_version() / f"seed{seed}"
        if not self.root.is_dir():  # checked before work: generating for minutes, then failing to write, loses them
            from ctrobust.outputs import check_output_dir

            check_output_dir(self.root, what="the corruption cache in the data folder (--data-dir or CTROBUST_DATA_DIR)")
        self.workers = workers if workers is not None else max(1, min(4, os.cpu_count() or 1))
        self.generated = 0  # images generated (not read from cache) by this object

    def _path(self, corruption: str, severity: int) -> Path:
        return self.root / f"{corruption}_s{severity}.npz"

    def _read(self, corruption: str, severity: int) -> dict[int, np.ndarray]:
        path = self._path(corruption, severity)
        if not path.is_file():
            return {}
        try:
            with np.load(path) as data:
                indices, images = data["indices"], data["images"]
                stored = str(data["sha256"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            stored, indices, images = "", None, None
        if indices is None or images is None or stored != _digest(indices, images):
            log.warning("the corruption cache file %s is damaged or has no checksum; generating it again", path)
            return {}
        return dict(zip(indices.tolist(), images, strict=True))

    def _write(self, corruption: str, severity: int, cells: dict[int, np.ndarray]) -> None:
        path = self._path(corruption, severity)
        order = sorted(cells)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        indices, images = np.asarray(order, dtype=np.int64), np.stack([cells[i] for i in order])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, indices=indices, images=images, sha256=np.asarray(_digest(indices, images)))
            os.replace(tmp, path)
        except OSError as exc:
            raise CtrobustError(f"cannot write the corruption cache {path} ({exc.strerror or exc}): give a writable "
                                "--data-dir (or CTROBUST_DATA_DIR)") from None

    def cells(
        self,
        corruptions: Sequence[str],
        severities: Sequence[int],
        indices: Sequence[int],
        on_cell: Callable[[str], None] | None = None,
    ) -> dict[tuple[str, int], np.ndarray]:
        """uint8 images for every (corruption, severity), in the order of ``indices``."""
        wanted = [int(i) for i in indices]
        cached: dict[tuple[str, int], dict[int, np.ndarray]] = {}
        todo: list[tuple[str, int, list[int]]] = []
        for c in corruptions:
            if c not in CORRUPTIONS:
                raise ValueError(f"unknown corruption {c}")
            for s in severities:
                have = self._read(c, s)
                cached[(c, s)] = have
                missing = [i for i in wanted if i not in have]
                if missing:
                    todo.append((c, s, missing))
        if todo:
            self._generate(todo, cached, on_cell)
        return {key: np.stack([have[i] for i in wanted]) for key, have in cached.items()}

    def _generate(
        self,
        todo: list[tuple[str, int, list[int]]],
        cached: dict[tuple[str, int], dict[int, np.ndarray]],
        on_cell: Callable[[str], None] | None,
    ) -> None:
        jobs = [(self.images[missing], missing, c, s, self.seed) for c, s, missing in todo]
        if self.workers > 1 and len(jobs) > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
                results = pool.map(_job, jobs)
                self._store(todo, results, cached, on_cell)
        else:
            self._store(todo, map(_job, jobs), cached, on_cell)

    def _store(self, todo, results, cached, on_cell) -> None:
        for (c, s, missing), images in zip(todo, results, strict=True):
            cached[(c, s)].update(zip(missing, images, strict=True))
            self._write(c, s, cached[(c, s)])
            self.generated += len(missing)
            if on_cell:
                on_cell(f"generated {c} s{s}")


def _digest(indices: np.ndarray, images: np.ndarray) -> str:
    """Checksum written with each cache file, so a damaged or replaced file is noticed and regenerated."""
    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(indices, dtype=np.int64), np.ascontiguousarray(images)):
        digest.update(str(array.shape).encode() + str(array.dtype).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _job(args: tuple[np.ndarray, list[int], str, int, int]) -> np.ndarray:
    images, indices, corruption, severity, seed = args
    return corrupt_images(images, indices, corruption, severity, seed)
