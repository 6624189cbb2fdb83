"""Shared by every figure: conversions (tensors, [-1, 1] floats, masks, label maps), the panel grid, overlays
of masks and instances, and atomic saving."""
from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from skimage.segmentation import find_boundaries

from ..core.files import atomic_write_bytes
from ..data.images import to_uint8

DPI = 80  # modest: notebook outputs stay small in git
GT_COLOR = (64, 220, 64)
_GOLDEN = 0.618033988749895


# ----------------------------------------------------------------------------- conversion
def _np(x: Any) -> np.ndarray:
    """torch tensor (any device, with grad) or array-like -> numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _image(x: Any, name: str = "image") -> np.ndarray:
    """Any image -> uint8 HxWx3. uint8 is kept as is; floats are read as [-1, 1] (project convention)."""
    x = _np(x)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dtype == np.uint8:
        if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[2] not in (1, 3):
            x = x.transpose(1, 2, 0)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3 or x.shape[2] not in (1, 3):
            raise ValueError(f"{name}: expected HxW, HxWx3 or 3xHxW, got shape {x.shape}")
        return np.ascontiguousarray(np.repeat(x, 3, 2) if x.shape[2] == 1 else x)
    if x.dtype == bool:
        x = x.astype(np.float32) * 2 - 1
    return to_uint8(x)


def _mask(x: Any, name: str = "mask", shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Any mask (HxW, 1xHxW, 1x1xHxW; bool or float in [0, 1]) -> float32 HxW."""
    x = _np(x).astype(np.float32)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"{name}: expected an HxW mask, got shape {x.shape}")
    if shape is not None and x.shape != tuple(shape[:2]):
        raise ValueError(f"{name}: shape {x.shape} does not match the image's {tuple(shape[:2])}")
    return x


def _labels(x: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    x = _np(x)
    if x.ndim != 2 or not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise ValueError(f"labels: expected an integer HxW label map, got {x.dtype} {x.shape}")
    if shape is not None and x.shape != tuple(shape[:2]):
        raise ValueError(f"labels: shape {x.shape} does not match the image's {tuple(shape[:2])}")
    return x.astype(np.int64)


def _items(x: Any) -> list:
    """A batch (array/tensor, first axis) or a sequence -> list of per-sample items."""
    return list(x) if isinstance(x, (list, tuple)) else [x[i] for i in range(len(x))]


# ----------------------------------------------------------------------------- figure helpers
def _grid(n: int, ncols: int, cell: float = 2.2, dpi: int = DPI) -> tuple[Figure, list[Axes]]:
    """n panels in rows of ncols; unused cells are removed so `fig.axes` holds exactly n panels."""
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig = Figure(figsize=(cell * ncols, cell * nrows), dpi=dpi, layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.remove()
    for ax in axes[:n]:  # no ticks or spines, but unlike axis('off') the y-label (row name) stays visible
        ax.set(xticks=[], yticks=[])
        ax.spines[:].set_visible(False)
    return fig, axes[:n]


def _paint(img: np.ndarray, where: np.ndarray, color: Sequence[int]) -> np.ndarray:
    out = img.copy()
    out[where] = np.asarray(color, np.uint8)
    return out


def _contour(mask: np.ndarray) -> np.ndarray:
    """Inner boundary: lies on mask pixels only, so a contour never changes pixels outside the mask."""
    return find_boundaries(mask, mode="inner") & mask


# ----------------------------------------------------------------------------- overlays
def overlay_mask(image: Any, mask: Any, color: Sequence[int] = (255, 64, 64), alpha: float = 0.45,
                 contour: bool = True) -> np.ndarray:
    """Tint `image` toward `color` by alpha * mask (soft masks show as soft tints); contour at 0.5."""
    img = _image(image)
    m = _mask(mask, "mask", img.shape)
    w = (alpha * np.clip(m, 0, 1))[..., None]
    out = (img * (1 - w) + np.asarray(color, np.float32) * w + 0.5).astype(np.uint8)
    if contour:
        out = _paint(out, _contour(m >= 0.5), color)
    return out


def instance_colors(n: int, seed: int = 0) -> np.ndarray:
    """n well-separated colours (n x 3 uint8): golden-ratio hue steps, alternating saturation/value."""
    start = (0.11 + seed * 0.381966) % 1.0
    cols = [colorsys.hsv_to_rgb((start + i * _GOLDEN) % 1.0, 0.85 if i % 2 == 0 else 0.6,
                                0.95 if (i // 2) % 2 == 0 else 0.8) for i in range(n)]
    return (np.asarray(cols, np.float64).reshape(n, 3) * 255 + 0.5).astype(np.uint8)


def label_rgb(labels: Any, seed: int = 0) -> np.ndarray:
    """Instance map -> uint8 HxWx3 on black, with the colours `overlay_instances` uses."""
    lab = _labels(labels)
    palette = np.concatenate([np.zeros((1, 3), np.uint8), instance_colors(int(lab.max(initial=0)), seed)])
    return palette[lab]


def overlay_instances(image: Any, labels: Any, alpha: float = 0.5, contour: bool = True,
                      seed: int = 0) -> np.ndarray:
    """Each instance tinted with its own colour; background pixels untouched; contours white on dark
    tints and black on light ones, so touching instances stay separable."""
    img = _image(image)
    lab = _labels(labels, img.shape)
    fg = lab > 0
    out = img.copy()
    tint = img[fg] * (1 - alpha) + label_rgb(lab, seed)[fg] * alpha
    out[fg] = (tint + 0.5).astype(np.uint8)
    if contour:
        edge = find_boundaries(lab, mode="inner") & fg
        lum = out[..., :3] @ np.array([0.299, 0.587, 0.114])
        out = _paint(out, edge & (lum < 140), (255, 255, 255))
        out = _paint(out, edge & (lum >= 140), (0, 0, 0))
    return out


# ----------------------------------------------------------------------------- saving
def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write atomically (core.files.atomic_write_bytes): a crash or a reader mid-write never sees half a PNG."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, dpi=dpi, format=fmt))
    return path
