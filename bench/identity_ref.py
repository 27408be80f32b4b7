#!/usr/bin/env python3
"""Python-eager side of bench/identity: the same encoders (bench/reference/arcface.py, random
weights), timed the same way under inference mode. Server mode: prints {"torch", "threads"}, then
answers each JSON line {"arch", "width", "batch", "device", "dtype", "warmup", "iterations", "channelsLast"} with {"seconds": [...]}."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from arcface import iresnet_forward, iresnet_params, irse50_forward, irse50_params  # noqa: E402
from server import serve, timed  # noqa: E402


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build(arch, channels_last, width=1.0, device="cpu", dtype="float32"):
    gen = torch.Generator().manual_seed(0)
    if arch == "ir_se50":
        P, fwd = irse50_params(width, 512, gen), lambda P, x: irse50_forward(P, width, x)
    else:
        depth = int(arch.replace("iresnet", ""))
        P, fwd = iresnet_params(depth, width, 512, gen), lambda P, x: iresnet_forward(P, depth, x)
    P = {k: v.to(device=device, dtype=DTYPES[dtype]) for k, v in P.items()}
    if channels_last:
        P = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v) for k, v in P.items()}
    return P, fwd


def run(spec):
    device, dtype = spec.get("device", "cpu"), spec.get("dtype", "float32")
    P, fwd = build(spec["arch"], spec.get("channelsLast", False), spec.get("width", 1.0), device, dtype)
    x = (torch.rand(spec["batch"], 3, 112, 112) * 2 - 1).to(device=device, dtype=DTYPES[dtype])
    if spec.get("channelsLast"):
        x = x.contiguous(memory_format=torch.channels_last)
    def step():
        e = fwd(P, x)
        return e / e.norm(dim=1, keepdim=True)

    with torch.inference_mode():
        sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else None
        return {"seconds": timed(step, spec.get("warmup", 1), spec.get("iterations", 5), sync)}


def main():
    serve(run)


if __name__ == "__main__":
    main()
