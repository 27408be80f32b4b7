#!/usr/bin/env python3
"""Python-eager side of the invert and decode bench suites: DDIM inversion and decoding with the
DDPM UNet of bench/reference/ddpm.py (random weights), the same UNet calls at the same batch and the
same DDIM update as the addon (native/ddim.cc), timed the same way.

Server mode: prints {"torch": version, "threads": n}, then answers each JSON line

  {"op": "invert" | "decode", "config": {UNet config}, "resolution": R, "batch": B,
   "t0": 500, "steps": 20, "mode": "asyrp" | "every-step" (decode), "channelsLast": bool,
   "device": "cpu", "dtype": "float32", "autocast": null | "bfloat16" | "float16",
   "warmup": w, "iterations": n}

with one line {"seconds": [...], "unetEncoderCalls": e, "unetDecoderCalls": d} (the calls of one trial).

invert: x0 → x_t0 with η = 0, one UNet forward (encoder + decoder) per step of seq(t0, steps)
except the last (steps − 1 calls), as ddimInvert.
decode (ddimDecode with an edited h, η = 0, tEdit = 0): from x_lat (batch 1, expanded to B) over
all `steps` timesteps down to t = 0; per step one encoder pass, then
  asyrp:      x̂0 from the decoder with f.h + (ĥ − h_r), the direction from the decoder with f.h
              (two decoder passes);
  every-step: one decoder pass with f.h + (ĥ − h_r).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from ddpm import DTYPES, abar, ddim_step, decode, encode, make_params, params, seq  # noqa: E402,F401
from server import serve, timed  # noqa: E402

MODES = ("asyrp", "every-step")



def image(gen, shape, device, dtype, channels_last):
    x = torch.randn(*shape, generator=gen).to(device=device, dtype=DTYPES[dtype])
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def times(x, t):
    return torch.full((x.shape[0],), float(t), device=x.device)


def h_shape(cfg, resolution):
    div = 2 ** (len(cfg["chMult"]) - 1)
    return [cfg["ch"] * cfg["chMult"][-1], resolution // div, resolution // div]


def run(spec):
    op = spec.get("op")
    if op not in ("invert", "decode"):
        raise ValueError(f"op must be 'invert' or 'decode', got {op!r}")
    cfg = {k: v for k, v in spec["config"].items() if k != "hShape"}
    res = int(spec.get("resolution") or cfg["resolution"])
    batch = int(spec["batch"])
    t0, steps = int(spec.get("t0", 500)), int(spec.get("steps", 40))
    device = spec.get("device", "cpu")
    dtype = spec.get("dtype", "float32")
    cl = bool(spec.get("channelsLast"))
    autocast = spec.get("autocast")
    mode = spec.get("mode", "asyrp")
    if op == "decode" and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    P = params(cfg, cl, device, dtype)
    gen = torch.Generator().manual_seed(1)
    S = seq(t0, steps)
    calls = {"enc": 0, "dec": 0}

    if op == "invert":
        x0 = image(gen, (batch, cfg["inChannels"], res, res), device, dtype, cl)

        def step():
            x = x0
            for k in range(steps - 1):
                h, hs, temb = encode(P, cfg, x, times(x, S[k]))
                eps = decode(P, cfg, h, hs, temb)
                x = ddim_step(x, eps, S[k], S[k + 1])
                calls["enc"] += 1
                calls["dec"] += 1
            return x
    else:
        x_lat = image(gen, (1, cfg["inChannels"], res, res), device, dtype, cl)
        hc = h_shape(cfg, res)
        h_ref = image(gen, (1, *hc), device, dtype, cl)
        h_edit = h_ref + 0.1 * image(gen, (batch, *hc), device, dtype, cl)
        delta = h_edit - h_ref

        def step():
            x = x_lat.expand(batch, -1, -1, -1).contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
            for k in range(steps - 1, -1, -1):
                t, t_next = S[k], (S[k - 1] if k > 0 else -1)
                h, hs, temb = encode(P, cfg, x, times(x, t))
                calls["enc"] += 1
                eps = decode(P, cfg, h + delta, hs, temb)
                calls["dec"] += 1
                eps_dir = None
                if mode == "asyrp":
                    eps_dir = decode(P, cfg, h, hs, temb)
                    calls["dec"] += 1
                x = ddim_step(x, eps, t, t_next, eps_dir=eps_dir)
            return x

    sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)
    warmup, iterations = int(spec.get("warmup", 1)), int(spec.get("iterations", 3))
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=DTYPES[autocast or "bfloat16"], enabled=bool(autocast)):
        seconds = timed(step, warmup, iterations, sync)
    n = warmup + iterations
    return {"seconds": seconds, "unetEncoderCalls": calls["enc"] // n, "unetDecoderCalls": calls["dec"] // n}


def main():
    serve(run)


if __name__ == "__main__":
    main()
