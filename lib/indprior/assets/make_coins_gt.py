"""Rebuild `coins_gt.png`: a development ground truth for scikit-image's `coins` photo (303 x 384).

How it was made: scikit-image's own region-based recipe for this very image (Sobel elevation map;
markers: background where grey < 30, coin where grey > 150; watershed; fill holes), then a 3x3
opening. The coins do not touch, so each connected component is one coin.
How it was checked: 24 coin centres were placed by hand on a 2x enlargement (below); the script
asserts that the foreground has exactly 24 components, each holding exactly one centre. The outlines
were then inspected on a 2x overlay: every contour follows its coin's rim (two coins whose interior
edges fooled a seeded watershed in a first attempt are whole here). Every mask fills 0.96-1.05 of the
ellipse of its bounding box. Equivalent diameters: median 43.4 px, range 37.0-63.2 px.
It is for measuring only, never for choosing hyper-parameters of a reported run.

    python lib/indprior/assets/make_coins_gt.py   # rewrites coins_gt.png next to this file
"""
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image
from scipy import ndimage as ndi
from skimage.filters import sobel
from skimage.segmentation import watershed

# (x, y) in pixels of the 2x enlargement, rows top to bottom
CENTRES_2X = [(88, 105), (200, 110), (310, 100), (432, 100), (550, 105), (668, 85),
              (90, 250), (205, 250), (307, 253), (412, 248), (540, 238), (672, 250),
              (88, 392), (204, 390), (310, 395), (425, 385), (547, 388), (693, 372),
              (92, 520), (228, 530), (345, 522), (488, 527), (601, 525), (715, 535)]


def coins_ground_truth() -> np.ndarray:
    img = skimage.data.coins()
    markers = np.zeros(img.shape, np.int32)
    markers[img < 30] = 1
    markers[img > 150] = 2
    fg = ndi.binary_fill_holes(watershed(sobel(img / 255.0), markers) == 2)
    fg = ndi.binary_opening(fg, np.ones((3, 3), bool))
    lab, n = ndi.label(fg)
    seeds = np.round(np.array(CENTRES_2X) / 2).astype(int)
    hit = lab[seeds[:, 1], seeds[:, 0]]
    assert n == 24 and (hit > 0).all() and len(set(hit.tolist())) == 24, (n, hit)
    gt = np.zeros(img.shape, np.uint16)
    for k, comp in enumerate(hit, 1):
        gt[lab == comp] = k
    return gt


if __name__ == "__main__":
    Image.fromarray(coins_ground_truth()).save(Path(__file__).with_name("coins_gt.png"), optimize=True)
