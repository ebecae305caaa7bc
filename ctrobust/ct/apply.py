"""Apply CT to a model without touching its weights: ReLU calls are rerouted while it runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from ctrobust.ct.fused import FusedCTU, PerSampleCTU, resolve_impl
from ctrobust.ct.sites import is_relu_call
from ctrobust.ct.unit import check_beta, ctu

Unit = Callable[[torch.Tensor], torch.Tensor]


def make_unit(beta: float, c: float, impl: str) -> Unit:
    """The CTU at (beta, c) as a one-argument function: fused (compiled) or eager."""
    if resolve_impl(impl) == "fused":
        return FusedCTU(beta, c)
    return lambda x: ctu(x, beta, c)


class _ReluToCTU(TorchFunctionMode):
    """Replace every ReLU call made under this mode by the CT unit."""

    def __init__(self, unit: Unit) -> None:
        super().__init__()
        self.unit = unit

    def __torch_function__(self, func: Callable, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        is_relu, in_place = is_relu_call(func, args, kwargs)
        if not is_relu:
            return func(*args, **kwargs)
        x = args[0]
        if not in_place:
            return self.unit(x)
        # In place: compute on a copy (autograd keeps the pre-activation) and write it back,
        # so code that ignores the return value of relu_ still sees the CT output.
        out = self.unit(x.clone())
        x.copy_(out)
        return x


class CurvatureTuned(nn.Module):
    """A view of ``model`` with every ReLU replaced by the CTU; the wrapped model is shared.

    ``beta`` and ``c`` can be changed in place (``ct.beta = 0.9``) without rebuilding: a beta
    sweep reuses one set of weights. ``beta = 1`` computes exactly the original function.
    ``impl``: 'fused' (compiled once, see :mod:`ctrobust.ct.fused`), 'eager', or 'auto' (fused; a
    run's choice, --ctu or $CTROBUST_CTU, is resolved before it reaches here: ``plan.resolve_ctu``).
    """

    def __init__(self, model: nn.Module, beta: float, c: float = 0.5, impl: str = "auto") -> None:
        super().__init__()
        self.model = model
        self.impl = resolve_impl(impl)
        self._beta, self._c = check_beta(beta), check_beta(c, "c")
        self._unit = make_unit(self._beta, self._c, self.impl)
        self._per_sample: PerSampleCTU | None = None

    @contextmanager
    def betas_per_sample(self, betas: Sequence[float] | torch.Tensor) -> Iterator[None]:
        """Within this block, sample i of every batch runs at ``betas[i]``: a sweep's K betas in one pass.

        Batches must then have exactly ``len(betas)`` samples. Outside the block the model runs at
        ``self.beta`` again.
        """
        values = torch.as_tensor(betas, dtype=torch.float64).flatten()
        for value in values.tolist():
            check_beta(value)
        previous, self._per_sample = self._per_sample, PerSampleCTU(values, self._c, self.impl)
        try:
            yield
        finally:
            self._per_sample = previous

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_beta(value)
        self._unit = make_unit(self._beta, self._c, self.impl)

    @property
    def c(self) -> float:
        return self._c

    @c.setter
    def c(self, value: float) -> None:
        self._c = check_beta(value, "c")
        self._unit = make_unit(self._beta, self._c, self.impl)

    def forward(self, *args, **kwargs):
        # A model may modify its input in place (x.sub_(mean)): it gets a copy, so neither the attack's
        # leaf tensor (an autograd error) nor the evaluation images (silently changed) are touched.
        args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
        if self._per_sample is not None:
            with _ReluToCTU(self._per_sample):
                return self.model(*args, **kwargs)
        if self._beta == 1.0:
            return self.model(*args, **kwargs)
        with _ReluToCTU(self._unit):
            return self.model(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"beta={self._beta}, c={self._c}, impl={self.impl}"


def curvature_tuned(model: nn.Module, beta: float, c: float = 0.5, impl: str = "auto") -> CurvatureTuned:
    """Return ``model`` with every ReLU (module or functional) computed as the CTU at ``beta``."""
    return CurvatureTuned(model, beta, c, impl)
