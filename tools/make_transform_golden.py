#!/usr/bin/python3
"""Golden outputs for tests/data_pipeline/transforms.test.cpp, made with Pillow (Debian python3-pil).

Writes small PNG fixtures under tests/data/transforms/:
  input.png                 64x48 RGB pattern (deterministic)
  resize_20x15.png          input.resize((20, 15), BICUBIC)      (antialiased downscale)
  resize_90x70.png          input.resize((90, 70), BICUBIC)      (upscale)
  resize_bilinear_25x19.png input.resize((25, 19), BILINEAR)
  eval_24.png               torchvision eval transform, size 24, crop_pct 0.875: Resize(27) then
                            CenterCrop(24) — reproduced here with Pillow exactly as torchvision does
                            (long side int(27 * long / short), crop offsets round((h - 24) / 2)).
  gray.png / gray_rgb.png   an 8-bit grayscale PNG and its convert("RGB")
  palette.png / palette_rgb.png  a palette PNG and its convert("RGB")
Tolerance used by the tests: max abs diff <= 1 on uint8.
"""
import os
from PIL import Image

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "transforms")
os.makedirs(out, exist_ok=True)

W, H = 64, 48
img = Image.new("RGB", (W, H))
seed = 12345
px = []
for y in range(H):
    for x in range(W):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        r = (x * 7 + y * 3) % 256
        g = 255 if (x // 8 + y // 8) % 2 else 0
        b = (seed >> 16) & 0xFF
        px.append((r, g, b))
img.putdata(px)
img.save(os.path.join(out, "input.png"))

img.resize((20, 15), Image.BICUBIC).save(os.path.join(out, "resize_20x15.png"))
img.resize((90, 70), Image.BICUBIC).save(os.path.join(out, "resize_90x70.png"))
img.resize((25, 19), Image.BILINEAR).save(os.path.join(out, "resize_bilinear_25x19.png"))

size, crop_pct = 24, 0.875
short = int(size / crop_pct)
w, h = img.size
if w <= h:
    ow, oh = short, int(short * h / w)
else:
    oh, ow = short, int(short * w / h)
r = img.resize((ow, oh), Image.BICUBIC)
top = int(round((oh - size) / 2.0))
left = int(round((ow - size) / 2.0))
r.crop((left, top, left + size, top + size)).save(os.path.join(out, "eval_24.png"))

gray = img.convert("L")
gray.save(os.path.join(out, "gray.png"))
gray.convert("RGB").save(os.path.join(out, "gray_rgb.png"))
pal = img.convert("P", palette=Image.ADAPTIVE, colors=16)
pal.save(os.path.join(out, "palette.png"))
pal.convert("RGB").save(os.path.join(out, "palette_rgb.png"))
print("wrote", sorted(os.listdir(out)))
