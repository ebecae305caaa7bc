"""torchvision ImageNet classifiers with their pretrained weights (torch's cache when offline)."""

from __future__ import annotations

import os

import torch.nn as nn

from ctrobust.data.offline import offline
from ctrobust.errors import CtrobustError, unknown_name_error


def torchvision_model(name: str, weights: str = "DEFAULT") -> tuple[nn.Module, str]:
    """The model and the weights' name; a one-line error when they are neither cached nor downloadable."""
    import torch.hub
    from torchvision import models

    available = models.list_models(module=models)
    if name not in available:
        raise unknown_name_error("torchvision model", name, available)
    weight_enum = models.get_model_weights(name)
    try:
        w = weight_enum[weights] if weights != "DEFAULT" else weight_enum.DEFAULT
    except KeyError:
        raise unknown_name_error(f"weights of torchvision:{name}", weights, [m.name for m in weight_enum]) from None
    cached = torch.hub.get_dir() + "/checkpoints/" + w.url.rsplit("/", 1)[-1]
    if offline() and not os.path.isfile(cached):
        raise CtrobustError(f"Weights {w} not in torch's cache and downloads are off: "
                            f"put {w.url.rsplit('/', 1)[-1]} at {cached}")
    try:
        model = models.get_model(name, weights=w)
    except Exception as exc:  # urllib/SSL/hash errors from the download
        raise CtrobustError(f"Could not get {w} ({type(exc).__name__}); put the file at {cached}.") from None
    return model.eval(), str(w)
