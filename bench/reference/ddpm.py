"""Independent Python reference of the DDPM UNet (official parameter names), h-space and DDIM,
written from the architecture and DDIM notes of docs/checkpoints.md and docs/method.md (not from this project's C++). Used to make the
parity fixtures (test/fixtures/diffusion/make_diffusion.py) and as the Python-eager side of
bench/unet. Needs only torch."""
import json
import math
import struct

import torch
import torch.nn.functional as F

CELEBA_HQ_256 = dict(inChannels=3, outChannels=3, ch=128, chMult=[1, 1, 2, 2, 4, 4], numResBlocks=2,
                     attnResolutions=[16], dropout=0.0, resampWithConv=True, resolution=256)


# ---------------------------------------------------------------- parameters (official names)
def make_params(cfg, gen):
    P = {}

    def conv(name, cin, cout, k):
        bound = 1 / math.sqrt(cin * k * k)
        P[name + ".weight"] = (torch.rand(cout, cin, k, k, generator=gen) * 2 - 1) * bound
        P[name + ".bias"] = (torch.rand(cout, generator=gen) * 2 - 1) * bound

    def lin(name, cin, cout):
        bound = 1 / math.sqrt(cin)
        P[name + ".weight"] = (torch.rand(cout, cin, generator=gen) * 2 - 1) * bound
        P[name + ".bias"] = (torch.rand(cout, generator=gen) * 2 - 1) * bound

    def norm(name, c):  # non-trivial affine so that a wrong mapping shows
        P[name + ".weight"] = 1 + 0.2 * torch.randn(c, generator=gen)
        P[name + ".bias"] = 0.2 * torch.randn(c, generator=gen)

    def resblock(name, cin, cout, tc):
        norm(name + ".norm1", cin)
        conv(name + ".conv1", cin, cout, 3)
        lin(name + ".temb_proj", tc, cout)
        norm(name + ".norm2", cout)
        conv(name + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(name + ".nin_shortcut", cin, cout, 1)

    def attn(name, c):
        norm(name + ".norm", c)
        for p in ("q", "k", "v", "proj_out"):
            conv(name + "." + p, c, c, 1)

    ch, mult, nrb = cfg["ch"], cfg["chMult"], cfg["numResBlocks"]
    tc = 4 * ch
    lin("temb.dense.0", ch, tc)
    lin("temb.dense.1", tc, tc)
    conv("conv_in", cfg["inChannels"], ch, 3)
    in_mult = [1] + mult
    res = cfg["resolution"]
    block_in = ch
    for L in range(len(mult)):
        block_in = ch * in_mult[L]
        block_out = ch * mult[L]
        for i in range(nrb):
            resblock(f"down.{L}.block.{i}", block_in, block_out, tc)
            block_in = block_out
            if res in cfg["attnResolutions"]:
                attn(f"down.{L}.attn.{i}", block_in)
        if L != len(mult) - 1:
            conv(f"down.{L}.downsample.conv", block_in, block_in, 3)
            res //= 2
    resblock("mid.block_1", block_in, block_in, tc)
    attn("mid.attn_1", block_in)
    resblock("mid.block_2", block_in, block_in, tc)
    for L in reversed(range(len(mult))):
        block_out = ch * mult[L]
        skip_in = ch * mult[L]
        for i in range(nrb + 1):
            if i == nrb:
                skip_in = ch * in_mult[L]
            resblock(f"up.{L}.block.{i}", block_in + skip_in, block_out, tc)
            block_in = block_out
            if res in cfg["attnResolutions"]:
                attn(f"up.{L}.attn.{i}", block_in)
        if L != 0:
            conv(f"up.{L}.upsample.conv", block_in, block_in, 3)
            res *= 2
    norm("norm_out", block_in)
    conv("conv_out", block_in, cfg["outChannels"], 3)
    return P


# ---------------------------------------------------------------- forward (functional)
def group_norm(P, name, x):
    return F.group_norm(x, 32, P[name + ".weight"], P[name + ".bias"], eps=1e-6)


def conv2d(P, name, x, stride=1, padding=0):
    return F.conv2d(x, P[name + ".weight"], P[name + ".bias"], stride=stride, padding=padding)


def swish(x):
    return x * torch.sigmoid(x)


def timestep_embedding(t, dim):
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freq[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def resblock_fwd(P, name, x, temb):
    h = conv2d(P, name + ".conv1", swish(group_norm(P, name + ".norm1", x)), padding=1)
    h = h + F.linear(swish(temb), P[name + ".temb_proj.weight"], P[name + ".temb_proj.bias"])[:, :, None, None]
    h = conv2d(P, name + ".conv2", swish(group_norm(P, name + ".norm2", h)), padding=1)
    if name + ".nin_shortcut.weight" in P:
        x = conv2d(P, name + ".nin_shortcut", x)
    return x + h


def attn_fwd(P, name, x):
    b, c, hh, ww = x.shape
    n = group_norm(P, name + ".norm", x)
    q = conv2d(P, name + ".q", n).reshape(b, c, hh * ww)
    k = conv2d(P, name + ".k", n).reshape(b, c, hh * ww)
    v = conv2d(P, name + ".v", n).reshape(b, c, hh * ww)
    w = torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c)  # query i, key j
    w = torch.softmax(w, dim=2)
    out = torch.einsum("bij,bcj->bci", w, v).reshape(b, c, hh, ww)
    return x + conv2d(P, name + ".proj_out", out)


def encode(P, cfg, x, t):
    temb = timestep_embedding(t, cfg["ch"]).to(P["temb.dense.0.weight"].dtype)
    temb = F.linear(temb, P["temb.dense.0.weight"], P["temb.dense.0.bias"])
    temb = F.linear(swish(temb), P["temb.dense.1.weight"], P["temb.dense.1.bias"])
    hs = [conv2d(P, "conv_in", x, padding=1)]
    levels = len(cfg["chMult"])
    for L in range(levels):
        for i in range(cfg["numResBlocks"]):
            h = resblock_fwd(P, f"down.{L}.block.{i}", hs[-1], temb)
            if f"down.{L}.attn.{i}.q.weight" in P:
                h = attn_fwd(P, f"down.{L}.attn.{i}", h)
            hs.append(h)
        if L != levels - 1:
            hs.append(conv2d(P, f"down.{L}.downsample.conv", F.pad(hs[-1], (0, 1, 0, 1)), stride=2))
    h = resblock_fwd(P, "mid.block_1", hs[-1], temb)
    h = attn_fwd(P, "mid.attn_1", h)
    h = resblock_fwd(P, "mid.block_2", h, temb)
    return h, hs, temb


def decode(P, cfg, h, hs, temb):
    hs = list(hs)
    levels = len(cfg["chMult"])
    for L in reversed(range(levels)):
        for i in range(cfg["numResBlocks"] + 1):
            h = resblock_fwd(P, f"up.{L}.block.{i}", torch.cat([h, hs.pop()], dim=1), temb)
            if f"up.{L}.attn.{i}.q.weight" in P:
                h = attn_fwd(P, f"up.{L}.attn.{i}", h)
        if L != 0:
            h = conv2d(P, f"up.{L}.upsample.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"), padding=1)
    return conv2d(P, "conv_out", swish(group_norm(P, "norm_out", h)), padding=1)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_cached = {}


def params(cfg, channels_last, device, dtype):
    """make_params(cfg, seed 0) on a device and dtype (conv kernels channels_last when asked), cached
    for the last (cfg, layout, device, dtype): the benches' Python sides reuse one model per request kind."""
    key = (json.dumps(cfg, sort_keys=True), channels_last, device, dtype)
    if key not in _cached:
        _cached.clear()
        p = make_params(cfg, torch.Generator().manual_seed(0))
        p = {k: v.to(device=device, dtype=DTYPES[dtype]) for k, v in p.items()}
        if channels_last:
            p = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v) for k, v in p.items()}
        _cached[key] = p
    return _cached[key]


# ---------------------------------------------------------------- DDIM
BETAS = torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64)
ALPHA_BAR = torch.cumprod(1 - BETAS, 0)


def abar(t):
    return 1.0 if t < 0 else float(ALPHA_BAR[t])


def seq(t0, steps):
    # The released code's int(np.linspace(0, 1, steps)[k] * t0), written without numpy.
    return [int((1.0 if k == steps - 1 else k * (1.0 / (steps - 1))) * t0) for k in range(steps)]


def ddim_step(x, eps, t, t_next, eta=0.0, eps_dir=None, noise=None):
    a, an = abar(t), abar(t_next)
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    d = eps if eps_dir is None else eps_dir
    if eta == 0:
        return math.sqrt(an) * x0 + math.sqrt(1 - an) * d
    c1 = eta * math.sqrt((1 - a / an) * (1 - an) / (1 - a))
    c2 = math.sqrt(1 - an - c1 * c1)
    return math.sqrt(an) * x0 + c2 * d + c1 * noise


def tvec(x, t):
    return torch.full((x.shape[0],), float(t))


# ---------------------------------------------------------------- files
def write_safetensors(path, tensors, metadata=None):
    dt = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.int64: "I64"}
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
