"""A part-structured synthetic category for task 1: birds (body, head, beak, wing, tail, legs, an eye) in a
fixed arrangement, under random pose, scale and aspect, with textured and coloured parts, on photo
backgrounds with clutter and distractors outside the box. A bird with a part cut off looks wrong, which is
what the independence prior needs (a random polygon with a part missing still looks like a random polygon).
Deterministic by seed, like the kites (synth.py); written in the CUB layout by `synth_cub.make_synthetic_cub`.
"""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .synth import _PHOTOS, FILL_RANGE, _clutter, _colour, _distractors, _pattern, _photo_crop


def _ellipse(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0, n: int = 28) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = ax * np.cos(t), ay * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], 1)


def _bird_parts(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Polygons in the bird's frame: body along x (head to the right, +x), y down, body length 1."""
    bh = rng.uniform(0.2, 0.32)  # body half-height
    hr = rng.uniform(0.13, 0.2)  # head radius
    hx, hy = 0.5 + 0.55 * hr, -bh * rng.uniform(0.4, 0.9)
    bl = rng.uniform(0.08, 0.22)  # beak length
    tl, ts = rng.uniform(0.2, 0.45), rng.uniform(0.05, 0.2)  # tail length, spread
    parts = {"body": [_ellipse(0, 0, 0.5, bh, rng.uniform(-0.15, 0.15))],
             "head": [_ellipse(hx, hy, hr, hr * rng.uniform(0.9, 1.1))],
             "beak": [np.array([[hx + 0.8 * hr, hy - 0.35 * hr], [hx + 0.8 * hr, hy + 0.3 * hr], [hx + hr + bl, hy + 0.05]])],
             "tail": [np.array([[-0.42, -0.06], [-0.42, 0.08], [-0.45 - tl, 0.1 + ts], [-0.45 - tl, -0.05 - ts]])]}
    if rng.random() < 0.4:  # a raised wing (flying): reaches well above the body
        ws = rng.uniform(0.3, 0.6)
        parts["wing"] = [np.array([[0.15, -0.3 * bh], [-0.3, -0.2 * bh], [-0.35 - 0.2 * ws, -bh - ws],
                                   [-0.05, -bh - 0.8 * ws]])]
    else:  # a folded wing on the body
        parts["wing"] = [_ellipse(-0.08, -0.1 * bh, rng.uniform(0.28, 0.38), bh * 0.55, rng.uniform(-0.25, 0.05))]
    ll = rng.uniform(0.12, 0.3)
    parts["legs"] = [np.array([[dx, 0.8 * bh], [dx + 0.02, bh + ll]]) for dx in (-0.08, 0.08)]
    return parts


def _render_bird(rng: np.random.Generator, size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Place a random bird (rotation +-35 deg, flip, aspect 0.8-1.25, 30-60% of the side): part masks, union."""
    parts = _bird_parts(rng)
    theta = rng.uniform(-0.6, 0.6)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.diag(
        [rng.uniform(0.8, 1.25), 1.0])
    if rng.random() < 0.5:
        rot = rot @ np.diag([-1.0, 1.0])
    pts = {k: [p @ rot.T for p in v] for k, v in parts.items()}
    allp = np.concatenate([p for v in pts.values() for p in v])
    lo, hi = allp.min(0), allp.max(0)
    scale = rng.uniform(0.3, 0.6) * size / (hi - lo).max()
    offset = rng.uniform(2, size - 3 - (hi - lo) * scale) - lo * scale
    masks = {}
    for k, polys in pts.items():
        m = np.zeros((size, size), np.uint8)
        fixed = [np.round((p * scale + offset) * 16).astype(np.int32) for p in polys]
        if k == "legs":
            cv2.polylines(m, fixed, False, 1, max(1, round(0.025 * scale)), cv2.LINE_8, shift=4)
        else:
            cv2.fillPoly(m, fixed, 1, cv2.LINE_8, shift=4)
        masks[k] = m
    return masks, np.maximum.reduce(list(masks.values())).astype(bool)


def _paint_bird(rng: np.random.Generator, masks: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Each part its own colour and texture; beak and legs in beak colours; a dark eye on the head."""
    base = _colour(rng)
    hue0 = colorsys.rgb_to_hsv(*(base / 255))[0]
    beak = np.array(colorsys.hsv_to_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.6, 1.0), rng.uniform(0.2, 0.95)),
                    np.float32) * 255
    out = np.zeros((size, size, 3), np.float32)
    for k in ("body", "tail", "wing", "head"):
        c1 = base if k == "body" or rng.random() < 0.3 else _colour(rng, hue0 + rng.uniform(-0.4, 0.4))
        c2 = _colour(rng, hue0 + rng.uniform(0.1, 0.9))
        t = _pattern(rng, size, rng.uniform(0, np.pi))[..., None] * rng.uniform(0.2, 0.8)
        out[masks[k] > 0] = ((1 - t) * c1 + t * c2)[masks[k] > 0]
    for k in ("beak", "legs"):
        out[masks[k] > 0] = beak * rng.uniform(0.8, 1.0)
    ys, xs = np.nonzero(masks["head"])
    if len(ys):
        r = max(1, int(0.12 * np.sqrt(len(ys))))
        cv2.circle(out, (int(xs.mean()), int(ys.mean())), r, (15.0, 15.0, 15.0), -1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    shade = 1 + rng.uniform(-0.25, 0.25) * (xx - 0.5) + rng.uniform(-0.25, 0.25) * (yy - 0.5)
    return out * shade[..., None]


def make_bird_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic bird photo (uint8 HxWx3) and its object mask (bool HxW) with box fill in FILL_RANGE."""
    best = None
    for _ in range(60):
        masks, union = _render_bird(rng, size)
        ys, xs = np.nonzero(union)
        fill = len(ys) / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
        gap = max(FILL_RANGE[0] - fill, fill - FILL_RANGE[1], 0.0)
        if best is None or gap < best[0]:
            best = (gap, masks, union, (xs.min(), ys.min(), xs.max(), ys.max()))
        if gap == 0:
            break
    _, masks, union, box = best
    bg = _photo_crop(rng, _PHOTOS, size, size)
    _clutter(rng, bg)
    obj = _paint_bird(rng, masks, size)
    hue = colorsys.rgb_to_hsv(*(np.clip(obj[union].mean(0), 1, 255) / 255))[0]
    _distractors(rng, bg, box, hue)
    alpha = cv2.GaussianBlur(union.astype(np.float32), (0, 0), 0.6)[..., None]
    img = alpha * obj + (1 - alpha) * bg
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.8))
    img = img + rng.normal(0, rng.uniform(1.5, 5.0), img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8), union
