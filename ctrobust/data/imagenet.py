"""ImageNet: RobustBench's fixed 5000 validation images from a local folder (no download exists)."""

from __future__ import annotations

from pathlib import Path

import torch

from ctrobust.errors import CtrobustError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_dir(data_dir: Path) -> Path:
    return data_dir / "imagenet" / "val"


def load_imagenet(split: str, data_dir: Path, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5000 images of RobustBench's list, resized to 256 and centre-cropped to 224, in [0, 1]."""
    if split != "test":
        raise CtrobustError("Only the ImageNet validation images are supported (for evaluation).")
    root = imagenet_dir(data_dir)
    if not root.is_dir():
        raise CtrobustError(
            f"ImageNet validation images not found: put them at {root} in class folders (n01440764/...), "
            "as torchvision's ImageFolder expects; ImageNet cannot be downloaded automatically."
        )
    from ctrobust.compat.robustbench_import import import_robustbench

    import_robustbench()
    from robustbench.data import PREPROCESSINGS
    from robustbench.data import load_imagenet as rb_load_imagenet

    try:
        x, y = rb_load_imagenet(5000, str(data_dir / "imagenet"), PREPROCESSINGS["Res256Crop224"])
    except (FileNotFoundError, OSError) as exc:
        raise CtrobustError(f"Could not read RobustBench's 5000 ImageNet images from {root}: {exc}") from None
    return x, y
