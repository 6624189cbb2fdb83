"""Do a finished run's instances agree with the photo's own reading? A size read wrong (too small, too large) gives a
full label map that looks plausible and runs with status ok: objects cut into pieces, or several objects to an
instance. Two checks compare the instances with what the photo says without the run:

* the lone objects (`scale.single_objects`: isolated, convex, one centre each) are whole single objects. Where a
  photo has at least LONE_MIN of them, the median instance should have about their median area: under PIECES times it,
  the instances are pieces ("pieces"); over MERGED times, they hold several objects each ("merged").
* round objects only: one object has about its length / width times the area of the largest disc inside it (an
  ellipse exactly that, the suite's rounded objects 1.1-1.3). Two or three touching objects joined have much more, and
  so have pieces of objects joined (a half disc has 2). A median instance over FILLED times the photo's length / width
  (at least 1) is not shaped like one object ("misshapen"): which way the size is wrong, this cannot say.

Chosen on the GT label maps of 120 development photos (seeds 0-9 and 100-109 of six kinds), their instances cut in two
and joined in pairs, and on every saved run of sessions 35-41 (137 runs, development and held-out photos; numbers in
docs/method.md, session 42). A check is a warning, not a failure: the label map is kept, and the warning says what
to pass."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.measure import regionprops

from .scale import PhotoStats, single_objects

LONE_MIN = 5  # lone objects needed before their median area is a reference
PIECES = 0.65  # instances under this share of the lone objects' median area (median) are pieces of objects: the GT of
# development photos 0.74-1.25, cut in two 0.36-0.63; the runs that read round nuclei as rods 0.56 and 0.61
MERGED = 1.6  # over this many times it, they hold several objects each: joined in pairs, the GT 1.33-2.51
FILLED = 1.6  # round objects: instances over this many times the photo's length / width in area per largest inscribed
# disc (median) are not one object each: the GT of development photos at most 1.25 times; on the heaps (discs, fruit,
# sizes) joined in pairs 1.45-2.13 (59 of 60 over), cut in two 1.43-2.04 (58 of 60 over)
MIN_AREA = 9  # px: smaller instances are specks, left out of the medians


def instances(labels: np.ndarray, min_area: int = MIN_AREA) -> list[Any]:
    """The regions (`regionprops`) of the instances in `labels` of at least `min_area` px."""
    return [p for p in regionprops(labels.astype(np.int32)) if p.area >= min_area]


def _fill(p: Any) -> float:
    r = float(ndi.distance_transform_edt(np.pad(p.image, 1)).max())
    return p.area / (np.pi * r * r)


def disc_fill(labels: np.ndarray, min_area: int = MIN_AREA) -> np.ndarray:
    """Per instance of at least `min_area` px: its area over that of the largest disc inside it (pi r^2, r the
    largest distance to its outside). 1.0 for a disc (1.1-1.3 for the suite's rounded objects), a / b for an
    ellipse, 2 for two discs joined (a little less where they overlap)."""
    return np.asarray([_fill(p) for p in instances(labels, min_area)])


def axis_ratio(labels: np.ndarray, min_area: int = MIN_AREA) -> float | None:
    """The median ratio of major to minor axis of the instances in `labels` of at least `min_area` px (None when
    fewer than three are that large): near 1 for whole round objects, higher where they are cut into pieces (the
    cut check, `run._check_cut`)."""
    ratios = [p.axis_major_length / max(p.axis_minor_length, 1.0) for p in instances(labels, min_area)]
    return float(np.median(ratios)) if len(ratios) >= 3 else None


def size_check(labels: np.ndarray, stats: PhotoStats, elongated: bool) -> dict[str, Any]:
    """What metrics.json records as "size_check": lone_objects (how many), lone_diameter (their median
    area-equivalent diameter, px, or None), area_vs_lone (median instance area over the lone objects' median, None
    under LONE_MIN of them), fill and fill_expected (round objects only), and the verdict: "pieces", "merged",
    "misshapen" or "ok"."""
    lone = [p.area for p in regionprops(single_objects(stats.fg, stats.width))]
    props = instances(labels)
    areas = [p.area for p in props]
    out: dict[str, Any] = {"lone_objects": len(lone), "lone_diameter": None, "area_vs_lone": None, "fill": None,
                           "fill_expected": None, "verdict": "ok"}
    if len(lone) >= LONE_MIN and areas:
        out["lone_diameter"] = round(float(np.sqrt(4 / np.pi * np.median(lone))), 1)
        ratio = float(np.median(areas) / np.median(lone))
        out["area_vs_lone"] = round(ratio, 3)
        out["verdict"] = "pieces" if ratio < PIECES else "merged" if ratio > MERGED else "ok"
    if not elongated and props:
        expected = max(1.0, stats.length / stats.width)
        out["fill"] = round(float(np.median([_fill(p) for p in props])), 3)
        out["fill_expected"] = round(expected, 3)
        if out["verdict"] == "ok" and out["fill"] > FILLED * expected:
            out["verdict"] = "misshapen"
    return out


def size_note(check: dict[str, Any], size: float) -> str | None:
    """The warning for a check whose verdict is not "ok" (None when it is): what the instances look like, what that
    says about the size used, and what to pass."""
    if check["verdict"] == "ok":
        return None
    if check["verdict"] == "misshapen":
        what = (f"the instances are not shaped like single objects: the median one has {check['fill']:.2f} x the "
                f"area of the largest disc inside it, where one object of this photo has about "
                f"{1.2 * check['fill_expected']:.1f}. They may hold several objects each (the size used, "
                f"{size:.0f} px, too large) or be pieces of objects joined (too small)")
    else:
        what = (f"the median instance has {check['area_vs_lone']:.2f} x the area of the photo's "
                f"{check['lone_objects']} lone objects: " + (
                    f"objects may be cut into pieces because the size used ({size:.0f} px) is too small"
                    if check["verdict"] == "pieces" else
                    f"instances may hold several objects each because the size used ({size:.0f} px) is too large"))
    advice = (f"pass instance_size={check['lone_diameter']:.0f} (the lone objects' median diameter)"
              if check["lone_diameter"] else "pass instance_size, the typical object diameter in px")
    return f"{what} (check overlay.png; {advice})"


# ----------------------------------------------------------------------------- the misreadings the checks are set on
def cut_in_two(labels: np.ndarray) -> np.ndarray:
    """Each instance cut in two along the row through its centre: pieces, as a size too small makes them."""
    out = np.zeros(labels.shape, np.int32)
    rows = np.indices(labels.shape)[0]
    for p in regionprops(labels.astype(np.int32)):
        m = labels == p.label
        out[m] = 2 * p.label - (rows[m] < p.centroid[0])
    return out


def joined_in_pairs(labels: np.ndarray) -> np.ndarray:
    """Each instance joined with its nearest neighbour (greedily, each at most once): two objects to an instance, as
    a size too large makes them."""
    props = regionprops(labels.astype(np.int32))
    centres = np.array([p.centroid for p in props])
    tree, taken, lut = cKDTree(centres), set(), np.arange(int(labels.max()) + 1)
    for i, p in enumerate(props):
        if i in taken:
            continue
        for j in tree.query(centres[i], k=min(6, len(props)))[1][1:]:
            if j not in taken:
                taken |= {i, int(j)}
                lut[props[j].label] = p.label
                break
    return lut[labels]
