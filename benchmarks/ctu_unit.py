"""What limits CT's overhead where activations dominate (smallcnn on a CPU): the unit alone against ReLU.

Times, on one activation-sized tensor, ReLU's forward and backward kernels against the fused CTU's
(compiled forward, compiled hand-written backward), and the whole unit forward+backward under autograd
for three designs: ReLU, the fused CTU (keeps its input, recomputes two sigmoids in backward), and an
alternative that computes the derivative in the forward and keeps it (backward is one multiply, but the
forward writes two tensors). Also a plain multiply and exp as memory and transcendental yardsticks.

    .venv/bin/python benchmarks/ctu_unit.py            # 256x32x32x32: smallcnn's first activation at batch 256
"""

from __future__ import annotations

import argparse

import torch

from common import device_arg, interleaved, machine, median, print_table, setup_device, sync_for
from ctrobust.ct.fused import FusedCTU, _ctu_backward, _ctu_forward
from ctrobust.ct.unit import EPS_REFERENCE, SOFTPLUS_THRESHOLD, ctu


def _forward_and_derivative(x: torch.Tensor, beta: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The CTU and d phi / dx in one pass, sharing exp(-|z|) between softplus and sigmoid(z)."""
    scale = 1.0 - beta + EPS_REFERENCE
    z = x / scale
    a = z * beta
    s = torch.sigmoid(a)
    u = torch.exp(-z.abs())
    above = z > SOFTPLUS_THRESHOLD
    softplus = torch.where(above, z, torch.clamp(z, min=0.0) + torch.log(1.0 + u))
    r = 1.0 / (1.0 + u)
    sigmoid_z = torch.where(z >= 0, r, u * r)
    out = c * s * x + (1.0 - c) * softplus * scale
    derivative = c * s * (1.0 + a * (1.0 - s)) + (1.0 - c) * torch.where(above, torch.ones_like(z), sigmoid_z)
    return out, derivative


_compiled_fd = torch.compile(_forward_and_derivative, dynamic=True, fullgraph=True)


class _KeepDerivative(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, c):  # type: ignore[no-untyped-def,override]
        out, derivative = _compiled_fd(x, beta, c)
        ctx.save_for_backward(derivative)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def,override]
        (derivative,) = ctx.saved_tensors
        return grad * derivative, None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    device_arg(parser)
    parser.add_argument("--shape", default="256,32,32,32")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    device = setup_device(args)
    shape = tuple(int(v) for v in args.shape.split(","))
    torch.manual_seed(0)
    x = torch.randn(*shape, device=device)
    grad = torch.randn_like(x)
    relu_out = torch.relu(x)
    beta, c = torch.tensor(0.9, device=device), torch.tensor(0.5, device=device)
    fwd = torch.compile(_ctu_forward, dynamic=True, fullgraph=True)
    bwd = torch.compile(_ctu_backward, dynamic=True, fullgraph=True)
    fused = FusedCTU(0.9, 0.5)

    check = torch.randn(5000, dtype=torch.float64, device=device) * 5  # the alternative is also exact
    x_ref, x_alt = check.clone().requires_grad_(True), check.clone().requires_grad_(True)
    ctu(x_ref, 0.9).sum().backward()
    _KeepDerivative.apply(x_alt, *(torch.tensor(v, dtype=torch.float64, device=device) for v in (0.9, 0.5))).sum().backward()
    assert torch.allclose(x_alt.grad, x_ref.grad, rtol=1e-9, atol=1e-12)

    def unit(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            xi = x.detach().requires_grad_(True)
            fn(xi).backward(grad)
        return run

    kernels = interleaved({
        "relu forward": lambda: torch.relu(x),
        "ctu forward (compiled)": lambda: fwd(x, beta, c),
        "relu backward": lambda: torch.ops.aten.threshold_backward(grad, relu_out, 0.0),
        "ctu backward (compiled)": lambda: bwd(x, grad, beta, c),
        "multiply (memory yardstick)": lambda: grad * x,
        "exp (one transcendental)": lambda: torch.exp(x),
    }, args.repeats, sync_for(device))
    units = interleaved({
        "relu": unit(torch.relu),
        "ctu fused (keeps input)": unit(fused),
        "ctu keeps derivative": unit(lambda t: _KeepDerivative.apply(t, beta, c)),
    }, args.repeats, sync_for(device))
    print(f"CTU against ReLU on one tensor {shape} ({x.numel() / 1e6:.1f}M elements), beta 0.9, median of "
          f"{args.repeats}; machine: {machine(device)}")
    rows = [[k, f"{1000 * median(v):.2f}", f"{median(v) / median(kernels['relu forward']):.2f}"] for k, v in kernels.items()]
    print_table(rows, ["kernel", "ms", "/ relu forward"])
    print()
    rows = [[k, f"{1000 * median(v):.2f}", f"{median(v) / median(units['relu']):.3f}"] for k, v in units.items()]
    print_table(rows, ["unit forward+backward", "ms", "/ relu"])


if __name__ == "__main__":
    main()
