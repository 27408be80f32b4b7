#!/usr/bin/env python3
"""Python-eager side of bench/unet: the same 256² DDPM UNet (bench/reference/ddpm.py, random
weights) timed the same way. Server mode: prints {"torch": version, "threads": n}, then answers
each JSON line {"config": {...}, "batch": B, "channelsLast": bool, "warmup": w, "iterations": n}
with one line {"seconds": [...]}."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from ddpm import ALPHA_BAR, CELEBA_HQ_256, DTYPES, decode, encode, make_params, params  # noqa: E402
from server import serve, timed  # noqa: E402



def train(spec):
    """One training step of the reference UNet: noised images, ε-MSE, backward, AdamW (float32)."""
    cfg = spec.get("config") or CELEBA_HQ_256
    device = spec.get("device", "cpu")
    p = make_params(cfg, torch.Generator().manual_seed(0))
    P = {k: v.to(device).requires_grad_(True) for k, v in p.items()}
    opt = torch.optim.AdamW(P.values(), lr=1e-4)
    b = spec["batch"]
    x0 = torch.randn(b, cfg["inChannels"], cfg["resolution"], cfg["resolution"], device=device)
    sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)

    def step():
        t = torch.randint(0, 1000, (b,), device=device)
        a = ALPHA_BAR.to(device)[t].float().view(-1, 1, 1, 1)
        noise = torch.randn_like(x0)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        h, hs, temb = encode(P, cfg, xt, t.float())
        eps = decode(P, cfg, h, hs, temb)
        loss = torch.nn.functional.mse_loss(eps, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"seconds": timed(step, spec.get("warmup", 1), spec.get("iterations", 3), sync)}


def run(spec):
    if spec.get("mode") == "train":
        return train(spec)
    cfg = spec.get("config") or CELEBA_HQ_256
    cl = bool(spec.get("channelsLast"))
    device = spec.get("device", "cpu")
    dtype = spec.get("dtype", "float32")
    P = params(cfg, cl, device, dtype)
    x = torch.randn(spec["batch"], cfg["inChannels"], cfg["resolution"], cfg["resolution"]).to(device=device, dtype=DTYPES[dtype])
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    t = torch.full((spec["batch"],), 500.0, device=device)
    sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)
    autocast = spec.get("autocast")
    def step():
        h, hs, temb = encode(P, cfg, x, t)
        decode(P, cfg, h, hs, temb)

    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=DTYPES[autocast or "bfloat16"], enabled=bool(autocast)):
        return {"seconds": timed(step, spec.get("warmup", 1), spec.get("iterations", 3), sync)}


def main():
    serve(run)


if __name__ == "__main__":
    main()
