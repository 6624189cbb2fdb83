"""SISeg-style segmenter: exact targets, exact grouping on perfect targets, learning on touching discs."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from indprior.hoc.siseg import (
    InstanceSegmenter,
    MeanSegmenter,
    group_instances,
    instance_targets_torch,
    predict_instances,
    siseg_loss,
    train_segmenter,
)
from indprior.viz import offset_field_rgb as offset_to_rgb


# ----------------------------------------------------------------------------- helpers
def instance_targets(lab: np.ndarray) -> dict[str, np.ndarray]:
    """The segmenter's targets of one H x W label map, as numpy: fg (bool), offset (2 h w float32), boundary."""
    if lab.ndim != 2:
        raise ValueError(f"labels: expected an H x W map, got shape {lab.shape}")
    fg, off, bnd = instance_targets_torch(torch.from_numpy(lab.astype(np.int64))[None])
    return {"fg": fg[0, 0].numpy() > 0.5, "offset": off[0].numpy(), "boundary": bnd[0, 0].numpy() > 0.5}


def make_discs(rng: np.random.Generator, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Touching, non-overlapping shaded discs (radius 5-8) on noise: image 3 s s in [-1,1], labels s s."""
    discs: list[tuple[np.ndarray, float]] = []
    for _ in range(40 * n):
        if len(discs) == n:
            break
        r = rng.uniform(5, 8)
        if discs and rng.random() < 0.8:  # touch an existing disc
            cj, rj = discs[rng.integers(len(discs))]
            a = rng.uniform(0, 2 * np.pi)
            c = cj + (rj + r + rng.uniform(0.3, 1.0)) * np.array([np.sin(a), np.cos(a)])
        else:
            c = rng.uniform(0, size, 2)
        if all(np.hypot(*(c - ck)) >= r + rk + 0.3 for ck, rk in discs) and (c > -2).all() and (c < size + 2).all():
            discs.append((c, r))
    yy, xx = np.mgrid[:size, :size]
    img = rng.uniform(-0.8, -0.2, 3)[:, None, None] + rng.normal(0, 0.15, (3, size, size))
    lab = np.zeros((size, size), np.int64)
    for k, (c, r) in enumerate(discs, 1):
        d = np.hypot(yy - c[0], xx - c[1])
        m = d <= r
        shade = 0.5 + 0.5 * np.sqrt(np.clip(1 - (d[m] / r) ** 2, 0, 1))
        img[:, m] = rng.uniform(0.1, 0.9, 3)[:, None] * shade + rng.normal(0, 0.05, (3, m.sum()))
        lab[m] = k
    return np.clip(img, -1, 1).astype(np.float32), lab


def disc_sampler(seed: int, size: int = 48):
    rng = np.random.default_rng(seed)

    def sample(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        ims, labs = zip(*(make_discs(rng, size, int(rng.integers(3, 9))) for _ in range(b)))
        return torch.from_numpy(np.stack(ims)), torch.from_numpy(np.stack(labs))
    return sample


def matched_ious(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of each GT instance with its Hungarian-matched prediction (0 when unmatched)."""
    g, p = [k for k in np.unique(gt) if k], [k for k in np.unique(pred) if k]
    out = np.zeros(len(g))
    if g and p:
        iou = np.array([[((gt == a) & (pred == b)).sum() / ((gt == a) | (pred == b)).sum() for b in p] for a in g])
        r, c = linear_sum_assignment(-iou)
        out[r] = iou[r, c]
    return out


def matched_fraction(gt: np.ndarray, pred: np.ndarray, thr: float = 0.5) -> float:
    """Fraction of GT instances Hungarian-matched to a prediction with IoU >= thr."""
    return float((matched_ious(gt, pred) >= thr).mean())


def assert_same_partition(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to renaming labels; background must stay background."""
    assert a.shape == b.shape
    pairs = np.unique(np.stack([a.ravel().astype(np.int64), b.ravel().astype(np.int64)]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1], "contingency is not a permutation"
    assert np.array_equal(a == 0, b == 0)


def perfect(lab: np.ndarray, **kw) -> np.ndarray:
    t = instance_targets(lab)
    return group_instances(t["fg"].astype(np.float32), t["offset"], t["boundary"].astype(np.float32), **kw)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return ((img.transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)


# ----------------------------------------------------------------------------- targets
def test_instance_targets_hand_made():
    lab = np.zeros((12, 16), np.int64)
    lab[2:6, 3:9] = 1    # centroid (3.5, 5.5)
    lab[2:8, 9:13] = 2   # touches 1 on the right; centroid (4.5, 10.5)
    t = instance_targets(lab)
    assert t["fg"].dtype == bool and t["offset"].dtype == np.float32 and t["offset"].shape == (2, 12, 16)
    np.testing.assert_allclose(t["offset"][:, 2, 3], [1.5, 2.5])
    np.testing.assert_allclose(t["offset"][:, 5, 8], [-1.5, -2.5])
    np.testing.assert_allclose(t["offset"][:, 7, 12], [-2.5, -1.5])
    assert (t["offset"][:, lab == 0] == 0).all()
    rim = np.zeros_like(t["boundary"])
    for y0, y1, x0, x1 in [(2, 6, 3, 9), (2, 8, 9, 13)]:
        rim[y0:y1, x0:x1] = True
        rim[y0 + 1:y1 - 1, x0 + 1:x1 - 1] = False
    np.testing.assert_array_equal(t["boundary"], rim)


def test_image_edge_is_not_a_boundary():
    lab = np.zeros((6, 6), np.int64)
    lab[:3, :3] = 4
    b = instance_targets(lab)["boundary"]
    assert b[2, :3].all() and b[:3, 2].all() and not b[0, 0] and not b[1, 1] and b.sum() == 5


def test_batched_targets_equal_per_image_targets():
    """Instances with the same id in different images of a batch stay apart (ids are made unique per image)."""
    rng = np.random.default_rng(0)
    labs = np.stack([make_discs(rng, 40, 6)[1] * 7 for _ in range(3)]).astype(np.uint16)  # sparse, shared ids
    fg, off, bnd = instance_targets_torch(torch.from_numpy(labs.astype(np.int32)))
    assert fg.shape == bnd.shape == (3, 1, 40, 40) and off.shape == (3, 2, 40, 40)
    for i, lab in enumerate(labs):
        t = instance_targets(lab)
        np.testing.assert_array_equal(fg[i, 0].numpy() > 0.5, t["fg"])
        np.testing.assert_array_equal(bnd[i, 0].numpy() > 0.5, t["boundary"])
        np.testing.assert_allclose(off[i].numpy(), t["offset"], atol=1e-4)


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="labels"):
        instance_targets(np.zeros((2, 3, 4), np.int64))
    with pytest.raises(ValueError, match="labels"):
        instance_targets_torch(torch.zeros(4, 4, dtype=torch.long))


# ----------------------------------------------------------------------------- grouping
def test_grouping_recovers_touching_rectangles_and_discs_exactly():
    lab = np.zeros((40, 60), np.int64)
    lab[5:15, 5:20], lab[5:15, 20:30], lab[15:30, 5:25] = 1, 2, 3   # three touching rectangles
    yy, xx = np.mgrid[:40, :60]
    lab[(yy - 25) ** 2 + (xx - 38) ** 2 <= 36] = 5
    lab[(yy - 25) ** 2 + (xx - 50) ** 2 <= 36] = 6                   # touching disc pair
    lab[32:36, 42:46] = 9                                            # small square right by a disc
    assert_same_partition(perfect(lab, min_size=5), lab)
    assert_same_partition(group_instances(lab > 0, instance_targets(lab)["offset"], None, min_size=5), lab)
    rng = np.random.default_rng(1)
    for _ in range(3):
        disc_lab = make_discs(rng, 64, 12)[1]
        assert ndimage.label(disc_lab > 0)[1] < disc_lab.max()       # some discs really touch
        out = perfect(disc_lab, min_size=5)
        assert out.dtype == np.uint16
        assert_same_partition(out, disc_lab)


def test_grouping_min_size_removes_small_instances_only():
    lab = np.zeros((30, 30), np.int64)
    lab[2:12, 2:12], lab[2:12, 12:20] = 1, 2
    lab[12:15, 12:15] = 3                                            # 9 px, touching instance 2
    lab[20:24, 22:25] = 4                                            # 12 px, isolated
    out = perfect(lab, min_size=20)
    expected = np.where(lab >= 3, 0, lab)
    assert_same_partition(out, expected)
    assert_same_partition(perfect(lab, min_size=5), lab)


def test_grouping_tolerates_noisy_offsets_and_empty_input():
    rng = np.random.default_rng(2)
    lab = make_discs(rng, 64, 12)[1]
    t = instance_targets(lab)
    noisy = t["offset"] + rng.normal(0, 1.0, t["offset"].shape)
    assert matched_fraction(lab, group_instances(t["fg"], noisy, t["boundary"]), thr=0.9) == 1.0
    assert (group_instances(np.zeros((8, 8)), np.zeros((2, 8, 8))) == 0).all()
    with pytest.raises(ValueError, match="offset"):
        group_instances(np.zeros((8, 8)), np.zeros((2, 8, 9)))


def side_by_side_rods(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """Label map of rods 6 px wide and 28 long lying in stacks of 3, 3 px apart, at random angles."""
    lab, k = np.zeros((size, size), np.int64), 0
    yy, xx = np.mgrid[:size, :size].astype(float)
    for cy, cx in ((24, 24), (24, 72), (72, 24), (72, 72)):
        a = rng.uniform(0, np.pi)
        u, v = np.array([np.sin(a), np.cos(a)]), np.array([np.cos(a), -np.sin(a)])  # along, across
        for j in (-1, 0, 1):
            k += 1
            along, across = (yy - cy) * u[0] + (xx - cx) * u[1], (yy - cy) * v[0] + (xx - cx) * v[1] - 9 * j
            lab[(np.abs(along) < 14) & (np.abs(across) < 3)] = k
    return lab


def test_anisotropic_grouping_keeps_side_by_side_rods_apart():
    """Offsets that err in their length (as the trained heads do, 3.5-4.7x more than across) spread the votes
    of a rod along it; rods side by side have centres a width apart, across. Isotropic votes merge them."""
    rng = np.random.default_rng(7)
    iso, aniso = [], []
    for _ in range(3):
        lab = side_by_side_rods(rng)
        t = instance_targets(lab)
        off = t["offset"] * rng.normal(1.0, 0.3, t["offset"].shape[1:]) + rng.normal(0, 0.5, t["offset"].shape)
        kw = dict(min_size=20, bandwidth=28 / 5)
        iso.append(matched_fraction(lab, group_instances(t["fg"], off, None, **kw)))
        aniso.append(matched_fraction(lab, group_instances(t["fg"], off, None, anisotropy=3.0, **kw)))
    assert min(aniso) == 1.0, aniso
    assert max(iso) < 0.8, iso  # why the option exists
    with pytest.raises(ValueError, match="anisotropy"):
        group_instances(t["fg"], off, None, anisotropy=0.5)


def test_pieces_of_one_rod_are_joined_but_neighbouring_rods_are_not():
    from indprior.hoc.grouping import join_end_to_end
    lab = np.zeros((60, 120), np.int64)
    lab[5:11, 5:19], lab[5:11, 19:33] = 1, 2      # one rod 6 x 28 cut in two halves
    lab[20:26, 5:33], lab[26:32, 5:33] = 3, 4     # two rods side by side, touching
    lab[40:46, 5:33], lab[40:46, 33:61] = 5, 6    # two rods end to end
    lab[50:56, 70:84] = 7                         # a half rod on its own
    out = join_end_to_end(lab, length=28, width=6)
    assert out.dtype == np.uint16 and out.max() == 6
    assert len(np.unique(out[5:11, 5:33])) == 1 and out[5, 5] > 0  # the halves are one instance
    for a, b in ((3, 4), (5, 6)):
        assert len(np.unique(out[lab == a])) == 1 and out[lab == a][0] != out[lab == b][0]
    assert (out[lab == 7] > 0).all() and ((out > 0) == (lab > 0)).all()


def test_pieces_seen_whole_zoomed_out_are_joined_but_only_into_one_object():
    from indprior.hoc.grouping import join_seen_whole
    lab = np.zeros((60, 120), np.int64)
    lab[5:11, 5:25], lab[5:11, 25:45] = 1, 2      # a rod 6 x 40 (longer than the estimate, 28) cut in two
    lab[20:26, 5:33], lab[26:32, 5:33] = 3, 4     # two rods side by side, touching
    lab[40:46, 5:33], lab[40:46, 33:61] = 5, 6    # two rods end to end
    lab[50:56, 70:84], lab[50:56, 84:98] = 7, 8   # two pieces that the zoomed-out view keeps apart
    coarse = np.zeros_like(lab)
    coarse[4:12, 4:46] = 1                        # the long rod, whole
    coarse[20:32, 5:33] = 2                       # the side-by-side pair as one (too wide to join)
    coarse[40:46, 5:61] = 3                       # the end-to-end pair as one (too long to join)
    coarse[50:56, 70:84], coarse[50:56, 84:98] = 4, 5
    out = join_seen_whole(lab, coarse, length=28, width=6)
    assert out.dtype == np.uint16 and out.max() == 7 and ((out > 0) == (lab > 0)).all()
    assert len(np.unique(out[5:11, 5:45])) == 1  # the long rod's halves are one instance
    for a, b in ((3, 4), (5, 6), (7, 8)):
        assert len(np.unique(out[lab == a])) == 1 and out[lab == a][0] != out[lab == b][0]
    assert (join_seen_whole(lab, np.zeros_like(lab), 28, 6) == lab).all()  # nothing seen: nothing joined
    mostly_outside = coarse.copy()
    mostly_outside[5:11, 30:45] = 0  # piece 2 lies mostly outside the coarse rod: kept apart
    assert join_seen_whole(lab, mostly_outside, 28, 6).max() == 8


def _rod(shape, centre, angle_deg, length, width):
    """Mask of a filled rectangle length x width centred at `centre`, rotated by `angle_deg`."""
    yy, xx = np.indices(shape, dtype=float)
    a = np.deg2rad(angle_deg)
    u = (yy - centre[0]) * np.sin(a) + (xx - centre[1]) * np.cos(a)
    v = (yy - centre[0]) * np.cos(a) - (xx - centre[1]) * np.sin(a)
    return (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)


def test_rods_merged_side_by_side_are_cut_apart_and_single_rods_stay_whole():
    from indprior.hoc.grouping import split_side_by_side
    shape, L, W = (100, 160), 28, 7
    truth = np.zeros(shape, np.int64)
    truth[_rod(shape, (20, 30), 30, L, W)] = 1
    truth[_rod(shape, (20 - 7 * np.cos(np.deg2rad(30)), 30 + 7 * np.sin(np.deg2rad(30))), 30, L, W)] = 2  # beside 1
    truth[_rod(shape, (60, 40), -20, L, W)] = 3
    truth[_rod(shape, (60, 100), 90, L, W)] = 4
    truth[_rod(shape, (60, 100 + W), 90, L, W)] = 5  # beside 4
    truth[_rod(shape, (30, 120), 70, L, W)] = 6  # alone
    merged = truth.copy()
    merged[merged == 2], merged[merged == 5] = 1, 4  # the grouping's failure: each pair is one instance
    out = split_side_by_side(merged, L, W, min_size=20)
    assert out.dtype == np.uint16 and out.max() == 6 and ((out > 0) == (truth > 0)).all()
    for k in range(1, 7):  # every rod is (almost all of) one instance and that instance is (almost all) the rod
        vals, counts = np.unique(out[truth == k], return_counts=True)
        best = vals[np.argmax(counts)]
        assert counts.max() >= 0.9 * (truth == k).sum() and (truth[out == best] == k).mean() >= 0.9
    untouched = split_side_by_side(truth, L, W, min_size=20)  # rods already apart stay as they are
    assert untouched.max() == 6 and all(len(np.unique(untouched[truth == k])) == 1 for k in range(1, 7))
    fat = np.zeros(shape, np.int64)
    fat[_rod(shape, (50, 80), 0, 30, 22)] = 1  # one wide object no cut fits (parts 11 px wide are fine, too long)
    fat_out = split_side_by_side(fat, 14, 7, min_size=20)
    assert fat_out.max() == 1
    full = np.where(merged > 0, merged, 7)  # no background left: every instance keeps its pixels
    full_out = split_side_by_side(full, L, W, min_size=20)
    assert (full_out > 0).all() and full_out.max() >= 5


def _dome(shape, centre, angle_deg, length, width):
    """Brightness 0-1 of a rounded rod lit from above: 1 along its axis, falling to 0 at its sides (0 outside)."""
    yy, xx = np.indices(shape, dtype=float)
    a = np.deg2rad(angle_deg)
    v = (yy - centre[0]) * np.cos(a) - (xx - centre[1]) * np.sin(a)
    return np.sqrt(np.clip(1 - (2 * v / width) ** 2, 0, 1)) * _rod(shape, centre, angle_deg, length, width)


def test_rods_lying_partly_on_each_other_are_cut_apart_where_a_groove_runs_between_them_and_a_wide_rod_is_not():
    from indprior.hoc.grouping import GROOVE, GROOVE_WIDTH, _principal, groove_depth, split_side_by_side
    shape, L, W = (80, 120), 28, 7
    lower, upper = ((38, 40), 0), ((42, 42), 8)  # the upper rod lies on the lower one's edge, at a small angle
    truth = np.zeros(shape, np.int64)
    truth[_rod(shape, *lower, L, W)] = 1
    truth[_rod(shape, *upper, L, W)] = 2
    img = 20 + 200 * np.where(truth == 2, _dome(shape, *upper, L, W), _dome(shape, *lower, L, W))
    merged = (truth > 0).astype(np.int64)
    ys, xs = np.nonzero(merged)
    minor = _principal(np.stack([ys, xs], 1).astype(float))[3]
    assert GROOVE_WIDTH * W < minor < 1.9 * W  # narrower than two rods: width alone does not cut it
    assert groove_depth(img, merged, 1) >= GROOVE
    assert split_side_by_side(merged, L, W, min_size=20).max() == 1  # without the photo it stays whole
    out = split_side_by_side(merged, L, W, min_size=20, image=np.repeat(img[..., None], 3, 2))
    assert out.max() == 2
    iou = [[((truth == k) & (out == j)).sum() / ((truth == k) | (out == j)).sum() for j in (1, 2)] for k in (1, 2)]
    best = np.argmax(iou, 1)  # each rod has its own part, and matches it (the cut runs between two line segments,
    assert best[0] != best[1] and min(np.max(iou, 1)) >= 0.65, iou  # not exactly along the groove: IoU ~0.7)
    wide = _rod(shape, (40, 60), 5, L, 1.5 * W).astype(np.int64)  # one rod as wide (minor axis 1.73 W), lit as one
    wide_img = 20 + 200 * _dome(shape, (40, 60), 5, L, 1.5 * W)
    ys, xs = np.nonzero(wide)
    assert GROOVE_WIDTH * W < _principal(np.stack([ys, xs], 1).astype(float))[3] < 1.9 * W  # halves would "fit"
    assert groove_depth(wide_img, wide, 1) < GROOVE
    assert split_side_by_side(wide, L, W, min_size=20, image=wide_img).max() == 1
    with pytest.raises(ValueError, match="image: expected"):
        split_side_by_side(merged, L, W, image=img[:40])


def _offsets_to(labels, centres, noise, rng):
    """2 h w offsets sending each pixel of instance k to centres[k] (k >= 1), plus Gaussian noise of sd `noise`."""
    yy, xx = np.indices(labels.shape, dtype=float)
    off = np.zeros((2, *labels.shape))
    for k, (cy, cx) in centres.items():
        m = labels == k
        off[0][m], off[1][m] = cy - yy[m], cx - xx[m]
    return off + rng.normal(0, noise, off.shape) * (labels > 0)


def test_round_objects_whose_votes_met_are_cut_apart_and_single_objects_stay_whole():
    from indprior.hoc.grouping import split_bimodal_votes
    rng = np.random.default_rng(0)
    shape, d = (80, 140), 16.0
    yy, xx = np.indices(shape, dtype=float)
    disc = lambda cy, cx, r: np.hypot(yy - cy, xx - cx) <= r  # noqa: E731
    truth = np.zeros(shape, np.int64)
    truth[disc(25, 25, 6)] = 1  # three small objects in a row, centres 12 px (0.75 d) apart
    truth[disc(25, 37, 6)] = 2
    truth[disc(25, 49, 6)] = 3
    truth[disc(55, 80, 9)] = 4  # one large object
    truth[disc(25, 110, 8)] = 5  # one typical object ...
    truth[disc(58, 30, 9)] = 6  # ... and one whose votes scatter widely around its centre (sd 0.4 d)
    centres = {1: (25, 25), 2: (25, 37), 3: (25, 49), 4: (55, 80), 5: (25, 110), 6: (58, 30)}
    off = _offsets_to(truth, centres, 1.0, rng)
    off[:, truth == 6] += rng.normal(0, 0.4 * d, (2, (truth == 6).sum()))
    stray = disc(25, 110, 8) & (xx > 115)  # ... whose rim sends a few votes far astray (too few to be an object)
    off[1][stray] += 14
    merged = np.where((truth == 2) | (truth == 3), 1, truth)  # the grouping's failure: the small ones are one
    out = split_bimodal_votes(merged, off, d, min_size=10)
    assert out.dtype == np.uint16 and out.max() == 6 and ((out > 0) == (truth > 0)).all()
    for k in range(1, 7):
        vals, counts = np.unique(out[truth == k], return_counts=True)
        assert counts.max() >= 0.95 * (truth == k).sum(), k
        assert (truth[out == vals[np.argmax(counts)]] == k).mean() >= 0.95, k
    for k in range(1, 7):  # every instance is one connected piece
        assert ndimage.label(out == k, structure=np.ones((3, 3)))[1] == 1
    close = _offsets_to(truth, {**centres, 2: (25, 31), 3: (25, 33)}, 1.0, rng)  # votes <= 0.5 d apart: one object
    assert split_bimodal_votes(merged, close, d, min_size=10).max() == 4
    with pytest.raises(ValueError, match="offset"):
        split_bimodal_votes(merged, off[:, :10], d)


def test_touching_round_objects_are_cut_at_a_neck_the_boundary_crosses_and_one_large_object_is_not():
    from skimage.segmentation import find_boundaries

    from indprior.hoc.grouping import split_at_necks
    shape, d = (70, 150), 16.0
    yy, xx = np.indices(shape, dtype=float)
    disc = lambda cy, cx, r: np.hypot(yy - cy, xx - cx) <= r  # noqa: E731
    truth = np.zeros(shape, np.int64)
    truth[disc(30, 25, 8)] = 1  # two touching objects: centres 15 px apart, a neck ~7 px (0.45 d) wide
    truth[disc(30, 40, 8) & (truth == 0)] = 2
    truth[disc(35, 85, 12)] = 3  # one large object (1.5 d) ...
    truth[disc(30, 125, 8)] = 4  # ... and two more touching objects whose boundary is broken along the cut
    truth[disc(30, 140, 8) & (truth == 0)] = 5
    bnd = find_boundaries(truth, mode="thick").astype(float)
    bnd = ndimage.gaussian_filter(bnd, 0.7) / ndimage.gaussian_filter(bnd, 0.7).max()
    chord = disc(35, 85, 12) & (np.abs(xx - 85) <= 1)  # a boundary drawn right across the large object
    bnd[chord] = 1.0
    gap = (np.abs(xx - 132.5) <= 3) & (np.abs(yy - 30) <= 1)  # the boundary fades at the middle of the neck
    bnd[gap] = 0.1
    merged = np.where(truth == 2, 1, np.where(truth == 5, 4, truth))  # the grouping's failure
    out = split_at_necks(merged, bnd, d)
    assert out.dtype == np.uint16 and out.max() == 4 and ((out > 0) == (truth > 0)).all()
    for k in (1, 2):  # the pair at a neck is cut in two, along the boundary
        vals, counts = np.unique(out[truth == k], return_counts=True)
        assert counts.max() >= 0.9 * (truth == k).sum(), k
        assert (truth[out == vals[np.argmax(counts)]] == k).mean() >= 0.9, k
    assert len(np.unique(out[truth == 3])) == 1  # the long cut through the large object is no neck
    assert len(np.unique(out[(truth == 4) | (truth == 5)])) == 1  # a broken boundary is no cut
    assert split_at_necks(merged, bnd, d, neck=0.3).max() == 3  # a stricter neck leaves the pair whole too
    with pytest.raises(ValueError, match="boundary"):
        split_at_necks(merged, bnd[:10], d)


def test_the_lit_and_shaded_halves_of_one_stone_are_joined_but_touching_stones_and_two_colours_are_not():
    from indprior.hoc.grouping import join_round_pieces
    shape = (60, 170)
    yy, xx = np.indices(shape, dtype=float)
    disc = lambda cy, cx, r: np.hypot(yy - cy, xx - cx) <= r  # noqa: E731
    lab = np.zeros(shape, np.int64)
    lab[disc(30, 25, 13) & (xx + 0.4 * yy < 37)] = 1  # one stone, its lit part ...
    lab[disc(30, 25, 13) & (xx + 0.4 * yy >= 37)] = 2  # ... and its shaded part, cut along the light
    lab[disc(30, 65, 12)] = 3  # two stones of one colour touching (a small one by a large one)
    lab[disc(33, 87, 8) & (lab == 0)] = 4
    lab[disc(30, 125, 13) & (xx < 125)] = 5  # two fruit that hide each other's other half: round together,
    lab[disc(30, 125, 13) & (xx >= 125)] = 6  # but green and purple
    lab[disc(12, 158, 5)] = 7  # a small stone on its own
    img = np.full(shape + (3,), (150, 130, 90), np.float64)  # a wooden backdrop
    orange = np.array([230, 130, 40.0])
    img[(lab >= 1) & (lab <= 4) | (lab == 7)] = orange
    img[lab == 2] = 0.45 * orange  # shade changes brightness, not colour
    img[lab == 5], img[lab == 6] = (90, 170, 60), (110, 50, 120)
    out = join_round_pieces(lab, img.astype(np.uint8))
    assert out.dtype == np.uint16 and out.max() == 6 and ((out > 0) == (lab > 0)).all()
    assert len(np.unique(out[(lab == 1) | (lab == 2)])) == 1  # the halves are one stone
    for a, b in ((3, 4), (5, 6)):  # a pair of stones and the two fruit stay apart, each whole
        assert len(np.unique(out[lab == a])) == 1 and out[lab == a][0] != out[lab == b][0]
    gray = img.mean(2, keepdims=True).astype(np.uint8)  # no colour: the shape alone decides
    out = join_round_pieces(lab, gray)
    assert out.max() == 5 and len(np.unique(out[(lab == 5) | (lab == 6)])) == 1
    assert out[lab == 3][0] != out[lab == 4][0]
    assert join_round_pieces(lab, img, max_colour=0.0).max() == 7  # stricter on colour: nothing is one colour enough
    with pytest.raises(ValueError, match="image"):
        join_round_pieces(lab, img[:10])


def test_boundary_map_refines_blurred_borders():
    """A CNN blurs offsets across the contact of two instances; the boundary map should fix those pixels."""
    rng = np.random.default_rng(5)
    with_b, without_b = [], []
    for _ in range(3):
        lab = make_discs(rng, 96, 22)[1]
        t = instance_targets(lab)
        off = ndimage.gaussian_filter(t["offset"], (0, 3, 3)) + rng.normal(0, 1.0, t["offset"].shape)
        bp = ndimage.gaussian_filter(t["boundary"].astype(float), 0.7)
        with_b.append(matched_ious(lab, group_instances(t["fg"], off, bp / bp.max())).mean())
        without_b.append(matched_ious(lab, group_instances(t["fg"], off, None)).mean())
    assert np.mean(with_b) > np.mean(without_b) and np.mean(with_b) > 0.99


# ----------------------------------------------------------------------------- model and loss


def test_model_shapes_and_bad_size():
    model = InstanceSegmenter(base=8, levels=3)
    out = model(torch.randn(2, 3, 32, 40))
    assert out["fg"].shape == (2, 1, 32, 40) and out["offset"].shape == (2, 2, 32, 40)
    assert out["boundary"].shape == (2, 1, 32, 40)
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 3, 36, 40))
    with pytest.raises(ValueError, match="b 3 h w"):
        model(torch.randn(1, 1, 32, 32))


def test_loss_is_zero_ish_on_perfect_prediction():
    labs = torch.from_numpy(np.stack([make_discs(np.random.default_rng(3), 32, 5)[1]]))
    fg, off, bnd = instance_targets_torch(labs)
    perfect_out = dict(fg=(fg * 2 - 1) * 30, offset=off, boundary=(bnd * 2 - 1) * 30)
    total, parts = siseg_loss(perfect_out, labs)
    assert parts["offset"] == 0 and total < 1e-6
    wrong = dict(fg=-perfect_out["fg"], offset=off + 3, boundary=-perfect_out["boundary"])
    total_w, parts_w = siseg_loss(wrong, labs)
    assert parts_w["offset"] == pytest.approx(3.0) and parts_w["fg"] > 10 and parts_w["boundary"] > 10


def test_training_reduces_loss_and_changes_weights(one_thread):
    torch.manual_seed(0)
    model = InstanceSegmenter(base=8, levels=2)
    before = [p.detach().clone() for p in model.parameters()]
    logged = []
    hist = train_segmenter(model, disc_sampler(0, 32), steps=30, batch_size=4, lr=2e-3, progress=False,
                           log_fn=lambda s, d: logged.append(s))
    assert len(hist) == 30 and logged == list(range(30))
    assert all(np.isfinite(h["total"]) for h in hist)
    assert np.mean([h["total"] for h in hist[-5:]]) < 0.5 * np.mean([h["total"] for h in hist[:5]])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_mean_segmenter_gives_the_mean_of_its_members_heads():
    torch.manual_seed(0)
    a, b = InstanceSegmenter(base=8, levels=2).eval(), InstanceSegmenter(base=8, levels=2).eval()
    x = torch.randn(2, 3, 16, 16)
    both = MeanSegmenter([a, b]).eval()
    out, oa, ob = both(x), a(x), b(x)
    assert set(out) == {"fg", "offset", "boundary"} and both.levels == 2
    for k in out:
        assert torch.allclose(out[k], (oa[k] + ob[k]) / 2, atol=1e-6) and not torch.allclose(oa[k], ob[k])
    with pytest.raises(ValueError, match="same levels"):
        MeanSegmenter([a, InstanceSegmenter(base=8, levels=3)])


# ----------------------------------------------------------------------------- learning and inference
@pytest.fixture(scope="module")
def trained(one_thread) -> InstanceSegmenter:
    """~10-20 s on one core."""
    torch.manual_seed(0)
    model = InstanceSegmenter(base=8, levels=3)
    train_segmenter(model, disc_sampler(1), steps=200, batch_size=8, lr=3e-3, progress=False)
    return model


@pytest.mark.slow
def test_learns_to_split_touching_discs(trained):
    rng = np.random.default_rng(123)
    tests = [make_discs(rng, 96, 22) for _ in range(3)]
    gt = [lab for _, lab in tests]
    cc_frac = np.mean([matched_fraction(lab, ndimage.label(lab > 0)[0]) for lab in gt])
    assert cc_frac < 0.7, "data too easy: connected components alone would pass"
    fracs = []
    for img, lab in tests:
        pred, maps = predict_instances(trained, to_uint8(img))
        assert pred.shape == lab.shape and pred.dtype == np.uint16
        assert maps["offset"].shape == (2, 96, 96) and 0 <= maps["fg"].min() <= maps["fg"].max() <= 1
        fracs.append(matched_fraction(lab, pred))
    assert np.mean(fracs) >= 0.7, f"matched fraction {fracs}, connected components {cc_frac:.2f}"


@pytest.mark.slow
def test_tiled_prediction_matches_whole_image(trained):
    img, lab = make_discs(np.random.default_rng(7), 96, 22)
    whole, mw = predict_instances(trained, to_uint8(img))
    tiled, mt = predict_instances(trained, to_uint8(img), tile=64, overlap=16)
    assert matched_fraction(whole, tiled, thr=0.9) >= 0.95
    fg = mw["fg"] > 0.5
    assert np.abs(mw["fg"] - mt["fg"]).mean() < 0.01 and np.abs(mw["boundary"] - mt["boundary"]).mean() < 0.01
    assert np.abs(mw["offset"] - mt["offset"])[:, fg].mean() < 0.5
    with pytest.raises(ValueError, match="tile"):
        predict_instances(trained, to_uint8(img), tile=60)
    with pytest.raises(ValueError, match="overlap"):
        predict_instances(trained, to_uint8(img), tile=64, overlap=32)


@pytest.mark.slow
def test_eight_views_make_the_heads_follow_a_flipped_or_transposed_photo(trained):
    """Averaged over all 8 flips / transposes, the heads of a flipped (transposed) photo are the flipped
    (transposed) heads, offsets turned with it: the views are mapped back correctly. One view is not."""
    img = to_uint8(make_discs(np.random.default_rng(3), 64, 18)[0])
    _, m = predict_instances(trained, img, views=8)
    _, mx = predict_instances(trained, np.ascontiguousarray(img[:, ::-1]), views=8)
    _, mt = predict_instances(trained, np.ascontiguousarray(img.transpose(1, 0, 2)), views=8)
    np.testing.assert_allclose(mx["fg"][:, ::-1], m["fg"], atol=1e-4)
    np.testing.assert_allclose(mx["offset"][:, :, ::-1] * np.array([1, -1])[:, None, None], m["offset"], atol=1e-3)
    np.testing.assert_allclose(mt["offset"].transpose(0, 2, 1)[::-1], m["offset"], atol=1e-3)
    np.testing.assert_allclose(mt["boundary"].T, m["boundary"], atol=1e-4)
    _, m1 = predict_instances(trained, img, views=1)
    _, m1x = predict_instances(trained, np.ascontiguousarray(img[:, ::-1]), views=1)
    assert np.abs(m1x["offset"][:, :, ::-1] * np.array([1, -1])[:, None, None] - m1["offset"]).max() > 1e-2
    with pytest.raises(ValueError, match="views"):
        predict_instances(trained, img, views=3)


def test_offset_to_rgb_encodes_direction_and_magnitude():
    off = np.zeros((2, 2, 3), np.float32)
    off[:, 0, 1] = (0, 4)     # right, full magnitude
    off[:, 0, 2] = (0, -4)    # left
    off[:, 1, 0] = (0, 2)     # right, half magnitude
    rgb = offset_to_rgb(off)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 0).all()                                    # zero offset is black
    assert not np.array_equal(rgb[0, 1], rgb[0, 2])                  # opposite directions differ
    assert rgb[0, 1].max() == 255 and abs(int(rgb[1, 0].max()) - 128) <= 1
    with pytest.raises(ValueError, match="offset"):
        offset_to_rgb(np.zeros((3, 4, 4)))


def test_elongated_photos_are_grouped_again_zoomed_out_and_round_ones_are_not(monkeypatch):
    """segment_rescaled's wiring: rods get a second grouping at ZOOM_OUT (on the photo shrunk by it, with the
    object zoomed too), and pieces that come out whole there are joined; round objects get one grouping."""
    from indprior.hoc import HOCConfig
    from indprior.hoc import segment as S
    calls = []
    halves = np.zeros((40, 80), np.uint16)
    halves[10:16, 10:30], halves[10:16, 30:50] = 1, 2  # one rod 40 px long, the estimate says 28

    def fake_group(seg, image, cfg, device, length, width, bandwidth, zoom):
        calls.append((image.shape[:2], zoom))
        if zoom == 1.0:
            return halves, {}
        whole = np.zeros(image.shape[:2], np.uint16)
        whole[round(10 * zoom):round(16 * zoom), round(10 * zoom):round(50 * zoom)] = 1
        return whole, {}

    monkeypatch.setattr(S, "_group_at", fake_group)
    image, cfg = np.zeros((40, 80, 3), np.uint8), HOCConfig()
    labels, _ = S.segment_rescaled(None, image, cfg, length=28.0, width=6.0)
    assert calls == [((40, 80), 1.0), ((30, 60), S.ZOOM_OUT)] and S.ZOOM_OUT == 0.75
    assert labels.max() == 1 and (labels[10:16, 10:50] == 1).all()
    calls.clear()
    labels, _ = S.segment_rescaled(None, image, cfg, length=8.0, width=6.0)  # round: as grouped
    assert calls == [((40, 80), 1.0)] and labels.max() == 2
