"""How the attacked model is run: the fastest of several ways that compute the very same numbers, timed.

Why: on a CPU, (1) a large batch's activations fall out of the cache, and the same images take up to
twice as long in one batch of 500 as in eight of 64; (2) PyTorch's NCHW max-pooling kernel took half
of a forward pass of the shipped model (benchmarks/RESULTS.md, section 6). An attack's batch (and so
its random starts) stays what the protocol says; the model's forward may be split into micro-batches,
and a 2x2 max-pool may be computed as the maximum of its four strided views (the same maximum, and in
backward the same routing to the first maximum of each window). Each is used only where the probe finds
bit-identical logits and input gradients on a real batch, so every attack computes exactly what it
computes without them. The probe's timing is the run's first measurement of the machine: it seeds the
progress bar's rate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

CHUNK_CANDIDATES = (64, 128)  # tried against the whole batch; the fastest bit-identical one is used
PROBE_BATCH = 256  # images of the probe: large enough to show the cache effect, quick to time


class _MaxPool2x2(torch.autograd.Function):
    """2x2, stride-2 max-pooling as the maximum of four strided views; backward routes each window's
    gradient to its first maximum in row-major order, as PyTorch's CPU max-pool kernel does."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        out = torch.maximum(torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]),
                            torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))
        ctx.save_for_backward(x, out)  # type: ignore[attr-defined]
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        x, out = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_in = torch.zeros_like(x)
        taken = torch.zeros_like(out, dtype=torch.bool)
        for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)):
            first = (x[:, :, i::2, j::2] == out) & ~taken
            grad_in[:, :, i::2, j::2] = torch.where(first, grad, torch.zeros_like(grad))
            taken |= first
        return grad_in


def _is_plain_2x2(args: tuple, kwargs: dict) -> bool:
    """A call max_pool2d(x, 2) or (x, 2, 2) or (x, (2, 2)) with no padding, dilation, ceil mode or indices."""
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    bound = dict(zip(names, args)) | kwargs
    x = bound.get("input")

    def pair(v: object) -> tuple[object, ...]:
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    return (isinstance(x, torch.Tensor) and x.dim() == 4 and not x.is_cuda and x.is_floating_point()
            and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0 and pair(bound.get("kernel_size")) == (2, 2)
            and pair(bound.get("stride") or 2) == (2, 2) and pair(bound.get("padding", 0)) == (0, 0)
            and pair(bound.get("dilation", 1)) == (1, 1) and not bound.get("ceil_mode", False)
            and not bound.get("return_indices", False))


class _FastPooling(TorchFunctionMode):
    """Route plain 2x2 max-pooling to :class:`_MaxPool2x2` while the model runs."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.max_pool2d, torch.max_pool2d) and _is_plain_2x2(args, kwargs):
            return _MaxPool2x2.apply(args[0] if args else kwargs["input"])
        return func(*args, **kwargs)


class MicroBatched(nn.Module):
    """``model`` applied ``chunk`` images at a time (None: whole), its 2x2 max-pools computed by
    :class:`_MaxPool2x2` in passes without gradients where ``fast_pool``; the same function, the
    outputs concatenated."""

    def __init__(self, model: nn.Module, chunk: int | None, fast_pool: bool = False) -> None:
        super().__init__()
        self.model, self.chunk, self.fast_pool = model, chunk, fast_pool

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast_pool or torch.is_grad_enabled():  # its backward costs more than it saves
            return self.model(x)
        with _FastPooling():
            return self.model(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chunk is None or len(x) <= self.chunk:
            return self._run(x)
        return torch.cat([self._run(x[i : i + self.chunk]) for i in range(0, len(x), self.chunk)])


@dataclass
class Execution:
    """What the probe chose and measured: the micro-batch and the seconds per image of each pass."""

    chunk: int | None = None
    fast_pool: bool = False
    seconds_per_image: dict[str, float] = field(default_factory=dict)  # "<model> forward", "<model> forward+backward"
    candidates: dict[str, float] = field(default_factory=dict)  # bit-identical micro-batches -> s per image, all models
    refused: dict[str, str] = field(default_factory=dict)  # ways not used, and why
    channels_last: bool = False  # the models' convolution weights were put in channels-last memory format

    @property
    def ct_cost(self) -> float:
        """Seconds of CT's forward and backward over the original model's (1 where CT was not timed)."""
        base = self.seconds_per_image.get("base forward+backward")
        ct = self.seconds_per_image.get("ct forward+backward")
        return ct / base if base and ct else 1.0

    def wrap(self, model: nn.Module) -> nn.Module:
        return MicroBatched(model, self.chunk, self.fast_pool) if self.chunk or self.fast_pool else model

    def to_dict(self) -> dict[str, object]:
        return {"micro_batch": self.chunk, "fast_max_pool": self.fast_pool,
                "seconds_per_image": dict(self.seconds_per_image),
                "micro_batch_seconds_per_image": dict(self.candidates), "refused": dict(self.refused),
                "channels_last": self.channels_last}


def _forward_backward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xs = x.clone().requires_grad_(True)
    out = model(xs)
    (grad,) = torch.autograd.grad(out.logsumexp(1).sum(), xs)
    return out.detach(), grad


def _seconds(fn: Callable[[], None], repeats: int = 2) -> float:
    """The best of ``repeats`` timings: the least disturbed by whatever else the machine does."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def probe_execution(models: Mapping[str, nn.Module], x: torch.Tensor, batch_size: int) -> Execution:
    """Time each model (e.g. the original and its CT view) on a real batch in each way of running it, and
    keep the fastest in total among those bit-identical to the plain model for every model: the
    micro-batch on forward and backward (logits and input gradients), then the max-pool on forward
    passes without gradients (logits).

    On a GPU the model runs as it is (the gains are CPU ones).
    """
    x = x[: min(batch_size, PROBE_BATCH)]
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for m in models.values():  # warm-up, and any compile: a first call may not run the kernels later calls run
        _forward_backward(m, x)
    references = {name: _forward_backward(m, x) for name, m in models.items()}
    sync()

    def timed(way: Mapping[str, nn.Module], grad: bool) -> dict[str, float]:
        out = {}
        for name, m in way.items():
            def run(m: nn.Module = m) -> None:
                if grad:
                    _forward_backward(m, x)
                else:
                    with torch.no_grad():
                        m(x)
                sync()
            out[name] = _seconds(run) / len(x)
        return out

    def identical(way: dict[str, nn.Module], grad: bool) -> bool:
        for name, m in way.items():
            if grad:
                out, g = _forward_backward(m, x)
                same = torch.equal(out, references[name][0]) and torch.equal(g, references[name][1])
            else:
                with torch.no_grad():
                    same = torch.equal(m(x), references[name][0])
            if not same:
                return False
        return True

    def ways(chunk: int | None, fast_pool: bool = False) -> dict[str, nn.Module]:
        return {name: MicroBatched(m, chunk, fast_pool) for name, m in models.items()}

    refused: dict[str, str] = {}
    timings: dict[int | None, dict[str, float]] = {None: timed(ways(None), True)}
    if not x.is_cuda:
        for size in CHUNK_CANDIDATES:
            if size >= len(x):
                continue
            if identical(ways(size), True):  # a way that is not the same function is never used
                timings[size] = timed(ways(size), True)
            else:
                refused[str(size)] = "logits or input gradients differ from the whole batch's"
    chunk = min(timings, key=lambda c: sum(timings[c].values()))
    forward = timed(ways(chunk), False)
    fast_pool = False
    if not x.is_cuda:
        if identical(ways(chunk, True), False):
            pooled = timed(ways(chunk, True), False)
            if sum(pooled.values()) < sum(forward.values()):
                fast_pool, forward = True, pooled
        else:
            refused["fast max-pool"] = "logits differ from max_pool2d's"
    candidates = {"whole" if c is None else str(c): sum(t.values()) for c, t in timings.items()}  # in NCHW
    channels_last = False
    if not x.is_cuda and x.dim() == 4 and _has_convolutions(models):
        chosen = sum(timings[chunk].values()) + sum(forward.values())
        faster, why = _try_channels_last(models, ways(chunk, fast_pool), ways(None), x, timed, chosen)
        if faster is not None:
            channels_last, (timings[chunk], forward) = True, faster
        else:
            refused["channels-last"] = why
    per_image = {f"{name} forward+backward": s for name, s in timings[chunk].items()}
    per_image.update({f"{name} forward": s for name, s in forward.items()})
    return Execution(chunk, fast_pool, per_image, candidates, refused, channels_last)


CHANNELS_LAST_GAIN = 0.95  # taken where the chosen way runs in at most this share of its time in NCHW


def _has_convolutions(models: Mapping[str, nn.Module]) -> bool:
    return any(isinstance(m, nn.Conv2d) for model in models.values() for m in model.modules())


def _try_channels_last(models: Mapping[str, nn.Module], chosen: Mapping[str, nn.Module],
                       whole: Mapping[str, nn.Module], x: torch.Tensor,
                       timed: Callable[[Mapping[str, nn.Module], bool], dict[str, float]],
                       seconds: float) -> tuple[tuple[dict[str, float], dict[str, float]] | None, str]:
    """Put the models' convolution weights in channels-last memory format (in place; the models share their
    modules with every view of them) and keep it where the chosen way is faster by a twentieth and still
    computes, micro-batched, what the whole batch computes (returned: its timings with and without gradients);
    else restore the format (returned: None and why).

    The one lever that is not bit-identical to the plain model: oneDNN's channels-last convolutions round
    differently in the last bit, and a max-pool window of tied values sends its gradient to another of its
    maxima. It is taken because the default run's per-point outcomes on both arms are the same with it as
    without (benchmarks/RESULTS.md, section 6); ``CTROBUST_CHANNELS_LAST=0`` turns it off.
    """
    if os.environ.get("CTROBUST_CHANNELS_LAST", "1") == "0":
        return None, "turned off (CTROBUST_CHANNELS_LAST=0)"
    for m in models.values():
        m.to(memory_format=torch.channels_last)
    for m in models.values():  # warm-up: a compiled unit sees new strides
        _forward_backward(m, x)
    same = all(_equal(_forward_backward(chosen[n], x), _forward_backward(whole[n], x)) for n in models)
    with_grad, without = timed(chosen, True), timed(chosen, False)
    if same and sum(with_grad.values()) + sum(without.values()) <= CHANNELS_LAST_GAIN * seconds:
        return (with_grad, without), ""
    for m in models.values():
        m.to(memory_format=torch.contiguous_format)
    return None, "not faster on this machine" if same else "its micro-batches differ from its whole batch"


def _equal(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> bool:
    return torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


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
