"""Synthetic data for task 1: a CUB-layout set of kite-like objects (the HOC cluster images: synth_hoc.py).

Why synthetic: the method must be tested end to end in seconds without downloads. The sets are
made hard enough to be informative: real photo backgrounds (scikit-image's bundled images), clutter
and look-alike distractors outside the box, so that colour alone or the whole box is a poor mask.
Everything is deterministic by seed; image i of a set depends only on (seed, i).
"""

from __future__ import annotations

import colorsys
import functools
import math

import cv2
import numpy as np
import skimage.data

_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera",
           "coins", "moon", "text", "clock", "immunohistochemistry")
_TEXTURES = ("brick", "grass", "gravel", "moon")
FILL_RANGE = (0.40, 0.65)  # object area / box area: a full-box mask must be a bad answer


@functools.cache
def _photo(name: str) -> np.ndarray:
    img = getattr(skimage.data, name)()
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else np.ascontiguousarray(img[..., :3])


def _colour(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    """A random RGB colour in 0..255, not always saturated."""
    h = rng.random() if hue is None else hue % 1.0
    s = rng.uniform(0.0, 1.0) ** 0.7
    v = rng.uniform(0.3, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255


def _photo_crop(rng: np.random.Generator, names: tuple[str, ...], h: int, w: int) -> np.ndarray:
    """A random crop of a random bundled photo, resized to h x w, flipped and colour-jittered."""
    src = _photo(names[rng.integers(len(names))])
    H, W = src.shape[:2]
    side = int(rng.uniform(0.25, 1.0) * min(H, W))
    ch, cw = min(H, side), min(W, int(side * w / h))
    y, x = rng.integers(0, H - ch + 1), rng.integers(0, W - cw + 1)
    img = cv2.resize(src[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = img[..., rng.permutation(3)] * rng.uniform(0.75, 1.25, size=3)
    mean = img.mean()
    return np.ascontiguousarray((img - mean) * rng.uniform(0.6, 1.2) + mean * rng.uniform(0.8, 1.2))


def _clutter(rng: np.random.Generator, img: np.ndarray) -> None:
    """Semi-transparent blobs and lines drawn in place: edges that are not the object's."""
    H, W = img.shape[:2]
    for _ in range(rng.integers(1, 6)):
        layer = img.copy()
        centre = (int(rng.integers(W)), int(rng.integers(H)))
        axes = (int(rng.integers(3, W // 5)), int(rng.integers(3, H // 5)))
        cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, _colour(rng).tolist(), -1)
        a = rng.uniform(0.3, 0.8)
        img[:] = a * layer + (1 - a) * img
    for _ in range(rng.integers(0, 5)):
        p, q = rng.integers(0, [W, H], size=(2, 2))
        cv2.line(img, tuple(map(int, p)), tuple(map(int, q)), _colour(rng).tolist(), int(rng.integers(1, 4)))


# --------------------------------------------------------------------------- the kite category


def _kite_geometry(rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Local-frame parts (unit body, nose up): body polygon, wing polygons, tail string, tail polygons."""
    top, bottom, half_w = rng.uniform(0.5, 1.0), rng.uniform(0.9, 1.6), rng.uniform(0.4, 0.8)
    if rng.random() < 0.6:  # diamond kite body
        body = np.array([[0, -top], [half_w, 0], [0, bottom], [-half_w, 0]])
    else:  # oval, bird-like body
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        body = np.stack([half_w * 0.8 * np.cos(t), (bottom - top) / 2 + (top + bottom) / 2 * np.sin(t)], 1)
    wings = []
    span, sweep, chord = rng.uniform(0.25, 0.9), rng.uniform(-0.3, 0.7), rng.uniform(0.2, 0.5)
    for side in (-1, 1):
        s = span * rng.uniform(0.85, 1.15)
        root_x = side * half_w * 0.6
        wings.append(np.array([[root_x, -chord * 0.5], [side * (half_w + s), -sweep],
                               [side * (half_w + s * 0.8), -sweep + chord * 0.4], [root_x, chord]]))
    length = rng.uniform(0.5, 1.3)
    t = np.linspace(0, 1, 16)
    wave = rng.uniform(0.05, 0.25) * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 6.3))
    string = np.stack([wave * t, bottom + length * t], 1)
    tails = []
    if rng.random() < 0.5:  # bows along a string
        for f in rng.uniform(0.35, 1.0, size=rng.integers(1, 4)):
            px, py = string[int(f * 15)]
            b = rng.uniform(0.08, 0.16)
            tails += [np.array([[px, py], [px - 1.6 * b, py - b], [px - 1.6 * b, py + b]]),
                      np.array([[px, py], [px + 1.6 * b, py - b], [px + 1.6 * b, py + b]])]
    else:  # a fan tail, bird-like
        spread = rng.uniform(0.15, 0.45)
        tails.append(np.array([[-0.1, bottom - 0.1], [0.1, bottom - 0.1],
                               [spread, bottom + length * 0.6], [-spread, bottom + length * 0.6]]))
        string = string[:1]
    return [body], wings, string, tails


def _render_kite(rng: np.random.Generator, size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Place a random kite (pose, scale 25-60% of the side); returns per-part uint8 masks and the union."""
    body, wings, string, tails = _kite_geometry(rng)
    theta = rng.uniform(-np.pi / 2, np.pi / 2)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    if rng.random() < 0.5:
        rot = rot @ np.diag([-1.0, 1.0])
    groups = {"body": body, "wings": wings, "tail": tails, "string": [string]}
    pts = {k: [p @ rot.T for p in v] for k, v in groups.items()}
    allp = np.concatenate([p for v in pts.values() for p in v])
    lo, hi = allp.min(0), allp.max(0)
    scale = rng.uniform(0.25, 0.6) * size / (hi - lo).max()
    offset = rng.uniform(2, size - 3 - (hi - lo) * scale) - lo * scale
    masks = {}
    for k, polys in pts.items():
        m = np.zeros((size, size), np.uint8)
        fixed = [np.round((p * scale + offset) * 16).astype(np.int32) for p in polys]
        if k == "string":
            if len(fixed[0]) > 1:
                thick = max(1, round(0.03 * scale))
                cv2.polylines(m, fixed, False, 1, thick, cv2.LINE_8, shift=4)
        elif fixed:
            cv2.fillPoly(m, fixed, 1, cv2.LINE_8, shift=4)
        masks[k] = m
    union = np.maximum.reduce(list(masks.values())).astype(bool)
    return masks, union


def _pattern(rng: np.random.Generator, size: int, theta: float) -> np.ndarray:
    """A texture field in [0, 1]: stripes, spots, a gradient or plain."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    kind = rng.integers(4)
    if kind == 0:
        return (np.sin(2 * np.pi * u / rng.uniform(4, 14) + rng.uniform(0, 6.3)) > 0).astype(np.float32)
    if kind == 1:
        t = np.zeros((size, size), np.float32)
        for _ in range(rng.integers(10, 40)):
            cv2.circle(t, tuple(map(int, rng.integers(0, size, 2))), int(rng.integers(1, 5)), 1.0, -1)
        return t
    if kind == 2:
        return (u - u.min()) / (u.max() - u.min())
    return np.zeros((size, size), np.float32)


def _paint(rng: np.random.Generator, masks: dict[str, np.ndarray], size: int) -> np.ndarray:
    """The object's colour field (HxWx3 float): each part its own colour and texture."""
    base = _colour(rng)
    hue0 = colorsys.rgb_to_hsv(*(base / 255))[0]
    out = np.zeros((size, size, 3), np.float32)
    for k in ("body", "wings", "tail", "string"):
        c1 = base if k == "body" or rng.random() < 0.4 else _colour(rng, hue0 + rng.uniform(-0.5, 0.5))
        c2 = _colour(rng, hue0 + rng.uniform(0.1, 0.9))
        t = _pattern(rng, size, rng.uniform(0, np.pi))[..., None] * rng.uniform(0.4, 1.0)
        out[masks[k] > 0] = ((1 - t) * c1 + t * c2)[masks[k] > 0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    shade = 1 + rng.uniform(-0.25, 0.25) * (xx - 0.5) + rng.uniform(-0.25, 0.25) * (yy - 0.5)
    return out * shade[..., None]


def _distractors(rng: np.random.Generator, img: np.ndarray, box: tuple[int, int, int, int], hue: float) -> None:
    """0-2 simple shapes (not kites) fully outside the object's box, sometimes in the object's hue."""
    size = img.shape[0]
    x0, y0, x1, y1 = box
    for _ in range(rng.integers(0, 3)):
        r = int(rng.uniform(0.05, 0.11) * size)
        for _try in range(30):
            cx, cy = rng.integers(r + 1, size - r - 1, size=2)
            if cx + r < x0 - 2 or cx - r > x1 + 2 or cy + r < y0 - 2 or cy - r > y1 + 2:
                break
        else:
            continue
        col = _colour(rng, hue + rng.uniform(-0.05, 0.05) if rng.random() < 0.4 else None).tolist()
        kind = rng.integers(4)
        if kind == 0:
            cv2.circle(img, (int(cx), int(cy)), r, col, -1)
        elif kind == 1:
            cv2.circle(img, (int(cx), int(cy)), r, col, max(2, r // 3))  # ring
        else:
            n = 4 if kind == 2 else 3  # rotated square or triangle
            a = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
            poly = np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1).round().astype(np.int32)
            cv2.fillPoly(img, [poly], col)


def make_kite_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image (uint8 HxWx3) and its object mask (bool HxW) with fill in FILL_RANGE."""
    best = None
    for _ in range(60):
        masks, union = _render_kite(rng, size)
        ys, xs = np.nonzero(union)
        if len(ys) == 0:
            continue
        fill = len(ys) / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
        gap = max(FILL_RANGE[0] - fill, fill - FILL_RANGE[1], 0.0)
        if best is None or gap < best[0]:
            best = (gap, masks, union, (xs.min(), ys.min(), xs.max(), ys.max()))
        if gap == 0:
            break
    _, masks, union, box = best
    bg = _photo_crop(rng, _PHOTOS, size, size)
    _clutter(rng, bg)
    obj = _paint(rng, masks, size)
    hue = colorsys.rgb_to_hsv(*(np.clip(obj[union].mean(0), 1, 255) / 255))[0]
    _distractors(rng, bg, box, hue)
    alpha = cv2.GaussianBlur(union.astype(np.float32), (0, 0), 0.6)[..., None]
    img = alpha * obj + (1 - alpha) * bg
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.8))
    img = img + rng.normal(0, rng.uniform(1.5, 5.0), img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8), union
