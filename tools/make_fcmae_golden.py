#!/usr/bin/python3
"""Writes the FCMAE (masked autoencoder) golden fixtures tests/data/fcmae_golden_*.safetensors:
loss, encoder output, prediction and every parameter gradient, computed in float64 with the
dense-masked emulation of SPEC.md §3.4 (numerically identical to the official submanifold sparse
encoder) and stored as F32.

Run by hand with Debian's PyTorch:  /usr/bin/python3 tools/make_fcmae_golden.py
Never run in CI. Parameters are golden_param_value(full_name, shape, flat_index) from make_golden.py
(encoder names carry the "encoder." prefix), so the C++ test regenerates them instead of reading them.

Definition (what the C++ side implements), m_k = stage-k mask (N,1,Hk,Wk), v_k = 1 - m_k:
  encoder  x = LN_cf(stem(img)) * v_0
           stage i: if i > 0: x = conv2x2(LN_cf(x)) * v_i
                    block: y = dwconv(x * v_i) * v_i -> NHWC -> LN -> pwconv1 -> GELU(erf)
                           GRN: Gx = ||y * v_i||_2 over (H,W) per (n, channel),
                                Nx = Gx / (mean_c Gx + 1e-6), y = gamma*(y*Nx) + beta + y
                           -> pwconv2 -> NCHW; x = r + y * v_i
  decoder  z = proj(e) * v_3 + mask_token * m_3; z = Block(z) (dense, GRN over the whole g x g map);
           pred = pred_conv(z)  (N, P, g, g), P = p*p*C, p = stem_kernel * 8
  target   patch l = i*g + j, element (py*p + px)*C + c; norm-pix with unbiased variance, eps 1e-6
  loss     e_l = mean_P (pred - target)^2, loss = sum(e * mask) / sum(mask)
Stage-k mask = grid mask repeated x2^(3-k) (nearest) along H and W.

Masks (row-major l = row*g + col, 1 = masked, 0 = visible, g = 4, 6 visible of 16):
  fcmae_golden_small, sample 0: visible {1, 3, 5, 6, 10, 11}   grid  M V M V
                                                                      M V V M
                                                                      M M V V
                                                                      M M M M
      (whole first column 0,4,8,12 and whole last row 12..15 masked)
  fcmae_golden_small, sample 1: visible {0, 3, 5, 6, 9, 11}    grid  V M M V
                                                                      M V V M
                                                                      M V M V
                                                                      M M M M
      (whole last row masked in BOTH samples: the MinkowskiEngine dense() border pitfall, SPEC §3.4)
  fcmae_golden_stem2, sample 0: visible {1, 4, 6, 9, 11, 14}   grid  M V M M
                                                                      V M V M
                                                                      M V M V
                                                                      M M V M
Sanity checks printed on every run: (a) the loss of pred == 0 is (P-1)/P up to the eps;
(b) changing the input pixels inside masked patches leaves encoder_out_nhwc unchanged (asserted).
"""
import json, math, os, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import Block, LayerNormCF, GRN, golden_param_value, write_safetensors  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
MASK_RATIO = 0.6


class Encoder(nn.Module):  # ConvNeXt V2 without final norm / head, official dense names
    def __init__(self, in_chans, depths, dims, stem_kernel):
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(nn.Conv2d(in_chans, dims[0], stem_kernel, stride=stem_kernel), LayerNormCF(dims[0])))
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(LayerNormCF(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2)))
        self.stages = nn.ModuleList(nn.Sequential(*[Block(dims[i]) for _ in range(depths[i])]) for i in range(4))


def masked_block(blk, x, v):
    """SPEC §3.4 dense emulation of one sparse block; v = visible map (N,1,H,W)."""
    r = x
    y = blk.dwconv(x * v) * v
    y = y.permute(0, 2, 3, 1)
    y = blk.act(blk.pwconv1(blk.norm(y)))
    vh = v.permute(0, 2, 3, 1)                                     # (N,H,W,1)
    gx = torch.norm(y * vh, p=2, dim=(1, 2), keepdim=True)         # statistics from masked tensor
    nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
    y = blk.grn.gamma * (y * nx) + blk.grn.beta + y                 # output formula on un-zeroed y
    y = blk.pwconv2(y).permute(0, 3, 1, 2)
    return r + y * v


class FCMAE(nn.Module):
    def __init__(self, in_chans, depths, dims, stem_kernel, decoder_dim, decoder_depth):
        super().__init__()
        self.encoder = Encoder(in_chans, depths, dims, stem_kernel)
        self.patch = stem_kernel * 8
        self.in_chans = in_chans
        P = self.patch * self.patch * in_chans
        self.proj = nn.Conv2d(dims[-1], decoder_dim, 1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_dim, 1, 1))
        self.decoder = nn.Sequential(*[Block(decoder_dim) for _ in range(decoder_depth)])
        self.pred = nn.Conv2d(decoder_dim, P, 1)

    def stage_masks(self, mask, g):
        """mask (N, L) -> list of 4 masked maps m_k (N,1,g*2^(3-k),g*2^(3-k))."""
        m = mask.view(-1, 1, g, g)
        return [m.repeat_interleave(2 ** (3 - k), 2).repeat_interleave(2 ** (3 - k), 3) for k in range(4)]

    def encode(self, img, mask, g):
        ms = self.stage_masks(mask, g)
        vs = [1.0 - m for m in ms]
        enc = self.encoder
        x = enc.downsample_layers[0](img) * vs[0]
        for i in range(4):
            if i > 0:
                x = enc.downsample_layers[i](x) * vs[i]
            for blk in enc.stages[i]:
                x = masked_block(blk, x, vs[i])
        return x, ms

    def forward(self, img, mask):
        g = img.shape[2] // self.patch
        e, ms = self.encode(img, mask, g)
        z = self.proj(e)
        z = z * (1.0 - ms[3]) + self.mask_token * ms[3]
        z = self.decoder(z)
        pred = self.pred(z)                                         # (N, P, g, g)
        return e, pred


def patchify(img, p):
    n, c, h, w = img.shape
    g = h // p
    t = img.reshape(n, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1)     # n, i, j, py, px, c
    return t.reshape(n, g * g, p * p * c)


def fcmae_loss(pred, img, mask, p):
    """pred (N,P,g,g); norm-pix targets (unbiased var, eps 1e-6); mean over masked patches."""
    n, P = pred.shape[0], pred.shape[1]
    target = patchify(img, p)
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True, unbiased=True)
    target = (target - mean) / (var + 1e-6) ** 0.5
    pr = pred.permute(0, 2, 3, 1).reshape(n, -1, P)
    e = ((pr - target) ** 2).mean(dim=-1)
    return (e * mask).sum() / mask.sum()


def fill_params(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = torch.tensor([golden_param_value(name, list(p.shape), i) for i in range(p.numel())], dtype=torch.float64)
            p.copy_(flat.view(p.shape).to(p.dtype))


def mask_from_visible(visible_lists, L):
    m = torch.ones(len(visible_lists), L, dtype=torch.float64)
    for n, vis in enumerate(visible_lists):
        m[n, list(vis)] = 0.0
    return m


def formula_input(batch, in_chans, side):
    """Input of the compact fixture, regenerated by the C++ test: NHWC element i = 1.3·sin(0.37·i + 0.1)."""
    n = batch * side * side * in_chans
    v = torch.tensor([1.3 * math.sin(0.37 * i + 0.1) for i in range(n)], dtype=torch.float64)
    return v.view(batch, side, side, in_chans).permute(0, 3, 1, 2).contiguous()


def make(name, in_chans, depths, dims, stem_kernel, side, batch, decoder_dim, decoder_depth, visible, compact=False):
    """compact: the input comes from formula_input() and is not stored, nor is pred_nhwc (size)."""
    torch.manual_seed(0)
    p = stem_kernel * 8
    g = side // p
    L = g * g
    P = p * p * in_chans
    keep = int(math.floor(L * (1 - MASK_RATIO)))
    model = FCMAE(in_chans, depths, dims, stem_kernel, decoder_dim, decoder_depth).double()
    fill_params(model)
    mask = mask_from_visible(visible, L)
    assert mask.shape == (batch, L) and all(int((1 - mask[n]).sum()) == keep for n in range(batch)), "bad mask"
    x = formula_input(batch, in_chans, side) if compact else torch.randn(batch, in_chans, side, side, dtype=torch.float64)

    e, pred = model(x, mask)
    loss = fcmae_loss(pred, x, mask, p)
    loss.backward()
    print(f"{name}: P={P} g={g} loss={loss.item():.10f}")

    # (a) pred == 0 -> every e_l = (P-1)/P * var/(var+eps) ~ (P-1)/P
    with torch.no_grad():
        l0 = fcmae_loss(torch.zeros_like(pred), x, mask, p).item()
    print(f"  check (a): loss(pred=0) = {l0:.8f}, (P-1)/P = {(P - 1) / P:.8f}")
    assert abs(l0 - (P - 1) / P) < 1e-4

    # (b) pixels inside masked patches must not reach the encoder output
    with torch.no_grad():
        pix_mask = mask.view(batch, 1, g, g).repeat_interleave(p, 2).repeat_interleave(p, 3)
        x2 = x + pix_mask * (3.0 * torch.randn_like(x) + 1.0)
        e2, _ = model.encode(x2, mask, g)
        diff = (e2 - e).abs().max().item()
        m3 = mask.view(batch, 1, g, g)
        zero_at_masked = (e * m3).abs().max().item()
    print(f"  check (b): max |enc(x) - enc(x with masked pixels changed)| = {diff:.3e}; max |enc| at masked cells = {zero_at_masked:.1e}")
    assert diff < 1e-12 and zero_at_masked == 0.0

    t = {"input_nhwc": x.permute(0, 2, 3, 1), "mask": mask, "loss": loss.detach().reshape(1),
         "encoder_out_nhwc": e.detach().permute(0, 2, 3, 1), "pred_nhwc": pred.detach().permute(0, 2, 3, 1)}
    if compact:
        del t["input_nhwc"], t["pred_nhwc"]
    for pname, prm in model.named_parameters():
        assert prm.grad is not None, pname
        t["grad." + pname] = prm.grad.detach()
    meta = {"depths": json.dumps(depths), "dims": json.dumps(dims), "in_chans": in_chans, "stem_kernel": stem_kernel,
            "side": side, "patch_size": p, "decoder_dim": decoder_dim, "decoder_depth": decoder_depth,
            "mask_ratio": "0.6", "torch": torch.__version__, "dtype": "computed in float64, stored as F32"}
    write_safetensors(os.path.join(OUT, name + ".safetensors"), t, meta)
    print("  tensors:", " ".join(sorted(t)))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make("fcmae_golden_small", 3, [1, 1, 2, 1], [8, 16, 24, 32], 4, 128, 2, 16, 1,
         visible=[[1, 3, 5, 6, 10, 11], [0, 3, 5, 6, 9, 11]], compact=True)
    make("fcmae_golden_stem2", 1, [1, 1, 1, 1], [8, 16, 16, 24], 2, 64, 1, 16, 1,
         visible=[[1, 4, 6, 9, 11, 14]])
