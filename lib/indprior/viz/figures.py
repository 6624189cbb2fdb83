"""Figures of masks (grids, thresholds, IoU histogram), of the generator (providers, composites) and of
training logs."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ..core.trainer import read_log
from ..metrics import count_instances, mask_iou
from ..models import label_map
from .base import (
    DPI,
    GT_COLOR,
    _contour,
    _grid,
    _image,
    _items,
    _mask,
    _np,
    _paint,
    label_rgb,
    overlay_mask,
)


# ----------------------------------------------------------------------------- mask figures
def mask_grid(images: Any, masks: Any, gts: Any | None = None, ious: Sequence[float] | None = None,
              titles: Sequence[str] | None = None, ncols: int = 6) -> Figure:
    """Predicted mask over each image, GT contour in green; IoU (given, or computed from gts) in titles."""
    imgs, ms = _items(images), _items(masks)
    if len(imgs) != len(ms):
        raise ValueError(f"masks: {len(ms)} masks for {len(imgs)} images")
    gl = _items(gts) if gts is not None else None
    fig, axes = _grid(len(imgs), ncols)
    for i, ax in enumerate(axes):
        img = _image(imgs[i])
        m = _mask(ms[i], "masks", img.shape)
        out = overlay_mask(img, m)
        iou = None if ious is None else float(ious[i])
        if gl is not None:
            g = _mask(gl[i], "gts", img.shape) >= 0.5
            out = _paint(out, _contour(g), GT_COLOR)
            iou = mask_iou(m >= 0.5, g) if iou is None else iou
        parts = ([titles[i]] if titles is not None else []) + ([f"IoU {iou:.2f}"] if iou is not None else [])
        ax.imshow(out), ax.set_title("  ".join(parts), fontsize=8)
    return fig


def threshold_strip(image: Any, prob: Any, thresholds: Sequence[float] = (0.3, 0.5, 0.7),
                    gt: Any | None = None) -> Figure:
    """Image, soft mask, then the mask cut at each threshold: shows whether a result hinges on 0.5."""
    img = _image(image)
    p = _mask(prob, "prob", img.shape)
    g = None if gt is None else _mask(gt, "gt", img.shape) >= 0.5
    fig, axes = _grid(2 + len(thresholds), 2 + len(thresholds))
    axes[0].imshow(img), axes[0].set_title("image", fontsize=8)
    axes[1].imshow(p, cmap="gray", vmin=0, vmax=1), axes[1].set_title("soft mask", fontsize=8)
    for t, ax in zip(thresholds, axes[2:]):
        m = p >= t
        out = overlay_mask(img, m)
        title = f"≥ {t:.2f}  area {m.mean():.2f}"
        if g is not None:
            out = _paint(out, _contour(g), GT_COLOR)
            title += f"  IoU {mask_iou(m, g):.2f}"
        ax.imshow(out), ax.set_title(title, fontsize=8)
    return fig


def iou_histogram(ious: Any, bins: int = 20, reference: Mapping[str, float] | None = None) -> Figure:
    """Distribution of per-image IoU with its mean; reference lines (e.g. "whole box") for context."""
    v = _np(ious).astype(np.float64).ravel()
    fig = Figure(figsize=(5, 3), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.hist(v, bins=bins, range=(0, 1), color="0.6", edgecolor="white")
    if v.size:
        ax.axvline(float(v.mean()), color="k", lw=1.5, label=f"mean {v.mean():.3f}")
    for j, (name, x) in enumerate((reference or {}).items()):
        ax.axvline(float(x), color=f"C{j}", ls="--", lw=1.5, label=f"{name} {float(x):.3f}")
    ax.set(xlim=(0, 1), xlabel="IoU", ylabel="images", title=f"IoU over {v.size} images")
    ax.legend(fontsize=8, loc="upper left")
    return fig


# ----------------------------------------------------------------------------- generator figures
def _checker(h: int, w: int, size: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.where(((yy // size + xx // size) % 2)[..., None] == 0, 200, 160).astype(np.float32)


def provider_grid(a: Any, m: Any, n: int = 8) -> Figure:
    """Rows: instance RGB, mask, RGB x mask on a checkerboard (so what the mask drops is visible)."""
    al, ml = _items(a), _items(m)
    n = min(n, len(al))
    fig, axes = _grid(3 * n, n, cell=1.6)
    for i in range(n):
        img = _image(al[i], "a")
        mk = _mask(ml[i], "m", img.shape)
        h, w = mk.shape
        cut = img * mk[..., None] + _checker(h, w) * (1 - mk[..., None])
        axes[i].imshow(img)
        axes[n + i].imshow(mk, cmap="gray", vmin=0, vmax=1)
        axes[2 * n + i].imshow((cut + 0.5).astype(np.uint8))
        axes[n + i].set_title(f"area {mk.mean():.2f}", fontsize=7)
    for r, name in enumerate(("a", "m", "a x m")):
        axes[r * n].set_ylabel(name)
    return fig


def visible_to_labels(visible: Any, threshold: float = 0.5) -> np.ndarray:
    """k x 1 x H x W (or k x H x W) visible masks -> H x W labels: argmax + 1 where its mask > threshold
    (`models.label_map`)."""
    v = torch.as_tensor(_np(visible).astype(np.float32))
    v = v[:, None] if v.ndim == 3 else v
    if v.ndim != 4:
        raise ValueError(f"visible: expected k x 1 x H x W, got shape {tuple(_np(visible).shape)}")
    if v.shape[0] == 0:
        return np.zeros(v.shape[2:], np.int64)
    return label_map(v, threshold).numpy().astype(np.int64)


def composite_figure(fake: Any, visible: Any, background: Any | None = None, n: int = 4) -> Figure:
    """Per row: [background,] composite, its exact instance label map (from the visible masks)."""
    fl, vl = _items(fake), _items(visible)
    n = min(n, len(fl))
    bl = None
    if background is not None:
        bg = _np(background)
        bl = [bg] * n if bg.ndim == 3 else _items(bg)
    cols = 2 + (bl is not None)
    fig, axes = _grid(cols * n, cols, cell=2.2)
    for i in range(n):
        row = axes[i * cols:(i + 1) * cols]
        if bl is not None:
            row[0].imshow(_image(bl[i], "background")), row[0].set_title("background", fontsize=8)
        lab = visible_to_labels(vl[i])
        row[-2].imshow(_image(fl[i], "fake")), row[-2].set_title("composite", fontsize=8)
        row[-1].imshow(label_rgb(lab))
        row[-1].set_title(f"{count_instances(lab)} visible instances", fontsize=8)
    return fig


# ----------------------------------------------------------------------------- training log
_GROUPS = (("loss/", "losses"), ("mask/", "mask"), ("D/", "discriminator"), ("val/", "validation"))


def _ema(y: np.ndarray, smooth: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard-style), so the first points are not pulled to 0."""
    out, acc, norm = np.empty_like(y), 0.0, 0.0
    for i, v in enumerate(y):
        acc, norm = smooth * acc + (1 - smooth) * v, smooth * norm + (1 - smooth)
        out[i] = acc / norm
    return out


def training_curves(rows: Sequence[Mapping[str, Any]] | str | Path, smooth: float = 0.6) -> Figure:
    """One panel per key group present (loss/, mask/, D/, val/): raw faint, lightly smoothed solid.

    `rows` are `train.read_log` rows or a run folder / log path. Validation rows are sparse, so they are
    drawn with markers and not smoothed.
    """
    if isinstance(rows, (str, Path)):
        rows = read_log(rows)
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    groups = [(p, t, [k for k in keys if k.startswith(p)]) for p, t in _GROUPS]
    groups = [g for g in groups if g[2]]
    if not groups:
        raise ValueError("rows: no 'loss/', 'mask/', 'D/' or 'val/' scalars to plot")
    fig = Figure(figsize=(4.2 * len(groups), 3), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (prefix, title, ks) in zip(axes, groups):
        for j, k in enumerate(ks):
            pts = np.array([(r.get("step", i), r[k]) for i, r in enumerate(rows) if k in r], np.float64)
            pts = pts[np.isfinite(pts).all(1)]
            if not len(pts):
                continue
            label = k[len(prefix):]
            if prefix == "val/":
                ax.plot(pts[:, 0], pts[:, 1], "o-", color=f"C{j}", ms=3, label=label)
            else:
                ax.plot(pts[:, 0], pts[:, 1], color=f"C{j}", alpha=0.25, lw=0.8)
                ax.plot(pts[:, 0], _ema(pts[:, 1], smooth), color=f"C{j}", lw=1.5, label=label)
        ax.set(title=title, xlabel="step"), ax.grid(alpha=0.3), ax.legend(fontsize=7)
    return fig


