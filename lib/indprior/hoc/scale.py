"""What a cluster photo shows, read off the photo itself: which pixels are objects, how big one object is,
and where the objects are (candidate centres). No labels, no hint about polarity.

Foreground: the background is what the photo's frame shows. A smooth surface (quadratic in x, y, per RGB
channel) is fitted to the frame, so uneven lighting and vignetting drop out; each pixel's colour distance to
it (unsigned, so bright-on-dark and dark-on-light read alike) above Otsu's threshold seeds GrabCut, whose colour
models then follow multi-coloured objects and textured backgrounds. Where Otsu's threshold falls between two faces
of the objects themselves (their lit and dark sides; a yellow and a purple kind on wood), the seed is widened to the
other face (`_seed`); a few objects of a second kind nearly the backdrop's colour (copper coins among silver ones on
wood) are cut again with the seed and added (`_whole_objects`); when the mask still leaves out much of what differs
from the backdrop, the seed is grown into it and GrabCut run again (`_grow`, kept when it takes in most of what was
left out). The inverted photo gives the same mask.
Size: objects touch and overlap, so connected components are useless; the inscribed discs are not. Each
object's centre is a peak of the foreground's distance transform whose height is the object's half-width; the
median peak gives the typical width, isolated single objects give the typical length (rods, grains). A photo whose
lone objects read long but whose neighbouring centres meet at necks, not along level ridges, shows round objects
side by side (`ridge_share`): its objects are taken for round ones. In a heap the inscribed discs run large (touching
objects leave no background between them); the heap's rim does not: an opening by a disc wider than the objects
eats into every rounded outer object at once (`opened_diameter`), which caps the size of heaped round objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.measure import regionprops

from ..data.images import DataError, border_mean, check_rgb

MIN_WIDTH = 3.0  # px: objects thinner than this are noise, not a cluster
ELONGATED = 2.0  # objects at least this many widths long are elongated (rods, grains): grouped and masked as such
HEAP, HEAPED = 3.0, 0.5  # a foreground part larger than HEAP typical objects is a heap of touching objects; a photo
# with at least HEAPED of its foreground in heaps is heaped (its size estimate runs high: segment.size_for)
ROD_WIDTH = 2.5  # a lone rod or grain is at most this many typical widths wide: a convex heap of round objects is
# not. At 1.5 two rods fused side by side (~2 widths) were no single either, and held-out rods fell (docs/method.md,
# session 26)
KEEP = 0.7  # GrabCut must keep this share of the probable-object pixels, else it is reseeded (_grabcut)
FRAME_SEED = 0.05  # Otsu's threshold may pass at most this share of the frame's backdrop, else the seed is by colour
NOVEL = 1.0  # colours off a textured frame must add at least the seed itself (_seed), or come as whole objects:
WHOLE, NETWORK, APART = 0.5, 20.0, 0.5  # parts whose inscribed radius is at least WHOLE x the seed's typical
# half-width, whose area is at most NETWORK such inscribed discs (not the web of gaps between touching objects) and
# whose rim lies at most APART in the seed (objects of their own, not other faces of found ones): _whole_objects
REGROW = 0.1  # the foreground is cut again with a grown seed when its first cut leaves out more than this (_foreground)
LEFT_OUT = 0.35  # a run warns when more than this share of the foreground's area differs from the backdrop outside it
FILL_PEAKS, FILL_DISCS, FILL_HOLE = 20, 2.0, 0.125  # a photo with at least FILL_PEAKS centre peaks whose foreground
# holds at least FILL_DISCS discs of the first width per peak has its width measured again with the foreground's holes
# under FILL_HOLE of such a disc filled (dimples and highlights inside objects set small peaks: small_holes_filled;
# photos of elongated objects never: docs/method.md, session 28)
RIDGE_REACH, RIDGE_LEVEL, RIDGED = 1.3, 0.8, 0.4  # centre peaks under RIDGE_REACH typical widths apart
# are neighbours; the distance transform along the segment between two neighbours at least RIDGE_LEVEL of the smaller
# one's radius is a level ridge (one rod's ridge: its peaks lie a width apart on it). A photo whose singles read
# elongated but whose neighbours are joined by level ridges under RIDGED of the time shows round objects side by side
# (ridge_share; photo_stats: docs/method.md, session 40)
OPEN_LOSS = 2.0  # px of foreground per px of its boundary that an opening by a disc wider than the objects removes:
# the opened diameter (opened_diameter; chosen on development fruit, sizes and discs, session 41)
RIM_MARGIN = 1.1  # heaped round objects work at their opened diameter where the size from the estimate exceeds it by
# more than this (segment.measured_size): within it the two readings' own spread (stones of sizes +-30 %: the rims
# follow the smaller ones) lowered development sizes 103 to a cut stone (docs/method.md, session 41)
SQUAT = 1.6  # lone objects that read ELONGATED widths long but under SQUAT times their own minor axis are round: thin
# parts of the foreground (junk along faint objects) set the median centre peak (photo_stats; development nuclei 5:
# 1.23, every development rods photo 2.10 or more: docs/method.md, session 41)
_DISK2 = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2  # a disc of radius 2 px: grown seed parts thinner than it are dropped


def _frame(h: int, w: int) -> np.ndarray:
    """The photo's frame: a ring ~2.5% of the short side wide (at least 2 px)."""
    t = max(2, min(h, w) // 40)
    ring = np.ones((h, w), bool)
    ring[t:h - t, t:w - t] = False
    return ring


def _robust_level(values: np.ndarray, k: float) -> float:
    """median + k robust sigmas (1.4826 x the median absolute deviation) of `values`."""
    med = float(np.median(values))
    return med + k * 1.4826 * float(np.median(np.abs(values - med)))


def _clean_frame(dev: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """The frame's pixels whose deviation is no outlier (<= median + 3 robust sigmas): objects in the frame left out."""
    return ring & (dev <= _robust_level(dev[ring], 3) + 1e-3)


def deviation(image: np.ndarray, sigma: float = 1.5, refits: int = 3) -> np.ndarray:
    """Per-pixel RGB distance to a smooth background surface fitted to the frame: H W float32. Unsigned and in
    RGB (not Lab, whose lightness is not symmetric), so the inverted photo gives exactly the same deviation."""
    return _norm(residual(image, sigma, refits)[0])


def _norm(res: np.ndarray) -> np.ndarray:
    return np.sqrt(res[..., 0] ** 2 + res[..., 1] ** 2 + res[..., 2] ** 2)


def residual(image: np.ndarray, sigma: float = 1.5, refits: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(photo - backdrop, backdrop), both H W 3 float32: the photo blurred by `sigma` less a smooth surface
    (quadratic in x, y, per RGB channel) fitted to the frame. Objects that touch the frame would pull the fit
    towards them (a dense photo: the whole background then deviates and dim objects drown); the fit is repeated
    `refits` times on the frame pixels whose deviation is not an outlier (median + 3 robust sigmas), so what
    stands in the frame is left out."""
    h, w = image.shape[:2]
    lab = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    ring = _frame(h, w)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], -1).astype(np.float32)  # h w 6
    use = ring
    for i in range(refits + 1):
        back = np.zeros((h, w, 3), np.float32)
        for c in range(3):
            coef, *_ = np.linalg.lstsq(basis[use], lab[..., c][use], rcond=None)
            back[..., c] = basis @ coef.astype(np.float32)
        res = lab - back
        dev = _norm(res)
        inliers = _clean_frame(dev, ring)
        if i == refits or inliers.sum() < 12 or (inliers == use).all():
            break
        use = inliers
    return res, back


def _seed(res: np.ndarray, back: np.ndarray, t: float, noise: float,
          clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probable-object pixels: the deviation |res| above Otsu's threshold `t`, plus what Otsu's threshold split
    off the objects. Otsu's threshold falls between two modes of the objects' own deviation when they show two
    faces: shaded or speckled objects whose dark side is nearly the backdrop (on a clean frame), or a cluster of
    several colours, one far from the backdrop and the others near it (on a textured frame). Seeded with the
    strong mode alone, GrabCut learns the other as backdrop. So:

    - clean frame (its `noise` under t / 4): the seed grows by hysteresis down to max(noise, t / 2), keeping
      only the thick part of what was added (thinner than a disc of radius 2 px: blur halos, shadow slivers
      along every rim);
    - textured frame: pixels whose colour lies off the frame texture's own spread (Mahalanobis distance to the
      frame's residual colours above twice its 99th percentile on the frame), that are not a darkening or
      lightening of the backdrop (a shadow, a highlight: residual within ~18 degrees of the backdrop colour or
      its complement) and are thick, join the seed when they are at least `NOVEL` x the seed (when they are
      fewer, they are returned apart and `_foreground` takes in those of them that are whole objects:
      `_whole_objects`). Where Otsu's threshold passes more than `FRAME_SEED` of the frame's own backdrop
      (objects standing in the frame left out), the deviation cannot tell the objects from the backdrop's
      texture (veined marble, clouded metal, bricks): those off-texture colours alone are the seed.

    Returns (the seed, the off-texture parts too few to join it: empty but in that last case). Symmetric in the
    photo's polarity. Chosen on the suite's development seeds 0-9 and 100-159 (docs/method.md, session 23;
    `FRAME_SEED` on seeds 0-9 and 100-199, session 29; the parts left apart, session 35)."""
    dev = _norm(res)
    seed = dev > t
    none = np.zeros_like(seed)
    if noise < 0.25 * t:
        return _hysteresis(seed, dev > max(noise, 0.5 * t)), none
    if clean.sum() < 12:  # `clean`: the frame, objects standing in it left out (_clean_frame)
        return seed, none
    off = _off_texture(res, back, clean, dev)
    if seed[clean].mean() > FRAME_SEED and off.sum() >= 12:  # the backdrop's own texture passes Otsu's threshold
        return off, none
    novel = off & ~seed
    return (seed | novel, none) if novel.sum() >= NOVEL * seed.sum() else (seed, novel)


def _off_texture(res: np.ndarray, back: np.ndarray, clean: np.ndarray, dev: np.ndarray) -> np.ndarray:
    """Thick parts whose colour lies off the frame texture's own spread and is no shadow or highlight (`_seed`)."""
    cov = np.cov(res[clean].reshape(-1, 3).T) + np.eye(3)  # + 1 grey level^2: a flat frame is not singular
    dist = np.sqrt(np.einsum("hwi,ij,hwj->hw", res, np.linalg.inv(cov), res))
    off = dist > 2.0 * np.percentile(dist[clean], 99)
    norm = dev + 1e-6
    for axis in (back, 255.0 - back):  # shadows and highlights (and their inverted-photo twins) left out
        off &= np.abs((res * axis).sum(-1)) < 0.95 * norm * (np.linalg.norm(axis, axis=-1) + 1e-6)
    return ndi.binary_opening(off, _DISK2)


def _whole_objects(novel: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The parts of `novel` that could be objects of their own: their inscribed disc's radius at least `WHOLE` x
    the seed's median centre-peak radius (`centre_peaks`), their area at most `NETWORK` x that disc's (the web of
    gaps between the stones of a heap is as thick as a small object but spreads over dozens of them), and at most
    `APART` of the 2 px ring around them in the seed. Parts ringed by the seed are other faces of objects it holds
    (the shaded side of stones, dimples in fruit); joined, they fuse touching objects into wider parts and the size
    estimate rose up to 2 x (development sizes photo 127). Chosen on the suite's development seeds 0-9 and 100-199
    (docs/method.md, session 35)."""
    _, r = centre_peaks(ndi.binary_opening(seed, np.ones((3, 3), bool)))
    parts, n = ndi.label(novel)
    if not len(r) or n == 0:
        return np.zeros_like(novel)
    index = np.arange(1, n + 1)
    peak = ndi.maximum(ndi.distance_transform_edt(novel), parts, index)
    area = ndi.sum(novel, parts, index)
    rim = ndi.binary_dilation(novel, iterations=2) & ~novel  # 2 px around each part (parts closer share theirs)
    near = ndi.maximum_filter(parts, size=5) * rim  # each rim pixel labelled by the (largest-numbered) part it rings
    bordered = ndi.mean(seed[rim], near[rim], index) if rim.any() else np.zeros(n)
    keep = index[(peak >= WHOLE * float(np.median(r))) & (area <= NETWORK * np.pi * peak ** 2) & (bordered <= APART)]
    return np.isin(parts, keep)


def _grow(res: np.ndarray, back: np.ndarray, t: float, noise: float, clean: np.ndarray,
          seed: np.ndarray) -> np.ndarray:
    """The seed grown by hysteresis down to max(noise, t / 2) on a frame with texture (its noise up to 0.8 t),
    leaving out backdrop-coloured pixels: those whose colour (or its complement) lies closer in angle to the
    backdrop's than 1.5 x the frame's own 99th percentile - shadows, the frame's texture. Only the thick part of
    what is added is kept (as on a clean frame, `_seed`).

    Used by `_foreground` only when the first mask leaves more than `REGROW` of its area out (speckled stones
    whose dark side Otsu's threshold split off on a textured frame, discs of two faces, fruit of a second colour);
    used on every photo, it joined touching stones through their darker rims and the size estimate rose (sizes
    photo 9: 1.07 -> 1.47 x the truth). Chosen on the suite's development seeds (docs/method.md, sessions 24-25)."""
    dev = _norm(res)
    x = back + res
    angle = np.full(dev.shape, np.pi, np.float32)
    for v, b in ((x, back), (255.0 - x, 255.0 - back)):
        cos = (v * b).sum(-1) / (np.linalg.norm(v, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-6)
        angle = np.minimum(angle, np.arccos(np.clip(cos, -1.0, 1.0)))
    return _hysteresis(seed, (dev > max(noise, 0.5 * t)) & ~(angle < 1.5 * np.percentile(angle[clean], 99)))


def _hysteresis(seed: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """`seed` plus the candidate pixels `cand` connected to it, only the thick part of what is added (a disc of
    radius 2 px fits in it: blur halos and slivers along rims are dropped)."""
    parts, _ = ndi.label(cand | seed)
    hit = np.unique(parts[seed])
    return seed | ndi.binary_opening(np.isin(parts, hit[hit > 0]) & ~seed & cand, _DISK2)


def _grabcut(small: np.ndarray, dev: np.ndarray, t: float, ring: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """GrabCut seeded by the deviation: `seed` probable object, > 2 t sure object, low-deviation frame sure
    background.

    Shaded objects on a backdrop of their own hue (oranges or pebbles on wood) deviate most at their highlights;
    seeded from those alone, the object colour model learns highlights and GrabCut drops the rest of each object.
    When it keeps under `KEEP` of the probable-object pixels, it is run again with the whole probable-object
    mask, eroded by 2 px, as sure object (chosen on the suite's development seeds 0-9, docs/method.md)."""
    core = dev > 2 * t
    for attempt in range(2):
        gc = np.full(dev.shape, cv2.GC_PR_BGD, np.uint8)
        gc[seed] = cv2.GC_PR_FGD
        gc[core] = cv2.GC_FGD
        gc[ring & (dev < 0.5 * t)] = cv2.GC_BGD
        if (gc == cv2.GC_BGD).sum() < 20 or (gc == cv2.GC_FGD).sum() < 20:
            return seed
        cv2.setRNGSeed(0)  # GrabCut's k-means start: same photo, same mask
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), gc, None, np.zeros((1, 65)), np.zeros((1, 65)), 4,
                    cv2.GC_INIT_WITH_MASK)
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        if attempt == 1 or (fg & seed).sum() >= KEEP * seed.sum():
            break
        core = ndi.binary_erosion(seed, iterations=2)
    return fg


def foreground(image: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """Objects (True) vs background, bool H W (see the module docstring). Empty when nothing stands out.

    Colour photos and textured backgrounds go through GrabCut's colour models; a grey photo on a clean frame
    (fluorescence, a plain backdrop) is cut per object relative to its own peak, so dim objects count too."""
    return _foreground(image, max_side)[0]


def _foreground(image: np.ndarray, max_side: int = 1024) -> tuple[np.ndarray, float]:
    """(`foreground`, its `left_out` share), the share read off the same deviation, threshold and frame noise
    that cut the mask, at the working scale (the long side at most `max_side`; a larger photo's distances in px are
    then the working scale's, as for every step of the foreground)."""
    image = check_rgb(image, "image", min_side=16)
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else image
    res, back = residual(small)
    dev = _norm(res)
    if float(dev.max() - dev.min()) < 8.0:  # a flat photo: nothing differs from the frame by a visible amount
        return np.zeros((h, w), bool), 0.0
    ring = _frame(*dev.shape)
    t = threshold_otsu(dev)
    clean = _clean_frame(dev, ring)
    noise = _robust_level(dev[clean], 6)
    def cut(seed: np.ndarray) -> np.ndarray:
        return ndi.binary_opening(_grabcut(small, dev, t, ring, seed), np.ones((3, 3), bool))

    seed, apart = _seed(res, back, t, noise, clean)
    fg = cut(seed)
    grey = float(np.abs(small.astype(np.int16) - small.mean(2, keepdims=True)).mean()) < 2.0
    per_object = grey and noise < 0.5 * t  # a grey photo on a clean frame (fluorescence): dim objects count too
    if per_object:
        fg = _half_max(dev, max(noise, 0.25 * t), fg)
    left = _left_out(dev, t, noise, fg)
    if left > REGROW and not per_object and noise < 0.8 * t and clean.sum() >= 12:  # objects left out: grow into them
        retry = cut(_grow(res, back, t, noise, clean, seed))
        left_retry = _left_out(dev, t, noise, retry)
        if left_retry < 0.5 * left:  # the second cut must take in most of what the first left out
            fg, left = retry, left_retry
    second = np.zeros_like(seed) if per_object else _whole_objects(apart, seed)  # a few objects of a second kind
    if second.any():  # cut again with them; only its parts that hold them are added (the re-cut also lost objects
        parts, _ = ndi.label(cut(seed | second) & ~fg)  # of the first cut, and strewed specks on speckled ones)
        hit = np.unique(parts[second])
        fg = fg | np.isin(parts, hit[hit > 0])
        left = _left_out(dev, t, noise, fg)
    if s < 1:
        fg = cv2.resize(fg.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return fg, left


def _half_max(dev: np.ndarray, floor: float, fg_gc: np.ndarray) -> np.ndarray:
    """Objects above the frame's noise `floor`, each cut at 0.35 of its local peak (so a dim object counts as
    much as a bright one, and blur hardly grows or shrinks it: measured on the suite's nuclei, docs/method.md);
    kept unless that only added texture of another scale than the GrabCut mask `fg_gc`."""
    rough = ndi.binary_opening(dev > floor, np.ones((3, 3), bool))
    w = _median_width(rough)
    if w <= 0:
        return fg_gc
    peak = ndi.maximum_filter(dev, size=max(3, int(round(w))))
    dim = ndi.binary_opening((dev > floor) & (dev > 0.35 * peak), np.ones((3, 3), bool))
    w_gc, w_dim = _median_width(fg_gc), _median_width(dim)
    return dim if w_gc > 0 and 0.5 < w_dim / w_gc < 2 else fg_gc


def _median_width(fg: np.ndarray) -> float:
    _, r = centre_peaks(fg)
    return 2.0 * float(np.median(r)) if len(r) else 0.0


def centre_peaks(fg: np.ndarray, min_distance: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Object centres: peaks of the distance transform that are the highest point within their own inscribed
    disc (so a ridge or a lumpy rim gives one peak, not many). Returns (n 2 row/col, n radii)."""
    dist = ndi.distance_transform_edt(fg)
    pts = peak_local_max(dist, min_distance=max(1, int(min_distance)), threshold_abs=MIN_WIDTH / 2,
                         exclude_border=False)
    if len(pts) == 0:
        return np.zeros((0, 2), int), np.zeros(0)
    r = dist[pts[:, 0], pts[:, 1]]
    order = np.argsort(-r, kind="stable")
    pts, r = pts[order], r[order]
    keep = np.ones(len(pts), bool)
    tree_pts = pts.astype(np.float64)
    for i in range(len(pts)):  # greedy: a taller peak claims its inscribed disc (a ridge keeps ~1 peak per width)
        if keep[i]:
            near = np.hypot(*(tree_pts[i + 1:] - tree_pts[i]).T) < r[i]
            keep[i + 1:][near] = False
    return pts[keep], r[keep]


def is_elongated(length: float | None, width: float | None) -> bool:
    """Objects at least `ELONGATED` widths long (rods, grains); False when either size is unknown."""
    return bool(length and width and length >= ELONGATED * width)


@dataclass
class PhotoStats:
    """A cluster photo's foreground and scale, in its own pixels."""

    fg: np.ndarray  # bool H W
    fg_frac: float
    width: float  # typical object width (2 x median inscribed radius), px
    length: float  # typical object length (median major axis of isolated single objects), px
    n_peaks: int  # candidate object centres found
    left_out: float  # what clearly differs from the backdrop but lies outside fg, as a share of fg (left_out)
    heaped: float = 0.0  # the share of fg in parts larger than HEAP typical objects (heaped_share)
    opened: float = 0.0  # heaped round objects only, else 0: their diameter read off the heaps' rims (opened_diameter)

    @property
    def round_heap(self) -> bool:
        """Round objects, at least HEAPED of them in heaps: where the estimate runs high (segment.measured_size)."""
        return self.heaped >= HEAPED and not is_elongated(self.length, self.width)

    @property
    def diameter(self) -> float:
        """Area-equivalent diameter of a typical object: sqrt(width x length)."""
        return float(np.sqrt(self.width * self.length))


def photo_stats(image: np.ndarray) -> PhotoStats:
    """Foreground, typical width and length of ONE photo. DataError (with advice) when no objects are found."""
    image = check_rgb(image, "image", min_side=16)
    fg, left = _foreground(image)
    if fg.mean() < 1e-3 or fg.mean() > 0.8 or border_mean(fg, max(2, min(fg.shape) // 40)) > 0.5:
        raise DataError(f"image: no objects stand out from a background (foreground {fg.mean():.1%} of the photo, "
                        f"{border_mean(fg, max(2, min(fg.shape) // 40)):.0%} of its frame); a cluster photo shows "
                        "objects on a background that frames them")
    pts, r = centre_peaks(fg)
    if len(pts) < 2:
        raise DataError(f"image: found {len(pts)} object(s) of width >= {MIN_WIDTH:g} px; a cluster photo has many. "
                        "Pass instance_size explicitly if the objects are tiny")
    width, length = _width_length(fg, pts, r)
    long = is_elongated(length, width)
    minor = lone_minor_axis(fg, width, pts) if long else 0.0
    squat = long and length < SQUAT * minor
    if squat:  # the lone objects are round, the median peak was set by thin parts of the foreground: their own width
        width = minor
    rods = long and not squat and ridge_share(fg, pts, r) >= RIDGED  # long lone objects whose neighbours meet at
    # necks are pairs of round ones
    sized = fg if rods or squat else small_holes_filled(fg, pts, r)  # rods have no dimples
    if sized is not fg:
        pts, r = centre_peaks(sized)
        width, length = _width_length(sized, pts, r)
    if long and not rods and not squat:  # round objects side by side: their "length" was a pair's
        length = width
    stats = PhotoStats(fg, float(fg.mean()), width, length, len(pts), left)
    stats.heaped = heaped_share(fg, stats.diameter)  # read with the typical object's own diameter
    if stats.round_heap:
        stats.opened = opened_diameter(fg, stats.diameter)
    return stats


def ridge_share(fg: np.ndarray, pts: np.ndarray, r: np.ndarray) -> float:
    """The share of neighbouring centre peaks (`pts`, radii `r`; under RIDGE_REACH typical widths apart) that a level
    ridge of `fg` joins: the distance transform stays at least RIDGE_LEVEL of the smaller peak's radius all along the
    segment between them. Peaks on one rod's ridge lie a width apart on a level ridge; neighbouring round objects meet
    at a neck. 1.0 when no two peaks are neighbours (nothing says otherwise). Development photos (seeds 0-9 and
    100-199): all 110 rods photos 0.52-1.00; the heaps of round fruit and discs that read as rods because their only
    lone object was a pair side by side 0.08-0.25 (fruit 107, 123, 180; discs 184: docs/method.md, session 40)."""
    if len(pts) < 2:
        return 1.0
    width = 2.0 * float(np.median(r))
    pairs = cKDTree(pts).query_pairs(RIDGE_REACH * width, output_type="ndarray")
    if len(pairs) == 0:
        return 1.0
    dist = ndi.distance_transform_edt(fg)
    t = np.linspace(0.0, 1.0, int(np.ceil(RIDGE_REACH * width)) + 2)  # samples at most 1 px apart
    a, b = pts[pairs[:, 0]].astype(np.float64), pts[pairs[:, 1]].astype(np.float64)
    line = a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]  # (pairs, samples, 2)
    low = ndi.map_coordinates(dist, [line[..., 0].ravel(), line[..., 1].ravel()], order=1).reshape(len(pairs), -1)
    level = low.min(1) >= RIDGE_LEVEL * np.minimum(r[pairs[:, 0]], r[pairs[:, 1]])
    return float(level.mean())


def heaped_share(fg: np.ndarray, diameter: float) -> float:
    """The share of the foreground `fg` in connected parts larger than HEAP objects of that diameter (a disc's
    area each): heaps of touching objects, where the centre peaks' inscribed discs run large. Development photos:
    heaps of stones, fruit and discs 0.72-1.00; nuclei and dark_on_light, mostly apart, 0.00-0.33 (coins 0.00)."""
    areas = np.bincount(ndi.label(fg)[0].ravel())[1:]
    return float(areas[areas > HEAP * np.pi / 4 * diameter**2].sum() / max(int(areas.sum()), 1))


def opened_diameter(fg: np.ndarray, diameter: float, loss: float = OPEN_LOSS) -> float:
    """The diameter of the objects in `fg` read off its rims: 2 x the smallest radius rho (whole px, at most half of
    `diameter`, the first estimate) at which opening `fg` by a disc of radius rho removes at least `loss` px of
    foreground per px of its boundary. A disc no wider than the objects fits into each of them, so the opening keeps
    nearly everything; a wider one fits into no rounded object, and every object on a heap's rim loses its outer
    part at once. Holes under a disc of half `diameter` are filled first (dimples and highlights inside objects, small
    gaps between them): the rims decide. The inscribed discs of a heap run large, since touching objects leave no
    background between them (development fruit up to 1.5 x the truth); the opened diameter of the heaped development
    fruit, sizes and discs photos lies within 0.67-1.22 x the truth, 90 % of them within 0.79-1.11 (medians
    0.92-1.00; docs/method.md, session 41)."""
    fg8 = holes_filled(fg, np.pi / 4 * (0.5 * diameter) ** 2).astype(np.uint8)
    area = int(fg8.sum())
    rim = max(1, int(np.count_nonzero(fg8 ^ cv2.erode(fg8, np.ones((3, 3), np.uint8)))))

    def opened_past(rho: int) -> bool:  # the opening by a disc of radius rho removes `loss` px per rim px
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rho + 1, 2 * rho + 1))
        return area - int(cv2.morphologyEx(fg8, cv2.MORPH_OPEN, disc).sum()) >= loss * rim

    lo, hi = 1, max(2, int(diameter / 2))  # the loss grows with rho (openings by larger discs keep less): bisect
    if not opened_past(hi):
        return float(2 * hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if opened_past(mid) else (mid, hi)
    return float(2 * hi)


def _width_length(fg: np.ndarray, pts: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Typical width (2 x the median inscribed radius at the centre peaks) and length (the median major axis of the
    single objects, at least the width) of the objects in `fg`."""
    width = 2.0 * float(np.median(r))
    single = [p.axis_major_length for p in regionprops(single_objects(fg, width, pts))]
    return width, (max(width, float(np.median(single))) if single else width)


def lone_minor_axis(fg: np.ndarray, width: float, pts: np.ndarray) -> float:
    """The median minor axis of the lone objects of `fg` (`single_objects` at the typical `width`), 0 when none."""
    minor = [p.axis_minor_length for p in regionprops(single_objects(fg, width, pts))]
    return float(np.median(minor)) if minor else 0.0


def small_holes_filled(fg: np.ndarray, pts: np.ndarray, r: np.ndarray) -> np.ndarray:
    """`fg` with its holes smaller than FILL_HOLE of a disc of the first width estimate filled, where the peaks say
    that estimate is far too small (at least FILL_PEAKS peaks, at least FILL_DISCS such discs of foreground per
    peak: dark dimples of shaded fruit make holes, each hole a ring of small peaks); else `fg` itself. Only the size
    is measured on it; the foreground stays as it is. `photo_stats` asks only for photos of round objects: a rod's
    ridge gives a peak per width, so there many discs per peak do not mean a wrong width."""
    width = 2.0 * float(np.median(r))
    disc = np.pi * width ** 2 / 4
    if len(pts) < FILL_PEAKS or fg.sum() / disc < FILL_DISCS * len(pts):
        return fg
    return holes_filled(fg, FILL_HOLE * disc)


def holes_filled(fg: np.ndarray, max_area: float) -> np.ndarray:
    """`fg` with its holes smaller than `max_area` px filled; `fg` itself when it has none."""
    holes, n = ndi.label(ndi.binary_fill_holes(fg) & ~fg)
    small = np.bincount(holes.ravel(), minlength=n + 1) < max_area
    small[0] = False
    return fg | small[holes] if small.any() else fg


def left_out(image: np.ndarray, fg: np.ndarray) -> float:
    """The pixels that clearly differ from the backdrop - deviation above max(frame noise, t / 2), t = Otsu's
    threshold, in parts thicker than a disc of radius 2 px - more than 4 px outside the foreground `fg`, as a
    share of the foreground's area. Large when the foreground kept one face or one colour of the objects and left
    the rest as background (the lit tops of shaded pebbles, the yellow fruit of a mixed cluster): 0.56-1.71 on the
    development photos where session 22's foreground did that. `_foreground` grows its seed and cuts again when its
    first mask scores over `REGROW` (8 of the 660 development photos, seeds 0-9 and 100-199, took the second cut);
    after that every development photo scores under `LEFT_OUT` (docs/method.md, sessions 24-25)."""
    dev = deviation(image)
    t = threshold_otsu(dev)
    return _left_out(dev, t, _robust_level(dev[_clean_frame(dev, _frame(*dev.shape))], 6), fg)


def _left_out(dev: np.ndarray, t: float, noise: float, fg: np.ndarray) -> float:
    """`left_out` from the deviation `dev`, Otsu's threshold `t` and the frame's `noise` already at hand."""
    outside = ~ndi.binary_dilation(fg, _DISK2, iterations=2)
    missed = ndi.binary_opening((dev > max(noise, 0.5 * t)) & outside, _DISK2)
    return float(missed.sum() / max(1, fg.sum()))


def single_objects(fg: np.ndarray, width: float, pts: np.ndarray | None = None) -> np.ndarray:
    """The lone objects (isolated single objects, "singles") of a foreground: its connected components that are
    convex (solidity >= 0.9), at least half a disc of the typical `width` (specks of noise are no object), and hold
    one centre peak (`centre_peaks`, or `pts`) or have a rod's or grain's shape (major axis >= 2 widths, minor axis
    at most `ROD_WIDTH` widths: a convex heap of round fruit is no lone rod). Label map (int32, 0 elsewhere),
    labelled as `ndi.label(fg)` labels them. Each is measured right (its major axis 0.98-1.01 of its ground-truth
    rod's on the suite's rods, docs/method.md, session 19); which objects lie alone is chance."""
    if pts is None:
        pts, _ = centre_peaks(fg)
    comps, n = ndi.label(fg)
    per_comp = np.bincount(comps[pts[:, 0], pts[:, 1]], minlength=n + 1)
    min_area = max(4.0, 0.5 * np.pi * width**2 / 4)
    keep = np.zeros(n + 1, bool)
    for p in regionprops(comps):
        rod = p.axis_major_length >= 2 * width and p.axis_minor_length <= ROD_WIDTH * width
        keep[p.label] = p.area >= min_area and p.solidity >= 0.9 and (per_comp[p.label] == 1 or rod)
    return np.where(keep[comps], comps, 0).astype(np.int32)


def cluster_stats(image: np.ndarray) -> dict[str, float]:
    """{'diameter', 'width', 'length', 'fg_frac'} of a cluster photo (see `photo_stats`)."""
    s = photo_stats(image)
    return {"diameter": s.diameter, "width": s.width, "length": s.length, "fg_frac": s.fg_frac}


def estimate_instance_size(image: np.ndarray) -> float:
    """Typical instance diameter in pixels (area-equivalent, see `photo_stats`); its accuracy per kind of photo is
    in docs/method.md."""
    return cluster_stats(image)["diameter"]
