"""Appearance of a homogeneous object cluster: surfaces, shaded objects, shadows, camera, microscopes.

Why: a method chosen on synthetic images must meet the nuisances of real ones: textured backgrounds
(paper, fabric, wood, stone), a light direction that shades every object alike and casts shadows on the
table and on neighbours, uneven illumination, blur, sensor noise and JPEG; under the microscope,
fluorescence (additive emitters, defocus, shot noise) and phase contrast (dark cells, bright halos).
"""

from __future__ import annotations

import colorsys
import functools
import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import skimage.data

if TYPE_CHECKING:
    from .scene import Inst, Scene


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB in 0..255 (float32) from clipped HSV."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32) * 255


def fractal(rng: np.random.Generator, H: int, W: int, cells: int = 3, octaves: int = 5,
            decay: float = 0.6) -> np.ndarray:
    """Smooth random field (mean 0, std 1): octaves of upsampled white noise, coarse ones strongest."""
    out = np.zeros((H, W), np.float32)
    for o in range(octaves):
        c = cells * 2 ** o
        small = rng.standard_normal((c * H // max(H, W) + 2, c * W // max(H, W) + 2)).astype(np.float32)
        out += decay ** o * cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    return (out - out.mean()) / (out.std() + 1e-6)


def grain(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Blurred white noise with std 1: fine texture at the scale sigma (px)."""
    g = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return g / (g.std() + 1e-6)


@functools.cache
def _photo(name: str) -> np.ndarray:
    return getattr(skimage.data, name)().astype(np.float32)


def _tint(gray: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """A grayscale field (around 1) coloured: HxW -> HxWx3."""
    return gray[..., None] * colour[None, None, :]


def surface(rng: np.random.Generator, H: int, W: int, kind: str, colour: np.ndarray, contrast: float) -> np.ndarray:
    """A background HxWx3 float image: 'paper', 'fabric', 'wood', 'stone' (skimage texture) or 'plain'."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    if kind == "paper":  # fibres and blotches
        f = 0.5 * fractal(rng, H, W, 4) + 0.8 * grain(rng, (H, W), 0.7)
        fib = np.zeros((H, W), np.float32)
        for _ in range(H * W // 400):
            x, y, a, L = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(0, np.pi), rng.uniform(4, 20)
            p, q = (x - L * math.cos(a), y - L * math.sin(a)), (x + L * math.cos(a), y + L * math.sin(a))
            cv2.line(fib, tuple(map(int, p)), tuple(map(int, q)), float(rng.uniform(-1, 1)), 1, cv2.LINE_AA)
        g = f + 1.5 * cv2.GaussianBlur(fib, (0, 0), 0.6)
    elif kind == "fabric":  # a plain weave with uneven threads
        period, warp = rng.uniform(3.0, 7.0), 0.6 * fractal(rng, H, W, 6)
        a = rng.uniform(0, np.pi)
        u, v = xx * math.cos(a) + yy * math.sin(a) + warp, -xx * math.sin(a) + yy * math.cos(a) + warp
        over = np.sin(np.pi * u / period) * np.sin(np.pi * v / period)
        g = 1.2 * np.where(over > 0, np.abs(np.sin(2 * np.pi * v / period)), np.abs(np.sin(2 * np.pi * u / period)))
        g = g - g.mean() + 0.5 * fractal(rng, H, W, 5) + 0.4 * grain(rng, (H, W), 0.6)
    elif kind == "wood":  # planks: long, gently waving grain bands of uneven width, thin seams
        a = rng.uniform(0, np.pi)
        u = xx * math.cos(a) + yy * math.sin(a) + rng.uniform(2, 8) * fractal(rng, H, W, 1, 3)
        v = yy * math.cos(a) - xx * math.sin(a)
        g = 0.4 * fractal(rng, H, W, 2)
        for step, amp in ((rng.uniform(5, 12), 1.0), (1.5, 0.45)):
            knots = np.arange(-H - W - 2 * step, H + W + 2 * step, step)
            g += amp * np.interp(u, knots, rng.standard_normal(len(knots)))
        plank = rng.uniform(60, 160)
        g -= 3.0 * np.exp(-(((v + rng.uniform(0, plank)) % plank) - 1.0) ** 2 / 0.8)
    elif kind == "stone":  # a bundled texture photo, crop-resized
        src = _photo(("brick", "gravel", "grass", "moon")[rng.integers(4)])
        side = int(rng.uniform(0.35, 1.0) * 512)
        y, x = rng.integers(0, 512 - side + 1, size=2)
        g = cv2.resize(src[y:y + side, x:x + side], (W, H), interpolation=cv2.INTER_AREA)
        g = (g - g.mean()) / (g.std() + 1e-6)
    else:
        g = 0.7 * fractal(rng, H, W, 2) + 0.2 * grain(rng, (H, W), 1.0)
    g = g / (g.std() + 1e-6)
    return _tint(1 + contrast * g, colour)


def light_dir(rng: np.random.Generator, elev: tuple[float, float] = (0.6, 1.1)) -> np.ndarray:
    """A unit vector towards the light, from a random azimuth and elevation (radians)."""
    az, el = rng.uniform(0, 2 * np.pi), rng.uniform(*elev)
    return np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)], np.float32)


def shade(inst: Inst, light: np.ndarray, albedo: np.ndarray | np.ndarray, *, dome: float = 1.0, bevel: float = 0.0,
          relief: np.ndarray | None = None, amb: float = 0.3, spec: float = 0.0, shine: float = 20.0,
          spec_rgb: np.ndarray | None = None) -> np.ndarray:
    """Lambert + Blinn shading of the instance's height field: a dome sqrt(1 - q^2) x dome, or a flat
    face with a rounded rim `bevel` wide (coins, pills), plus an optional relief (in units of r)."""
    q = np.minimum(inst.q, 1.0)
    if bevel > 0:
        t = np.clip((1 - q) / bevel, 0, 1)
        h = bevel * dome * t * t * (3 - 2 * t)
    else:
        h = dome * np.sqrt(np.clip(1 - q * q, 0, 1))
    if relief is not None:
        h = h + relief
    gy, gx = np.gradient(h * inst.r)
    norm = np.sqrt(gx * gx + gy * gy + 1)
    lam = np.clip((-gx * light[0] - gy * light[1] + light[2]) / norm, 0, 1)
    half = light + np.array([0, 0, 1], np.float32)
    half /= np.linalg.norm(half)
    hl = np.clip((-gx * half[0] - gy * half[1] + half[2]) / norm, 0, 1) ** shine
    rgb = albedo * (amb + (1 - amb) * lam)[..., None]
    s = np.full(3, 255.0, np.float32) if spec_rgb is None else spec_rgb
    return rgb + spec * hl[..., None] * s


def cast_shadow(img: np.ndarray, inst: Inst, light: np.ndarray, height: float, blur: float, strength: float) -> None:
    """Darken img in place under inst's shadow: its alpha shifted away from the light by height/tan(elev)."""
    dx, dy = -light[0] / light[2] * height, -light[1] / light[2] * height
    m = int(abs(dx) + abs(dy) + 3 * blur + 2)
    a = cv2.copyMakeBorder(inst.alpha, m, m, m, m, cv2.BORDER_CONSTANT, value=0)
    a = cv2.warpAffine(a, np.float32([[1, 0, dx], [0, 1, dy]]), a.shape[::-1])
    if blur > 0.3:
        a = cv2.GaussianBlur(a, (0, 0), blur)
    H, W = img.shape[:2]
    y0, x0 = inst.y0 - m, inst.x0 - m
    ya, xa, yb, xb = max(y0, 0), max(x0, 0), min(y0 + a.shape[0], H), min(x0 + a.shape[1], W)
    img[ya:yb, xa:xb] *= (1 - strength * a[ya - y0:yb - y0, xa - x0:xb - x0])[..., None]


def paste(img: np.ndarray, inst: Inst, rgb: np.ndarray) -> None:
    """Alpha-composite the instance's colour window over img in place."""
    a = inst.alpha[..., None]
    img[inst.sl] = a * rgb + (1 - a) * img[inst.sl]


def illumination(rng: np.random.Generator, H: int, W: int, vignette: float, gradient: float) -> np.ndarray:
    """A multiplicative light field: radial fall-off from an off-centre point times a linear ramp."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * H, rng.uniform(0.3, 0.7) * W
    rad = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * (H * H + W * W))
    a = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - W / 2) * math.cos(a) + (yy - H / 2) * math.sin(a)) / max(H, W)
    return (1 - vignette * rad) * (1 + gradient * ramp)


def camera(rng: np.random.Generator, img: np.ndarray, blur: float, noise: float, jpeg: int | None) -> np.ndarray:
    """Lens blur, sensor noise (signal-dependent), 8-bit quantisation and optional JPEG round trip."""
    if blur > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    sd = noise * np.sqrt(np.clip(img, 0, 255) / 128 + 0.25)
    img = img + sd * rng.standard_normal(img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).round().astype(np.uint8)
    if jpeg is not None:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


# --------------------------------------------------------------------------- microscopes


def _emitter(rng: np.random.Generator, inst: Inst, k: float, texture: tuple[float, float], spots: bool) -> np.ndarray:
    """One nucleus' (or cell's) emission: exp(-k q^2) with chromatin grain and 0-3 bright chromocentres."""
    q = np.minimum(inst.q, 1.0)
    tex = 1 + rng.uniform(*texture) * grain(rng, q.shape, max(0.8, inst.r / 4))
    inner = np.flatnonzero(q.ravel() < 0.7)
    yy, xx = np.mgrid[0:q.shape[0], 0:q.shape[1]]
    for _ in range(rng.integers(0, 4) if spots and len(inner) else 0):
        sy, sx = np.unravel_index(rng.choice(inner), q.shape)
        tex += rng.uniform(0.3, 0.9) * np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * (0.15 * inst.r) ** 2 + 0.5))
    return np.exp(-k * q * q) * tex * inst.alpha


def fluorescence(rng: np.random.Generator, scene: Scene, peak: float, texture: tuple[float, float] = (0.08, 0.3),
                 spots: bool = True, p_soft: float = 0.2, spread: float = 0.5) -> np.ndarray:
    """Fluorescence: every instance adds light (_emitter), of uneven brightness (lognormal `spread`), a
    fraction p_soft out of focus; then PSF, scattered light, haze, uneven illumination, shot and read
    noise, 8-bit scaling. Returns uint8 HxWx3 (gray replicated)."""
    H, W = scene.labels.shape
    sharp, soft = np.zeros((H, W), np.float32), np.zeros((H, W), np.float32)
    k = rng.uniform(0.3, 1.2) * peak
    for inst in scene.insts:
        layer = soft if rng.random() < p_soft else sharp
        layer[inst.sl] += np.clip(rng.lognormal(0, spread), 0.15, 3.0) * _emitter(rng, inst, k, texture, spots)
    img = cv2.GaussianBlur(sharp, (0, 0), rng.uniform(0.6, 1.4))
    img += cv2.GaussianBlur(soft, (0, 0), rng.uniform(1.8, 3.2))
    img += rng.uniform(0.2, 1.0) * cv2.GaussianBlur(img, (0, 0), 12)  # light scattered around dense parts
    img += rng.uniform(0.02, 0.12) * (1 + 0.3 * fractal(rng, H, W, 3))  # background haze
    img *= illumination(rng, H, W, rng.uniform(0.2, 0.7), rng.uniform(0.0, 0.6))
    photons = rng.uniform(15, 150)
    img = rng.poisson(np.clip(img, 0, None) * photons).astype(np.float32) / photons
    img += rng.normal(0, rng.uniform(0.005, 0.03), img.shape).astype(np.float32)
    top = np.percentile(img[scene.labels > 0], 99) if scene.insts else 1.0
    g = np.clip(img * rng.uniform(170, 250) / top, 0, 255).round().astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def phase_contrast(rng: np.random.Generator, scene: Scene) -> np.ndarray:
    """Phase-contrast microscopy: gray field, dark cells with darker rims, bright halos outside."""
    H, W = scene.labels.shape
    cover, body = np.zeros((H, W), np.float32), np.zeros((H, W), np.float32)
    for inst in scene.insts:
        q = np.minimum(inst.q, 1)
        cover[inst.sl] = np.maximum(cover[inst.sl], inst.alpha)
        body[inst.sl] = np.maximum(body[inst.sl], inst.alpha * rng.uniform(0.45, 0.7) * (0.75 + 0.25 * q * q))
    halo = np.clip(cv2.GaussianBlur(cover, (0, 0), rng.uniform(2.0, 3.5)) - cover, 0, 1)
    img = rng.uniform(110, 160) * (1 + 0.05 * fractal(rng, H, W, 3)) * (1 - body + rng.uniform(0.8, 1.6) * halo)
    img *= illumination(rng, H, W, rng.uniform(0.1, 0.4), rng.uniform(0.0, 0.3))
    out = camera(rng, img[..., None].repeat(3, axis=2), rng.uniform(0.5, 1.0), rng.uniform(2.0, 6.0), None)
    return np.repeat(out[..., :1], 3, axis=2)
