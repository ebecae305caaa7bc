"""Count the ReLU sites CT reaches in a model, by kind, and the other activations it leaves alone."""

from __future__ import annotations

import os
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from ctrobust.ct.sites import is_relu_call, other_activation_modules, other_activation_name

_TORCH_DIR = os.path.dirname(torch.__file__)


@dataclass
class CTCoverage:
    """What one forward pass showed: ReLU calls CT reroutes, and activations it does not touch."""

    module_calls: int = 0
    functional_calls: int = 0
    relu_modules: list[str] = field(default_factory=list)
    functional_sites: list[str] = field(default_factory=list)
    other_activations: dict[str, int] = field(default_factory=dict)
    other_activation_modules: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.module_calls + self.functional_calls

    def describe_others(self) -> str:
        names = set(self.other_activations) | set(self.other_activation_modules.values())
        return ", ".join(sorted(names)) if names else "none"

    def to_dict(self) -> dict[str, object]:
        return {
            "relu_calls": self.total,
            "module_calls": self.module_calls,
            "functional_calls": self.functional_calls,
            "relu_modules": self.relu_modules,
            "functional_sites": self.functional_sites,
            "other_activations": self.other_activations,
            "other_activation_modules": self.other_activation_modules,
        }


def _caller_site() -> str:
    """file:line of the first frame outside torch, i.e. the model code that called relu."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not frame.filename.startswith(_TORCH_DIR) and not frame.filename.endswith(("ct/coverage.py",)):
            return f"{os.path.basename(frame.filename)}:{frame.lineno}"
    return "<unknown>"


class _CountingMode(TorchFunctionMode):
    def __init__(self, cov: CTCoverage, module_depth: list[int]) -> None:
        super().__init__()
        self.cov = cov
        self.module_depth = module_depth
        self.others: Counter[str] = Counter()
        self.sites: set[str] = set()

    def __torch_function__(self, func: Callable, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        is_relu, _ = is_relu_call(func, args, kwargs)
        if is_relu:
            if self.module_depth[0] > 0:
                self.cov.module_calls += 1
            else:
                self.cov.functional_calls += 1
                self.sites.add(_caller_site())
        else:
            name = other_activation_name(func)
            if name is not None:
                self.others[name] += 1
        return func(*args, **kwargs)


def ct_coverage(model: nn.Module, example_input: torch.Tensor) -> CTCoverage:
    """Run one forward pass of ``model`` and report the ReLU sites CT would reach, by kind.

    A call inside an ``nn.ReLU`` module's forward counts as a module site; every other ReLU call
    (``F.relu``, ``torch.relu``, ``Tensor.relu``, in-place variants) as a functional site.
    """
    cov = CTCoverage(other_activation_modules=other_activation_modules(model))
    depth = [0]
    reached: set[str] = set()
    names = {id(m): n for n, m in model.named_modules()}

    def pre(module: nn.Module, _inputs: object) -> None:
        depth[0] += 1
        reached.add(names.get(id(module), f"<built in forward: {type(module).__name__}>"))

    def post(_module: nn.Module, _inputs: object, _output: object) -> None:
        depth[0] -= 1

    handles = [
        nn.modules.module.register_module_forward_pre_hook(lambda m, i: pre(m, i) if isinstance(m, nn.ReLU) else None),
        nn.modules.module.register_module_forward_hook(lambda m, i, o: post(m, i, o) if isinstance(m, nn.ReLU) else None),
    ]
    mode = _CountingMode(cov, depth)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mode:
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    cov.relu_modules = sorted(reached)
    cov.functional_sites = sorted(mode.sites)
    cov.other_activations = dict(sorted(mode.others.items()))
    return cov
