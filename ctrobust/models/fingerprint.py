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
"""

from __future__ import annotations

import hashlib
import secrets

import torch
import torch.nn as nn

from ctrobust.attacks.determinism import RELATIVE_TOLERANCE, output_spread

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
