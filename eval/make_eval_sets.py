#!/usr/bin/env python3
"""Generate Ongi's two offline evaluation sets: a blur ladder and a duplicate set.

How to run
----------
    /var/tmp/pyvenv/bin/python eval/make_eval_sets.py /var/tmp/eval

The only argument is the output folder; it gets two sub-folders, ``blur/`` and
``dups/``, each with JPEGs and a ``labels.json``. The data is NOT committed:
regenerate it with this script. Everything is deterministic (there is no
randomness at all, every parameter is fixed), so the same package versions
give byte-identical files; the script prints a SHA-256 over all files written
so two runs can be compared.

Sources: natural photos bundled inside scikit-image (no download needed),
listed in ``SOURCES`` below. Each is converted to RGB and upscaled with
Lanczos to a phone-like long side of 1600 px. Most of them are small
(300-1000 px), so the upscale makes the "sharp" originals slightly soft;
sigma 0 therefore means "as sharp as the source allows", not "camera sharp".

1. ``blur/`` -- measuring blur detection.
   For every photo, Gaussian blur at sigma in {0, 1, 2, 3, 5, 8} (pixels of the
   1600-px image), saved as JPEG quality 90: ``blur/<name>_s<sigma>.jpg``.
   ``blur/labels.json``: ``{"<file>": {"source", "sigma", "blurry"}}`` with
   ``blurry = sigma >= 3``. Rule: sigma >= 3 at 1600 px is visibly blurry on a
   phone screen; sigma 2 is borderline and is deliberately labelled sharp.
   Use it for precision/recall of "blurry", and the detection rate per sigma.

2. ``dups/`` -- measuring duplicate grouping.
   For every photo: ``<name>__orig.jpg`` (q92) and the augmentations
   ``__reenc`` (the orig JPEG decoded and re-encoded at q70), ``__resize``
   (50 % downscale), ``__crop`` (5 % removed from each side, resized back),
   ``__bright`` (+20 %), ``__dark`` (-20 %), ``__rot`` (3 deg about the centre,
   reflective border, same size), all sharing group ``<name>``; plus one hard
   negative ``__other`` (a far-away crop of the same photo: the right-most 45 %
   of the width by 45 % of the height, vertically centred, resized up to the
   original size) in its OWN group ``<name>__other``: a different picture of the
   same scene, not a duplicate. ``dups/labels.json``:
   ``{"<file>": {"source", "group", "kind"}}``.
   Use it for pairwise precision/recall: every unordered pair of files is a
   positive iff both have the same ``group``.

Package versions used to produce the reference run (other versions may change
bytes, not the labels): Python 3, numpy 2.4.6, Pillow 13.0.0 (libjpeg-turbo
3.2.0), scikit-image 0.26.0, scipy 1.17.1, opencv-contrib-python-headless
5.0.0.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import PIL
import PIL.features
import scipy
import skimage
import skimage.data
from PIL import Image
from scipy.ndimage import gaussian_filter

# Natural photos shipped inside scikit-image (no pooch download). Skipped:
# horse (binary), colorwheel/logo/shepp_logan_phantom (synthetic), clock
# (already motion-blurred), text/page (tiny scans), retina/cell/microaneurysms
# (medical/microscopy, unlike album photos), and anything needing a download.
SOURCES = [
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "moon",
    "coins",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
]

LONG_SIDE = 1600
BLUR_SIGMAS = [0, 1, 2, 3, 5, 8]
BLURRY_FROM_SIGMA = 3
BLUR_QUALITY = 90
DUP_QUALITY = 92
REENC_QUALITY = 70
BRIGHT_FACTOR = 1.2
DARK_FACTOR = 0.8
ROT_DEGREES = 3.0
CROP_MARGIN = 0.05
OTHER_FRACTION = 0.45


def load_base(name: str) -> np.ndarray:
    """Bundled photo -> RGB uint8, Lanczos-upscaled to a 1600-px long side."""
    a = getattr(skimage.data, name)()
    if a.dtype != np.uint8:
        raise SystemExit(f"{name}: unexpected dtype {a.dtype}")
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    a = a[..., :3]
    h, w = a.shape[:2]
    scale = LONG_SIDE / max(h, w)
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(a).resize(size, Image.Resampling.LANCZOS))


def save_jpeg(a: np.ndarray | Image.Image, path: Path, quality: int) -> None:
    im = a if isinstance(a, Image.Image) else Image.fromarray(a)
    # Explicit settings so defaults drifting between Pillow versions don't matter;
    # 4:2:0 chroma subsampling as phone cameras use.
    im.save(path, "JPEG", quality=quality, subsampling=2, optimize=False, progressive=False)


def gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return a.copy()
    f = gaussian_filter(a.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect", truncate=4.0)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def scale_brightness(a: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(np.rint(a.astype(np.float64) * factor), 0, 255).astype(np.uint8)


def resize_to(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.LANCZOS))


def crop_resize(a: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    h, w = a.shape[:2]
    return resize_to(np.ascontiguousarray(a[y0:y1, x0:x1]), w, h)


def rotate(a: np.ndarray, degrees: float) -> np.ndarray:
    h, w = a.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), degrees, 1.0)
    return cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def clean(d: Path) -> None:
    """Remove what a previous run wrote here (only *.jpg and labels.json)."""
    d.mkdir(parents=True, exist_ok=True)
    for p in list(d.glob("*.jpg")) + [d / "labels.json"]:
        if p.is_file():
            p.unlink()


def write_labels(d: Path, labels: dict) -> None:
    text = json.dumps(labels, indent=2, sort_keys=True) + "\n"
    (d / "labels.json").write_text(text, encoding="utf-8")


def make_blur(base: dict[str, np.ndarray], d: Path) -> dict:
    labels = {}
    for name, a in base.items():
        for s in BLUR_SIGMAS:
            fname = f"{name}_s{s}.jpg"
            save_jpeg(gaussian_blur(a, s), d / fname, BLUR_QUALITY)
            labels[fname] = {"source": name, "sigma": s, "blurry": s >= BLURRY_FROM_SIGMA}
    write_labels(d, labels)
    return labels


def make_dups(base: dict[str, np.ndarray], d: Path) -> dict:
    labels = {}
    for name, a in base.items():
        h, w = a.shape[:2]

        def put(kind: str, img, quality: int = DUP_QUALITY, group: str = name) -> None:
            fname = f"{name}__{kind}.jpg"
            save_jpeg(img, d / fname, quality)
            labels[fname] = {"source": name, "group": group, "kind": kind}

        put("orig", a)
        with Image.open(d / f"{name}__orig.jpg") as im:
            put("reenc", im.convert("RGB"), quality=REENC_QUALITY)
        put("resize", resize_to(a, round(w * 0.5), round(h * 0.5)))
        mx, my = round(w * CROP_MARGIN), round(h * CROP_MARGIN)
        put("crop", crop_resize(a, mx, my, w - mx, h - my))
        put("bright", scale_brightness(a, BRIGHT_FACTOR))
        put("dark", scale_brightness(a, DARK_FACTOR))
        put("rot", rotate(a, ROT_DEGREES))
        # Hard negative: far-right window, same aspect ratio, zoomed back up.
        ow, oh = round(w * OTHER_FRACTION), round(h * OTHER_FRACTION)
        oy = (h - oh) // 2
        put("other", crop_resize(a, w - ow, oy, w, oy + oh), group=f"{name}__other")
    write_labels(d, labels)
    return labels


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} OUTPUT_DIR")
    t0 = time.perf_counter()
    out = Path(sys.argv[1])
    blur_dir, dups_dir = out / "blur", out / "dups"
    clean(blur_dir)
    clean(dups_dir)

    base = {name: load_base(name) for name in SOURCES}
    blur = make_blur(base, blur_dir)
    dups = make_dups(base, dups_dir)

    digest = hashlib.sha256()
    total = 0
    for p in sorted(list(blur_dir.iterdir()) + list(dups_dir.iterdir())):
        data = p.read_bytes()
        total += len(data)
        digest.update(p.relative_to(out).as_posix().encode() + b"\0" + data)

    n_blurry = sum(v["blurry"] for v in blur.values())
    n_groups = len({v["group"] for v in dups.values()})
    print(
        f"versions: numpy {np.__version__}, Pillow {PIL.__version__} "
        f"(libjpeg-turbo {PIL.features.version_feature('libjpeg_turbo')}), "
        f"scikit-image {skimage.__version__}, scipy {scipy.__version__}, opencv {cv2.__version__}"
    )
    print(f"sources ({len(SOURCES)}): {', '.join(SOURCES)}")
    print(f"blur/: {len(blur)} jpegs ({n_blurry} blurry, {len(blur) - n_blurry} sharp)")
    print(f"dups/: {len(dups)} jpegs in {n_groups} groups")
    print(f"total: {total / 1e6:.1f} MB in {out}")
    print(f"sha256: {digest.hexdigest()}")
    print(f"time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
