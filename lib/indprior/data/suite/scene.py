"""Geometry of a homogeneous object cluster: anti-aliased instance shapes and occlusion-aware placement.

Why: the labels must be exact. Every instance is an implicit shape q(x, y) (q <= 1 inside, 0 at the
centre) rasterised on a small window; the label map is kept up to date while placing, newest in front,
and a placement is refused if it would hide too much of an instance already placed or cut it in two.
So no instance is ever drawn that the label map cannot show, and nothing needs dropping afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MIN_AREA = 12  # px: a smaller visible part is not a meaningful instance


@dataclass
class Inst:
    """One instance on its window: q (float32, <= 1 inside), alpha coverage, centre, size and pose."""

    y0: int
    x0: int
    q: np.ndarray
    alpha: np.ndarray
    cx: float
    cy: float
    r: float  # equivalent radius (sqrt of the semi-axes' product)
    angle: float
    half: tuple[float, float]  # semi-axes (along, across)
    tag: int = 0  # the kind's own sub-type (a coin's denomination, a berry's species)

    @property
    def sl(self) -> tuple[slice, slice]:
        h, w = self.q.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    @property
    def mask(self) -> np.ndarray:
        return self.alpha >= 0.5


Builder = Callable[..., "Inst | None"]  # (cx, cy, angle=None) -> Inst or None when it leaves the image


def blob(cx: float, cy: float, r: float, H: int, W: int, aspect: float = 1.0, angle: float = 0.0,
         harm: tuple[tuple[float, int, float], ...] = (), p: float = 2.0) -> Inst | None:
    """A (super)ellipse of equivalent radius r and axis ratio `aspect`, its rim wobbled by the harmonics
    (amplitude, order, phase). Coverage comes from q's signed distance, (1 - q) / |grad q|, so edges
    are anti-aliased and alpha >= 0.5 is exactly q <= 1. None if any of it would leave the image."""
    a, b = r * math.sqrt(aspect), r / math.sqrt(aspect)
    ext = a * (1 + sum(abs(h[0]) for h in harm)) * (1.0 if p <= 2 else 1.2) + 2
    x0, x1, y0, y1 = math.floor(cx - ext), math.ceil(cx + ext) + 1, math.floor(cy - ext), math.ceil(cy + ext) + 1
    if x0 < 1 or y0 < 1 or x1 > W - 1 or y1 > H - 1:
        return None
    dx, dy = np.meshgrid(np.arange(x0, x1, dtype=np.float32) - cx, np.arange(y0, y1, dtype=np.float32) - cy)
    c, s = math.cos(angle), math.sin(angle)
    u, v = (dx * c + dy * s) / a, (dy * c - dx * s) / b
    q = (np.abs(u) ** p + np.abs(v) ** p) ** (1 / p) if p != 2 else np.sqrt(u * u + v * v)
    if harm:
        th = np.arctan2(v, u)
        q = q / (1 + sum(amp * np.cos(k * th + ph) for amp, k, ph in harm))
    gy, gx = np.gradient(q)
    alpha = np.clip((1 - q) / (np.hypot(gx, gy) + 1e-6) + 0.5, 0, 1).astype(np.float32)
    inst = Inst(y0, x0, q.astype(np.float32), alpha, cx, cy, r, angle, (a, b))
    return inst if inst.mask.sum() >= MIN_AREA else None


class Scene:
    """The label map (depth = placement order, newest in front) and the instances placed so far."""

    def __init__(self, H: int, W: int, keep: float = 0.6) -> None:
        self.labels = np.zeros((H, W), np.uint16)
        self.insts: list[Inst] = []
        self.area: list[int] = []
        self.vis: list[int] = []
        self.keep = keep  # each instance keeps at least this fraction of its area visible
        self.cxyr = np.zeros((0, 3))

    def add(self, inst: Inst, max_cover: float = 1.0) -> bool:
        """Put inst in front if no earlier instance loses more than max_cover of its area to it, nor
        falls below `keep` visible, nor is cut into pieces. True if placed."""
        win, m = self.labels[inst.sl], inst.mask
        under = win[m]
        ids, cnt = np.unique(under[under > 0], return_counts=True)
        for j, c in zip(ids - 1, cnt):
            if c > max_cover * self.area[j] or self.vis[j] - c < self.keep * self.area[j]:
                return False
        if not all(self._stays_whole(j, inst) for j in ids - 1):
            return False
        for j, c in zip(ids - 1, cnt):
            self.vis[j] -= int(c)
        win[m] = len(self.insts) + 1
        self.insts.append(inst)
        self.area.append(int(m.sum()))
        self.vis.append(int(m.sum()))
        self.cxyr = np.vstack([self.cxyr, [inst.cx, inst.cy, inst.r]])
        return True

    def _stays_whole(self, j: int, inst: Inst) -> bool:
        """Is instance j's visible part still one 4-connected piece once inst covers its mask?"""
        a, (ys, xs) = self.insts[j], inst.sl
        (ay, ax) = a.sl
        y0, y1 = min(ay.start, ys.start), max(ay.stop, ys.stop)
        x0, x1 = min(ax.start, xs.start), max(ax.stop, xs.stop)
        sub = self.labels[y0:y1, x0:x1] == j + 1
        sub[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] &= ~inst.mask
        return ndimage.label(sub)[1] == 1


def _radial_near(rng: np.random.Generator, parent: Inst, r: float,
                 near: tuple[float, float]) -> tuple[float, float, None]:
    """A spot touching the parent (centre distance `near` x the radii's sum) in a random direction."""
    a, d = rng.uniform(0, 2 * np.pi), (r + parent.r) * rng.uniform(*near)
    return parent.cx + d * math.cos(a), parent.cy + d * math.sin(a), None


def populate(scene: Scene, rng: np.random.Generator, n: int,
             sample: Callable[[np.random.Generator], tuple[float, Builder]], *, n_seeds: int = 1,
             p_free: float = 0.0, near: tuple[float, float] = (0.85, 0.98), free_gap: float = 1.0,
             max_cover: float = 0.15, dense: bool = True, density: np.ndarray | None = None,
             near_fn: Callable | None = None, tries: int = 60) -> None:
    """Place up to n instances. Free ones (centre at least free_gap x the radii's sum from every other,
    where `density` allows) start clusters; the rest grow next to a random placed one. dense=True takes,
    of 8 spots, the one with the most neighbours, which packs clusters tightly."""
    H, W = scene.labels.shape
    near_fn = near_fn or (lambda g, par, r: _radial_near(g, par, r, near))
    for attempt in range(tries * n):
        if len(scene.insts) >= n:
            break
        r, build = sample(rng)
        k = len(scene.insts)
        if k < n_seeds or rng.random() < p_free or attempt > tries * n // 2:
            xy = rng.uniform([r, r], [W - r, H - r], size=(8, 2))
            if density is not None:
                xy = xy[rng.random(8) < density[xy[:, 1].astype(int), xy[:, 0].astype(int)]]
            if k:
                d = np.linalg.norm(xy[:, None] - scene.cxyr[None, :, :2], axis=2)
                xy = xy[np.all(d >= free_gap * (r + scene.cxyr[None, :, 2]), axis=1)]
            cands = [(x, y, None) for x, y in xy[:1]]
        else:
            cands = [near_fn(rng, scene.insts[i], r) for i in rng.integers(k, size=8)]
            if dense:
                xy = np.array([c[:2] for c in cands])
                d = np.linalg.norm(xy[:, None] - scene.cxyr[None, :, :2], axis=2)
                touching = (d < 1.05 * (r + scene.cxyr[None, :, 2])).sum(1)
                cands = [cands[i] for i in np.argsort(-touching, kind="stable")]
        for cx, cy, ang in cands:
            inst = build(cx, cy, ang)
            if inst is not None and scene.add(inst, max_cover):
                break
