#!/usr/bin/python3
"""Writes the golden fixtures in tests/data/ with a ConvNeXt V2 written here from SPEC.md
(official NCHW structure: channels-first LN in stem/downsample, permute inside each block).

Run by hand with Debian's PyTorch:  /usr/bin/python3 tools/make_golden.py
Never run in CI. Parameters are a deterministic formula of (name, index) so the atto fixture does
not need to store 3.7M weights: the C++ test regenerates them with the same formula
(golden_param_value in tests/models/golden.test.cpp).
"""
import json, math, os, struct, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


class LayerNormCF(nn.Module):  # channels_first LN, spelled out as in the official code
    def __init__(self, c, eps=1e-6):
        super().__init__(); self.weight = nn.Parameter(torch.ones(c)); self.bias = nn.Parameter(torch.zeros(c)); self.eps = eps
    def forward(self, x):
        u = x.mean(1, keepdim=True); s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    def __init__(self, d):
        super().__init__(); self.gamma = nn.Parameter(torch.zeros(1, 1, 1, d)); self.beta = nn.Parameter(torch.zeros(1, 1, 1, d))
    def forward(self, x):
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1 = nn.Linear(c, 4 * c); self.act = nn.GELU(); self.grn = GRN(4 * c); self.pwconv2 = nn.Linear(4 * c, c)
    def forward(self, x):
        r = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(x)))))
        return r + x.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    def __init__(self, in_chans, num_classes, depths, dims, stem_kernel=4):
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(nn.Conv2d(in_chans, dims[0], stem_kernel, stride=stem_kernel), LayerNormCF(dims[0])))
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(LayerNormCF(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2)))
        self.stages = nn.ModuleList(nn.Sequential(*[Block(dims[i]) for _ in range(depths[i])]) for i in range(4))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
    def forward_features(self, x):
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
        return self.norm(x.mean([-2, -1]))
    def forward(self, x):
        f = self.forward_features(x)
        return self.head(f), f


def name_phase(name):
    return (sum(name.encode()) % 1000) * 0.001


def golden_param_value(name, shape, i):
    """Same formula as the C++ test: a smooth, non-zero, name-dependent pattern."""
    s = math.sin(0.37 * i + name_phase(name))
    if name.endswith("gamma") or name.endswith("beta"):
        return 0.1 * s
    if len(shape) == 1 and name.endswith("weight"):   # LayerNorm weight
        return 1.0 + 0.1 * s
    if name.endswith("bias"):
        return 0.05 * s
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    return s / math.sqrt(fan_in)


def fill_params(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = torch.tensor([golden_param_value(name, list(p.shape), i) for i in range(p.numel())], dtype=torch.float64)
            p.copy_(flat.view(p.shape).to(p.dtype))


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        a = tensors[k].detach().to(torch.float32).contiguous().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(a)]}
        blobs.append(a); off += len(a)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in blobs:
            f.write(b)
    print("wrote", path, os.path.getsize(path), "bytes")


def make(name, in_chans, num_classes, depths, dims, side, batch, full_grads, stem_kernel=4):
    torch.manual_seed(0)
    m = ConvNeXtV2(in_chans, num_classes, depths, dims, stem_kernel).double()
    fill_params(m)
    x = torch.randn(batch, in_chans, side, side, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(batch) % num_classes
    logits, feats = m(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    t = {"input_nhwc": x.detach().permute(0, 2, 3, 1), "labels": labels.double(), "logits": logits.detach(),
         "features": feats.detach(), "loss": loss.detach().reshape(1), "grad_input_nhwc": x.grad.permute(0, 2, 3, 1)}
    for pname, p in m.named_parameters():
        g = p.grad.detach().reshape(-1)
        if full_grads:
            t["grad." + pname] = p.grad.detach()
        else:  # summary: first 16 values, sum and L2 norm
            t["gradsum." + pname] = torch.cat([g[:16], g.sum().reshape(1), g.norm().reshape(1)])
    meta = {"depths": json.dumps(depths), "dims": json.dumps(dims), "in_chans": in_chans, "num_classes": num_classes,
            "stem_kernel": stem_kernel, "torch": torch.__version__, "dtype": "computed in float64, stored as F32"}
    write_safetensors(os.path.join(OUT, name + ".safetensors"), t, meta)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make("golden_small", 3, 5, [1, 1, 2, 1], [8, 16, 24, 32], 32, 2, True)
    make("golden_small_stem2", 1, 10, [1, 1, 1, 1], [8, 16, 16, 24], 32, 2, True, stem_kernel=2)
    # 28x28 with a 2x2 stem: 14, 7, 3, 1 (PyTorch's strided convs drop the odd row/column)
    make("golden_small_stem2_28", 1, 10, [1, 1, 1, 1], [8, 16, 16, 24], 28, 2, True, stem_kernel=2)
    make("golden_atto32", 3, 10, [2, 2, 6, 2], [40, 80, 160, 320], 32, 2, False)
    make("golden_atto64", 3, 10, [2, 2, 6, 2], [40, 80, 160, 320], 64, 1, False)
