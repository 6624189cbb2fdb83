"""Dataset specs -> a split of box-annotated samples, whatever the layout on disk.

    synthetic[:seed]                          the generated kite set (CUB layout, cached)
    cub:<root>                                a CUB-200-2011 folder
    coco:<images_dir>:<annotations.json>[:<category name or id>]
                                              boxes of one category of a COCO file; several boxes per image
                                              become several samples; split by image (80 / 20, stable)
Both readers give `Sample`s (id, name, image, box, mask or None) with the same fields, so task 1, ReDO and the
comparison read any of them through `open_dataset`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .coco_boxes import CocoBoxes
from .cub import CubDataset, Sample, resolve_dataset
from .images import DataError

COCO_HELP = "'coco:<images_dir>:<annotations.json>' or 'coco:<images_dir>:<annotations.json>:<category name or id>'"


def parse_coco_spec(spec: str) -> tuple[Path, Path, str | None]:
    """'coco:imgs:ann.json[:category]' -> (images_dir, annotations json, category or None)."""
    parts = spec[len("coco:"):].split(":")
    if len(parts) not in (2, 3) or not parts[0].strip() or not parts[1].strip().lower().endswith(".json"):
        raise DataError(f"dataset spec {spec!r} not understood (expected {COCO_HELP})")
    category = parts[2].strip() if len(parts) == 3 and parts[2].strip() else None
    return Path(parts[0].strip()).expanduser(), Path(parts[1].strip()).expanduser(), category


class Subset(Sequence):
    """Some samples of a data set, by index (a validation split carved out of the train images)."""

    def __init__(self, ds: CubDataset | CocoBoxes, indices: Sequence[int]):
        self.ds, self.indices = ds, [int(i) for i in indices]
        self.names = [ds.names[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        return self.ds[self.indices[i]]

    def image_path(self, i: int) -> Path:
        return self.ds.image_path(self.indices[i])


def split_off(ds: CubDataset | CocoBoxes, fraction: float, seed: int = 0) -> tuple[Subset, Subset | None]:
    """(the rest, a random `fraction` of the samples) - fixed by `seed` and the data set, not by training seeds,
    so every run on a draw holds out the same images. fraction 0: (all, None)."""
    n = len(ds)
    n_val = int(round(fraction * n))
    if n_val == 0:
        return Subset(ds, range(n)), None
    if n_val >= n:
        raise DataError(f"val_fraction={fraction}: leaves no training images out of {n}")
    order = np.random.default_rng([seed, 7919]).permutation(n)
    return Subset(ds, sorted(order[n_val:])), Subset(ds, sorted(order[:n_val]))


def open_dataset(spec: str, split: str, cache_dir: str | Path = ".cache/data") -> CubDataset | CocoBoxes:
    """The `split` ('train', 'test' or 'all') of the data set a spec names (see the module docstring)."""
    if spec.startswith("coco:"):
        images, ann, category = parse_coco_spec(spec)
        return CocoBoxes(images, ann, split, category)
    return CubDataset(resolve_dataset(spec, cache_dir), split)
