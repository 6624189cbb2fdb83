"""The synthetic task-1 sets written in the CUB-200-2011 layout: kites (synth.py) or birds (synth_birds.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..core.files import save_png_atomic
from .synth import make_kite_image
from .synth_birds import make_bird_image


def make_synthetic_cub(root: str | Path, n_images: int = 240, n_test: int = 60, image_size: int = 160,
                       seed: int = 0, category: str = "kite") -> Path:
    """Write a one-category CUB-200-2011 layout (images, boxes, split, 0/255 segmentations) to root.

    category: "kite" (random-polygon kites, below) or "bird" (part-structured birds, synth_birds.py). The box
    is the tight bounding box of the object mask. Test images are a seeded random subset. Files are
    overwritten; use data.resolve_dataset for an atomic, cached copy.
    """
    makers = {"kite": (make_kite_image, "001.Kite", "kite"), "bird": (make_bird_image, "001.Bird", "bird")}
    if category not in makers:
        raise ValueError(f"category={category!r}: expected one of {sorted(makers)}")
    make, folder, stem = makers[category]
    if n_images < 1 or not 0 <= n_test <= n_images:
        raise ValueError(f"n_images={n_images}, n_test={n_test}: expected n_images >= 1 and 0 <= n_test <= n_images")
    if image_size < 32:
        raise ValueError(f"image_size={image_size}: expected at least 32 pixels")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    test = set(np.random.default_rng([seed, 1 << 20]).permutation(n_images)[:n_test].tolist())
    names, boxes, split = [], [], []
    for i in range(n_images):
        img, mask = make(np.random.default_rng([seed, i]), image_size)
        rel = f"{folder}/{stem}_{i + 1:04d}"
        (root / "images" / folder).mkdir(exist_ok=True)
        Image.fromarray(img).save(root / "images" / f"{rel}.jpg", format="JPEG", quality=95)
        save_png_atomic(root / "segmentations" / f"{rel}.png", mask)
        ys, xs = np.nonzero(mask)
        x, y, w, h = xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1
        names.append(f"{i + 1} {rel}.jpg")
        boxes.append(f"{i + 1} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
        split.append(f"{i + 1} {0 if i in test else 1}")
    index = {"images.txt": names, "bounding_boxes.txt": boxes, "train_test_split.txt": split,
             "classes.txt": [f"1 {folder}"], "image_class_labels.txt": [f"{i + 1} 1" for i in range(n_images)]}
    for fname, lines in index.items():
        (root / fname).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
