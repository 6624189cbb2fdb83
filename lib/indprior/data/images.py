"""Image files and arrays: load any common image as RGB, label maps, conversions, checks, single-image crops.

Every problem with input data raises `DataError` naming the file (or parameter) and what was expected, so a
bad input fails at the first look, not as a shape error deep inside training.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import skimage.data
import torch
from PIL import Image

from ..core.files import DataError, save_png_atomic  # noqa: F401 - re-exported: the data layer's error and writer

COINS_GT = Path(__file__).resolve().parent.parent / "assets" / "coins_gt.png"  # see assets/make_coins_gt.py


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


def coins() -> np.ndarray:
    """scikit-image's coins photo as uint8 HxWx3 (grey replicated, as `load_image` reads a grey file);
    its hand-checked GT label map is `COINS_GT`."""
    return np.repeat(skimage.data.coins()[..., None], 3, axis=2)


# ----------------------------------------------------------------------------- checks and conversions
def check_rgb(img: Any, name: str = "image", min_side: int = 1) -> np.ndarray:
    """`img` as an array if it is uint8 HxWx3 with both sides >= min_side, else a DataError naming `name`."""
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < min_side:
        sides = f" with sides >= {min_side}" if min_side > 1 else ""
        raise DataError(f"{name}: expected a uint8 HxWx3 RGB image{sides}, got {img.dtype} {img.shape}")
    return img


def to_float(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """uint8 images -> float32 in [-1, 1], the range the networks work in (torch tensors and numpy arrays alike)."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / 127.5 - 1
    return x.float() / 127.5 - 1


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


def border_mean(x: np.ndarray, width: int = 1) -> float:
    """Mean of `x` (a mask or a soft map) over the frame of `width` pixels around it, each pixel counted once.

    The rule of every cluster picture (and of ReDO's GT-free side): what owns most of the frame is background."""
    x = np.asarray(x, np.float64)
    inner = x[width:-width, width:-width] if min(x.shape[:2]) > 2 * width else x[:0, :0]
    return float((x.sum() - inner.sum()) / max(x.size - inner.size, 1))


# ----------------------------------------------------------------------------- one image as a data set
class ImageCrops:
    """Random crops (with random h/v flips) of ONE image: the training set of the HOC task."""

    def __init__(self, image: np.ndarray, crop: int, scale: float = 1.0) -> None:
        image = check_rgb(image, "image")
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
        self._x = to_float(image.transpose(2, 0, 1))  # 3 h w float32

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
