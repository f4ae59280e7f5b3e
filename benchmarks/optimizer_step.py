"""Time one optimizer step, foreach vs fused, on each chapter model's parameters.

    python benchmarks/optimizer_step.py [--models alexnet,vgg11_4] [--device auto] [--steps 20]

An optimizer step reads and writes every parameter (and, for Adam, two state tensors per
parameter), so for the big dense layers of AlexNet and VGG it is a real part of a training step
at small batch sizes. This is the measurement behind ``d2lcnn.train``'s choice of fused steps for
Adam, AdamW and SGD with momentum (plain SGD stays foreach). Prints milliseconds per step.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import d2lcnn as d2l

OPTIMIZERS = {
    "sgd": lambda params, **kw: torch.optim.SGD(params, lr=1e-3, **kw),
    "sgd+momentum": lambda params, **kw: torch.optim.SGD(params, lr=1e-3, momentum=0.9, **kw),
    "adam": lambda params, **kw: torch.optim.Adam(params, lr=1e-4, **kw),
    "adamw": lambda params, **kw: torch.optim.AdamW(params, lr=1e-4, **kw),
}


def ms_per_step(params: list[torch.Tensor], make, steps: int, **kw) -> float:
    opt = make(params, **kw)
    for _ in range(3):  # warm-up: creates the optimizer state
        opt.step()
    if params[0].is_cuda:
        torch.cuda.synchronize()
    tic = time.perf_counter()
    for _ in range(steps):
        opt.step()
    if params[0].is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - tic) / steps * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lenet,alexnet,vgg11_4,resnet18")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = d2l.resolve_device(args.device)
    print(f"device: {d2l.device.describe_device(device)}")
    print("| model | parameters | optimizer | foreach ms/step | fused ms/step | fused speed-up |")
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        recipe = d2l.MODELS[model]
        net = recipe.build()
        size = recipe.resize or 28
        net(torch.zeros(1, 1, size, size))  # materialise lazy layers
        torch.manual_seed(0)
        params = [p.detach().to(device).requires_grad_() for p in net.parameters()]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        count = sum(p.numel() for p in params)
        for name, make in OPTIMIZERS.items():
            foreach = ms_per_step(params, make, args.steps, foreach=True)
            fused = ms_per_step(params, make, args.steps, fused=True)
            print(f"| {model} | {count / 1e6:.1f} M | {name} | {foreach:.1f} | {fused:.1f} | "
                  f"{foreach / fused:.2f}x |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
