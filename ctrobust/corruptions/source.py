"""Where a dataset's corrupted images come from: official files, or generated for it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ctrobust.corruptions.generated import GeneratedCorruptions
from ctrobust.corruptions.official import DIR_NAMES, ensure_official, load_official_cell

Cells = dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]]


def corrupted_cells(
    dataset: str,
    data_dir: Path,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    indices: Sequence[int],
    corruptions: Sequence[str],
    severities: Sequence[int],
    seed: int,
    on_cell: Callable[[str], None] | None = None,
) -> tuple[Cells, dict[str, object]]:
    """(images in [0, 1], labels) per cell for ``indices``, and where they came from."""
    idx = [int(i) for i in indices]
    cells: Cells = {}
    if dataset in DIR_NAMES:
        root = ensure_official(dataset, data_dir)
        for c in corruptions:
            for s in severities:
                cells[(c, s)] = load_official_cell(root, c, s, idx)
        return cells, {"source": "official", "path": str(root)}
    images = _to_uint8(x_test)
    gen = GeneratedCorruptions(dataset, images, data_dir, seed)
    raw = gen.cells(corruptions, severities, idx, on_cell)
    labels = y_test[idx]
    for key, block in raw.items():
        x = torch.from_numpy(block).float().div_(255.0)
        cells[key] = (x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2), labels)
    info: dict[str, object] = {
        "source": "generated", "generator": "imagecorruptions-imaug", "cache": str(gen.root),
        "generated_images": gen.generated, "seed": seed,
    }
    return cells, info


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """N x C x H x W float in [0, 1] -> uint8 N x H x W (1 channel) or N x H x W x 3."""
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    if arr.shape[1] == 1:
        return arr[:, 0].numpy()
    return arr.permute(0, 2, 3, 1).contiguous().numpy()
