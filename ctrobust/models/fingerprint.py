"""What was attacked, as digests: the model's weights and behaviour, and the images and labels evaluated.

A stored cell is reused only for the very same model and data. The weights alone do not say that: a
model's code can change while its weights stay (a ``file.py:factory`` whose ``forward`` was edited, an
in-memory module whose class changed), and the test files can change under the same indices. So a
cell's identity holds three digests: the weights, the model's outputs on a fixed probe batch (its
behaviour, which catches any change of code that changes what it computes), and the bytes of the
images and labels actually scored.

The behaviour is quantised to 8 significant bits per output before hashing, so bit-level noise (another
thread count) does not turn the same model into another; any change of code that moves an output by
more than about 0.4% changes the fingerprint. A randomised model gives different outputs on two passes:
its fingerprint is then drawn at random, so its cells are never reused (each run of it is new).

Noise images cannot see a change of code that acts only on real images (a branch on exact zeros, which
padded images have and noise has not). So each stored cell also keeps the model's behaviour on its own
images (:class:`SplitBehaviour`), and before the cell is reused the model that runs now is seen on them
again: a cell made by another model is recomputed, never counted.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ctrobust.attacks.determinism import RELATIVE_TOLERANCE, output_spread
from ctrobust.outputs import plural

PROBE_SEED = 0
PROBE_POINTS = 8
MANTISSA_BITS = 8
RANDOMISED_PREFIX = "randomised-"


def weights_digest(model: nn.Module) -> str:
    """Digest of every parameter and buffer: cells are reused only for the very same weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """Digest of tensors' shapes, dtypes and bytes (the images and labels a cell scored)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def behaviour_fingerprint(model: nn.Module, image_shape: tuple[int, ...]) -> str:
    """Digest of the model's quantised outputs on a fixed batch of uniform noise images, on the device
    its weights are on; ``randomised-<random>`` when two passes disagree (never reused)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    probe = torch.rand((PROBE_POINTS, *image_shape), generator=torch.Generator().manual_seed(PROBE_SEED)).to(device)
    out = _outputs(model, probe)
    if out is None:
        return hashlib.sha256(b"not a tensor").hexdigest()[:20]
    if output_spread(model, probe, repeats=2) > RELATIVE_TOLERANCE:  # the attacks' own test of randomness
        return RANDOMISED_PREFIX + secrets.token_hex(8)
    return hashlib.sha256(_quantised(out)).hexdigest()[:20]


def is_random_fingerprint(fingerprint: str) -> bool:
    return fingerprint.startswith(RANDOMISED_PREFIX)


def _outputs(model: nn.Module, probe: torch.Tensor) -> torch.Tensor | None:
    model.eval()
    with torch.no_grad():
        out = model(probe.clone())
    if not isinstance(out, torch.Tensor):
        return None
    return torch.nan_to_num(out.detach().double().cpu(), nan=0.0, posinf=1e300, neginf=-1e300)


def _quantised(out: torch.Tensor) -> bytes:
    """Each output rounded to MANTISSA_BITS significant bits (values below 2^-20 of the largest are 0)."""
    scale = float(out.abs().max()) if out.numel() else 0.0
    out = torch.where(out.abs() < scale * 2.0**-20, torch.zeros_like(out), out)
    mantissa, exponent = torch.frexp(out)
    steps = torch.round(mantissa * 2**MANTISSA_BITS)
    carry = steps.abs() == 2**MANTISSA_BITS  # 0.99.. rounded up: the same number as 0.5 at the next exponent
    steps = torch.where(carry, steps / 2, steps).to(torch.int64)
    exponent = torch.where(steps == 0, torch.zeros_like(exponent), exponent + carry.to(exponent.dtype))
    return f"{tuple(out.shape)};".encode() + steps.numpy().tobytes() + exponent.to(torch.int64).numpy().tobytes()


# A class's mean logit may move by this fraction of the mean absolute logit before the model counts as
# changed: float noise (another thread count, another batch split) is about 1e-6 of it.
MEAN_LOGIT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SplitBehaviour:
    """What a model does on a cell's own images: its predicted class per point, each class's mean logit,
    and the mean absolute logit (the scale the means are compared on)."""

    predictions: list[int]
    class_means: list[float]
    scale: float

    def to_dict(self) -> dict[str, Any]:
        return {"predictions": self.predictions, "class_means": self.class_means, "scale": self.scale}

    @classmethod
    def from_dict(cls, stored: object) -> SplitBehaviour | None:
        """The stored behaviour; None for a cell that holds none (an older ctrobust) or a malformed one."""
        if not isinstance(stored, Mapping):
            return None
        try:
            return cls([int(p) for p in stored["predictions"]], [float(m) for m in stored["class_means"]],
                       float(stored["scale"]))
        except (KeyError, TypeError, ValueError):
            return None

    def change_from(self, labels: Sequence[int], stored_clean: Sequence[int], stored: SplitBehaviour | None
                    ) -> str | None:
        """Why the model that made a stored cell is not this one, seen on the cell's images (None: the same):
        the clean outcomes the cell counted, then its stored predictions and mean logits where it has them."""
        n = len(self.predictions)
        if len(stored_clean) != n or len(labels) != n:
            return f"it scored {len(stored_clean)} points where the split has {n}"
        clean = [int(p == y) for p, y in zip(self.predictions, labels)]
        differ = sum(a != int(b) for a, b in zip(clean, stored_clean))
        if differ:
            return f"the model's clean predictions differ on {plural(differ, 'point')} of {n}"
        if stored is None:
            return None
        if len(stored.predictions) != n or len(stored.class_means) != len(self.class_means):
            return "its stored behaviour does not fit this split"
        differ = sum(a != b for a, b in zip(self.predictions, stored.predictions))
        if differ:
            return f"the model predicts another class on {plural(differ, 'point')} of {n}"
        tolerance = MEAN_LOGIT_TOLERANCE * max(stored.scale, self.scale, 1e-30)
        moved = [(abs(a - b), c) for c, (a, b) in enumerate(zip(self.class_means, stored.class_means))]
        shift, cls_ = max(moved, default=(0.0, 0))
        if not shift <= tolerance:  # also NaN
            return (f"the mean logit of class {cls_} moved from {stored.class_means[cls_]:.4g} to "
                    f"{self.class_means[cls_]:.4g}")
        return None


def split_behaviour(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> SplitBehaviour:
    """The model's predictions and mean logits per class on these images (one forward pass, in batches)."""
    predictions: list[torch.Tensor] = []
    total: torch.Tensor | None = None
    absolute = 0.0
    with torch.no_grad():
        for start in range(0, len(x), max(1, batch_size)):
            out = model(x[start : start + batch_size].clone().to(device)).detach().double().cpu()
            predictions.append(out.argmax(dim=1))
            total = out.sum(dim=0) if total is None else total + out.sum(dim=0)
            absolute += float(out.abs().sum())
    n = max(len(x), 1)
    means = [] if total is None else [float(v) / n for v in total]
    scale = absolute / (n * max(len(means), 1))
    return SplitBehaviour(torch.cat(predictions).tolist() if predictions else [], means, scale)

