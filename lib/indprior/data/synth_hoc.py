"""Synthetic HOC images: one cluster of touching, slightly overlapping coin- or berry-like instances with its
exact instance label map (the visible part of each instance), for tests and the workbook's examples."""
from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

from .synth import _TEXTURES, _photo_crop


def _pack(rng: np.random.Generator, n: int, radius: tuple[float, float], H: int, W: int) -> list[tuple[float, float, float]]:
    """Discs (x, y, r) grown as 1-3 packed clusters: each new disc touches (or slightly overlaps)
    one already placed; of 8 candidate spots the one touching the most discs wins (dense packing)."""
    discs = np.zeros((0, 3))
    n_seeds = int(rng.integers(1, 4))
    for attempt in range(100 * n):
        if len(discs) == n:
            break
        r = rng.uniform(*radius)
        if len(discs) < n_seeds or attempt > 50 * n:  # late on, start a new cluster anywhere free
            cand, min_gap = np.array([[rng.uniform(r + 1, W - r - 1), rng.uniform(r + 1, H - r - 1)]]), 1.0
        else:
            parent = discs[rng.integers(len(discs), size=8)]
            a, d = rng.uniform(0, 2 * np.pi, 8), (r + parent[:, 2]) * rng.uniform(0.84, 0.97, 8)
            cand, min_gap = parent[:, :2] + d[:, None] * np.stack([np.cos(a), np.sin(a)], 1), 0.84
        inside = np.all((cand >= r + 1) & (cand <= np.array([W, H]) - r - 1), axis=1)
        dist = np.linalg.norm(cand[:, None] - discs[None, :, :2], axis=2)  # cand x discs
        ok = inside & np.all(dist >= min_gap * (r + discs[None, :, 2]), axis=1)
        if ok.any():
            touching = np.where(ok, (dist < 1.02 * (r + discs[None, :, 2])).sum(1), -1)
            x, y = cand[int(np.argmax(touching))]
            discs = np.vstack([discs, [x, y, r]])
    return [tuple(map(float, d)) for d in discs]



def _backdrop(rng: np.random.Generator, discs: list[tuple[float, float, float]], radius: tuple[float, float],
              light: np.ndarray, H: int, W: int) -> np.ndarray:
    """A low-contrast texture with the cluster's drop shadow (cast away from the light): H W 3 float."""
    fg = np.zeros((H, W), np.float32)
    for x, y, r in discs:
        cv2.circle(fg, (int(x), int(y)), int(r), 1.0, -1)
    bg = _photo_crop(rng, _TEXTURES, H, W)
    bg = bg.mean() + (bg - bg.mean()) * rng.uniform(0.3, 0.6)
    shift = np.float32([[1, 0, -4 * light[0] / light[2]], [0, 1, -4 * light[1] / light[2]]])
    shadow = cv2.GaussianBlur(cv2.warpAffine(fg, shift, (W, H)), (0, 0), radius[0] / 4)
    return bg * (1 - 0.45 * shadow[..., None])


def _shade_disc(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, disc: tuple[float, float, float],
                light: np.ndarray, berry: bool, hsv: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """One slightly elliptical instance: (alpha H W 1, shaded colour H W 3). A berry is a sphere (Lambert plus a
    specular highlight); a coin a flat face with a bevelled rim."""
    x, y, r = disc
    ecc, ang = rng.uniform(0.0, 0.08), rng.uniform(0, np.pi)
    u = (xx - x) * math.cos(ang) + (yy - y) * math.sin(ang)
    v = -(xx - x) * math.sin(ang) + (yy - y) * math.cos(ang)
    q = np.sqrt((u / (r * (1 + ecc))) ** 2 + (v / (r * (1 - ecc))) ** 2)  # 1 on the rim
    alpha = np.clip((1 - q) * r + 0.5, 0, 1)[..., None]
    nx, ny = (xx - x) / r, (yy - y) / r
    if berry:
        nz = np.sqrt(np.clip(1 - q ** 2, 0, 1))
    else:
        nz = np.where(q < 0.82, 1.0, np.sqrt(np.clip(1 - ((q - 0.82) / 0.2) ** 2, 0.05, 1)))
        nx, ny = np.where(q < 0.82, 0, nx), np.where(q < 0.82, 0, ny)
    norm = np.sqrt(nx ** 2 + ny ** 2 + nz ** 2) + 1e-6
    lambert = np.clip((nx * light[0] + ny * light[1] + nz * light[2]) / norm, 0, 1)
    half = light + np.array([0, 0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip((nx * half[0] + ny * half[1] + nz * half[2]) / norm, 0, 1) ** (40 if berry else 12)
    hue, sat, val = hsv
    col = _colour_hsv(hue + rng.uniform(-0.025, 0.025), sat * rng.uniform(0.85, 1.1), val * rng.uniform(0.85, 1.15))
    tex = 1 + 0.06 * cv2.GaussianBlur(rng.standard_normal(xx.shape).astype(np.float32), (0, 0), 1.2)
    shaded = col * (0.35 + 0.75 * lambert * tex)[..., None] + (0.6 if berry else 0.35) * 255 * spec[..., None]
    return alpha, shaded


def make_synthetic_hoc(seed: int = 0, size: tuple[int, int] = (256, 256), n_instances: tuple[int, int] = (15, 40),
                       radius: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One image of a homogeneous object cluster (coin- or berry-like) and its instance labels.

    Returns (uint8 HxWx3, uint16 HxW with 0 = background and 1..N = the VISIBLE part of each
    instance, in depth order). Instances touch or overlap a little; the count is in n_instances.
    radius=None picks a radius so the cluster covers about 30-45% of the image.
    """
    H, W = size
    lo, hi = n_instances
    if H < 32 or W < 32:
        raise ValueError(f"size={size}: expected both sides >= 32 pixels")
    if not 1 <= lo <= hi:
        raise ValueError(f"n_instances={n_instances}: expected 1 <= low <= high")
    rng = np.random.default_rng([seed, 7])
    n = int(rng.integers(lo, hi + 1))
    if radius is None:
        r = min(math.sqrt(rng.uniform(0.30, 0.45) * H * W / (n * math.pi)), min(H, W) / 6)
        radius = (0.9 * r, 1.1 * r)
    if not 0 < radius[0] <= radius[1]:
        raise ValueError(f"radius={radius}: expected 0 < low <= high")
    discs = _pack(rng, n, radius, H, W)
    if len(discs) < lo:
        raise ValueError(f"only {len(discs)} instances of radius {radius} fit in {size}; "
                         f"expected at least {lo} (reduce radius or n_instances)")
    order = rng.permutation(len(discs))  # depth order: later drawn = in front
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), 1.0])
    light /= np.linalg.norm(light)
    berry = rng.random() < 0.5
    hsv = (rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.45, 0.85))
    img = _backdrop(rng, discs, radius, light, H, W)
    labels = np.zeros((H, W), np.uint16)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    for k, i in enumerate(order, start=1):
        alpha, shaded = _shade_disc(rng, xx, yy, discs[i], light, berry, hsv)
        img = alpha * shaded + (1 - alpha) * img
        labels[alpha[..., 0] >= 0.5] = k
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.5) + rng.normal(0, rng.uniform(1.0, 3.0), img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8), labels


def _colour_hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32) * 255
