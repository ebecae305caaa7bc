"""Which torch calls are ReLUs (and which are other activations) when seen by a function mode.

An ``nn.ReLU`` module calls ``F.relu`` in its forward, so intercepting the functional calls
reaches modules, functional calls (``F.relu``, ``torch.relu``, ``Tensor.relu`` and the in-place
variants) and ReLU modules built inside ``forward`` alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

RELU_FUNCS: frozenset[Callable[..., object]] = frozenset(
    {F.relu, torch.relu, torch.Tensor.relu}
)
RELU_INPLACE_FUNCS: frozenset[Callable[..., object]] = frozenset(
    {torch.relu_, torch.Tensor.relu_, F.relu_}
)

OTHER_ACTIVATION_NAMES: frozenset[str] = frozenset(
    {
        "gelu", "silu", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "softplus",
        "sigmoid", "tanh", "hardswish", "hardsigmoid", "mish", "relu6", "hardtanh", "hardtanh_",
        "prelu", "glu", "softsign", "rrelu", "logsigmoid", "tanhshrink",
    }
)

_NOT_ACTIVATIONS = (nn.ReLU, nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.MultiheadAttention)


def is_relu_call(func: Callable[..., object], args: tuple, kwargs: dict) -> tuple[bool, bool]:
    """Return (is_relu, in_place) for a call seen by ``__torch_function__``."""
    if func in RELU_INPLACE_FUNCS:
        return True, True
    if func in RELU_FUNCS:
        in_place = bool(kwargs.get("inplace", args[1] if len(args) > 1 else False)) if func is F.relu else False
        return True, in_place
    return False, False


def other_activation_name(func: Callable[..., object]) -> str | None:
    """Name of a non-ReLU activation function, or None when ``func`` is not one."""
    name = getattr(func, "__name__", "")
    return name if name in OTHER_ACTIVATION_NAMES else None


def other_activation_modules(model: nn.Module) -> dict[str, str]:
    """Activation modules other than ReLU, as {qualified name: class name}."""
    found: dict[str, str] = {}
    for name, module in model.named_modules():
        if type(module).__module__ == nn.modules.activation.__name__ and not isinstance(module, _NOT_ACTIVATIONS):
            found[name or "<root>"] = type(module).__name__
    return found
