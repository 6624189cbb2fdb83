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

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.images import check_rgb, to_float
from .grouping import group_instances


# ----------------------------------------------------------------------------- targets
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


class MeanSegmenter(nn.Module):
    """Several InstanceSegmenters of one architecture as one: each head is the members' mean (logits, offsets).
    Members trained on different draws of the same composites err in different places (on the development rods
    one photo's F1 moved by up to 0.14 between members; their mean of three gained only 0.008, docs/method.md)."""

    def __init__(self, members: list[InstanceSegmenter]) -> None:
        super().__init__()
        if not members or len({(m.levels, m.offset_scale) for m in members}) != 1:
            raise ValueError("MeanSegmenter: expected one or more InstanceSegmenters of the same levels")
        self.members, self.levels = nn.ModuleList(members), members[0].levels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outs = [m(x) for m in self.members]
        return {k: torch.stack([o[k] for o in outs]).mean(0) for k in outs[0]}


Segmenter = InstanceSegmenter | MeanSegmenter  # what inference takes: one network or the mean of several


def combine(members: list[InstanceSegmenter]) -> Segmenter:
    """One network as it is; several as their MeanSegmenter (what run_hoc trains and load_segmenter reads)."""
    return members[0] if len(members) == 1 else MeanSegmenter(members)


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
def _run(model: Segmenter, x: Tensor) -> np.ndarray:
    """Heads on one padded window: 4 h w (fg logit, offset y, offset x, boundary logit)."""
    m = 2 ** model.levels
    h, w = x.shape[2:]
    xp = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
    o = model(xp)
    return torch.cat([o["fg"], o["offset"], o["boundary"]], 1)[0, :, :h, :w].float().cpu().numpy()


VIEWS = (1, 2, 4, 8)  # test-time views: the window as it is, + left-right flip, + up-down flips, + transposes


def _run_views(model: Segmenter, x: Tensor, views: int = 1) -> np.ndarray:
    """`_run` averaged over the first `views` of the window's 8 flips and transposes, each mapped back (offsets
    flip sign along a flipped axis and swap under a transpose), so the heads do not depend on the photo's pose."""
    acc = None
    for v in range(views):
        tr, fy, fx = bool(v & 4), bool(v & 2), bool(v & 1)
        z = x.transpose(2, 3) if tr else x
        z = z.flip(2) if fy else z
        z = z.flip(3) if fx else z
        o = _run(model, z)  # 4 h w of the transformed window
        if fx:
            o = o[:, :, ::-1] * np.array([1, 1, -1, 1], np.float32)[:, None, None]
        if fy:
            o = o[:, ::-1, :] * np.array([1, -1, 1, 1], np.float32)[:, None, None]
        if tr:
            o = o.transpose(0, 2, 1)[[0, 2, 1, 3]]
        acc = o if acc is None else acc + o
    return acc / views


def predict_instances(model: Segmenter, image: np.ndarray, tile: int = 256, overlap: int = 32,
                      device: str | torch.device = "cpu", views: int = 1,
                      **group_kwargs) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Instance map of a whole H x W x 3 uint8 photo, sliding window when larger than `tile`.

    Logits and offsets are blended across tiles; offsets are relative to the pixel, hence
    translation-equivariant, so a tile's offsets need no shift. Each window's heads are averaged over `views`
    flips / transposes of it (`_run_views`). Returns (labels uint16, raw maps)."""
    image = check_rgb(image)
    m = 2 ** model.levels
    if tile < m or tile % m:
        raise ValueError(f"tile: expected a positive multiple of 2**levels = {m}, got {tile}")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"overlap: expected 0 <= overlap < tile/2 = {tile // 2}, got {overlap}")
    if views not in VIEWS:
        raise ValueError(f"views: expected one of {VIEWS}, got {views!r}")
    model.to(device).eval()
    h, w = image.shape[:2]
    x = to_float(torch.from_numpy(np.ascontiguousarray(image).copy()).to(device).permute(2, 0, 1)[None])  # 1 3 h w
    if max(h, w) <= tile:
        raw = _run_views(model, x, views)  # 4 h w
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
                acc[:, y0:y0 + tile, x0:x0 + tile] += _run_views(model, x[:, :, y0:y0 + tile, x0:x0 + tile], views) * wt
                wsum[y0:y0 + tile, x0:x0 + tile] += wt
        raw = (acc / wsum)[:, :h, :w]
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    maps = dict(fg=sig(raw[0]).astype(np.float32), offset=raw[1:3].astype(np.float32),
                boundary=sig(raw[3]).astype(np.float32))
    return group_instances(maps["fg"], maps["offset"], maps["boundary"], **group_kwargs), maps
