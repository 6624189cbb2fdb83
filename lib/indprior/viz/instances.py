"""Figures of instances: the SISeg displacement field and heads, single instances, a gallery."""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure

from .base import (
    _grid,
    _image,
    _labels,
    _mask,
    _np,
    overlay_instances,
)


# ----------------------------------------------------------------------------- instance figures
def offset_field_rgb(offset: Any, max_norm: float | None = None) -> np.ndarray:
    """2 x H x W (dy, dx) displacement -> uint8 RGB: hue = direction, value = magnitude / max_norm (default:
    the largest magnitude)."""
    offset = _np(offset).astype(np.float64)
    if offset.ndim != 3 or offset.shape[0] != 2:
        raise ValueError(f"offset: expected 2 x H x W, got shape {offset.shape}")
    mag = np.hypot(offset[0], offset[1])
    norm = float(max_norm) if max_norm else max(float(mag.max()), 1e-8)
    hue = (np.arctan2(offset[0], offset[1]) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.ones_like(hue), np.clip(mag / norm, 0, 1)], -1)
    return (hsv_to_rgb(hsv) * 255 + 0.5).astype(np.uint8)


def displacement_figure(image: Any, fg: Any, offset: Any, boundary: Any, labels: Any) -> Figure:
    """The five SISeg maps side by side: image, foreground, offsets (colour + sparse arrows), boundary,
    grouped instances, so a failure can be traced to the head that caused it."""
    img = _image(image)
    f = _mask(fg, "fg", img.shape)
    off = _np(offset).astype(np.float32)
    if off.shape != (2,) + img.shape[:2]:
        raise ValueError(f"offset: expected shape {(2,) + img.shape[:2]}, got {off.shape}")
    b = _mask(boundary, "boundary", img.shape)
    fig, axes = _grid(5, 5, cell=2.4)
    rgb = offset_field_rgb(off) * (f >= 0.5)[..., None].astype(np.uint8)
    h, w = f.shape
    step = max(1, max(h, w) // 16)
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    keep = f[ys, xs] >= 0.5
    panels = [(img, "image", None), (f, "foreground", "gray"), (rgb, "offset to centre", None),
              (b, "boundary", "gray"), (overlay_instances(img, labels), "instances", None)]
    for ax, (arr, title, cmap) in zip(axes, panels):
        ax.imshow(arr, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None), ax.set_title(title, fontsize=8)
    axes[2].quiver(xs[keep], ys[keep], off[1][ys, xs][keep], off[0][ys, xs][keep], color="white",
                   angles="xy", scale_units="xy", scale=1, width=0.006)
    axes[2].set(xlim=(-0.5, w - 0.5), ylim=(h - 0.5, -0.5))
    return fig


def instance_crop(image: np.ndarray, mask: np.ndarray, pad: int = 4) -> np.ndarray:
    """The box around `mask` (grown by `pad`) cut from `image`, pixels outside the mask greyed: one instance."""
    ys, xs = np.nonzero(mask)
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, mask.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, mask.shape[1])
    crop = image[y0:y1, x0:x1]
    return np.where(mask[y0:y1, x0:x1, None], crop, (crop * 0.25 + 150).astype(np.uint8))


def instance_gallery(image: Any, labels: Any, max_instances: int = 24, pad: int = 4) -> Figure:
    """Crop of every instance (outside pixels greyed), largest first: eyeball what the masks contain."""
    img = _image(image)
    lab = _labels(labels, img.shape)
    ids, areas = np.unique(lab[lab > 0], return_counts=True)
    order = np.argsort(-areas, kind="stable")[:max_instances]
    if not len(order):
        fig, (ax,) = _grid(1, 1)
        ax.text(0.5, 0.5, "no instances", ha="center", va="center", transform=ax.transAxes)
        return fig
    fig, axes = _grid(len(order), 6, cell=1.6)
    for ax, j in zip(axes, order):
        ax.imshow(instance_crop(img, lab == ids[j], pad))
        ax.set_title(f"#{ids[j]}  {areas[j]} px", fontsize=7)
    return fig


