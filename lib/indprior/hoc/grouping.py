"""Grouping: from the segmenter's three heads (foreground, offset to the instance centre, boundary) to an
instance label map. Pixels of one instance arrive at one point when moved along their offsets, so clustering
the arrival points separates touching instances; the boundary map settles the ambiguous pixels."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.segmentation import relabel_sequential, watershed

_SEGMENT_POINTS = 9  # anisotropic votes: points per vote segment


def _check_heads(fg_prob: np.ndarray, offset: np.ndarray, boundary_prob: np.ndarray | None, bandwidth: float) -> None:
    h, w = fg_prob.shape if fg_prob.ndim == 2 else (0, 0)
    if fg_prob.ndim != 2:
        raise ValueError(f"fg_prob: expected H x W, got shape {fg_prob.shape}")
    if offset.shape != (2, h, w):
        raise ValueError(f"offset: expected shape (2, {h}, {w}), got {offset.shape}")
    if boundary_prob is not None and np.shape(boundary_prob) != (h, w):
        raise ValueError(f"boundary_prob: expected shape ({h}, {w}), got {np.shape(boundary_prob)}")
    if bandwidth <= 0:
        raise ValueError(f"bandwidth: expected > 0, got {bandwidth}")


def vote_centres(pts: np.ndarray, shape: tuple[int, int], bandwidth: float, min_size: int,
                 along: np.ndarray | None = None, anisotropy: float = 1.0) -> np.ndarray:
    """Centres (n 2) of the arrival points `pts` (m 2): the local maxima of their Gaussian-smoothed vote image
    (a mean-shift density) within +-ceil(bandwidth) px that hold >= min_size/4 votes, plateaus merged.

    With `anisotropy` > 1 each vote is a segment from -along to +along (m 2: the pixel's offset, at least
    bandwidth / anisotropy long) around its arrival point, smoothed by bandwidth / anisotropy: an offset errs
    mostly in its length, not its direction."""
    h, w = shape
    sigma = bandwidth / anisotropy
    steps = np.linspace(-1.0, 1.0, _SEGMENT_POINTS) if anisotropy > 1 else np.zeros(1)
    spread = np.zeros_like(pts)
    if along is not None and anisotropy > 1:
        norm = np.linalg.norm(along, axis=1, keepdims=True)
        spread = along * np.maximum(norm, sigma) / np.maximum(norm, 1e-6)
    votes = np.zeros(h * w)
    for t in steps:
        iy = np.clip(np.rint(pts[:, 0] + t * spread[:, 0]), 0, h - 1).astype(np.int64)
        ix = np.clip(np.rint(pts[:, 1] + t * spread[:, 1]), 0, w - 1).astype(np.int64)
        votes += np.bincount(iy * w + ix, minlength=h * w) / len(steps)
    density = ndimage.gaussian_filter(votes.reshape(h, w), sigma, mode="constant")
    k = int(np.ceil(4 * bandwidth))
    delta = np.zeros((2 * k + 1, 2 * k + 1))
    for t in steps:  # the density of one vote spread over one bandwidth
        delta[k, k + int(round(t * bandwidth))] += 1.0 / len(steps)
    kernel_peak = ndimage.gaussian_filter(delta, sigma, mode="constant").max()
    r = max(1, int(np.ceil(bandwidth)))  # NMS radius: small enough to keep a small instance by a big one
    peaks = (density == ndimage.maximum_filter(density, size=2 * r + 1)) & (
        density >= max(1.0, 0.25 * min_size) * kernel_peak * (1 - 1e-6))
    plab, n = ndimage.label(peaks, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros((0, 2))
    return np.array(ndimage.center_of_mass(peaks, plab, range(1, n + 1)), np.float64).reshape(n, 2)


def _mean_shift_once(centres: np.ndarray, pts: np.ndarray, radius: float) -> np.ndarray:
    """Each centre moves to the mean of the arrival points within `radius` that are nearest to it."""
    n = len(centres)
    d1, idx = cKDTree(centres).query(pts)
    near = d1 <= radius
    cnt = np.bincount(idx[near], minlength=n)
    for c in range(2):
        s = np.bincount(idx[near], pts[near, c], minlength=n)
        centres[cnt > 0, c] = s[cnt > 0] / cnt[cnt > 0]
    return centres


def _nearest_two(centres: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance to the nearest centre, to the second nearest (inf with one centre), and the nearest's index."""
    if len(centres) >= 2:
        d, nn_ = cKDTree(centres).query(pts, k=2)
        return d[:, 0], d[:, 1], nn_[:, 0]
    d1, idx = cKDTree(centres).query(pts)
    return d1, np.full_like(d1, np.inf), idx


def _drop_small(lab: np.ndarray, n: int, min_size: int) -> np.ndarray:
    """Instances with < min_size pixels become background; the rest are renumbered 1..k (uint16)."""
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = np.nonzero(sizes >= max(min_size, 1))[0]
    keep = keep[keep > 0]
    if len(keep) >= 2 ** 16:
        raise ValueError(f"group_instances: {len(keep)} instances do not fit a uint16 map")
    lut = np.zeros(n + 1, np.uint16)
    lut[keep] = np.arange(1, len(keep) + 1)
    return lut[lab]


def group_instances(fg_prob: np.ndarray, offset: np.ndarray, boundary_prob: np.ndarray | None = None,
                    fg_threshold: float = 0.5, min_size: int = 20, bandwidth: float = 2.0,
                    anisotropy: float = 1.0) -> np.ndarray:
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

    `anisotropy` > 1 (elongated objects): an offset errs mostly in its length (on the development runs the
    arrival error along the offset was 3.5-4.7x the error across it), and rods lying side by side have centres
    only a width apart, across their length. So each vote is spread along its own offset (+-|offset|, at least
    +-bandwidth / anisotropy) and smoothed by bandwidth / anisotropy only; the radii of steps 1-3 are
    bandwidth / anisotropy, except the peaks' NMS window. (Counting distances along the offset less in step 2
    was no better on the development runs.)
    """
    fg_prob, offset = np.asarray(fg_prob, np.float64), np.asarray(offset, np.float64)
    _check_heads(fg_prob, offset, boundary_prob, bandwidth)
    if not anisotropy >= 1:
        raise ValueError(f"anisotropy: expected >= 1, got {anisotropy}")
    h, w = fg_prob.shape
    out = np.zeros((h, w), np.uint16)
    fg = fg_prob > fg_threshold
    ys, xs = np.nonzero(fg)
    if len(ys) == 0:
        return out
    off = offset[:, ys, xs].T  # n 2
    pts = np.stack([ys, xs], 1) + off  # n 2 arrival points
    centres = vote_centres(pts, (h, w), bandwidth, min_size, along=off, anisotropy=anisotropy)
    if len(centres) == 0:
        return out
    sigma = bandwidth / anisotropy
    radius = 3.0 * sigma
    d1, d2, idx = _nearest_two(_mean_shift_once(centres, pts, radius), pts)
    bnd = np.zeros((h, w)) if boundary_prob is None else np.asarray(boundary_prob, np.float64)
    unsure = (d1 > radius) | (d1 > 0.5 * d2) | ((bnd[ys, xs] > 0.5) & (d1 > sigma))
    markers = np.zeros((h, w), np.int64)
    markers[ys[~unsure], xs[~unsure]] = idx[~unsure] + 1
    lab = watershed(bnd, markers, mask=fg) if unsure.any() else markers
    return _drop_small(lab, len(centres), min_size)


def _axes(m: np.ndarray) -> tuple[float, float]:
    """(major, minor) of a pixel set from its moments (count, sum y, sum x, sum yy, sum xx, sum xy): 4 standard
    deviations along each principal axis (an ellipse's full axes; 1.15 x a rectangle's sides)."""
    c, sy, sx, syy, sxx, sxy = m
    my, mx = sy / c, sx / c
    cov = np.array([[syy / c - my * my, sxy / c - mx * my], [sxy / c - mx * my, sxx / c - mx * mx]])
    low, high = np.linalg.eigvalsh(cov)
    return 4 * np.sqrt(max(high, 0.0)), 4 * np.sqrt(max(low, 0.0))


def _moments(lab: np.ndarray, n: int) -> np.ndarray:
    """Per-label sums of 1, y, x, y^2, x^2, xy over a label map (n+1 6; row 0 the background), for `_axes`."""
    ys, xs = np.indices(lab.shape, dtype=np.float64)
    flat = lab.ravel()
    return np.stack([np.bincount(flat, wt.ravel(), minlength=n + 1)
                     for wt in (np.ones_like(ys), ys, xs, ys * ys, xs * xs, xs * ys)], 1)


def _touching_pairs(lab: np.ndarray) -> np.ndarray:
    """(p, q) label pairs, p < q, of instances that touch (4-neighbours): m 2."""
    touching = []
    for a, b in ((lab[1:], lab[:-1]), (lab[:, 1:], lab[:, :-1])):
        m = (a != b) & (a > 0) & (b > 0)
        touching.append(np.stack([np.minimum(a[m], b[m]), np.maximum(a[m], b[m])], 1))
    return np.unique(np.concatenate(touching), axis=0)


def _join_touching(lab: np.ndarray, n: int, sums: np.ndarray,
                   key: Callable[[np.ndarray, np.ndarray, np.ndarray], float | None],
                   passes: int | None = None) -> np.ndarray:
    """Touching instances of `lab` (int64, labels 1..n) joined two at a time, the lowest `key` first, repeatedly
    (at most `passes` times; each instance joins at most once per pass). `sums` (n+1 k) are per-label sums that add
    up when two join (the first 6 the moments of `_moments`); key(union's sums, one's, the other's) is a sort key
    for a pair allowed to join, or None. Returns a uint16 map renumbered 1..m."""
    pairs = _touching_pairs(lab)
    root = np.arange(n + 1)
    done = 0
    while len(pairs) and (passes is None or done < passes):
        done += 1
        fits = []
        for p, q in pairs:
            k = key(sums[p] + sums[q], sums[p], sums[q])
            if k is not None:
                fits.append((k, p, q))
        used: set[int] = set()
        for _, p, q in sorted(fits):
            if p not in used and q not in used:
                root[root == q], sums[p] = p, sums[p] + sums[q]
                used |= {p, q}
        if not used:
            break
        pairs = np.unique(np.sort(root[pairs], 1), axis=0)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    _, renumbered = np.unique(root, return_inverse=True)  # root 0 stays 0: labels 1..k keep their order
    return renumbered[lab].astype(np.uint16)


def join_end_to_end(labels: np.ndarray, length: float, width: float, max_length: float = 1.5,
                    max_width: float = 1.5) -> np.ndarray:
    """Touching instances whose union is still one object of the expected size (major axis <= max_length x
    `length`, minor <= max_width x `width`, axes as in `_axes`) become one, repeatedly, the most compact union
    first. The anisotropic votes of a long object can peak twice along it; two objects side by side or end to
    end make a union too wide or too long. Returns a uint16 map renumbered 1..n."""
    lab = labels.astype(np.int64)
    n = int(lab.max())
    if n < 2:
        return labels.astype(np.uint16)

    def key(union: np.ndarray, *_) -> float | None:
        major, minor = _axes(union)
        return major if major <= max_length * length and minor <= max_width * width else None

    return _join_touching(lab, n, _moments(lab, n), key)


def join_round_pieces(labels: np.ndarray, image: np.ndarray, max_ratio: float = 1.35,
                      max_colour: float = 0.08) -> np.ndarray:
    """Round objects that came out in pieces: touching instances whose union is round (major axis <= max_ratio
    x minor, axes as in `_axes`) and of one colour (mean chromaticity r, g, b / (r + g + b) differing by <=
    `max_colour`, summed over the three) become one, the roundest union first.

    The votes of one stone can peak twice, at its lit and at its shaded half; two whole round objects that
    touch make a union at least ~1.7 x as long as wide (two equal discs 2.2 x), and two fruit that hide parts
    of each other, round together, differ in colour. On the development runs the pieces of one stone joined at
    1.06-1.33 (colours 0.002-0.032 apart), the nearest pair of two objects at 1.36 (two fruit, 0.26 apart;
    docs/method.md, session 38). A grayscale photo has no colour cue: the shape alone decides there. One pass:
    each instance joins at most one other, so that many small pieces cannot snowball into a round heap. Returns a
    uint16 map renumbered 1..n."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image: expected {labels.shape} pixels, got shape {image.shape}")
    lab = labels.astype(np.int64)
    n = int(lab.max())
    if n < 2:
        return labels.astype(np.uint16)
    rgb = image.astype(np.float64).reshape(*labels.shape, -1)
    chroma = rgb / np.maximum(rgb.sum(2, keepdims=True), 1e-6)
    colour = np.stack([np.bincount(lab.ravel(), chroma[..., c].ravel(), minlength=n + 1)
                       for c in range(chroma.shape[2])], 1)
    sums = np.concatenate([_moments(lab, n), colour], 1)

    def key(union: np.ndarray, a: np.ndarray, b: np.ndarray) -> float | None:
        major, minor = _axes(union[:6])
        apart = np.abs(a[6:] / a[0] - b[6:] / b[0]).sum()
        return major / minor if minor > 0 and major <= max_ratio * minor and apart <= max_colour else None

    return _join_touching(lab, n, sums, key, passes=1)


def join_seen_whole(labels: np.ndarray, coarse: np.ndarray, length: float, width: float, share: float = 0.6,
                    max_length: float = 2.0, max_width: float = 1.5) -> np.ndarray:
    """Touching instances of `labels` that lie (each with at least `share` of its pixels) in the same instance
    of `coarse`, a grouping of the same photo seen zoomed out and brought back to this grid, become one while
    their union stays one object (major axis <= max_length x `length`, minor <= max_width x `width`).

    The segmenter learns objects up to its cut-out windows' size (1.4 estimated lengths); when a photo's rods
    run longer than the length estimate says, their two halves vote for two centres. Zoomed out, the same
    rod fits the window and comes out whole (docs/method.md, session 19). Returns a uint16 map renumbered 1..n."""
    lab = labels.astype(np.int64)
    n = int(lab.max())
    if n < 2 or coarse.max() == 0:
        return labels.astype(np.uint16)
    overlap = np.zeros((n + 1, int(coarse.max()) + 1))
    np.add.at(overlap, (lab.ravel(), coarse.astype(np.int64).ravel()), 1)
    home = overlap[:, 1:].argmax(1) + 1  # the coarse instance holding most of each instance
    at_home = overlap[np.arange(n + 1), home] / np.maximum(overlap.sum(1), 1)
    mom = _moments(lab, n)
    root = np.arange(n + 1)

    def find(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i

    for p, q in _touching_pairs(lab):
        if home[p] != home[q] or at_home[p] < share or at_home[q] < share:
            continue
        rp, rq = find(p), find(q)
        if rp == rq:
            continue
        major, minor = _axes(mom[rp] + mom[rq])
        if major <= max_length * length and minor <= max_width * width:
            root[rq], mom[rp] = rp, mom[rp] + mom[rq]
    _, renumbered = np.unique([find(i) for i in range(n + 1)], return_inverse=True)
    return renumbered[lab].astype(np.uint16)


def _principal(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(centre, unit major direction, major, minor) of the points p (n 2); axes as in `_axes`."""
    c = p.mean(0)
    vals, vecs = np.linalg.eigh(np.cov((p - c).T, bias=True))
    return c, vecs[:, 1], 4 * np.sqrt(max(vals[1], 0.0)), 4 * np.sqrt(max(vals[0], 0.0))


def _k_lines(p: np.ndarray, assign: np.ndarray, k: int, iters: int = 15) -> np.ndarray | None:
    """k-means with line segments for centres: each cluster's segment runs along its major axis over 0.9 of its
    length; points join the nearest segment. None when a cluster runs empty."""
    for _ in range(iters):
        dist = []
        for j in range(k):
            q = p[assign == j]
            if len(q) < 3:
                return None
            c, d, major, _ = _principal(q)
            v = p - c
            t = np.clip(v @ d, -0.45 * major, 0.45 * major)
            dist.append(np.linalg.norm(v - t[:, None] * d[None], axis=1))
        new = np.argmin(np.stack(dist, 1), 1)
        if (new == assign).all():
            break
        assign = new
    return assign


GROOVE_WIDTH, GROOVE, GROOVE_PART = 1.6, 0.1, 0.55  # split_side_by_side's second trigger (docs/method.md, session 37)


def groove_depth(gray: np.ndarray, labels: np.ndarray, k: int) -> float:
    """How deep a groove runs along instance k of `labels` in the photo `gray` (H W float): across its major axis, in
    three sections along it, the mean brightness profile (object side up: the instance's mean against the backdrop
    just outside it) is searched for a dip between two higher points; the deepest dip as a share of the object's
    contrast with that backdrop, 0 when there is none. Two objects lying side by side, partly on each other, are
    parted by a darker (or, dark on light, lighter) line that one object does not have."""
    inst = labels == k
    ring = ndimage.binary_dilation(inst, iterations=3) & ~ndimage.binary_dilation(inst, iterations=1) & (labels == 0)
    ys, xs = np.nonzero(inst)
    if len(ys) < 10 or not ring.any():
        return 0.0
    inside, backdrop = float(gray[ys, xs].mean()), float(np.median(gray[ring]))
    sign, contrast = (1.0, inside - backdrop) if inside >= backdrop else (-1.0, backdrop - inside)
    if contrast <= 0:
        return 0.0
    p = np.stack([ys, xs], 1).astype(np.float64)
    c, d, major, _ = _principal(p)
    along, across = (p - c) @ d, (p - c) @ np.array([-d[1], d[0]])
    value, deepest = sign * gray[ys, xs], 0.0
    for lo, hi in ((-0.45, -0.15), (-0.15, 0.15), (0.15, 0.45)):
        sel = (along >= lo * major) & (along < hi * major)
        if sel.sum() < 10:
            continue
        bins = np.rint(across[sel]).astype(np.int64)
        bins -= bins.min()
        n = np.bincount(bins)
        prof = (np.bincount(bins, value[sel]) / np.maximum(n, 1))[n >= 2]
        if len(prof) < 5:
            continue
        prof = (prof[1:] + prof[:-1]) / 2
        for i in range(1, len(prof) - 1):
            deepest = max(deepest, min(prof[:i].max(), prof[i + 1:].max()) - prof[i])
    return deepest / contrast


def split_side_by_side(labels: np.ndarray, length: float, width: float, trigger: float = 1.9,
                       max_length: float = 1.5, max_width: float = 1.5, min_size: int = 20,
                       max_parts: int = 3, image: np.ndarray | None = None) -> np.ndarray:
    """The converse of `join_end_to_end`: an instance wider than `trigger` x `width` (minor axis as in `_axes`:
    objects lying side by side whose votes met) is cut into the fewest line-shaped parts (2, then up to
    `max_parts`; `_k_lines` started from slices across and along it) that each fit one object (major <=
    max_length x `length`, minor <= max_width x `width`, >= min_size pixels); among cuts into as many parts the
    thinnest (summed minor axes) wins. An instance no cut fits stays whole.

    With the photo (`image`, H W or H W 3) an instance only `GROOVE_WIDTH` x `width` wide is cut too when a groove
    runs along it (`groove_depth` >= `GROOVE`): two objects lying partly on each other, whose union is narrower
    than two; each part must then hold >= `GROOVE_PART` x length x width pixels (a whole object, not a corner of a
    neighbour). Single objects come out up to 1.86 x the width estimate, so width alone cannot tell them from such
    pairs (docs/method.md, sessions 36-37). Returns a uint16 map renumbered 1..n."""
    out = labels.astype(np.int64)
    nxt = int(out.max()) + 1
    gray = None if image is None else (image.astype(np.float64).mean(2) if image.ndim == 3 else image.astype(np.float64))
    if gray is not None and gray.shape != labels.shape:
        raise ValueError(f"image: expected {labels.shape} px (the label map's), got {gray.shape[:2]}")
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        ys, xs = np.nonzero(labels[sl] == k)
        if len(ys) < 2 * min_size:
            continue
        p = np.stack([ys, xs], 1).astype(np.float64)
        c, d, _, minor = _principal(p)
        smallest = min_size
        if minor <= trigger * width:
            if gray is None or minor <= GROOVE_WIDTH * width:
                continue
            pad = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in sl)
            if groove_depth(gray[pad], labels[pad], k) < GROOVE:
                continue
            smallest = max(min_size, GROOVE_PART * length * width)
        best = None
        for parts in range(2, max_parts + 1):
            for axis in (np.array([-d[1], d[0]]), d):  # slices across the instance first, then along it
                proj = (p - c) @ axis
                start = np.searchsorted(np.quantile(proj, np.linspace(0, 1, parts + 1)[1:-1]), proj)
                assign = _k_lines(p, start, parts)
                if assign is None:
                    continue
                shapes = [_principal(p[assign == j]) if (assign == j).sum() >= max(min_size, 3) else None
                          for j in range(parts)]
                if all(s is not None and s[2] <= max_length * length and s[3] <= max_width * width for s in shapes):
                    thickness = sum(s[3] for s in shapes)
                    if best is None or thickness < best[0]:
                        best = (thickness, assign)
            if best is not None:
                break
        if best is not None and smallest > min_size and np.bincount(best[1]).min() < smallest:
            best = None  # a groove's cut must leave whole objects, not a corner of a neighbour
        if best is not None:
            region = out[sl]
            for j in range(1, int(best[1].max()) + 1):
                region[ys[best[1] == j], xs[best[1] == j]] = nxt
                nxt += 1
    return relabel_sequential(out)[0].astype(np.uint16)


def _two_means(a: np.ndarray, iters: int = 20) -> np.ndarray | None:
    """2-means of the points a (n 2), started from a cut at the median along their principal axis; None when a
    cluster runs empty."""
    c, u, _, _ = _principal(a)
    proj = (a - c) @ u
    assign = (proj > np.median(proj)).astype(np.int64)
    for _ in range(iters):
        if assign.min() == assign.max():
            return None
        cs = np.stack([a[assign == j].mean(0) for j in (0, 1)])
        new = np.argmin(((a[:, None] - cs[None]) ** 2).sum(-1), 1)
        if (new == assign).all():
            break
        assign = new
    return None if assign.min() == assign.max() else assign


def _bimodal_cut(a: np.ndarray, min_part: float, min_sep: float, kappa: float) -> np.ndarray | None:
    """The 2-means of the arrival points a when it parts them into two groups of >= min_part points whose means
    lie >= min_sep apart and >= kappa rms deviations (along the line joining them) apart; else None. The 2-means
    halves of one blob lie 2.65 rms deviations apart (a Gaussian) or 3.19 (a uniform disc), so kappa above that
    asks for two groups, not a cut through one."""
    assign = _two_means(a)
    if assign is None or min((assign == 0).sum(), (assign == 1).sum()) < min_part:
        return None
    c0, c1 = a[assign == 0].mean(0), a[assign == 1].mean(0)
    sep = float(np.linalg.norm(c1 - c0))
    if sep < min_sep:
        return None
    u = (c1 - c0) / sep
    dev = np.concatenate([(a[assign == 0] - c0) @ u, (a[assign == 1] - c1) @ u])
    return assign if sep >= kappa * np.sqrt((dev ** 2).mean()) else None


def _connected_parts(parts: list[np.ndarray], ys: np.ndarray, xs: np.ndarray) -> list[np.ndarray]:
    """Each part (indices into ys, xs) keeps its largest 8-connected piece; the other pieces join the part whose
    kept piece has the nearest pixel centroid."""
    if len(parts) < 2:
        return parts
    y0, x0 = ys.min(), xs.min()
    grid = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), bool)
    kept, orphans = [], []
    for idx in parts:
        grid[:] = False
        grid[ys[idx] - y0, xs[idx] - x0] = True
        comp, n = ndimage.label(grid, structure=np.ones((3, 3)))
        c = comp[ys[idx] - y0, xs[idx] - x0]
        big = np.argmax(np.bincount(c, minlength=n + 1)[1:]) + 1
        kept.append(idx[c == big])
        orphans.append(idx[c != big])
    lost = np.concatenate(orphans)
    if len(lost):
        centres = np.stack([[ys[k].mean(), xs[k].mean()] for k in kept])
        near = np.argmin(((np.stack([ys[lost], xs[lost]], 1)[:, None] - centres[None]) ** 2).sum(-1), 1)
        kept = [np.concatenate([k, lost[near == j]]) for j, k in enumerate(kept)]
    return kept


def split_bimodal_votes(labels: np.ndarray, offset: np.ndarray, diameter: float, min_size: int = 20,
                        min_sep: float = 0.6, kappa: float = 3.5, min_part: float = 0.3) -> np.ndarray:
    """Round objects whose votes met: an instance whose pixels' arrival points (pixel + offset) form two groups,
    each of >= max(min_size, min_part x pi diameter^2 / 4, 3) pixels, whose means lie >= min_sep x `diameter`
    apart and >= `kappa` rms deviations apart (`_bimodal_cut`), is cut in two by those groups, and each part is
    examined again; each final part keeps its largest connected piece (`_connected_parts`). Small objects pressed
    between larger ones send their votes to points closer than the grouping bandwidth can part; a single object's
    votes are one group (on the development runs no single object's 2-means halves lay more than 0.53 diameters
    apart). Instances with non-finite offsets are left whole. Returns a uint16 map renumbered 1..n."""
    if offset.shape != (2, *labels.shape):
        raise ValueError(f"offset: expected shape (2, {labels.shape[0]}, {labels.shape[1]}), got {offset.shape}")
    out = labels.astype(np.int64)
    nxt = int(out.max()) + 1
    smallest = max(min_size, min_part * np.pi * diameter ** 2 / 4, 3)
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        ys, xs = np.nonzero(labels[sl] == k)
        ys, xs = ys + sl[0].start, xs + sl[1].start
        a = np.stack([ys + offset[0, ys, xs], xs + offset[1, ys, xs]], 1).astype(np.float64)
        if not np.isfinite(a).all():
            continue
        todo, parts = [np.arange(len(ys))], []
        while todo:
            idx = todo.pop()
            cut = _bimodal_cut(a[idx], smallest, min_sep * diameter, kappa) if len(idx) >= 2 * smallest else None
            if cut is None:
                parts.append(idx)
            else:
                todo += [idx[cut == 0], idx[cut == 1]]
        for idx in _connected_parts(parts, ys, xs)[1:]:
            out[ys[idx], xs[idx]] = nxt
            nxt += 1
    return _renumbered(out, "split_bimodal_votes")


def split_at_necks(labels: np.ndarray, boundary: np.ndarray, diameter: float, threshold: float = 0.5,
                   min_part: float = 0.15, neck: float = 0.75, min_crossing: float = 0.4) -> np.ndarray:
    """Round objects that touch and came out as one instance, cut where the boundary head crosses a neck.

    An instance whose inside (pixels with boundary < `threshold`) falls into two or more pieces of >= `min_part`
    x the area of a disc of `diameter` is re-split by a watershed on the boundary map seeded by those pieces,
    but only when every cut between two parts is a neck: shorter than `neck` x `diameter`, and the boundary
    nowhere below `min_crossing` along it. Two touching round objects meet at a short neck; a boundary drawn
    across one large object is long or broken. On the development runs the cuts between two stones were 0.47-0.70
    diameters long (boundary >= 0.45), those through one large stone or nucleus 0.86-1.41 (docs/method.md,
    session 22). Returns a uint16 map renumbered 1..n."""
    if boundary.shape != labels.shape:
        raise ValueError(f"boundary: expected shape {labels.shape}, got {boundary.shape}")
    out = labels.astype(np.int64)
    nxt = int(out.max()) + 1
    smallest = min_part * np.pi * diameter ** 2 / 4
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        inst, bnd = labels[sl] == k, boundary[sl]
        inside, n = ndimage.label(inst & (bnd < threshold))
        if n < 2:
            continue
        sizes = np.bincount(inside.ravel(), minlength=n + 1)[1:]
        big = np.flatnonzero(sizes >= smallest) + 1
        if len(big) < 2:
            continue
        parts = watershed(bnd, np.where(np.isin(inside, big), inside, 0), mask=inst)
        if all(_is_neck(parts == a, parts == b, bnd, neck * diameter, min_crossing)
               for i, a in enumerate(big) for b in big[i + 1:]):
            sub = out[sl]
            for b in big[1:]:
                sub[parts == b] = nxt
                nxt += 1
    return _renumbered(out, "split_at_necks")


def _is_neck(a: np.ndarray, b: np.ndarray, bnd: np.ndarray, max_length: float, min_crossing: float) -> bool:
    """The cut between the pixel sets a and b (its pixels on both sides, 4-neighbours) is shorter than
    `max_length` and the boundary map stays >= `min_crossing` along it; parts that do not touch pass."""
    cut = (ndimage.binary_dilation(a) & b) | (ndimage.binary_dilation(b) & a)
    if not cut.any():
        return True
    return cut.sum() / 2 <= max_length and float(bnd[cut].min()) >= min_crossing


def _renumbered(labels: np.ndarray, who: str) -> np.ndarray:
    """A label map renumbered 1..n as uint16; ValueError (naming `who`) when n does not fit."""
    out = relabel_sequential(labels)[0]
    if out.max() >= 2 ** 16:
        raise ValueError(f"{who}: {out.max()} instances do not fit a uint16 map")
    return out.astype(np.uint16)
