"""Independent Python reference of the ArcFace-family encoders with their official key names,
written from the network descriptions of docs/checkpoints.md (not from this project's C++): TreB1eN's IR-SE50 and insightface's
iresnet r18/r34/r50/r100, for any width, plus the BIA input protocol. Used by
test/fixtures/identity/make_identity.py and bench/identity_ref.py. Needs only torch."""
import math

import torch
import torch.nn.functional as F

IRESNET_LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3]}


def ch(c, width):
    return max(1, int(round(c * width)))


class Params(dict):
    """name -> tensor, with initialisers that make every parameter and BN statistic non-trivial."""

    def __init__(self, gen):
        super().__init__()
        self.gen = gen

    def conv(self, name, cin, cout, k, bias=False):
        self[name + ".weight"] = (torch.rand(cout, cin, k, k, generator=self.gen) * 2 - 1) * math.sqrt(3 / (cin * k * k))
        if bias:
            self[name + ".bias"] = 0.1 * torch.randn(cout, generator=self.gen)

    def linear(self, name, cin, cout):
        self[name + ".weight"] = (torch.rand(cout, cin, generator=self.gen) * 2 - 1) * math.sqrt(3 / cin)
        self[name + ".bias"] = 0.1 * torch.randn(cout, generator=self.gen)

    def bn(self, name, c):
        self[name + ".weight"] = 1 + 0.1 * torch.randn(c, generator=self.gen)
        self[name + ".bias"] = 0.1 * torch.randn(c, generator=self.gen)
        self[name + ".running_mean"] = 0.1 * torch.randn(c, generator=self.gen)
        self[name + ".running_var"] = 1 + 0.2 * torch.rand(c, generator=self.gen)
        self[name + ".num_batches_tracked"] = torch.tensor(1000, dtype=torch.int64)

    def prelu(self, name, c):
        self[name + ".weight"] = 0.25 + 0.05 * torch.randn(c, generator=self.gen)


# ------------------------------------------------------------------------------------ IR-SE50
IRSE50_STAGES = [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)]


def irse50_units(width):
    units = []
    for cin, depth, n in IRSE50_STAGES:
        for u in range(n):
            units.append((ch(cin, width) if u == 0 else ch(depth, width), ch(depth, width), 2 if u == 0 else 1))
    return units


def irse50_params(width, emb, gen):
    P = Params(gen)
    c64 = ch(64, width)
    P.conv("input_layer.0", 3, c64, 3)
    P.bn("input_layer.1", c64)
    P.prelu("input_layer.2", c64)
    for i, (cin, depth, stride) in enumerate(irse50_units(width)):
        b = f"body.{i}"
        if cin != depth:
            P.conv(b + ".shortcut_layer.0", cin, depth, 1)
            P.bn(b + ".shortcut_layer.1", depth)
        P.bn(b + ".res_layer.0", cin)
        P.conv(b + ".res_layer.1", cin, depth, 3)
        P.prelu(b + ".res_layer.2", depth)
        P.conv(b + ".res_layer.3", depth, depth, 3)
        P.bn(b + ".res_layer.4", depth)
        mid = max(1, depth // 16)
        P.conv(b + ".res_layer.5.fc1", depth, mid, 1)
        P.conv(b + ".res_layer.5.fc2", mid, depth, 1)
    c512 = ch(512, width)
    P.bn("output_layer.0", c512)
    P.linear("output_layer.3", c512 * 49, emb)
    P.bn("output_layer.4", emb)
    return dict(P)


def _bn(P, name, x):
    return F.batch_norm(x, P[name + ".running_mean"], P[name + ".running_var"], P[name + ".weight"], P[name + ".bias"], False, 0.0, 1e-5)


def _conv(P, name, x, stride=1, padding=0):
    return F.conv2d(x, P[name + ".weight"], P.get(name + ".bias"), stride=stride, padding=padding)


def _prelu(P, name, x):
    return F.prelu(x, P[name + ".weight"])


def irse50_forward(P, width, x):
    x = _prelu(P, "input_layer.2", _bn(P, "input_layer.1", _conv(P, "input_layer.0", x, padding=1)))
    for i, (cin, depth, stride) in enumerate(irse50_units(width)):
        b = f"body.{i}"
        if cin != depth:
            sc = _bn(P, b + ".shortcut_layer.1", _conv(P, b + ".shortcut_layer.0", x, stride=stride))
        else:
            sc = F.max_pool2d(x, 1, stride)
        r = _bn(P, b + ".res_layer.0", x)
        r = _prelu(P, b + ".res_layer.2", _conv(P, b + ".res_layer.1", r, padding=1))
        r = _bn(P, b + ".res_layer.4", _conv(P, b + ".res_layer.3", r, stride=stride, padding=1))
        s = F.adaptive_avg_pool2d(r, 1)
        s = torch.sigmoid(_conv(P, b + ".res_layer.5.fc2", F.relu(_conv(P, b + ".res_layer.5.fc1", s))))
        x = r * s + sc
    x = _bn(P, "output_layer.0", x).flatten(1)
    x = F.linear(x, P["output_layer.3.weight"], P["output_layer.3.bias"])
    return _bn(P, "output_layer.4", x)


# ------------------------------------------------------------------------------------ iresnet
def iresnet_params(depth, width, emb, gen):
    P = Params(gen)
    inplanes = ch(64, width)
    P.conv("conv1", 3, inplanes, 3)
    P.bn("bn1", inplanes)
    P.prelu("prelu", inplanes)
    for L, (planes, n) in enumerate(zip((64, 128, 256, 512), IRESNET_LAYERS[depth])):
        p = ch(planes, width)
        for b in range(n):
            name = f"layer{L + 1}.{b}"
            cin = inplanes if b == 0 else p
            P.bn(name + ".bn1", cin)
            P.conv(name + ".conv1", cin, p, 3)
            P.bn(name + ".bn2", p)
            P.prelu(name + ".prelu", p)
            P.conv(name + ".conv2", p, p, 3)
            P.bn(name + ".bn3", p)
            if b == 0:
                P.conv(name + ".downsample.0", cin, p, 1)
                P.bn(name + ".downsample.1", p)
        inplanes = p
    P.bn("bn2", inplanes)
    P.linear("fc", inplanes * 49, emb)
    P.bn("features", emb)
    return dict(P)


def iresnet_forward(P, depth, x):
    x = _prelu(P, "prelu", _bn(P, "bn1", _conv(P, "conv1", x, padding=1)))
    for L, n in enumerate(IRESNET_LAYERS[depth]):
        for b in range(n):
            name = f"layer{L + 1}.{b}"
            stride = 2 if b == 0 else 1
            out = _conv(P, name + ".conv1", _bn(P, name + ".bn1", x), padding=1)
            out = _prelu(P, name + ".prelu", _bn(P, name + ".bn2", out))
            out = _bn(P, name + ".bn3", _conv(P, name + ".conv2", out, stride=stride, padding=1))
            identity = _bn(P, name + ".downsample.1", _conv(P, name + ".downsample.0", x, stride=stride)) if b == 0 else x
            x = out + identity
    x = _bn(P, "bn2", x).flatten(1)
    x = F.linear(x, P["fc.weight"], P["fc.bias"])
    return _bn(P, "features", x)


# ------------------------------------------------------------------------------------ protocol
def bia_protocol(x):
    """256² in [-1, 1] -> rows 35:223, cols 32:220 -> adaptive average pool to 112²."""
    return F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112))


def l2_normalize(e):
    return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
