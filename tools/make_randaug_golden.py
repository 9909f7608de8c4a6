#!/usr/bin/python3
"""Golden outputs for tests/data_pipeline/rand_augment.test.cpp, made with Pillow (Debian python3-pil).

Run with Debian's interpreter: /usr/bin/python3 tools/make_randaug_golden.py

Each RandAugment op of timm (timm/data/auto_augment.py, rand-m9-mstd0.5-inc1 and the plain
variants) is re-implemented here exactly as timm writes it -- the same PIL calls (ImageOps,
ImageEnhance, Image.transform AFFINE, Image.rotate) and the same level-to-argument functions --
without importing timm (not installed). Every op is applied at a fixed magnitude and sign to
tests/data/transforms/input.png (64x48, written by make_transform_golden.py) and saved as
tests/data/transforms/randaug/<Op>_m<magnitude>_<pos|neg>[_bilinear].png (plus a low-contrast
input for AutoContrast and Equalize, see the end).

fill colour: timm's img_mean for the ImageNet mean, (124, 116, 104); resample: bicubic (the
official recipe) and, for the geometric ops, also bilinear.
"""
import math
import os

from PIL import Image, ImageEnhance, ImageOps

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "tests", "data", "transforms", "input.png")
out = os.path.join(here, "..", "tests", "data", "transforms", "randaug")
os.makedirs(out, exist_ok=True)

FILL = tuple(min(255, round(255 * x)) for x in (0.485, 0.456, 0.406))
assert FILL == (124, 116, 104)
LEVEL_DENOM = 10.0


# ---- timm's op functions (auto_augment.py), PIL >= 5.2 branches
def shear_x(img, factor, **kw):
    return img.transform(img.size, Image.AFFINE, (1, factor, 0, 0, 1, 0), **kw)


def shear_y(img, factor, **kw):
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, factor, 1, 0), **kw)


def translate_x_rel(img, pct, **kw):
    pixels = pct * img.size[0]
    return img.transform(img.size, Image.AFFINE, (1, 0, pixels, 0, 1, 0), **kw)


def translate_y_rel(img, pct, **kw):
    pixels = pct * img.size[1]
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, pixels), **kw)


def rotate(img, degrees, **kw):
    return img.rotate(degrees, **kw)


def auto_contrast(img, **__):
    return ImageOps.autocontrast(img)


def invert(img, **__):
    return ImageOps.invert(img)


def equalize(img, **__):
    return ImageOps.equalize(img)


def solarize(img, thresh, **__):
    return ImageOps.solarize(img, thresh)


def solarize_add(img, add, thresh=128, **__):
    lut = []
    for i in range(256):
        if i < thresh:
            lut.append(min(255, i + add))
        else:
            lut.append(i)
    return img.point(lut + lut + lut)


def posterize(img, bits_to_keep, **__):
    if bits_to_keep >= 8:
        return img
    return ImageOps.posterize(img, bits_to_keep)


def contrast(img, factor, **__):
    return ImageEnhance.Contrast(img).enhance(factor)


def color(img, factor, **__):
    return ImageEnhance.Color(img).enhance(factor)


def brightness(img, factor, **__):
    return ImageEnhance.Brightness(img).enhance(factor)


def sharpness(img, factor, **__):
    return ImageEnhance.Sharpness(img).enhance(factor)


# ---- timm's level_to_arg functions; `neg` replaces _randomly_negate's coin
def neg_if(v, neg):
    return -v if neg else v


def rotate_arg(level, neg):
    return (neg_if((level / LEVEL_DENOM) * 30.0, neg),)


def enhance_arg(level, neg):
    return ((level / LEVEL_DENOM) * 1.8 + 0.1,)


def enhance_increasing_arg(level, neg):
    level = (level / LEVEL_DENOM) * 0.9
    return (max(0.1, 1.0 + neg_if(level, neg)),)


def shear_arg(level, neg):
    return (neg_if((level / LEVEL_DENOM) * 0.3, neg),)


def translate_rel_arg(level, neg):
    return (neg_if((level / LEVEL_DENOM) * 0.45, neg),)


def posterize_arg(level, neg):
    return (int((level / LEVEL_DENOM) * 4),)


def posterize_increasing_arg(level, neg):
    return (4 - posterize_arg(level, neg)[0],)


def solarize_arg(level, neg):
    return (min(256, int((level / LEVEL_DENOM) * 256)),)


def solarize_increasing_arg(level, neg):
    return (256 - solarize_arg(level, neg)[0],)


def solarize_add_arg(level, neg):
    return (min(128, int((level / LEVEL_DENOM) * 110)),)


OPS = {
    "AutoContrast": (auto_contrast, None, False),
    "Equalize": (equalize, None, False),
    "Invert": (invert, None, False),
    "Rotate": (rotate, rotate_arg, True),
    "Posterize": (posterize, posterize_arg, False),
    "PosterizeIncreasing": (posterize, posterize_increasing_arg, False),
    "Solarize": (solarize, solarize_arg, False),
    "SolarizeIncreasing": (solarize, solarize_increasing_arg, False),
    "SolarizeAdd": (solarize_add, solarize_add_arg, False),
    "Color": (color, enhance_arg, False),
    "ColorIncreasing": (color, enhance_increasing_arg, True),
    "Contrast": (contrast, enhance_arg, False),
    "ContrastIncreasing": (contrast, enhance_increasing_arg, True),
    "Brightness": (brightness, enhance_arg, False),
    "BrightnessIncreasing": (brightness, enhance_increasing_arg, True),
    "Sharpness": (sharpness, enhance_arg, False),
    "SharpnessIncreasing": (sharpness, enhance_increasing_arg, True),
    "ShearX": (shear_x, shear_arg, True),
    "ShearY": (shear_y, shear_arg, True),
    "TranslateXRel": (translate_x_rel, translate_rel_arg, True),
    "TranslateYRel": (translate_y_rel, translate_rel_arg, True),
}
GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}


def apply(img, name, magnitude, neg, resample):
    fn, level_fn, _ = OPS[name]
    args = level_fn(magnitude, neg) if level_fn else ()
    return fn(img, *args, fillcolor=FILL, resample=resample)


img = Image.open(src).convert("RGB")
assert img.size == (64, 48)
written = []
for name, (_, _, signed) in OPS.items():
    cases = [(9, False, Image.BICUBIC, "")]
    if signed:
        cases.append((9, True, Image.BICUBIC, ""))
    if name in GEOMETRIC:
        cases.append((9, False, Image.BILINEAR, "_bilinear"))
        cases.append((6.5, True, Image.BICUBIC, ""))
    for magnitude, neg, resample, suffix in cases:
        m = ("%g" % magnitude).replace(".", "p")
        fname = "%s_m%s_%s%s.png" % (name, m, "neg" if neg else "pos", suffix)
        apply(img, name, magnitude, neg, resample).save(os.path.join(out, fname), optimize=True)
        written.append(fname)
# input.png already spans 0..255 in every channel, where AutoContrast is the identity: also a
# low-contrast copy (60 + v // 3), with AutoContrast and Equalize applied to it.
low = img.point(lambda v: 60 + v // 3)
low.save(os.path.join(out, "low_contrast.png"), optimize=True)
written.append("low_contrast.png")
for name in ("AutoContrast", "Equalize"):
    fname = "%s_low_contrast.png" % name
    apply(low, name, 9, False, Image.BICUBIC).save(os.path.join(out, fname), optimize=True)
    written.append(fname)
print("wrote %d files, %d bytes" % (len(written), sum(os.path.getsize(os.path.join(out, f)) for f in written)))
