"""How the attacked model is run: in the micro-batch that is fastest on this device, and timed.

Why: on a CPU a large batch's activations fall out of the cache, and the same images take up to twice
as long in one batch of 500 as in eight of 64 (benchmarks/RESULTS.md, section 6). An attack's batch
(and so its random starts) stays what the protocol says; only the model's forward is split into
micro-batches, and only where the split gives bit-identical logits and input gradients on a real
batch, so every attack computes exactly what it computes unsplit. The timing of that choice is the
run's first measurement of the machine: it seeds the progress bar's rate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn

CHUNK_CANDIDATES = (32, 64, 128)  # tried against the whole batch; the fastest bit-identical one is used
PROBE_BATCH = 256  # images of the probe: large enough to show the cache effect, quick to time


class MicroBatched(nn.Module):
    """``model`` applied ``chunk`` images at a time; the same function, the outputs concatenated."""

    def __init__(self, model: nn.Module, chunk: int | None) -> None:
        super().__init__()
        self.model, self.chunk = model, chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chunk is None or len(x) <= self.chunk:
            return self.model(x)
        return torch.cat([self.model(x[i : i + self.chunk]) for i in range(0, len(x), self.chunk)])


@dataclass
class Execution:
    """What the probe chose and measured: the micro-batch and the seconds per image of each pass."""

    chunk: int | None = None
    seconds_per_image: dict[str, float] = field(default_factory=dict)  # "<model> forward", "<model> forward+backward"
    candidates: dict[str, float] = field(default_factory=dict)  # bit-identical micro-batches -> s per image, all models

    @property
    def ct_cost(self) -> float:
        """Seconds of CT's forward and backward over the original model's (1 where CT was not timed)."""
        base = self.seconds_per_image.get("base forward+backward")
        ct = self.seconds_per_image.get("ct forward+backward")
        return ct / base if base and ct else 1.0

    def wrap(self, model: nn.Module) -> nn.Module:
        return MicroBatched(model, self.chunk) if self.chunk is not None else model

    def to_dict(self) -> dict[str, object]:
        return {"micro_batch": self.chunk, "seconds_per_image": dict(self.seconds_per_image),
                "micro_batch_seconds_per_image": dict(self.candidates)}


def _forward_backward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xs = x.clone().requires_grad_(True)
    out = model(xs)
    (grad,) = torch.autograd.grad(out.logsumexp(1).sum(), xs)
    return out.detach(), grad


def _seconds(fn: object, repeats: int = 2) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def probe_execution(models: dict[str, nn.Module], x: torch.Tensor, batch_size: int) -> Execution:
    """Time each model (e.g. the original and its CT view) on a real batch, whole and in micro-batches;
    keep the split that is fastest in total among those bit-identical for every model.

    On a GPU the batch is run whole (kernels are sized for it; the cache effect is a CPU one).
    """
    x = x[: min(batch_size, PROBE_BATCH)]
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    references = {name: _forward_backward(m, x) for name, m in models.items()}  # warm-up, and any compile
    sync()

    def timed(chunk: int | None) -> dict[str, float]:
        out = {}
        for name, m in models.items():
            split = MicroBatched(m, chunk)

            def run() -> None:
                _forward_backward(split, x)
                sync()
            out[name] = _seconds(run) / len(x)
        return out

    def identical(chunk: int) -> bool:
        for name, m in models.items():
            out, grad = _forward_backward(MicroBatched(m, chunk), x)
            if not (torch.equal(out, references[name][0]) and torch.equal(grad, references[name][1])):
                return False
        return True

    timings: dict[int | None, dict[str, float]] = {None: timed(None)}
    if not x.is_cuda:
        for chunk in CHUNK_CANDIDATES:
            if chunk < len(x) and identical(chunk):  # a split that is not the same function is never used
                timings[chunk] = timed(chunk)
    best = min(timings, key=lambda c: sum(timings[c].values()))
    per_image = {f"{name} forward+backward": s for name, s in timings[best].items()}
    for name, m in models.items():
        split = MicroBatched(m, best)

        def forward() -> None:
            with torch.no_grad():
                split(x)
            sync()
        per_image[f"{name} forward"] = _seconds(forward) / len(x)
    candidates = {"whole" if c is None else str(c): sum(t.values()) for c, t in timings.items()}
    return Execution(best, per_image, candidates)


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Attacks need gradients of the input only: the weights' gradients are not computed while inside
    (the input gradients are the same to the bit); each parameter's flag is restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
