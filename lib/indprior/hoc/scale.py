"""The scale of a cluster photo, read off the photo itself: the typical instance diameter and the foreground
fraction. The photo is rescaled so that one GAN crop spans `crop_instances` diameters."""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.color import rgb2lab

from ..data.images import DataError, border_mean, check_rgb


def _foreground(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """2-means in standardised Lab of the blurred image; foreground = the class that owns less border.

    Why not Otsu on grey: coloured instances on a textured background often share its brightness.
    """
    lab = rgb2lab(cv2.GaussianBlur(image, (0, 0), sigma)).reshape(-1, 3).astype(np.float32)
    lab = (lab - lab.mean(0)) / (lab.std(0) + 1e-6)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.1)
    cv2.setRNGSeed(0)  # k-means++ init: same image, same answer
    _, lbl, _ = cv2.kmeans(lab, 2, None, crit, 3, cv2.KMEANS_PP_CENTERS)
    fg = lbl.reshape(image.shape[:2]) == 1
    fg = ~fg if border_mean(fg) > 0.5 else fg
    return ndi.binary_opening(fg, np.ones((3, 3), bool))


def cluster_stats(image: np.ndarray) -> dict[str, float]:
    """{'diameter': typical instance diameter in px, 'fg_frac': foreground fraction} of a cluster image.

    Diameter = 2 x the area-weighted median *local thickness* of the foreground (the radius of the
    largest disc inside the foreground that covers a pixel; computed by openings with discs of every
    radius, via two distance transforms each). Touching instances keep their own thickness, unlike
    connected-component areas; thin debris weighs little because it has little area.
    """
    image = check_rgb(image, "image", min_side=16)
    fg = _foreground(image)
    total = float(fg.sum())
    if total < 16:
        raise DataError("image: no foreground found; pass instance_size explicitly")
    dist = ndi.distance_transform_edt(fg)
    areas = [total]
    for r in range(1, int(dist.max()) + 2):  # area of the opening by a disc of radius r
        core = dist >= r
        areas.append(float((ndi.distance_transform_edt(~core) < r).sum()) if core.any() else 0.0)
    removed = -np.diff(areas)  # pixels whose local thickness lies in (r - 1, r]
    radius = float(np.interp(0.5, np.cumsum(removed) / removed.sum(), np.arange(1, len(areas))))
    return {"diameter": 2.0 * radius, "fg_frac": total / fg.size}


def estimate_instance_size(image: np.ndarray) -> float:
    """Typical instance diameter in pixels (see `cluster_stats`); its accuracy is in docs/method.md. The
    layout's learned scale range absorbs moderate errors."""
    return cluster_stats(image)["diameter"]
