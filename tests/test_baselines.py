"""GrabCut and watershed baselines on synthetic images with known answers, plus one real photo."""

import numpy as np
import pytest
import skimage.data
from scipy import ndimage as ndi

from indprior.baselines import grabcut_box, grabcut_refine, otsu_watershed
from indprior.metrics import instance_scores, mask_iou

H, W = 96, 128
RR, CC = np.mgrid[:H, :W]


def _disc_image(cy=48, cx=64, r=25, seed=0, noise=30.0):
    """Red-ish disc on a blue-ish background, both with strong Gaussian noise."""
    rng = np.random.default_rng(seed)
    disc = (RR - cy) ** 2 + (CC - cx) ** 2 <= r ** 2
    img = np.empty((H, W, 3))
    img[:] = (60, 110, 170)
    img[disc] = (190, 90, 70)
    img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    return img, disc


def _mask_of_box(x, y, w, h):
    m = np.zeros((H, W), bool)
    m[y:y + h, x:x + w] = True
    return m


# ------------------------------------------------------------------ GrabCut


def test_grabcut_box_finds_the_disc_and_stays_in_the_box():
    img, disc = _disc_image()
    box = (36, 20, 57, 57)                      # disc spans cols 39..89, rows 23..73
    m = grabcut_box(img, box)
    assert m.dtype == bool and m.shape == (H, W)
    assert not m[~_mask_of_box(*box)].any()
    # the whole box would score pi r^2 / 57^2 ~ 0.60; GrabCut must do much better
    assert mask_iou(m, disc) > 0.8


def test_grabcut_box_margin_grows_the_allowed_region():
    img, disc = _disc_image()
    tight = (40, 24, 49, 49)                    # cuts a 1-px rim of the disc
    m = grabcut_box(img, tight, margin=4)
    assert not m[~_mask_of_box(36, 20, 57, 57)].any()
    assert mask_iou(m, disc) > 0.8


def test_grabcut_box_touching_border_and_whole_image():
    img, disc = _disc_image(cy=20, cx=20, r=18)  # disc touches nothing, box touches two borders
    m = grabcut_box(img, (-5, -5, 50, 50))      # clipped to (0, 0, 45, 45)
    assert not m[~_mask_of_box(0, 0, 45, 45)].any()
    assert mask_iou(m, disc) > 0.8
    img, disc = _disc_image()
    m = grabcut_box(img, (0, 0, W, H))          # no background outside: frame fallback
    assert mask_iou(m, disc) > 0.8


def test_grabcut_tiny_box_returns_the_box():
    img, _ = _disc_image()
    m = grabcut_box(img, (60, 40, 3, 3))
    np.testing.assert_array_equal(m, _mask_of_box(60, 40, 3, 3))


def test_grabcut_bad_inputs():
    img, _ = _disc_image()
    with pytest.raises(ValueError, match="uint8"):
        grabcut_box(img.astype(np.float32), (0, 0, 10, 10))
    with pytest.raises(ValueError, match="box"):
        grabcut_box(img, (10, 10, 0, 5))
    with pytest.raises(ValueError, match="box"):
        grabcut_box(img, (500, 500, 10, 10))
    with pytest.raises(ValueError, match="prob_mask"):
        grabcut_refine(img, (0, 0, 10, 10), np.ones((H, W), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        grabcut_refine(img, (0, 0, 10, 10), np.ones((H, W + 1)))


def test_grabcut_refine_improves_a_blurred_eroded_mask():
    img, disc = _disc_image()
    box = (30, 14, 69, 69)
    soft = ndi.gaussian_filter(ndi.binary_erosion(disc, iterations=5).astype(float), 4)
    before = mask_iou(soft > 0.5, disc)         # ~0.63: radius 20 of 25 -> 400/625 = 0.64
    after_mask = grabcut_refine(img, box, soft)
    assert not after_mask[~_mask_of_box(*box)].any()
    assert mask_iou(after_mask, disc) >= before
    assert mask_iou(after_mask, disc) > 0.8


def test_grabcut_refine_degenerate_mask_returns_threshold():
    img, _ = _disc_image()
    box = (30, 14, 69, 69)
    empty = np.zeros((H, W))
    assert not grabcut_refine(img, box, empty).any()      # no foreground sample
    tiny = np.zeros((H, W))
    tiny[40:43, 60:63] = 0.8                              # 9 px < MIN_GMM_SAMPLES
    np.testing.assert_array_equal(grabcut_refine(img, box, tiny), tiny > 0.5)


# ------------------------------------------------------------------ watershed


def _discs(centres, r, shape=(120, 160), fg=200, bg=50, seed=0):
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    lab = np.zeros(shape, np.uint16)
    for i, (y, x) in enumerate(centres):
        lab[(rr - y) ** 2 + (cc - x) ** 2 <= r ** 2] = i + 1
    img = np.where(lab > 0, fg, bg) + rng.normal(0, 12, shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2), lab


SIX = [(25, 25), (25, 80), (25, 135), (90, 30), (90, 85), (85, 130)]


@pytest.mark.parametrize("fg,bg", [(200, 50), (50, 200)])  # bright and dark objects
def test_watershed_counts_separated_discs(fg, bg):
    img, lab = _discs(SIX, 14, fg=fg, bg=bg)
    out = otsu_watershed(img)
    assert out.dtype == np.uint16 and out.shape == lab.shape
    assert out.max() == 6 and len(np.unique(out)) == 7
    assert instance_scores(out, lab)["ap50"] == 1.0


def test_watershed_explicit_polarity_and_grey_input():
    img, lab = _discs(SIX, 14)
    assert otsu_watershed(img[..., 0], foreground="bright").max() == 6
    # forcing the wrong polarity makes the background the single object
    assert otsu_watershed(img, foreground="dark").max() == 1


def test_watershed_splits_two_touching_discs():
    # centres 30 px apart, radius 18: the discs overlap in a neck, one connected component
    img, lab = _discs([(60, 60), (60, 90)], 18)
    assert ndi.label(lab > 0)[1] == 1
    out = otsu_watershed(img)
    assert out.max() == 2
    assert instance_scores(out, lab)["ap50"] == 1.0


def test_watershed_blank_image_and_bad_inputs():
    assert otsu_watershed(np.full((32, 32, 3), 7, np.uint8)).max() == 0
    with pytest.raises(ValueError, match="foreground"):
        otsu_watershed(np.zeros((8, 8, 3), np.uint8), foreground="light")
    with pytest.raises(ValueError, match="uint8"):
        otsu_watershed(np.zeros((8, 8, 3), np.float32))


def test_watershed_on_coins_photo_is_in_a_sane_range():
    # skimage.data.coins(): 24 coins. A sanity bound only, not a score: the classical
    # baseline also picks up bits of the bright, unevenly lit top edge of the photo.
    coins = skimage.data.coins()
    out = otsu_watershed(np.repeat(coins[..., None], 3, axis=2))
    assert 15 <= out.max() <= 35


def test_map_threads_keeps_order_and_matches_a_sequential_grabcut_loop():
    from indprior.baselines import grabcut_box, map_threads
    from indprior.data.synth import make_kite_image
    jobs = []
    for i in range(6):
        img, m = make_kite_image(np.random.default_rng([7, i]), 96)
        ys, xs = np.nonzero(m)
        jobs.append((img, (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)))
    sequential = [grabcut_box(*j) for j in jobs]
    threaded = map_threads(lambda i: grabcut_box(*jobs[i]), len(jobs), workers=3)
    assert len(threaded) == len(jobs) and all(np.array_equal(a, b) for a, b in zip(sequential, threaded))
    assert map_threads(lambda i: i * i, 5, workers=2) == [0, 1, 4, 9, 16] and map_threads(str, 0) == []
