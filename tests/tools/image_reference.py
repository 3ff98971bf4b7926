#!/usr/bin/env python3
"""Reference data for tests/test_images.cpp: what PIL + numpy (the Python stack Phantom's checkpoints were trained
with) produce, written to files the C++ test compares against.

  image_reference.py grids  OUT.json   # tile grids InternVL's find_closest_aspect_ratio picks, for a sweep of sizes
  image_reference.py resize DIR        # structured images and PIL's Image.resize(BICUBIC) of them, raw RGB
  image_reference.py files  DIR        # test images in every format (written by PIL) + PIL's decode + final tiles
  image_reference.py concat DIR        # Phantom's concat_images_horizontally_with_margin on four images

Raw files: uint8 RGB rows (.rgb) or little-endian float32 (.f32), shapes in DIR/manifest.json.
torchvision is not installed: ToTensor and Normalize are re-implemented below with the same float32 arithmetic.
"""
import json
import struct
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# ---- InternVL / Phantom, as the official code does it (utils/utils.py of ByungKwanLee/Phantom) ----------------
def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def target_ratios(min_num, max_num):
    # A set, then a sort by product: the order within one product is the set's (hash) order, as upstream.
    ratios = set((i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                 if min_num <= i * j <= max_num)
    return sorted(ratios, key=lambda x: x[0] * x[1])


def choose_grid(width, height, max_num, image_size, min_num=1):
    return find_closest_aspect_ratio(width / height, target_ratios(min_num, max_num), width, height, image_size)


def dynamic_preprocess(image, min_num=1, max_num=6, image_size=448, use_thumbnail=True):
    w, h = image.size
    cols, rows = choose_grid(w, h, max_num, image_size, min_num)
    resized = image.resize((image_size * cols, image_size * rows))  # PIL's default filter (BICUBIC for RGB)
    tiles = []
    for i in range(cols * rows):
        x, y = (i % cols) * image_size, (i // cols) * image_size
        tiles.append(resized.crop((x, y, x + image_size, y + image_size)))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles, (cols, rows)


def dynamic_transform(tile, image_size):
    """T.Resize((s, s), BICUBIC) + T.ToTensor() + T.Normalize(IMAGENET): float32 CHW."""
    if tile.size != (image_size, image_size):
        tile = tile.resize((image_size, image_size), Image.BICUBIC)
    x = np.asarray(tile, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)  # ToTensor
    return (x - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]  # Normalize: sub_(mean).div_(std)


def concat_images_horizontally_with_margin(images, margin=10):
    max_height = max(im.height for im in images)
    total_width = sum(im.width for im in images) + margin * (len(images) - 1)
    out = Image.new("RGB", (total_width, max_height), (0, 0, 0))
    x = 0
    for im in images:
        out.paste(im, (x, (max_height - im.height) // 2))
        x += im.width + margin
    return out


# ---- synthetic images with structure ---------------------------------------------------------------------------
def synthetic(width, height, seed):
    """Gradients, a noise block, 1-px lines, a checkerboard and text-like strokes: every resampling regime."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.empty((height, width, 3), np.float64)
    img[..., 0] = 255 * x / max(width - 1, 1)
    img[..., 1] = 255 * y / max(height - 1, 1)
    img[..., 2] = 127.5 + 127.5 * np.sin((x + 2 * y) / 7.0 + seed)
    noise = rng.integers(0, 256, size=(height, width, 3))
    block = (x < width / 2) & (y >= height / 2)
    img[block] = noise[block]
    checker = ((x // 3 + y // 3) % 2 == 0) & (x >= width * 3 / 4) & (y < height / 3)
    img[checker] = 255
    img[(x.astype(int) % 11 == 5) & (y < height / 2)] = 0  # vertical hairlines
    for _ in range(max(1, width * height // 4000)):  # "glyphs": short dark strokes on the right half
        cx, cy = rng.integers(width // 2, width), rng.integers(0, height)
        l = rng.integers(2, 12)
        if rng.random() < 0.5:
            img[cy:cy + 2, cx:cx + l] = (10, 10, 30)
        else:
            img[cy:cy + l, cx:cx + 2] = (240, 240, 200)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_png16(path, array, color_type):
    """A minimal 16-bit PNG writer (PIL cannot write 16-bit RGB/RGBA): array (h, w[, c]) uint16."""
    h, w = array.shape[:2]
    rows = array.reshape(h, -1).astype(">u2").tobytes()
    stride = len(rows) // h
    raw = b"".join(b"\x00" + rows[r * stride:(r + 1) * stride] for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6))
                           + chunk(b"IEND", b""))


# ---- commands --------------------------------------------------------------------------------------------------
def cmd_grids(out):
    sizes = set()
    for w in list(range(1, 40)) + list(range(40, 3000, 53)):
        for h in list(range(1, 40, 3)) + list(range(40, 3000, 61)):
            sizes.add((w, h))
    for k in range(1, 7):  # 448*k multiples and the (1,1)-vs-(2,2) area threshold for square images
        for a in range(1, 7):
            sizes.add((448 * k, 448 * a))
    for s in range(625, 640):
        sizes.add((s, s))
    for s in (896, 1344, 1345):
        sizes.add((s, s))
    cases = []
    for max_num in (1, 2, 6, 12):
        cands = target_ratios(1, max_num)
        extra = set()
        # exact ties: an aspect ratio halfway between two candidates' ratios, at areas below and above the
        # threshold 0.5*448^2*i*j that lets the later grid win
        for a in cands:
            for b in cands:
                if a >= b:
                    continue
                m = (Fraction(a[0], a[1]) + Fraction(b[0], b[1])) / 2
                p, q = m.numerator, m.denominator
                for k in (1, 2, 3, 5, 8, 13, 50, 200, 400, 600):
                    if p * k <= 20000 and q * k <= 20000:
                        extra.add((p * k, q * k))
                # same ratio (e.g. 1:1 vs 2:2): sizes around the area threshold
                if a[0] * b[1] == a[1] * b[0]:
                    for s in range(1, 4000, 7):
                        extra.add((a[0] * s, a[1] * s))
        for w, h in sorted(sizes | extra):
            g = choose_grid(w, h, max_num, 448)
            cases.append({"w": w, "h": h, "max_num": max_num, "grid": list(g)})
    orders = {str(m): [list(r) for r in target_ratios(1, m)] for m in range(1, 13)}
    Path(out).write_text(json.dumps({"tile": 448, "cases": cases, "candidates": orders}))


def cmd_resize(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources = [(1, 1), (1, 5), (6, 1), (2, 3), (7, 13), (31, 17), (100, 2), (3, 100), (97, 61), (448, 448),
               (640, 480), (1023, 767), (1500, 401), (333, 1201)]
    common = [(1, 1), (1, 9), (9, 1), (3, 2), (13, 7), (64, 64), (112, 336), (448, 448)]
    cases = []
    for si, (w, h) in enumerate(sources):
        src = synthetic(w, h, seed=si)
        sname = f"src_{w}x{h}.rgb"
        (out / sname).write_bytes(src.tobytes())
        targets = list(common)
        # related sizes: up 2x+1 / 3x, down to a third / half, one axis kept (PIL skips that pass), 1-px edges
        targets += [(2 * w + 1, 3 * h), (max(1, w // 3), max(1, (h + 1) // 2)), (w, max(1, h // 2 + 3)),
                    (w + 5, h), (1, h), (w, 1)]
        if w * h > 10000:
            targets += [(896, 448), (448, 1344), (1344, 448)]
        for tw, th in dict.fromkeys(targets):
            if tw * th > 3 * 448 * 448:
                continue
            dst = np.asarray(Image.fromarray(src).resize((tw, th)))  # the default filter, as InternVL calls it
            dname = f"dst_{w}x{h}_to_{tw}x{th}.rgb"
            (out / dname).write_bytes(dst.tobytes())
            cases.append({"src": sname, "w": w, "h": h, "dst": dname, "tw": tw, "th": th})
    (out / "manifest.json").write_text(json.dumps({"cases": cases}))


def cmd_files(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []

    def add(name, note="", max_num=6, tile=112):
        files.append({"file": name, "note": note, "max_num": max_num, "tile": tile})

    rgb = synthetic(301, 203, seed=7)
    im = Image.fromarray(rgb)
    im.save(out / "rgb.png"); add("rgb.png", "8-bit RGB PNG")
    im.convert("L").save(out / "gray.png"); add("gray.png", "8-bit grayscale PNG")
    im.convert("LA").save(out / "gray_alpha.png"); add("gray_alpha.png", "grayscale + alpha PNG")
    rgba = np.dstack([rgb, synthetic(301, 203, seed=8)[..., 0]])
    Image.fromarray(rgba).save(out / "rgba.png"); add("rgba.png", "RGBA PNG: alpha dropped, not composited")
    im.quantize(64).save(out / "palette.png"); add("palette.png", "palette PNG")
    pt = im.quantize(64)
    pt.info["transparency"] = 3
    pt.save(out / "palette_trns.png", transparency=3); add("palette_trns.png", "palette PNG with tRNS")
    im.convert("1").save(out / "bilevel.png"); add("bilevel.png", "1-bit PNG")
    r16 = rgb.astype(np.uint16) * 257 + np.arange(rgb.size, dtype=np.uint16).reshape(rgb.shape) % 200
    write_png16(out / "rgb16.png", r16, 2); add("rgb16.png", "16-bit RGB PNG")
    write_png16(out / "rgba16.png", np.dstack([r16, r16[..., :1]]), 6); add("rgba16.png", "16-bit RGBA PNG")
    write_png16(out / "gray16.png", r16[..., 1], 0); add("gray16.png", "16-bit grayscale PNG")
    # PIL's convert('RGB') of a 16-bit grayscale ("I;16") image clips every value >= 255 to white; we keep the
    # high byte instead, as PIL itself does for 16-bit RGB/RGBA. The expected decode is that, not PIL's.
    expected = {"gray16.png": Image.fromarray((r16[..., 1] >> 8).astype(np.uint8)).convert("RGB")}
    im.save(out / "q90.jpg", quality=90); add("q90.jpg", "JPEG 4:2:0 q90")
    im.save(out / "q95_444.jpg", quality=95, subsampling=0); add("q95_444.jpg", "JPEG 4:4:4 q95")
    im.save(out / "progressive.jpg", quality=85, progressive=True); add("progressive.jpg", "progressive JPEG")
    im.convert("L").save(out / "gray.jpg", quality=90); add("gray.jpg", "grayscale JPEG")
    im.convert("CMYK").save(out / "cmyk.jpg", quality=90); add("cmyk.jpg", "CMYK JPEG (Adobe)")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation "rotate 90 CW": PIL's Image.open ignores it, so must we
    im.save(out / "exif_rotated.jpg", quality=90, exif=exif); add("exif_rotated.jpg", "JPEG, EXIF orientation 6")
    im.save(out / "lossy.webp", quality=80); add("lossy.webp", "lossy WebP")
    im.save(out / "lossless.webp", lossless=True); add("lossless.webp", "lossless WebP")
    Image.fromarray(rgba).save(out / "rgba.webp", lossless=True); add("rgba.webp", "lossless WebP + alpha")
    im.save(out / "rgb.bmp"); add("rgb.bmp", "24-bit BMP")
    im.convert("L").save(out / "gray.bmp"); add("gray.bmp", "8-bit grayscale BMP")
    im.quantize(64).save(out / "palette.bmp"); add("palette.bmp", "8-bit palette BMP, 64 colours")
    im.convert("1").save(out / "bilevel.bmp"); add("bilevel.bmp", "1-bit BMP")
    Image.fromarray(rgba).save(out / "rgba.bmp"); add("rgba.bmp", "32-bit BMP: alpha dropped")
    Image.fromarray(synthetic(157, 911, seed=11)).save(out / "tall.png"); add("tall.png", "tall: 1x6 grid")
    Image.fromarray(synthetic(3, 2, seed=12)).save(out / "tiny.png"); add("tiny.png", "3x2 pixels: 3x2 grid")
    Image.fromarray(synthetic(90, 90, seed=13)).save(out / "square.png"); add("square.png", "1 tile, no thumbnail")
    # full-size tiles (448, Phantom's max_num 6), a wide and a square-ish image
    big = Image.fromarray(synthetic(1203, 517, seed=9))
    big.save(out / "wide.png"); add("wide.png", "wide, 448-px tiles", tile=448)
    Image.fromarray(synthetic(640, 480, seed=10)).save(out / "photo.jpg", quality=92)
    add("photo.jpg", "640x480 JPEG, 448-px tiles", tile=448)

    for f in files:
        img = Image.open(out / f["file"])
        f["pil_mode"] = img.mode
        img = img.convert("RGB")  # InternVL/Phantom: Image.open(path).convert('RGB')
        f["w"], f["h"] = img.size
        f["pil_decoded"] = f["file"] + ".pil.rgb"
        (out / f["pil_decoded"]).write_bytes(np.asarray(img).tobytes())
        f["decoded"] = f["pil_decoded"]
        if f["file"] in expected:  # a deliberate deviation from PIL: compare with the expected decode
            img = expected[f["file"]]
            f["decoded"] = f["file"] + ".expected.rgb"
            (out / f["decoded"]).write_bytes(np.asarray(img).tobytes())
        tiles, grid = dynamic_preprocess(img, 1, f["max_num"], f["tile"], True)
        f["grid"] = list(grid)
        f["n_tiles"] = len(tiles)
        x = np.stack([dynamic_transform(t, f["tile"]) for t in tiles]).astype("<f4")
        f["tensor"] = f["file"] + ".tiles.f32"
        (out / f["tensor"]).write_bytes(x.tobytes())
    (out / "manifest.json").write_text(json.dumps({"files": files}, indent=1))


def cmd_concat(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [(120, 80), (50, 131), (77, 77), (9, 10)]
    parts = []
    for i, (w, h) in enumerate(sizes):
        name = f"part{i}.rgb"
        a = synthetic(w, h, seed=20 + i)
        (out / name).write_bytes(a.tobytes())
        parts.append({"file": name, "w": w, "h": h})
    res = concat_images_horizontally_with_margin([Image.fromarray(synthetic(w, h, 20 + i))
                                                  for i, (w, h) in enumerate(sizes)], margin=10)
    (out / "concat.rgb").write_bytes(np.asarray(res).tobytes())
    (out / "manifest.json").write_text(json.dumps({"parts": parts, "margin": 10, "w": res.width, "h": res.height,
                                                   "file": "concat.rgb"}))


if __name__ == "__main__":
    commands = {"grids": cmd_grids, "resize": cmd_resize, "files": cmd_files, "concat": cmd_concat}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2])
