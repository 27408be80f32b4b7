#!/usr/bin/env python3
"""Python-eager reference for bench/engine: the same operations, timed the same way, on the
Python torch found by the caller (Debian's python3-torch here).

Server mode, so the caller can interleave cases with its own without paying Python's start-up:
`engine_ref.py <threads>` prints {"torch": version, "threads": n} on its first line, then reads
one JSON spec per line on stdin and answers each with one line {"seconds": [...]}."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from server import serve, timed  # noqa: E402


def run(spec):
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[spec.get("dtype", "float32")]
    device = torch.device(spec.get("device", "cpu"))
    warmup, iterations = spec.get("warmup", 2), spec.get("iterations", 5)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        if spec["op"] == "sgemm":
            m = spec["m"]
            n, k = spec.get("n", m), spec.get("k", m)
            a = torch.randn(m, k, dtype=dtype, device=device)
            b = torch.randn(k, n, dtype=dtype, device=device)
            c = torch.empty(m, n, dtype=dtype, device=device)
            step = lambda: torch.mm(a, b, out=c)
        else:
            cin = spec["inChannels"]
            cout = spec.get("outChannels", cin)
            h = spec["height"]
            w = spec.get("width", h)
            kk = spec.get("kernel", 3)
            x = torch.randn(spec.get("batch", 1), cin, h, w, dtype=dtype, device=device)
            wt = torch.randn(cout, cin, kk, kk, dtype=dtype, device=device)
            bias = torch.randn(cout, dtype=dtype, device=device)
            if spec.get("channelsLast"):
                x = x.contiguous(memory_format=torch.channels_last)
                wt = wt.contiguous(memory_format=torch.channels_last)
            step = lambda: torch.nn.functional.conv2d(x, wt, bias, 1, kk // 2)
        return {"seconds": timed(step, warmup, iterations, sync)}


def main():
    serve(run)


if __name__ == "__main__":
    main()
