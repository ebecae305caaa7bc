"""A fused CT unit: forward and backward each one elementwise kernel, only the input kept for backward.

Why: the eager CTU is a chain of eight elementwise kernels that each read and write the whole
activation and keep several intermediates for backward; it made WRN-28-10 1.27x slower than with
ReLU. Two builds of the same two functions:

- CUDA (float32/float64): hand-written kernels compiled once per dtype by PyTorch's jiterator (NVRTC),
  beta and c passed as runtime scalars. Launched through ATen's elementwise machinery, a call costs
  about what a native op costs; ``torch.compile``'s per-call guard and wrapper overhead made small
  models (smallcnn) slower with the compiled unit than with the eager one on an H200.
- Elsewhere (CPU, other dtypes): ``torch.compile`` of the formula with beta and c as 0-dim tensors,
  so moving beta (a sweep) does not recompile, and ``dynamic=True`` covers every shape with one graph.

Where compilation is unavailable (no C++ compiler, no NVRTC, an unsupported platform) or fails, the
unit falls back (CUDA kernels -> torch.compile -> eager formula) once, with a warning, and says so in
:func:`ctu_backend`.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ctrobust.ct.errors import CTError
from ctrobust.ct.unit import EPS_REFERENCE, SOFTPLUS_THRESHOLD, ctu

log = logging.getLogger("ctrobust.ct")


def _ctu_forward(x: torch.Tensor, beta: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The CTU with beta and c as tensors: the function of :func:`ctrobust.ct.unit.ctu`.

    softplus(z) is written max(z, 0) + log(1 + exp(-|z|)) (identity above the threshold, as
    F.softplus): the same function, but inductor's CPU code vectorises log and not log1p, which made
    the unit 2.5x slower. The two differ only where exp(-|z|) is below float precision, by at most
    that much (absolute).
    """
    scale = 1.0 - beta + EPS_REFERENCE
    z = x / scale
    silu_part = torch.sigmoid(z * beta) * x
    softplus = torch.where(z > SOFTPLUS_THRESHOLD, z, torch.clamp(z, min=0.0) + torch.log(1.0 + torch.exp(-z.abs())))
    return c * silu_part + (1.0 - c) * softplus * scale


def _ctu_backward(x: torch.Tensor, grad: torch.Tensor, beta: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """d phi / dx = c (s + a x s (1 - s)) + (1 - c) sigmoid(z), with s = sigmoid(a x), a = beta / scale.

    The softplus term's derivative is 1 above the threshold, where F.softplus is the identity.
    """
    scale = 1.0 - beta + EPS_REFERENCE
    z = x / scale
    s = torch.sigmoid(z * beta)
    silu_grad = s * (1.0 + z * beta * (1.0 - s))
    softplus_grad = torch.where(z > SOFTPLUS_THRESHOLD, torch.ones_like(z), torch.sigmoid(z))
    return grad * (c * silu_grad + (1.0 - c) * softplus_grad)


_CUDA_COMMON = (
    "template <typename T> T ctrobust_sigmoid(T v) { return T(1) / (T(1) + exp(-v)); }\n"
)
# The same two functions as _ctu_forward / _ctu_backward, per element; scale = 1 - beta + 1e-6, threshold 20.
_CUDA_FORWARD = _CUDA_COMMON + (
    "template <typename T> T ctrobust_ctu_forward(T x, T beta, T c) {"
    " T scale = T(1) - beta + T(%r); T z = x / scale;"
    " T softplus = z > T(%r) ? z : (z > T(0) ? z : T(0)) + log1p(exp(-fabs(z)));"
    " return c * ctrobust_sigmoid(z * beta) * x + (T(1) - c) * softplus * scale; }"
) % (EPS_REFERENCE, SOFTPLUS_THRESHOLD)
_CUDA_BACKWARD = _CUDA_COMMON + (
    "template <typename T> T ctrobust_ctu_backward(T x, T grad, T beta, T c) {"
    " T scale = T(1) - beta + T(%r); T z = x / scale; T a = z * beta; T s = ctrobust_sigmoid(a);"
    " T softplus_grad = z > T(%r) ? T(1) : ctrobust_sigmoid(z);"
    " return grad * (c * s * (T(1) + a * (T(1) - s)) + (T(1) - c) * softplus_grad); }"
) % (EPS_REFERENCE, SOFTPLUS_THRESHOLD)
CUDA_DTYPES = (torch.float32, torch.float64)


class _CTUFunction(torch.autograd.Function):
    """A forward and a backward function under autograd; only the input is kept for backward.

    beta and c are 0-dim tensors (compiled unit) or Python floats (CUDA kernels), held on ctx.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, beta: Any, c: Any,
                fwd: Callable[..., torch.Tensor], bwd: Callable[..., torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.beta, ctx.c, ctx.bwd = beta, c, bwd
        return fwd(x, beta, c)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        return ctx.bwd(x, grad, ctx.beta, ctx.c), None, None, None, None


@contextmanager
def _compiling(what: str) -> Iterator[None]:
    """One line before and after a compilation, so a silent wait of seconds is explained."""
    log.info("compiling the CT unit (%s, once per process) ...", what)
    start = time.perf_counter()
    yield
    log.info("compiled the CT unit (%s) in %.1f s", what, time.perf_counter() - start)


class _Backend:
    """A forward/backward pair built on first use; after one failure every call returns None, so the
    caller takes the next unit down, and :func:`ctu_backend` reports why."""

    name = ""  # for the warning: "<name> of the CT unit failed (...); using <fallback>."
    fallback = ""
    label = ""  # for the compile lines

    def __init__(self) -> None:
        self._pair: tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]] | None = None
        self.failed: str | None = None
        self._forward_built = self._backward_built = False

    def _build(self) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, beta: Any, c: Any) -> torch.Tensor | None:
        if self.failed is not None:
            return None
        try:
            if self._pair is None:
                self._pair = self._build()
            fwd, bwd = self._pair
            if not self._forward_built:  # the first call compiles: say so, and how long it took
                with _compiling(f"{self.label} forward"):
                    out = fwd(x, beta, c)
                self._forward_built = True
                if not (torch.is_grad_enabled() and x.requires_grad):
                    return out
            if not (torch.is_grad_enabled() and x.requires_grad):
                return fwd(x, beta, c)
            out = _CTUFunction.apply(x, beta, c, fwd, bwd)
            if not self._backward_built:  # build the backward now, where a failure can still fall back
                # The whole input, not one element: a per-sample beta has one row per sample to broadcast.
                probe = x.detach().clone().requires_grad_(True)
                with _compiling(f"{self.label} backward"):
                    _CTUFunction.apply(probe, beta, c, fwd, bwd).sum().backward()
                self._backward_built = True
            return out
        except torch.cuda.OutOfMemoryError:  # the user's batch, not the unit: say so, keep the unit
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: use the next unit down
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(f"{self.name} of the CT unit failed ({self.failed}); using {self.fallback}.", stacklevel=3)
            return None


class _CudaKernels(_Backend):
    """The two jiterator kernels (beta and c as Python floats)."""

    name, fallback, label = "The CUDA kernels", "torch.compile", "CUDA kernels"

    def _build(self) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
        from torch.cuda.jiterator import _create_jit_fn

        forward = _create_jit_fn(_CUDA_FORWARD, beta=0.5, c=0.5)
        backward = _create_jit_fn(_CUDA_BACKWARD, beta=0.5, c=0.5)
        return (lambda x, beta, c: forward(x, beta=beta, c=c),
                lambda x, grad, beta, c: backward(x, grad, beta=beta, c=c))


class _CudaKernelsPerSample(_Backend):
    """The same kernels with beta as a tensor input, broadcast over each sample (c a Python float)."""

    name, fallback, label = "The per-sample CUDA kernels", "torch.compile", "CUDA kernels, one beta per sample"

    def _build(self) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
        from torch.cuda.jiterator import _create_jit_fn

        forward = _create_jit_fn(_CUDA_FORWARD, c=0.5)
        backward = _create_jit_fn(_CUDA_BACKWARD, c=0.5)
        return (lambda x, beta, c: forward(x, beta.expand_as(x), c=c),
                lambda x, grad, beta, c: backward(x, grad, beta.expand_as(x), c=c))


class _Compiled(_Backend):
    """The formula compiled by torch.compile (beta and c as 0-dim tensors)."""

    name, fallback, label = "torch.compile", "the eager unit", "torch.compile"

    def _build(self) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
        # The CPU build of torch warns about a missing CUDA runtime when it compiles: not our user's concern.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        # One graph per tensor rank, and torch specialises batches of 0 and 1 (an attack's last survivor,
        # a micro-batch's remainder): more than the default 8 graphs, each compiled once and cheap.
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        return (torch.compile(_ctu_forward, dynamic=True, fullgraph=True),
                torch.compile(_ctu_backward, dynamic=True, fullgraph=True))


_COMPILED = _Compiled()
_CUDA = _CudaKernels()
_CUDA_PER_SAMPLE = _CudaKernelsPerSample()


def resolve_impl(impl: str | None) -> str:
    """'auto' (or None) -> 'fused'; checks the name. (Which one a run uses is the caller's policy: the CLI and
    the API read --ctu and $CTROBUST_CTU in ``plan.resolve_ctu``.)"""
    chosen = (impl or "auto").lower()
    if chosen == "auto":
        chosen = "fused"
    if chosen not in ("fused", "eager"):
        raise CTError(f"Expected the CT unit implementation (--ctu) to be fused or eager, but got {chosen!r}.")
    return chosen


def ctu_backend(impl: str | None = "auto", device: torch.device | str | None = None) -> str:
    """What runs for ``impl`` on ``device``: 'fused (CUDA kernels)', 'fused (torch.compile)', or 'eager'
    with the reason."""
    chosen = resolve_impl(impl)
    if chosen == "eager":
        return "eager"
    if device is not None and torch.device(device).type == "cuda" and not _CUDA.failed:
        return "fused (CUDA kernels)"
    if _COMPILED.failed:
        return f"eager (torch.compile failed: {_COMPILED.failed})"
    return "fused (torch.compile)"


class FusedCTU:
    """Callable CTU that keeps beta and c as cached tensors per device and dtype."""

    def __init__(self, beta: float, c: float) -> None:
        self.beta, self.c = beta, c
        self._params: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.beta == 1.0 or not x.is_floating_point():
            return ctu(x, self.beta, self.c)
        if x.is_cuda and x.dtype in CUDA_DTYPES:
            out = _CUDA(x, self.beta, self.c)
            if out is not None:
                return out
        key = (x.device, x.dtype)
        params = self._params.get(key)
        if params is None:
            params = (torch.tensor(self.beta, device=x.device, dtype=x.dtype),
                      torch.tensor(self.c, device=x.device, dtype=x.dtype))
            self._params[key] = params
        out = _COMPILED(x, *params)
        return ctu(x, self.beta, self.c) if out is None else out


class PerSampleCTU:
    """The CTU with one beta per sample (the batch's first dimension): K betas of a sweep in one pass.

    Each sample's output and gradient depend on its own beta only, exactly as if it had been run
    alone at that beta; rows whose beta is 1 are exactly ReLU, as in the one-beta unit.
    """

    def __init__(self, betas: torch.Tensor, c: float, impl: str) -> None:
        self.betas, self.c, self.impl = betas.detach().flatten(), c, resolve_impl(impl)
        self._cache: dict[tuple[torch.device, torch.dtype, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (x.device, x.dtype, x.dim())
        if key not in self._cache:
            shape = (-1,) + (1,) * (x.dim() - 1)
            is_relu = (self.betas == 1.0).to(x.device).view(shape)
            # Rows at beta 1 take ReLU below; give the formula a harmless beta there (its output is dropped).
            betas = torch.where(self.betas == 1.0, torch.full_like(self.betas, 0.5), self.betas)
            self._cache[key] = (betas.to(device=x.device, dtype=x.dtype).view(shape), is_relu,
                                torch.tensor(self.c, device=x.device, dtype=x.dtype))
        return self._cache[key]

    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`ctrobust.ct.unit.ctu` on each beta's rows: the very function of the one-beta eager unit."""
        out = x.new_zeros(x.shape)
        betas = self.betas.to(x.device)
        for beta in torch.unique(betas).tolist():
            rows = torch.nonzero(betas == beta).flatten()
            out = out.index_put((rows,), ctu(x[rows], beta, self.c))
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self.betas):
            raise CTError(f"one beta per sample: the model passed a batch of {x.shape[0]} to a ReLU, but "
                                f"{len(self.betas)} betas were given (a model that reshapes its batch cannot sweep "
                                "betas in one pass; use the one-beta sweep)")
        out = None
        if self.impl == "fused" and x.is_floating_point():
            betas, is_relu, c = self._params(x)
            if x.is_cuda and x.dtype in CUDA_DTYPES:
                out = _CUDA_PER_SAMPLE(x, betas, self.c)
            if out is None:
                out = _COMPILED(x, betas, c)
        if out is None:
            return self._eager(x)
        return torch.where(is_relu, torch.relu(x), out)
