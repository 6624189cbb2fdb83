"""A development suite of synthetic homogeneous-object-cluster (HOC) photos with exact instance labels.

Why: a single-image instance segmenter must be chosen on photos like the ones users bring (nuclei,
coins, berries, seeds, grains, pebbles, big tiled scans) and reported on seeds it never saw. Each kind
below mimics one such photo; every image comes with the label map of the VISIBLE part of each instance
(0 = background), made from the same anti-aliased shapes that were painted (alpha >= 0.5).
Depends on numpy, scipy, opencv, scikit-image and Pillow only; see scene.py (geometry) and look.py
(appearance).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from . import look
from .scene import Inst, Scene, blob, populate

KINDS: tuple[str, ...] = ("nuclei", "discs", "fruit", "dark_on_light", "rods", "sizes", "large")
SIZES = {"nuclei": 512, "discs": 320, "fruit": 320, "dark_on_light": 384, "rods": 384, "sizes": 320, "large": 2048}
COUNTS = {"nuclei": (60, 150), "discs": (20, 40), "fruit": (20, 35), "dark_on_light": (25, 60), "rods": (30, 70),
          "sizes": (20, 40), "large": (800, 1600)}  # instances at the default size; scaled by area otherwise


def _shape(H: int, W: int, r: float, aspect: float, angle: float, harm: tuple = (), p: float = 2.0,
           tag: int = 0) -> Callable[..., Inst | None]:
    """A builder for populate: (cx, cy, angle=None) -> the blob there (angle given overrides)."""
    def build(cx: float, cy: float, a: float | None = None) -> Inst | None:
        inst = blob(cx, cy, r, H, W, aspect, angle if a is None else a, harm, p)
        if inst is not None:
            inst.tag = tag
        return inst
    return build


def _wobble(rng: np.random.Generator, amp: float, orders: tuple[int, int] = (2, 5)) -> tuple:
    """Random rim harmonics: irregular but rounded outlines."""
    return tuple((rng.uniform(0, amp) / math.sqrt(k - 1), k, rng.uniform(0, 2 * np.pi)) for k in range(*orders))


# --------------------------------------------------------------------------- fluorescence (nuclei, large)


def _nuclei_scene(rng: np.random.Generator, H: int, W: int, n: int, diam: tuple[float, float],
                  density: np.ndarray | None = None, p_free: float = 0.87) -> Scene:
    """Sparse, slightly elliptical nuclei of diameters in diam; a fraction 1 - p_free placed touching another."""
    d0 = rng.uniform(diam[0] + 0.2 * (diam[1] - diam[0]), diam[1] - 0.2 * (diam[1] - diam[0]))

    def sample(g: np.random.Generator) -> tuple[float, Callable]:
        r = float(np.clip(d0 * g.lognormal(0, 0.15), *diam)) / 2
        return r, _shape(H, W, r, g.uniform(1.0, 1.45), g.uniform(0, np.pi), _wobble(g, 0.06))

    scene = Scene(H, W)
    populate(scene, rng, n, sample, n_seeds=5, p_free=p_free, near=(0.85, 1.0), free_gap=1.3, max_cover=0.05,
             dense=False, density=density)
    return scene


def _nuclei(rng: np.random.Generator, H: int, W: int, n: int) -> tuple[np.ndarray, Scene]:
    """A fluorescence field of view: 10-20 px nuclei, sparse, a few touching."""
    scene = _nuclei_scene(rng, H, W, n, (10.0, 20.0))
    return look.fluorescence(rng, scene, 1.0), scene


def _large(rng: np.random.Generator, H: int, W: int, n: int) -> tuple[np.ndarray, Scene]:
    """A tissue-like scan: nuclei 14-24 px whose density follows a smooth field (dense and empty areas)."""
    density = np.clip(0.55 + 0.6 * look.fractal(rng, H // 8, W // 8, 3, 3), 0.03, 1.0)
    density = cv2.resize(density, (W, H), interpolation=cv2.INTER_LINEAR)
    scene = _nuclei_scene(rng, H, W, n, (14.0, 24.0), density, p_free=0.7)
    return look.fluorescence(rng, scene, 1.0), scene


# --------------------------------------------------------------------------- photographed objects


def _backdrop(rng: np.random.Generator, H: int, W: int, kinds: tuple[str, ...], val: tuple[float, float],
              sat: tuple[float, float] = (0.0, 0.4), contrast: tuple[float, float] = (0.04, 0.15)) -> np.ndarray:
    """A table-top surface of a random kind and colour (value range val)."""
    kind = kinds[rng.integers(len(kinds))]
    if kind == "wood":  # wood is brown whatever the rest of the palette
        colour = look.hsv(rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.7), rng.uniform(*val))
    else:
        colour = look.hsv(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return look.surface(rng, H, W, kind, colour, rng.uniform(*contrast))


def _photograph(rng: np.random.Generator, scene: Scene, bg: np.ndarray,
                paint: Callable[[Inst, np.ndarray], np.ndarray],
                shadow: tuple[float, float, float]) -> np.ndarray:
    """Paint back to front; each object first casts its shadow (height, blur in radii; strength) on what
    lies below it. Then uneven light, blur, noise and JPEG."""
    light = look.light_dir(rng)
    img = bg.astype(np.float32).copy()
    for inst in scene.insts:
        look.cast_shadow(img, inst, light, shadow[0] * inst.r, shadow[1] * inst.r, shadow[2])
        look.paste(img, inst, paint(inst, light))
    H, W = img.shape[:2]
    img *= look.illumination(rng, H, W, rng.uniform(0, 0.35), rng.uniform(0, 0.35))[..., None]
    jpeg = int(rng.integers(75, 96)) if rng.random() < 0.7 else None
    return look.camera(rng, img, rng.uniform(0.3, 0.9), rng.uniform(1.0, 4.0), jpeg)


def _radius(rng: np.random.Generator, H: int, W: int, n: int, cover: tuple[float, float], cap: float) -> float:
    """The typical radius at which n objects cover a fraction `cover` of the image, capped by cap x side."""
    return min(math.sqrt(rng.uniform(*cover) * H * W / (n * math.pi)), cap * min(H, W))


def _offsets(inst: Inst) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (dy, dx) from the instance's centre over its window."""
    yy, xx = np.mgrid[0:inst.q.shape[0], 0:inst.q.shape[1]].astype(np.float32)
    return yy + inst.y0 - inst.cy, xx + inst.x0 - inst.cx


def _coin_relief(rng: np.random.Generator, inst: Inst) -> np.ndarray:
    """A coin's heights (in radii): raised rim, a ring of lettering with a gap, an embossed motif."""
    q, (dy, dx) = inst.q, _offsets(inst)
    th = np.arctan2(dy, dx)
    t = np.clip((q - 0.86) / 0.05, 0, 1)
    letters = (np.sin(th * rng.integers(18, 40) + rng.uniform(0, 6.3)) > 0.1) & (np.abs(q - 0.76) < 0.05)
    letters &= np.cos(th - rng.uniform(0, 2 * np.pi)) < 0.75
    motif = (look.grain(rng, q.shape, inst.r / 5) > 0.3) & (q < 0.62)
    emb = cv2.GaussianBlur(0.015 * letters.astype(np.float32) + 0.03 * motif, (0, 0), 0.7)
    return 0.04 * t * t * (3 - 2 * t) + emb


def _discs(rng: np.random.Generator, H: int, W: int, n: int) -> tuple[np.ndarray, Scene]:
    """Coins (metal, flat face, raised rim, embossed design) or pills (matte domes, some scored),
    packed in 1-3 touching clusters, slightly foreshortened by a tilted camera."""
    coin, r0 = rng.random() < 0.55, _radius(rng, H, W, n, (0.3, 0.45), 1 / 7)
    tilt, tilt_a = rng.uniform(1.0, 1.1), rng.uniform(0, np.pi)
    metals = [look.hsv(*hsv) for hsv in ((0.07, 0.65, 0.75), (0.12, 0.55, 0.8), (0.6, 0.04, 0.78), (0.1, 0.3, 0.7))]
    denoms = [(rng.uniform(0.88, 1.12), metals[rng.integers(4)]) for _ in range(rng.integers(1, 3))]
    pill = look.hsv(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.8, 0.96))
    scored = rng.random() < 0.5

    def sample(g: np.random.Generator) -> tuple[float, Callable]:
        d = int(g.integers(len(denoms)))
        r = r0 * (denoms[d][0] * g.uniform(0.98, 1.02) if coin else g.uniform(0.95, 1.05))
        return r, _shape(H, W, r, tilt * g.uniform(1.0, 1.02), tilt_a + g.normal(0, 0.05), tag=d)

    def paint(inst: Inst, light: np.ndarray) -> np.ndarray:
        q, sh = inst.q, inst.q.shape
        if coin:
            e, (dy, dx) = rng.uniform(0, 2 * np.pi), _offsets(inst)
            env = 1 + 0.3 * (dx * math.cos(e) + dy * math.sin(e)) / inst.r + 0.06 * look.grain(rng, sh, inst.r / 3)
            metal = denoms[inst.tag][1]
            return look.shade(inst, light, metal * env[..., None], bevel=0.1, relief=_coin_relief(rng, inst),
                              amb=0.3, spec=0.4, shine=14, spec_rgb=metal * 1.3)
        alb = pill * rng.uniform(0.97, 1.03)
        relief = None
        if scored:
            a = rng.uniform(0, np.pi)
            dy, dx = _offsets(inst)
            dist = dx * math.sin(a) - dy * math.cos(a)
            relief = -0.05 * np.exp(-(dist / (0.06 * inst.r)) ** 2) * (q < 0.85)
        return look.shade(inst, light, alb, dome=0.35, relief=relief, amb=0.45, spec=0.2, shine=8)

    scene = Scene(H, W)
    populate(scene, rng, n, sample, n_seeds=int(rng.integers(1, 4)), p_free=0.03, near=(0.9, 1.0), max_cover=0.1)
    bg = _backdrop(rng, H, W, ("wood", "fabric", "paper", "stone", "plain"), (0.25, 0.8))
    return _photograph(rng, scene, bg, paint, (0.15 if coin else 0.3, 0.15, rng.uniform(0.3, 0.55))), scene


_BERRIES = ((0.22, 0.55, 0.75, 0.8, 0.0), (0.97, 0.6, 0.45, 0.7, 0.1), (0.63, 0.45, 0.32, 0.25, 0.4),
            (0.8, 0.45, 0.28, 0.6, 0.2), (0.07, 0.65, 0.45, 0.3, 0.0), (0.0, 0.85, 0.72, 0.9, 0.0),
            (0.13, 0.8, 0.85, 0.6, 0.0))  # hue, sat, val, gloss, bloom: green/red/black grape, blueberry,
# hazelnut-brown, red currant, mirabelle


def _fruit(rng: np.random.Generator, H: int, W: int, n: int) -> tuple[np.ndarray, Scene]:
    """Glossy spheres of 2-4 species in one heap, overlapping up to a quarter radius, with highlights,
    blueberry bloom and crowns, and shadows on the table and on each other."""
    species = rng.choice(len(_BERRIES), size=int(rng.integers(2, 5)), replace=False)
    scale = rng.uniform(0.85, 1.15, size=len(species))
    r0 = _radius(rng, H, W, n, (0.38, 0.52), 1 / 7)

    def sample(g: np.random.Generator) -> tuple[float, Callable]:
        t = int(g.integers(len(species)))
        r = r0 * scale[t] * g.uniform(0.92, 1.08)
        return r, _shape(H, W, r, g.uniform(1.0, 1.12), g.uniform(0, np.pi), _wobble(g, 0.02), tag=t)

    def paint(inst: Inst, light: np.ndarray) -> np.ndarray:
        h, s, v, gloss, bloom = _BERRIES[species[inst.tag]]
        sh, q = inst.q.shape, np.minimum(inst.q, 1)
        alb = look.hsv(h + rng.normal(0, 0.015), s * rng.uniform(0.85, 1.1), v * rng.uniform(0.8, 1.15))
        alb = alb * (1 + 0.05 * look.grain(rng, sh, 1.0))[..., None]
        if bloom:
            wax = bloom * np.clip(0.7 + 0.4 * look.grain(rng, sh, inst.r / 4), 0, 1)[..., None]
            alb = alb * (1 - wax) + wax * np.array([150, 155, 170], np.float32)
        rgb = look.shade(inst, light, alb, amb=0.25, spec=gloss * (1 - bloom), shine=rng.uniform(25, 70))
        rgb += 0.15 * alb * (1 - q * q)[..., None]  # light scattered inside the flesh
        (dy, dx), a, d = _offsets(inst), rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.45) * inst.r
        dist = np.hypot(dx - d * math.cos(a), dy - d * math.sin(a))
        size = 0.17 if bloom > 0.3 else 0.07  # a blueberry's crown, else a stem scar
        if bloom > 0.3 or rng.random() < 0.4:
            rgb *= 1 - 0.55 * np.exp(-(dist / (size * inst.r)) ** 4)[..., None]
        return rgb

    scene = Scene(H, W)
    populate(scene, rng, n, sample, n_seeds=int(rng.integers(1, 3)), p_free=0.03, near=(0.87, 0.98), max_cover=0.2)
    bg = _backdrop(rng, H, W, ("wood", "fabric", "plain", "stone"), (0.3, 0.9), contrast=(0.03, 0.12))
    return _photograph(rng, scene, bg, paint, (0.8, 0.3, rng.uniform(0.3, 0.55))), scene


def _dark_on_light(rng: np.random.Generator, H: int, W: int, n: int) -> tuple[np.ndarray, Scene]:
    """Seeds (glossy ellipsoids), stones (irregular, matte, speckled) or peppercorns (round, wrinkled),
    dark on light paper or cloth; scattered, some in touching groups."""
    style = ("seeds", "stones", "pepper")[rng.integers(3)]
    aspect = {"seeds": (1.3, 2.0), "stones": (1.0, 1.6), "pepper": (1.0, 1.15)}[style]
    wob = {"seeds": 0.03, "stones": 0.14, "pepper": 0.05}[style]
    r0 = _radius(rng, H, W, n, (0.14, 0.28), 1 / 12)
    base = (rng.uniform(0.02, 0.13), rng.uniform(0.15, 0.7), rng.uniform(0.08, 0.32))

    def sample(g: np.random.Generator) -> tuple[float, Callable]:
        r = r0 * g.uniform(0.85, 1.15)
        return r, _shape(H, W, r, g.uniform(*aspect), g.uniform(0, np.pi), _wobble(g, wob))

    def paint(inst: Inst, light: np.ndarray) -> np.ndarray:
        sh = inst.q.shape
        alb = look.hsv(base[0] + rng.normal(0, 0.01), base[1] * rng.uniform(0.8, 1.2),
                       base[2] * rng.uniform(0.7, 1.3))
        speck = {"seeds": 0.05, "stones": 0.2, "pepper": 0.1}[style]
        alb = alb * np.clip(1 + speck * look.grain(rng, sh, max(0.7, inst.r / 8)), 0.3, 2)[..., None]
        relief = 0.06 * look.grain(rng, sh, inst.r / 5) if style == "pepper" else None
        spec = {"seeds": 0.45, "stones": 0.05, "pepper": 0.15}[style]
        return look.shade(inst, light, alb, dome=0.6, relief=relief, amb=0.3, spec=spec, shine=18)

    scene = Scene(H, W)
    populate(scene, rng, n, sample, n_seeds=int(rng.integers(3, 10)), p_free=0.45, near=(0.9, 1.02), free_gap=1.15,
             max_cover=0.05, dense=False)
    bg = _backdrop(rng, H, W, ("paper", "fabric", "paper", "plain"), (0.72, 0.95), (0.0, 0.15), (0.02, 0.08))
    return _photograph(rng, scene, bg, paint, (0.4, 0.3, rng.uniform(0.25, 0.45))), scene


def _rod_near(rng: np.random.Generator, par: Inst, r: float) -> tuple[float, float, float]:
    """A rod next to the parent: side by side (like rice in a heap) or end to end (a dividing cell)."""
    ang, (a, b) = par.angle + rng.normal(0, 0.12), par.half
    c, s = math.cos(par.angle), math.sin(par.angle)
    if rng.random() < 0.6:
        along, across = rng.uniform(-0.5, 0.5) * a, rng.choice([-1, 1]) * 2 * b * rng.uniform(1.0, 1.1)
    else:
        along, across = rng.choice([-1, 1]) * 2 * a * rng.uniform(1.0, 1.1), rng.normal(0, 0.3) * b
    return par.cx + along * c - across * s, par.cy + along * s + across * c, ang


def _rods(rng: np.random.Generator, H: int, W: int, n: int) -> tuple[np.ndarray, Scene]:
    """Rice grains on a dark surface (cloth, wood, stone), or bacteria (phase contrast: dark with a
    bright halo; or fluorescent): aspect 2.5-5, random angles, some side by side or end to end, a few tips crossing."""
    style = ("rice", "phase", "fluor")[rng.integers(3)]
    b0 = rng.uniform(3.5, 6.5) * math.sqrt(H * W) / 384

    def sample(g: np.random.Generator) -> tuple[float, Callable]:
        b, asp = b0 * g.uniform(0.9, 1.1), g.uniform(2.5, 5.0)
        r = b * math.sqrt(asp)
        return r, _shape(H, W, r, asp, g.uniform(0, np.pi), p=2.2 if style == "rice" else 3.0)

    scene = Scene(H, W)
    populate(scene, rng, n, sample, n_seeds=5, p_free=0.6, free_gap=0.0, max_cover=0.12, dense=False,
             near_fn=_rod_near)
    if style == "fluor":
        return look.fluorescence(rng, scene, 0.4, texture=(0.03, 0.1), spots=False, p_soft=0.05, spread=0.3), scene
    if style == "phase":
        return look.phase_contrast(rng, scene), scene
    cream = look.hsv(rng.uniform(0.08, 0.14), rng.uniform(0.05, 0.25), rng.uniform(0.8, 0.95))

    def paint(inst: Inst, light: np.ndarray) -> np.ndarray:
        alb = cream * rng.uniform(0.92, 1.05) * (1 + 0.04 * look.grain(rng, inst.q.shape, 1.5))[..., None]
        return look.shade(inst, light, alb, dome=0.6, amb=0.55, spec=0.25, shine=15)

    bg = _backdrop(rng, H, W, ("fabric", "wood", "stone", "plain"), (0.08, 0.4), (0.0, 0.7))
    return _photograph(rng, scene, bg, paint, (0.25, 0.2, rng.uniform(0.3, 0.5))), scene


def _sizes(rng: np.random.Generator, H: int, W: int, n: int) -> tuple[np.ndarray, Scene]:
    """Round-ish objects whose radii spread uniformly over 0.7-1.3 x r0 in one image, packed touching:
    pebbles, oranges, biscuits or sweets."""
    style = ("pebble", "orange", "biscuit", "sweet")[rng.integers(4)]
    r0 = _radius(rng, H, W, n, (0.33, 0.48), 1 / 10) / math.sqrt(1.03)  # E[s^2] of s ~ U(0.7, 1.3)
    hue = {"pebble": rng.uniform(0.05, 0.15), "orange": rng.uniform(0.0, 0.09), "biscuit": rng.uniform(0.07, 0.1),
           "sweet": rng.random()}[style]
    sv = {"pebble": (0.05, 0.3, 0.45, 0.8), "orange": (0.75, 0.95, 0.7, 0.95), "biscuit": (0.45, 0.7, 0.55, 0.8),
          "sweet": (0.5, 0.9, 0.5, 0.9)}[style]
    s0, v0 = rng.uniform(*sv[:2]), rng.uniform(*sv[2:])

    def sample(g: np.random.Generator) -> tuple[float, Callable]:
        r = r0 * g.uniform(0.7, 1.3)
        wob = _wobble(g, 0.1 if style == "pebble" else 0.04)
        return r, _shape(H, W, r, g.uniform(1.0, 1.15), g.uniform(0, np.pi), wob)

    def paint(inst: Inst, light: np.ndarray) -> np.ndarray:
        sh = inst.q.shape
        jit = 0.25 if style == "pebble" else 0.1  # one kind of object per image; pebbles differ most
        s, v = s0 * rng.uniform(1 - jit, 1 + jit), v0 * rng.uniform(1 - jit, 1 + jit)
        alb = look.hsv(hue + rng.normal(0, 0.01), s, v)
        if style == "pebble":
            speck = 0.15 * look.grain(rng, sh, 1.0) + 0.1 * look.grain(rng, sh, inst.r / 3)
            alb = alb * np.clip(1 + speck, 0.3, 2)[..., None]
            return look.shade(inst, light, alb, dome=0.55, amb=0.35, spec=0.08, shine=10)
        if style == "orange":
            return look.shade(inst, light, alb, relief=0.005 * look.grain(rng, sh, 1.0), amb=0.3, spec=0.35, shine=30)
        if style == "biscuit":
            return look.shade(inst, light, alb, dome=0.4, bevel=0.3, relief=0.05 * look.grain(rng, sh, inst.r / 6),
                              amb=0.35, spec=0.05, shine=10)
        return look.shade(inst, light, alb, dome=0.45, amb=0.35, spec=0.5, shine=40)

    scene = Scene(H, W)
    populate(scene, rng, n, sample, n_seeds=int(rng.integers(1, 4)), p_free=0.03, near=(0.92, 1.0), max_cover=0.06)
    bg = _backdrop(rng, H, W, ("wood", "fabric", "paper", "stone", "plain"), (0.2, 0.9))
    return _photograph(rng, scene, bg, paint, (0.5, 0.25, rng.uniform(0.3, 0.5))), scene


_MAKERS = {"nuclei": _nuclei, "discs": _discs, "fruit": _fruit, "dark_on_light": _dark_on_light, "rods": _rods,
           "sizes": _sizes, "large": _large}


def make_hoc(kind: str, seed: int, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 HxWx3 RGB, labels uint16 HxW: 0 = background, 1..N = the visible part of each instance
    in depth order). Deterministic in (kind, seed, size). size=None: the kind's default (discs: each side
    256-384); a given size is square and counts scale with its area."""
    if kind not in _MAKERS:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    rng = np.random.default_rng([KINDS.index(kind), int(seed), 0x40C])
    if size is None:
        H, W = (int(rng.integers(256, 385)), int(rng.integers(256, 385))) if kind == "discs" else (SIZES[kind],) * 2
    elif size < 64:
        raise ValueError(f"size={size}: expected at least 64 pixels")
    else:
        H = W = int(size)
    lo, hi = COUNTS[kind]
    n = int(rng.integers(lo, hi + 1))
    if size is not None:
        n = max(1, round(n * H * W / SIZES[kind] ** 2))
    img, scene = _MAKERS[kind](rng, H, W, n)
    return img, scene.labels


def suite(seeds: Iterable[int]) -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
    """Every kind x seed: (kind, seed, image, labels)."""
    seeds = list(seeds)
    for kind in KINDS:
        for s in seeds:
            img, lab = make_hoc(kind, s)
            yield kind, s, img, lab
