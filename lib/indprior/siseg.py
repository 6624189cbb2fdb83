"""SISeg-style instance segmenter: foreground, displacement field and boundary heads.

Task 2 turns the trained generator into a labelled-data factory: every composite comes with an exact
instance label map. We train a small U-Net on those composites to predict, per pixel, (1) foreground,
(2) the 2-D offset to the centre of its instance and (3) a category-agnostic instance boundary
(Shen et al., SISeg). Grouping moves each foreground pixel along its offset; pixels of one instance
arrive at one point, so clustering arrival points separates touching instances without any
category-specific anchor or box. The boundary map then settles the pixels whose vote is ambiguous.

Instance centre = centroid (mean pixel coordinate). For non-convex shapes the centroid may lie
outside the instance; a medoid would stay inside, but grouping clusters arrival points, not pixels,
so an outside centre is harmless, and the centroid is exact, cheap and identical on CPU and GPU
(scatter_add). Failure case: two instances sharing a centroid (a ring around a disc) merge.
Offsets are in pixels, ordered (dy, dx): offset[:, y, x] = (cy - y, cx - x), 0 on background.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import hsv_to_rgb
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.segmentation import watershed
from torch import Tensor, nn
from tqdm.auto import tqdm


# ----------------------------------------------------------------------------- targets
def _boundary_np(labels: np.ndarray) -> np.ndarray:
    """Instance pixels with a 4-neighbour of another label; the image edge is not a boundary
    (a crop cuts instances, it does not outline them)."""
    b = np.zeros(labels.shape, bool)
    dv = labels[1:, :] != labels[:-1, :]
    dh = labels[:, 1:] != labels[:, :-1]
    b[1:, :] |= dv
    b[:-1, :] |= dv
    b[:, 1:] |= dh
    b[:, :-1] |= dh
    return b & (labels > 0)


def instance_targets(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Training targets from an H x W instance map (0 = background): fg, offset to centroid, boundary."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected an integer H x W array, got {labels.dtype} {labels.shape}")
    h, w = labels.shape
    ids, inv = np.unique(labels, return_inverse=True)
    inv = inv.reshape(h, w)
    ys, xs = np.mgrid[0:h, 0:w]
    cnt = np.bincount(inv.ravel(), minlength=len(ids)).astype(np.float64)
    cy = np.bincount(inv.ravel(), ys.ravel().astype(np.float64), len(ids)) / cnt
    cx = np.bincount(inv.ravel(), xs.ravel().astype(np.float64), len(ids)) / cnt
    fg = labels > 0
    offset = np.stack([cy[inv] - ys, cx[inv] - xs]) * fg  # 2 h w
    return dict(fg=fg, offset=offset.astype(np.float32), boundary=_boundary_np(labels))


def instance_targets_torch(labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Batched targets on the labels' device, no loop over instances: (fg b1hw, offset b2hw, boundary b1hw)."""
    if labels.ndim != 3:
        raise ValueError(f"labels: expected b h w, got shape {tuple(labels.shape)}")
    labels = labels.long()
    b, h, w = labels.shape
    dev = labels.device
    ys = torch.arange(h, device=dev, dtype=torch.float64).view(1, h, 1).expand(b, h, w)
    xs = torch.arange(w, device=dev, dtype=torch.float64).view(1, 1, w).expand(b, h, w)
    key = torch.arange(b, device=dev).view(b, 1, 1) * (int(labels.max()) + 1) + labels  # unique per image
    _, inv = torch.unique(key, return_inverse=True)  # b h w, compact instance index
    n, flat = int(inv.max()) + 1, inv.reshape(-1)
    zeros = torch.zeros(n, device=dev, dtype=torch.float64)
    cnt = zeros.scatter_add(0, flat, torch.ones_like(ys).reshape(-1))
    cy = zeros.scatter_add(0, flat, ys.reshape(-1)) / cnt
    cx = zeros.scatter_add(0, flat, xs.reshape(-1)) / cnt
    fg = labels > 0  # b h w
    offset = torch.stack([cy[inv] - ys, cx[inv] - xs], 1) * fg[:, None]  # b 2 h w
    bnd = torch.zeros_like(fg)
    dv = labels[:, 1:, :] != labels[:, :-1, :]
    dh = labels[:, :, 1:] != labels[:, :, :-1]
    bnd[:, 1:, :] |= dv
    bnd[:, :-1, :] |= dv
    bnd[:, :, 1:] |= dh
    bnd[:, :, :-1] |= dh
    return fg[:, None].float(), offset.float(), (bnd & fg)[:, None].float()


# ----------------------------------------------------------------------------- grouping
def group_instances(fg_prob: np.ndarray, offset: np.ndarray, boundary_prob: np.ndarray | None = None,
                    fg_threshold: float = 0.5, min_size: int = 20, bandwidth: float = 2.0) -> np.ndarray:
    """Instance map (uint16, 0 = background) from the three heads.

    1. Votes: each fg pixel casts a vote at its arrival point (pixel + offset); the vote image is
       smoothed with a Gaussian of sigma `bandwidth` (a mean-shift density); centres = its local
       maxima within +-ceil(bandwidth) px holding >= min_size/4 votes (plateaus merged), refined once
       to the mean of the arrival points near them.
    2. Each fg pixel joins the centre nearest to its arrival point.
    3. Ambiguous pixels (arrival > 3*bandwidth from its centre, or >= 1/3 of the way to the second
       centre, or on a predicted boundary without a crisp vote) are re-assigned by a watershed on the
       boundary map seeded by the confident pixels, so borders follow the boundary head; ambiguous
       pixels not connected to a seed become background. An instance too small to make a peak
       (< min_size/4 pixels) is absorbed by a touching neighbour.
    4. Instances with < min_size pixels become background; labels are renumbered 1..n.
    Perfect targets give exact maps: all votes of an instance land on its centroid.
    """
    fg_prob, offset = np.asarray(fg_prob, np.float64), np.asarray(offset, np.float64)
    if fg_prob.ndim != 2:
        raise ValueError(f"fg_prob: expected H x W, got shape {fg_prob.shape}")
    h, w = fg_prob.shape
    if offset.shape != (2, h, w):
        raise ValueError(f"offset: expected shape (2, {h}, {w}), got {offset.shape}")
    if boundary_prob is not None and np.shape(boundary_prob) != (h, w):
        raise ValueError(f"boundary_prob: expected shape ({h}, {w}), got {np.shape(boundary_prob)}")
    if bandwidth <= 0:
        raise ValueError(f"bandwidth: expected > 0, got {bandwidth}")
    out = np.zeros((h, w), np.uint16)
    fg = fg_prob > fg_threshold
    ys, xs = np.nonzero(fg)
    if len(ys) == 0:
        return out
    pts = np.stack([ys + offset[0, ys, xs], xs + offset[1, ys, xs]], 1)  # n 2 arrival points
    iy = np.clip(np.rint(pts[:, 0]), 0, h - 1).astype(np.int64)
    ix = np.clip(np.rint(pts[:, 1]), 0, w - 1).astype(np.int64)
    votes = np.bincount(iy * w + ix, minlength=h * w).reshape(h, w).astype(np.float64)
    density = ndimage.gaussian_filter(votes, bandwidth, mode="constant")
    k = int(np.ceil(4 * bandwidth))
    delta = np.zeros((2 * k + 1, 2 * k + 1))
    delta[k, k] = 1.0
    kernel_peak = ndimage.gaussian_filter(delta, bandwidth, mode="constant").max()  # density of 1 vote
    r = max(1, int(np.ceil(bandwidth)))  # NMS radius: small enough to keep a small instance by a big one
    peaks = (density == ndimage.maximum_filter(density, size=2 * r + 1)) & (
        density >= max(1.0, 0.25 * min_size) * kernel_peak * (1 - 1e-6))
    plab, n = ndimage.label(peaks, structure=np.ones((3, 3)))
    if n == 0:
        return out
    centres = np.array(ndimage.center_of_mass(peaks, plab, range(1, n + 1)), np.float64).reshape(n, 2)
    radius = 3.0 * bandwidth
    d1, idx = cKDTree(centres).query(pts)
    near = d1 <= radius
    cnt = np.bincount(idx[near], minlength=n)
    for c in range(2):  # one mean-shift step: centre -> mean of the arrival points near it
        s = np.bincount(idx[near], pts[near, c], minlength=n)
        centres[cnt > 0, c] = s[cnt > 0] / cnt[cnt > 0]
    if n >= 2:
        d, nn_ = cKDTree(centres).query(pts, k=2)
        d1, d2, idx = d[:, 0], d[:, 1], nn_[:, 0]
    else:
        d1, idx = cKDTree(centres).query(pts)
        d2 = np.full_like(d1, np.inf)
    bnd = np.zeros((h, w)) if boundary_prob is None else np.asarray(boundary_prob, np.float64)
    unsure = (d1 > radius) | (d1 > 0.5 * d2) | ((bnd[ys, xs] > 0.5) & (d1 > bandwidth))
    markers = np.zeros((h, w), np.int64)
    markers[ys[~unsure], xs[~unsure]] = idx[~unsure] + 1
    lab = watershed(bnd, markers, mask=fg) if unsure.any() else markers
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = np.nonzero(sizes >= max(min_size, 1))[0]
    keep = keep[keep > 0]
    if len(keep) >= 2 ** 16:
        raise ValueError(f"group_instances: {len(keep)} instances do not fit a uint16 map")
    lut = np.zeros(n + 1, np.uint16)
    lut[keep] = np.arange(1, len(keep) + 1)
    return lut[lab]


# ----------------------------------------------------------------------------- model
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


def _head(c: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True),
                         nn.Conv2d(c, k, 1))


class InstanceSegmenter(nn.Module):
    """Small U-Net with fg / offset / boundary heads.

    Batch norm, not instance norm: at inference its statistics are fixed, so a tile gives the same
    features as the whole image (instance norm would depend on the tile's content) and sliding-window
    prediction is consistent. The offset head predicts offset / offset_scale so its output stays O(1).
    """

    def __init__(self, base: int = 32, levels: int = 3, offset_scale: float = 16.0) -> None:
        super().__init__()
        if base < 1 or levels < 1:
            raise ValueError(f"InstanceSegmenter: expected base >= 1 and levels >= 1, got {base}, {levels}")
        self.levels, self.offset_scale = levels, float(offset_scale)
        ch = [base * 2 ** i for i in range(levels + 1)]
        self.stem = _block(3, ch[0])
        self.down = nn.ModuleList(_block(ch[i], ch[i + 1]) for i in range(levels))
        self.up = nn.ModuleList(_block(ch[i + 1] + ch[i], ch[i]) for i in range(levels))
        self.fg, self.offset, self.boundary = _head(ch[0], 1), _head(ch[0], 2), _head(ch[0], 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        m = 2 ** self.levels
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"InstanceSegmenter: expected x of shape b 3 h w, got {tuple(x.shape)}")
        if x.shape[2] % m or x.shape[3] % m:
            raise ValueError(f"InstanceSegmenter: h, w must be divisible by 2**levels = {m}, got {tuple(x.shape[2:])}")
        skips = [self.stem(x)]  # b c h w
        for blk in self.down:
            skips.append(blk(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for blk in reversed(self.up):
            s = skips.pop()
            y = blk(torch.cat([F.interpolate(y, size=s.shape[2:], mode="bilinear", align_corners=False), s], 1))
        return dict(fg=self.fg(y), offset=self.offset(y) * self.offset_scale, boundary=self.boundary(y))


def siseg_loss(out: dict[str, Tensor], labels: Tensor, w_fg: float = 1.0, w_offset: float = 1.0,
               w_boundary: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    """BCE on fg, L1 (pixels, mean of the two components) on fg offsets, BCE on boundary with the
    rare positive class up-weighted by neg/pos (clamped to [1, 50]) so the head does not learn 'never'."""
    fg, off, bnd = instance_targets_torch(labels.to(out["fg"].device))  # b1hw b2hw b1hw
    if out["fg"].shape != fg.shape or out["offset"].shape != off.shape:
        raise ValueError(f"siseg_loss: outputs {tuple(out['fg'].shape)} do not match labels {tuple(labels.shape)}")
    l_fg = F.binary_cross_entropy_with_logits(out["fg"], fg)
    l_off = ((out["offset"] - off).abs() * fg).sum() / (2 * fg.sum().clamp_min(1))
    pos = bnd.sum()
    pw = ((bnd.numel() - pos) / pos.clamp_min(1)).clamp(1, 50).detach()
    l_bnd = F.binary_cross_entropy_with_logits(out["boundary"], bnd, pos_weight=pw)
    total = w_fg * l_fg + w_offset * l_off + w_boundary * l_bnd
    parts = dict(total=total, fg=l_fg, offset=l_off, boundary=l_bnd)
    return total, {k: float(v.detach()) for k, v in parts.items()}


def train_segmenter(model: InstanceSegmenter, sample_fn: Callable[[int], tuple[Tensor, Tensor]], steps: int,
                    batch_size: int = 16, lr: float = 1e-3, device: str | torch.device = "cpu",
                    progress: bool = True, log_fn: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Adam on siseg_loss over batches from sample_fn(batch_size) -> (images b3hw in [-1,1], labels bhw)."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict] = []
    bar = tqdm(range(steps), disable=not progress, desc="siseg")
    for step in bar:
        images, labels = sample_fn(batch_size)
        images = torch.as_tensor(images, dtype=torch.float32).to(device)  # b 3 h w
        labels = torch.as_tensor(np.asarray(labels, np.int64) if not torch.is_tensor(labels) else labels.long())
        if images.ndim != 4 or labels.shape != (images.shape[0], *images.shape[2:]):
            raise ValueError(f"sample_fn: expected (b 3 h w, b h w), got {tuple(images.shape)}, {tuple(labels.shape)}")
        loss, parts = siseg_loss(model(images), labels.to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train_segmenter: non-finite loss at step {step}: {parts}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(dict(step=step, **parts))
        bar.set_postfix(loss=f"{parts['total']:.3f}")
        if log_fn is not None:
            log_fn(step, parts)
    return history


# ----------------------------------------------------------------------------- inference
def _ramp(n: int, overlap: int, lo: bool, hi: bool) -> np.ndarray:
    """1-D blending weight of a tile: linear ramps on the sides that face another tile."""
    w = np.ones(n)
    ramp = (np.arange(overlap) + 1.0) / (overlap + 1.0)
    if lo and overlap:
        w[:overlap] = ramp
    if hi and overlap:
        w[n - overlap:] = ramp[::-1]
    return w


@torch.no_grad()
def _run(model: InstanceSegmenter, x: Tensor) -> np.ndarray:
    """Heads on one padded window: 4 h w (fg logit, offset y, offset x, boundary logit)."""
    m = 2 ** model.levels
    h, w = x.shape[2:]
    xp = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
    o = model(xp)
    return torch.cat([o["fg"], o["offset"], o["boundary"]], 1)[0, :, :h, :w].float().cpu().numpy()


def predict_instances(model: InstanceSegmenter, image: np.ndarray, tile: int = 256, overlap: int = 32,
                      device: str | torch.device = "cpu", **group_kwargs) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Instance map of a whole H x W x 3 uint8 photo, sliding window when larger than `tile`.

    Logits and offsets are blended across tiles; offsets are relative to the pixel, hence
    translation-equivariant, so a tile's offsets need no shift. Returns (labels uint16, raw maps)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected H x W x 3 uint8, got {image.dtype} {image.shape}")
    m = 2 ** model.levels
    if tile < m or tile % m:
        raise ValueError(f"tile: expected a positive multiple of 2**levels = {m}, got {tile}")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"overlap: expected 0 <= overlap < tile/2 = {tile // 2}, got {overlap}")
    model.to(device).eval()
    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image).copy()).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # 1 3 h w
    if max(h, w) <= tile:
        raw = _run(model, x)  # 4 h w
    else:
        ph, pw = max(h, tile), max(w, tile)
        x = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
        stride = tile - overlap
        starts = [list(range(0, s - tile, stride)) + [s - tile] for s in (ph, pw)]
        acc, wsum = np.zeros((4, ph, pw)), np.zeros((ph, pw))
        for y0 in starts[0]:
            for x0 in starts[1]:
                wy = _ramp(tile, overlap, y0 > 0, y0 + tile < ph)
                wx = _ramp(tile, overlap, x0 > 0, x0 + tile < pw)
                wt = wy[:, None] * wx[None]  # tile tile
                acc[:, y0:y0 + tile, x0:x0 + tile] += _run(model, x[:, :, y0:y0 + tile, x0:x0 + tile]) * wt
                wsum[y0:y0 + tile, x0:x0 + tile] += wt
        raw = (acc / wsum)[:, :h, :w]
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    maps = dict(fg=sig(raw[0]).astype(np.float32), offset=raw[1:3].astype(np.float32),
                boundary=sig(raw[3]).astype(np.float32))
    return group_instances(maps["fg"], maps["offset"], maps["boundary"], **group_kwargs), maps


def offset_to_rgb(offset: np.ndarray, max_norm: float | None = None) -> np.ndarray:
    """Colour-code a 2 x H x W displacement field: hue = direction, value = magnitude / max_norm."""
    offset = np.asarray(offset, np.float64)
    if offset.ndim != 3 or offset.shape[0] != 2:
        raise ValueError(f"offset: expected 2 x H x W, got shape {offset.shape}")
    mag = np.hypot(offset[0], offset[1])
    norm = float(max_norm) if max_norm else max(float(mag.max()), 1e-8)
    hue = (np.arctan2(offset[0], offset[1]) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.ones_like(hue), np.clip(mag / norm, 0, 1)], -1)
    return (hsv_to_rgb(hsv) * 255 + 0.5).astype(np.uint8)
