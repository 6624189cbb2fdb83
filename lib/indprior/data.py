"""Data layer: image files, the CUB-200-2011 layout, dataset specs and single-image (HOC) crops.

Every problem with input data raises `DataError` naming the file (or parameter) and what was
expected, so a bad dataset fails at the first look, not as a shape error deep inside training.
The CUB layout is read unchanged so the real CUB-200-2011 and the synthetic set share one loader.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

SPLITS = ("train", "test", "all")
SYNTHETIC_VERSION = "synthetic_v1"


class DataError(ValueError):
    """Input data is missing, malformed or inconsistent; the message names the file."""


# ---------------------------------------------------------------------------------------- files


def _open(path: str | Path, what: str) -> Image.Image:
    """Open and fully decode an image file, turning every failure into a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected {what})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (expected {what})")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode (expected {what}): {e}") from e


def _scale_to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    """16/32-bit integers span 0..65535 (scaled by 1/257); floats span 0..1 (or 0..255 if larger)."""
    if arr.dtype.kind == "f":
        a = arr.astype(np.float32)
        a = a * 255.0 if np.nanmax(a) <= 1.0 else a
        return np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8)
    if arr.min() < 0 or arr.max() > 65535:
        raise DataError(f"{path}: pixel values {arr.min()}..{arr.max()} (expected 8- or 16-bit)")
    return (arr.astype(np.float32) / 257.0).round().astype(np.uint8)


def load_image(path: str | Path) -> np.ndarray:
    """Read any common image as uint8 HxWx3 RGB.

    Grayscale is replicated to 3 channels, 16-bit is scaled to 8-bit over the full 0..65535
    range, palette images are expanded, and alpha (RGBA, LA, palette transparency) is
    composited on WHITE: CUB and most photo sets are opaque, and white is what a viewer shows.
    EXIF orientation is NOT applied: annotation boxes refer to the stored pixel grid.
    """
    path = Path(path)
    img = _open(path, "an image")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")  # expands the palette and any transparency
    elif img.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("L" if img.mode == "1" else "RGB")
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = _scale_to_uint8(arr, path)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] in (2, 4):  # LA / RGBA: composite on white
        alpha = arr[..., -1:].astype(np.float32) / 255.0
        colour = arr[..., :-1].astype(np.float32)
        arr = (colour * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{path}: decoded to shape {arr.shape} (expected HxWx3 RGB)")
    return np.ascontiguousarray(arr)


def load_label_map(path: str | Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an instance label map (0 = background) as uint16 HxW; it must be single-channel."""
    path = Path(path)
    img = _open(path, "a label map")
    mode, arr = img.mode, np.asarray(img)  # palette images give their indices
    if arr.ndim != 2:
        raise DataError(f"{path}: label map has mode {mode} with {arr.shape[2]} channels "
                        "(expected a single-channel grayscale, palette or 16-bit PNG)")
    if arr.dtype.kind == "f" or (arr.size and (arr.min() < 0 or arr.max() > 65535)):
        raise DataError(f"{path}: label values must be integers in 0..65535 (mode {mode})")
    arr = arr.astype(np.uint16)
    if expected_shape is not None and arr.shape != tuple(expected_shape):
        raise DataError(f"{path}: label map is {arr.shape[0]}x{arr.shape[1]} (HxW), "
                        f"expected {expected_shape[0]}x{expected_shape[1]} to match the image")
    return arr


def save_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write a PNG via a temp file in the same folder + os.replace, so readers never see half a file.

    Accepts uint8 HxW / HxWx3 / HxWx4, uint16 HxW (label maps, written as 16-bit) and bool HxW
    (written as 0/255 uint8, the mask convention). Parent folders are created.
    """
    path = Path(path)
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    ok = (arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)))
          or arr.dtype == np.uint16 and arr.ndim == 2)
    if not ok or arr.size == 0:
        raise DataError(f"{path}: cannot save array of dtype {arr.dtype} and shape {arr.shape} "
                        "(expected uint8 HxW/HxWx3/HxWx4, uint16 HxW or bool HxW)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(np.ascontiguousarray(arr)).save(f, format="PNG")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------- CUB layout


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
    """Turn a dataset spec into a CUB-layout root: 'synthetic', 'synthetic:<seed>' or 'cub:<root>'.

    'synthetic:<seed>' is another draw of the same synthetic set: hyper-parameters were tuned on
    'synthetic' (seed 0), so results are reported on a seed never looked at while tuning.

    'synthetic' is generated once into cache_dir/synthetic_v1 (a temp folder renamed into place,
    so a killed generation never leaves half a dataset). Non-default `synth_kwargs` (passed to
    synth.make_synthetic_cub) get their own folder, suffixed by a hash of the arguments.
    """
    if spec.startswith("synthetic:"):
        seed = spec.split(":", 1)[1].strip()
        if not seed.isdigit():
            raise DataError(f"dataset spec {spec!r}: expected 'synthetic:<non-negative integer seed>'")
        return resolve_dataset("synthetic", cache_dir, {**(synth_kwargs or {}), "seed": int(seed)})
    if spec == "synthetic":
        from indprior.synth import make_synthetic_cub  # lazy: synth imports this module

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
    raise DataError(f"dataset spec {spec!r} not understood (expected 'synthetic', 'synthetic:<seed>' or 'cub:<root>')")


# ------------------------------------------------------------------------- single image (HOC)


def _check_rgb_uint8(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise DataError(f"{name}: expected a uint8 HxWx3 image, got {img.dtype} {img.shape}")
    return img


def to_tensor_image(img: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 3xHxW in [-1, 1], the range the generators and D work in."""
    img = _check_rgb_uint8(img, "img")
    return (img.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)


def to_uint8(x: Any) -> np.ndarray:
    """float [-1, 1] CxHxW, HxWxC or HxW (numpy or torch) -> uint8 HxWx3 for saving and plotting.

    Channels-first is assumed when the first axis has 1 or 3 entries; values are clipped.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or (x.shape[0] not in (1, 3) and x.shape[2] not in (1, 3)):
        raise DataError(f"x: expected CxHxW or HxWxC with C in (1, 3), got shape {x.shape}")
    if x.shape[0] in (1, 3):
        x = x.transpose(1, 2, 0)
    if not np.isfinite(x).all():
        raise DataError("x: contains NaN or inf")
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return ((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).round().astype(np.uint8)


class ImageCrops:
    """Random crops (with random h/v flips) of ONE image: the training set of the HOC task."""

    def __init__(self, image: np.ndarray, crop: int, scale: float = 1.0) -> None:
        image = _check_rgb_uint8(image, "image")
        if not (isinstance(crop, (int, np.integer)) and crop >= 1):
            raise DataError(f"crop={crop!r}: expected a positive integer")
        if not (math.isfinite(scale) and scale > 0):
            raise DataError(f"scale={scale!r}: expected a positive number")
        if scale != 1.0:
            H, W = image.shape[:2]
            size = (max(1, round(W * scale)), max(1, round(H * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
        if min(image.shape[:2]) < crop:
            raise DataError(f"crop={crop}: image is {image.shape[0]}x{image.shape[1]} (HxW) after "
                            f"scale={scale}, smaller than the {crop}x{crop} crop")
        self.crop = int(crop)
        self.image = image  # uint8 HxWx3, after scaling
        self._x = to_tensor_image(image)  # 3 h w

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n crops as float32 n x 3 x crop x crop in [-1, 1]."""
        if n < 0:
            raise DataError(f"n={n}: expected a non-negative number of crops")
        _, H, W = self._x.shape
        c = self.crop
        ys = rng.integers(0, H - c + 1, size=n)
        xs = rng.integers(0, W - c + 1, size=n)
        flip_v, flip_h = rng.random(n) < 0.5, rng.random(n) < 0.5
        ramp = np.arange(c)
        rows = ys[:, None] + np.where(flip_v[:, None], ramp[::-1], ramp)  # n c
        cols = xs[:, None] + np.where(flip_h[:, None], ramp[::-1], ramp)  # n c
        out = self._x[:, rows[:, :, None], cols[:, None, :]]  # 3 n c c
        return np.ascontiguousarray(out.transpose(1, 0, 2, 3))  # n 3 c c
