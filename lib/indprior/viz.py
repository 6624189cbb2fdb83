"""Figures for masks, instances, providers, composites and training logs.

Why these choices:
- Every plotting function builds a `matplotlib.figure.Figure` directly and returns it. Nothing goes
  through pyplot, so notebooks and tests never accumulate open figures (no memory leak, no "more than
  20 figures" warning) and a figure is shown only where the caller puts it.
- Inputs are numpy arrays or torch tensors. Float images follow the project convention ([-1, 1],
  CxHxW or HxWxC, converted by `data.to_uint8`); uint8 images are taken as they are.
- Overlays return uint8 arrays, not figures, so they can be saved as PNGs or tiled anywhere.
- Instance colours come from golden-ratio hue steps: consecutive labels (usually neighbours in a
  composite) land ~0.38 of the hue circle apart, whatever the number of instances.
"""
from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from skimage.segmentation import find_boundaries

from .data import to_uint8
from .metrics import mask_iou
from .train import atomic_write_bytes, read_log

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
    """k x 1 x H x W (or k x H x W) visible masks -> H x W labels: argmax + 1 where its mask > threshold."""
    v = _np(visible).astype(np.float32)
    v = v[:, 0] if v.ndim == 4 else v
    if v.ndim != 3:
        raise ValueError(f"visible: expected k x 1 x H x W, got shape {_np(visible).shape}")
    if v.shape[0] == 0:
        return np.zeros(v.shape[1:], np.int64)
    return np.where(v.max(0) > threshold, v.argmax(0) + 1, 0).astype(np.int64)


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
        row[-1].set_title(f"{len(np.unique(lab[lab > 0]))} visible instances", fontsize=8)
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


# ----------------------------------------------------------------------------- instance figures
def offset_field_rgb(offset: Any, max_norm: float | None = None) -> np.ndarray:
    """2 x H x W (dy, dx) displacement -> uint8 RGB: hue = direction, value = magnitude (siseg's coding)."""
    from .siseg import offset_to_rgb  # lazy: siseg pulls in the network code

    return offset_to_rgb(_np(offset), max_norm)


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
        ys, xs = np.nonzero(lab == ids[j])
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, lab.shape[0])
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, lab.shape[1])
        inside = (lab[y0:y1, x0:x1] == ids[j])[..., None]
        crop = img[y0:y1, x0:x1]
        ax.imshow(np.where(inside, crop, (crop * 0.25 + 150).astype(np.uint8)))
        ax.set_title(f"#{ids[j]}  {areas[j]} px", fontsize=7)
    return fig


# ----------------------------------------------------------------------------- saving
def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write atomically (train.atomic_write_bytes): a crash or a reader mid-write never sees half a PNG."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, dpi=dpi, format=fmt))
    return path
