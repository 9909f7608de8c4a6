#!/usr/bin/python3
"""Writes the small seed corpora of the fuzz targets that do not need the library: images
(JPEG/PNG variants the decoder must handle; the first byte of each image seed is the fuzz
target's option byte). Files named review_* are hostile inputs written for the security review
(each was checked to be rejected cleanly); crash_* files are inputs the fuzzer found, IDX files (plain and gzip), float32 .npy files, recipes, and a few
hand-made safetensors files. Run with Debian's python3 (numpy, PIL): fuzz/make_seeds.py fuzz/corpus
(build/fuzz/fuzz_make_seeds writes the model-dependent safetensors and checkpoint seeds)."""
import gzip, io, json, os, struct, sys

import numpy as np
from PIL import Image

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
rng = np.random.default_rng(0)


def put(sub, name, data):
    os.makedirs(os.path.join(out, sub), exist_ok=True)
    with open(os.path.join(out, sub, name), "wb") as f:
        f.write(data)


# ---- images: [option byte] + file
def img_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()

rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), "RGB")
gray = rgb.convert("L")
seeds = {
    "rgb_baseline.jpg": img_bytes(rgb, "JPEG", quality=80),
    "rgb_progressive.jpg": img_bytes(rgb, "JPEG", quality=60, progressive=True),
    "gray.jpg": img_bytes(gray, "JPEG", quality=70),
    "cmyk.jpg": img_bytes(rgb.convert("CMYK"), "JPEG", quality=70),
    "rgb444.jpg": img_bytes(rgb, "JPEG", quality=90, subsampling=0),
    "rgb.png": img_bytes(rgb, "PNG"),
    "gray.png": img_bytes(gray, "PNG"),
    "rgba.png": img_bytes(rgb.convert("RGBA"), "PNG"),
    "palette.png": img_bytes(rgb.convert("P"), "PNG"),
    "bilevel.png": img_bytes(gray.convert("1"), "PNG"),
    "gray16.png": img_bytes(Image.fromarray((np.asarray(gray).astype(np.uint16) * 257), "I;16"), "PNG"),
    "optimized.png": img_bytes(rgb, "PNG", optimize=True),
}
for i, (name, data) in enumerate(sorted(seeds.items())):
    put("image", name, bytes([(i * 37) & 0xFF]) + data)
# big dimensions, little data: must be rejected before allocating
w = h = 2000  # 4 MP: within the fuzz target's pixel limit, so the compressed-size check must reject it
ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
import zlib
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
put("image", "review_png_2000x2000_in_70_bytes.png", b"\x00" + png)


# ---- IDX (images 2051 and labels 2049), plain and gzip
def idx(magic_type, dims, data):
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)

imgs = idx(8, [2, 28, 28], rng.integers(0, 256, 2 * 28 * 28, dtype=np.uint8))
labs = idx(8, [5], [0, 3, 9, 1, 2])
put("idx", "images_2x28x28", imgs)
put("idx", "labels_5", labs)
put("idx", "images_2x28x28.gz", gzip.compress(imgs, mtime=0))
put("idx", "labels_5.gz", gzip.compress(labs, mtime=0))
put("idx", "review_huge_dims", idx(8, [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""))
put("idx", "review_claims_16GiB", idx(8, [1 << 20, 128, 128], b"\1\2\3"))


# ---- .npy float32
def npy(arr, version=(1, 0), fortran=False):
    b = io.BytesIO()
    np.lib.format.write_array(b, np.asfortranarray(arr) if fortran else arr, version=version)
    return b.getvalue()

a = rng.standard_normal((2, 3, 4)).astype(np.float32)
put("npy", "f4_2x3x4_v1.npy", npy(a))
put("npy", "f4_2x3x4_v2.npy", npy(a, (2, 0)))
put("npy", "f4_fortran_3x4.npy", npy(a[0].T.copy(), fortran=True))
put("npy", "f4_bigendian.npy", npy(a[1].astype(">f4")))
put("npy", "f4_scalar.npy", npy(np.float32(1.5)))
put("npy", "f4_empty.npy", npy(np.zeros((0, 3), np.float32)))
put("npy", "f8_rejected.npy", npy(a[0].astype(np.float64)))
hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }"
hdr += b" " * (63 - len(hdr) % 64) + b"\n"
put("npy", "review_huge_shape.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr + b"\0" * 8)
put("npy", "review_header_len_4GiB.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"{")


# ---- recipes: the shipped configs and a few edge cases; the fuzz target also reads a
# "key=value" override from the first line
cfg_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "configs")
for n in sorted(os.listdir(cfg_dir)):
    if n.endswith(".json"):
        with open(os.path.join(cfg_dir, n), "rb") as f:
            put("recipe", n, f.read())
put("recipe", "override_lr.txt", b"lr=1e-3\n")
put("recipe", "override_depths.txt", b"depths=[1,1,2,1]\n")
put("recipe", "review_lr_inf.txt", b"lr=1e999\n")
put("recipe", "review_batch_huge.json", json.dumps({"model": "convnextv2_atto", "batch_size": 2147483647}).encode())
put("recipe", "comments.json", b'// comment\n{"_note": "x", "model": "convnextv2_atto", /* c */ "lr": 0.001, "scale": [0.5, 1.0]}')


# ---- hand-made safetensors (the README test vector, every float dtype, metadata)
def st(tensors, meta=None):
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)

put("safetensors", "readme_test_vector.safetensors", st({"test": ("I32", [2, 2], bytes(16))}))
put("safetensors", "dtypes.safetensors", st({
    "a": ("F16", [3], np.array([1, -2, 65504], np.float16).tobytes()),
    "b": ("BF16", [2], (np.array([1.0, -3.5], np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()),
    "c": ("F64", [2, 1], np.array([[1e300], [-0.0]], np.float64).tobytes()),
    "d": ("F32", [], np.array(2.5, np.float32).tobytes()),
    "e": ("U8", [0, 4], b""),
}, {"format": "convnextv2-cpp/checkpoint-v1", "epochs_done": "1"}))
h = b'{"x":{"dtype":"F32","shape":[4294967296,4294967296,1024],"data_offsets":[0,0]}}'
put("safetensors", "review_shape_overflow.safetensors", struct.pack("<Q", len(h)) + h)
h = b'{"stages.0.0.dwconv.kernel":{"dtype":"F32","shape":[9223372036854775807,0],"data_offsets":[0,0]}}'
put("safetensors", "review_sparse_kernel_huge_k2.safetensors", struct.pack("<Q", len(h)) + h)  # exact_sqrt looped ~3e9 times
