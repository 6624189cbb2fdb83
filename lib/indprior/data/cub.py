"""The CUB-200-2011 layout (task 1's data) and dataset specs: 'synthetic[:seed]' or 'cub:<root>'.

The CUB layout is read unchanged so the real CUB-200-2011 and the synthetic set share one loader. Index
files are checked up front, images lazily; every problem raises `DataError` naming the file and line.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .images import DataError, load_image
from .synth_cub import make_synthetic_cub

SPLITS = ("train", "test", "all")
SYNTHETIC_VERSION = "synthetic_v1"


@dataclass
class Sample:
    """One annotated image; `mask` is ground truth for evaluation only, never for training."""

    id: int
    name: str  # relative path like '001.Kite/kite_0001.jpg'
    image: np.ndarray  # uint8 HxWx3
    box: tuple[float, float, float, float]  # x, y, w, h in pixels, clipped to the image
    mask: np.ndarray | None  # bool HxW


def _few(ids: list[int], n: int = 8) -> str:
    return ", ".join(map(str, ids[:n])) + (f" ... ({len(ids)} in all)" if len(ids) > n else "")


def _parse_index(path: Path, fmt: str, n_fields: int, convert: Callable[[list[str]], Any]) -> dict[int, Any]:
    """Read a CUB index file of '<id> ...' lines into {id: convert(rest)}; blank lines are skipped."""
    if not path.is_file():
        raise DataError(f"{path}: missing index file (expected lines '{fmt}')")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as UTF-8 text: {e}") from e
    rows: dict[int, Any] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=n_fields - 1)
        try:
            if len(parts) != n_fields:
                raise ValueError
            key, value = int(parts[0]), convert(parts[1:])
        except ValueError:
            raise DataError(f"{path}, line {lineno}: malformed line {line.strip()!r} "
                            f"(expected '{fmt}')") from None
        if key in rows:
            raise DataError(f"{path}, line {lineno}: duplicate id {key}")
        rows[key] = value
    return rows


def _relpath(parts: list[str]) -> str:
    rel = parts[0].strip()
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ValueError
    return rel


def _box(parts: list[str]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in parts)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError
    return x, y, w, h


def _is_train(parts: list[str]) -> bool:
    if parts[0] not in ("0", "1"):
        raise ValueError
    return parts[0] == "1"


class CubDataset:
    """The CUB-200-2011 layout, read unchanged; index files are checked up front, images lazily.

    root/images.txt '<id> <relpath>', bounding_boxes.txt '<id> <x> <y> <w> <h>',
    train_test_split.txt '<id> <is_train>' (1 = train), images/<relpath>, and optionally
    segmentations/<relpath as .png> (soft grayscale, thresholded at 0.5*255 into a bool mask).
    """

    def __init__(self, root: str | Path, split: str = "train", load_masks: bool = True) -> None:
        if split not in SPLITS:
            raise DataError(f"split={split!r}: unknown split (expected one of {', '.join(SPLITS)})")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder does not exist (expected the CUB layout)")
        names = _parse_index(self.root / "images.txt", "<id> <relpath>", 2, _relpath)
        boxes = _parse_index(self.root / "bounding_boxes.txt", "<id> <x> <y> <w> <h>", 5, _box)
        train = _parse_index(self.root / "train_test_split.txt", "<id> <is_train 0|1>", 2, _is_train)
        for fname, other in (("bounding_boxes.txt", boxes), ("train_test_split.txt", train)):
            missing, extra = sorted(names.keys() - other.keys()), sorted(other.keys() - names.keys())
            if missing or extra:
                raise DataError(f"{self.root / fname}: ids differ from images.txt: "
                                f"missing ids [{_few(missing)}], extra ids [{_few(extra)}]")
        keep = [i for i in names if split == "all" or train[i] == (split == "train")]
        if not keep:
            raise DataError(f"{self.root / 'train_test_split.txt'}: split {split!r} is empty")
        self.split = split
        self.ids: list[int] = keep
        self.names: list[str] = [names[i] for i in keep]
        self.boxes: list[tuple[float, float, float, float]] = [boxes[i] for i in keep]  # as written, unclipped
        seg = self.root / "segmentations"
        self.seg_dir: Path | None = seg if load_masks and seg.is_dir() else None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def image_path(self, index: int) -> Path:
        return self.root / "images" / self.names[index]

    def mask_path(self, index: int) -> Path | None:
        return None if self.seg_dir is None else (self.seg_dir / self.names[index]).with_suffix(".png")

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        path = self.image_path(index)
        image = load_image(path)
        box = clip_box(self.boxes[index], image.shape[:2], where=str(path))
        mask = None
        mpath = self.mask_path(index)
        if mpath is not None:
            gray = load_image(mpath).mean(axis=2)
            if gray.shape != image.shape[:2]:
                raise DataError(f"{mpath}: segmentation is {gray.shape[0]}x{gray.shape[1]} (HxW), "
                                f"expected {image.shape[0]}x{image.shape[1]} like {path.name}")
            mask = gray > 0.5 * 255
        return Sample(id=self.ids[index], name=self.names[index], image=image, box=box, mask=mask)


def clip_box(box: tuple[float, float, float, float], shape: tuple[int, int],
             where: str = "box") -> tuple[float, float, float, float]:
    """Clip an (x, y, w, h) box to an HxW image; zero-area or fully-outside boxes are DataErrors."""
    x, y, w, h = box
    H, W = shape
    if not (w > 0 and h > 0):
        raise DataError(f"{where}: box (x={x}, y={y}, w={w}, h={h}) has zero area")
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, float(W)), min(y + h, float(H))
    if x1 <= x0 or y1 <= y0:
        raise DataError(f"{where}: box (x={x}, y={y}, w={w}, h={h}) lies outside the {W}x{H} (WxH) image")
    return x0, y0, x1 - x0, y1 - y0


def resolve_dataset(spec: str, cache_dir: str | Path = ".cache/data",
                    synth_kwargs: dict[str, Any] | None = None) -> Path:
    """Turn a dataset spec into a CUB-layout root: 'synthetic[:<seed>]' (kites), 'birds[:<seed>]' (the
    part-structured birds) or 'cub:<root>'.

    '<set>:<seed>' is another draw of the same synthetic set: choices are made on some draws (and on a
    validation split of their train images) and results reported on draws never looked at while choosing.

    'synthetic' is generated once into cache_dir/synthetic_v1 (a temp folder renamed into place,
    so a killed generation never leaves half a dataset). Non-default `synth_kwargs` (passed to
    synth_cub.make_synthetic_cub) get their own folder, suffixed by a hash of the arguments.
    """
    if spec == "birds" or spec.startswith("birds:"):
        return resolve_dataset("synthetic" + spec[len("birds"):], cache_dir, {**(synth_kwargs or {}), "category": "bird"})
    if spec.startswith("synthetic:"):
        seed = spec.split(":", 1)[1].strip()
        if not seed.isdigit():
            raise DataError(f"dataset spec {spec!r}: expected '<synthetic|birds>:<non-negative integer seed>'")
        return resolve_dataset("synthetic", cache_dir, {**(synth_kwargs or {}), "seed": int(seed)})
    if spec == "synthetic":
        kwargs = dict(synth_kwargs or {})
        name = SYNTHETIC_VERSION
        if kwargs:
            digest = hashlib.sha1(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:10]
            name = f"{SYNTHETIC_VERSION}_{digest}"
        cache = Path(cache_dir).resolve()
        final = cache / name
        if not final.exists():
            cache.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{name}.tmp-"))
            try:
                make_synthetic_cub(tmp, **kwargs)
                os.rename(tmp, final)
            except OSError:
                if not (final / "images.txt").is_file():  # not a lost race with another process
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "images.txt").is_file():
            raise DataError(f"{final}: cached synthetic dataset has no images.txt; delete the folder")
        return final
    if spec.startswith("cub:") and spec[4:].strip():
        root = Path(spec[4:].strip()).expanduser()
        if not (root / "images.txt").is_file():
            raise DataError(f"{root}: not a CUB-200-2011 folder (expected {root / 'images.txt'})")
        return root
    raise DataError(f"dataset spec {spec!r} not understood (expected 'synthetic', 'synthetic:<seed>', 'birds', "
                    "'birds:<seed>', 'cub:<root>' or 'coco:<images_dir>:<annotations.json>')")
