"""Metrics on hand-made masks and label maps whose answers are worked out in the comments."""

import time

import numpy as np
import pytest

from indprior.metrics import (
    count_instances,
    foreground_scores,
    foreground_summary,
    instance_scores,
    mask_iou,
    match_instances,
)

# ------------------------------------------------------------------ foreground


def test_mask_iou_hand_case():
    a = np.zeros((4, 4), bool)
    a[:2, :2] = True                      # 4 px
    b = np.zeros((4, 4), bool)
    b[:2, :3] = True                      # 6 px, contains a
    assert mask_iou(a, b) == pytest.approx(4 / 6)
    assert mask_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0  # both empty
    assert mask_iou(a, np.zeros((4, 4), bool)) == 0.0


def test_foreground_mean_and_pooled_differ_as_computed_by_hand():
    # image A, 4x4: pred == gt, 4 px      -> IoU 1,   acc 16/16
    ga = np.zeros((4, 4), bool)
    ga[1:3, 1:3] = True
    # image B, 4x8: gt = rows 0-1 (16 px), pred = row 0 (8 px) -> IoU 8/16 = 0.5, acc 24/32
    gb = np.zeros((4, 8), bool)
    gb[:2] = True
    pb = np.zeros((4, 8), bool)
    pb[0] = True
    s = foreground_scores([ga.copy(), pb], [ga, gb])
    assert s["n_images"] == 2
    assert s["per_image_iou"] == pytest.approx([1.0, 0.5])
    assert s["per_image_acc"] == pytest.approx([1.0, 0.75])
    assert s["iou_mean"] == pytest.approx(0.75)            # (1 + 0.5) / 2
    assert s["iou_pooled"] == pytest.approx(12 / 20)       # (4 + 8) / (4 + 16)
    assert s["acc_mean"] == pytest.approx(0.875)           # (1 + 0.75) / 2
    assert s["acc_pooled"] == pytest.approx(40 / 48)       # (16 + 24) / (16 + 32)


def test_foreground_both_empty_counts_as_perfect():
    z = np.zeros((3, 5), bool)
    s = foreground_scores([z], [z.copy()])
    assert s["iou_mean"] == 1.0 and s["iou_pooled"] == 1.0 and s["acc_mean"] == 1.0


def test_foreground_accepts_0_1_ints_and_rejects_soft_masks():
    g = np.array([[0, 1], [1, 1]], np.uint8)
    s = foreground_scores([g.astype(bool)], [g])
    assert s["iou_mean"] == 1.0
    with pytest.raises(ValueError, match="binary"):
        foreground_scores([np.full((2, 2), 0.7)], [g])


def test_foreground_bad_inputs():
    a, b = np.zeros((4, 4), bool), np.zeros((4, 5), bool)
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        foreground_scores([a], [b])
    with pytest.raises(ValueError, match="same number"):
        foreground_scores([a, a], [a])
    with pytest.raises(ValueError, match="at least one"):
        foreground_scores([], [])


def test_foreground_summary_is_the_table_row():
    gt = np.zeros((4, 4), bool)
    gt[:, :1] = True                      # 4 px
    half = np.zeros((4, 4), bool)
    half[:2, :1] = True                   # 2 of the 4 px: IoU 0.5, accuracy 14/16
    row = foreground_summary([gt, half], [gt, gt])
    assert row == {"acc": pytest.approx((1 + 14 / 16) / 2), "iou_mean": pytest.approx(0.75),
                   "iou_pooled": pytest.approx(6 / 8), "acc_pooled": pytest.approx(30 / 32), "n_with_gt": 2}


# ------------------------------------------------------------------ instances


def _squares(shape, boxes):
    """Label map with label i+1 in boxes[i] = (r0, r1, c0, c1)."""
    lab = np.zeros(shape, np.uint16)
    for i, (r0, r1, c0, c1) in enumerate(boxes):
        lab[r0:r1, c0:c1] = i + 1
    return lab


GT3 = _squares((40, 40), [(0, 10, 0, 10), (0, 10, 20, 30), (20, 30, 0, 10)])


def test_perfect_prediction():
    s = instance_scores(GT3.copy(), GT3)
    assert s["ap50"] == 1.0 and s["ap"] == 1.0
    assert s["miou_matched"] == 1.0 and s["miou_gt"] == 1.0
    assert s["count_pred"] == s["count_gt"] == 3


def test_label_permutation_and_dtype_invariance():
    perm = np.zeros_like(GT3, dtype=np.int64)
    perm[GT3 == 1], perm[GT3 == 2], perm[GT3 == 3] = 70, 5, 2**40  # huge label: sort path
    s = instance_scores(perm, GT3)
    assert s["ap"] == 1.0 and s["count_pred"] == 3
    _, pairs = match_instances(perm, GT3)
    assert [(p, g) for p, g, _ in pairs] == [(70, 1), (5, 2), (2**40, 3)]
    assert instance_scores(GT3.astype(np.uint64), GT3.astype(np.int8))["ap"] == 1.0


def test_count_instances_counts_distinct_labels_not_the_largest():
    assert count_instances(GT3) == 3
    gaps = np.zeros((4, 4), np.uint16)
    gaps[0, 0], gaps[1, 1], gaps[3, 3] = 7, 7, 300  # two labels, numbered with gaps; max() would say 300
    assert count_instances(gaps) == 2
    assert count_instances(np.zeros((3, 3), np.uint8)) == 0


def test_one_instance_missing():
    pred = GT3.copy()
    pred[GT3 == 3] = 0
    # every t: TP 2, FP 0, FN 1 -> 2 / 3
    s = instance_scores(pred, GT3)
    assert s["ap50"] == pytest.approx(2 / 3) and s["ap"] == pytest.approx(2 / 3)
    assert s["miou_matched"] == 1.0                 # matched pairs only
    assert s["miou_gt"] == pytest.approx(2 / 3)     # (1 + 1 + 0) / 3
    assert (s["count_pred"], s["count_gt"]) == (2, 3)


def test_extra_false_positive():
    pred = GT3.copy()
    pred[35:38, 35:38] = 9
    # every t: TP 3, FP 1, FN 0 -> 3 / 4
    s = instance_scores(pred, GT3)
    assert s["ap"] == pytest.approx(3 / 4) and s["count_pred"] == 4


def test_shifted_instance_with_iou_exactly_0_6():
    # GT: 10x8 block (80 px); pred: same block shifted 2 columns right.
    # intersection 10x6 = 60, union 80 + 80 - 60 = 100 -> IoU 0.6
    gt = _squares((12, 12), [(0, 10, 0, 8)])
    pred = _squares((12, 12), [(0, 10, 2, 10)])
    s = instance_scores(pred, gt)
    assert s["miou_matched"] == pytest.approx(0.6)
    # counted at t = 0.50, 0.55, 0.60 (AP_t = 1), missed above (TP 0, FP 1, FN 1 -> 0)
    assert s["ap50"] == 1.0
    assert s["ap_per_threshold"][0.6] == 1.0 and s["ap_per_threshold"][0.65] == 0.0
    assert s["ap"] == pytest.approx(3 / 10)


def test_shifted_plus_perfect_instance():
    # the 0.6 block plus a second, perfectly predicted 2x2 block:
    # t <= 0.6: 2 / 2 = 1;  t > 0.6: TP 1, FP 1, FN 1 -> 1/3;  ap = (3 * 1 + 7 / 3) / 10 = 16/30
    gt = _squares((12, 12), [(0, 10, 0, 8), (10, 12, 10, 12)])
    pred = _squares((12, 12), [(0, 10, 2, 10), (10, 12, 10, 12)])
    s = instance_scores(pred, gt)
    assert s["ap"] == pytest.approx(16 / 30)
    assert s["miou_matched"] == pytest.approx((0.6 + 1.0) / 2)


def test_threshold_matching_beats_max_total_iou_assignment():
    # GT g1 = 10x10 block (100 px) and g2 = 1x19 strip right of it.
    # p1 = 60 px of g1 plus the whole strip g2 (19 px): IoU(p1,g1) = 60/119 ~ 0.504,
    #      IoU(p1,g2) = 19/79 ~ 0.24.  p2 = the other 40 px of g1: IoU(p2,g1) = 0.4.
    # Max total IoU pairs p1-g2 and p2-g1 (0.64 > 0.504), yet at t = 0.5 the pair p1-g1 is a TP.
    gt = np.zeros((12, 30), np.uint16)
    gt[:10, :10] = 1
    gt[0, 10:29] = 2
    pred = np.zeros_like(gt)
    pred[:6, :10] = 1
    pred[0, 10:29] = 1
    pred[6:10, :10] = 2
    s = instance_scores(pred, gt)
    assert s["ap50"] == pytest.approx(1 / 3)        # TP 1, FP 1, FN 1
    assert s["ap_per_threshold"][0.55] == 0.0


def test_empty_maps():
    z = np.zeros((5, 5), np.uint16)
    assert instance_scores(z, z)["ap"] == 1.0
    g = z.copy()
    g[1:3, 1:3] = 1
    s = instance_scores(z, g)
    assert s["ap"] == 0.0 and s["miou_gt"] == 0.0 and s["count_pred"] == 0


def test_instance_bad_inputs():
    with pytest.raises(ValueError, match=r"\(40, 40\).*\(40, 41\)"):
        instance_scores(GT3, np.zeros((40, 41), np.uint16))
    with pytest.raises(ValueError, match="integer"):
        instance_scores(GT3.astype(np.float32), GT3)
    with pytest.raises(ValueError, match="integer"):
        instance_scores(GT3 > 0, GT3)
    with pytest.raises(ValueError, match=">= 0"):
        instance_scores(GT3.astype(np.int32) - 1, GT3)


def test_large_maps_are_fast():
    # 1000x1000, 100 instances (10x10 grid of 100x100 cells), prediction shifted by 5 px:
    # IoU per cell = 95*100 / (2*10000 - 9500) = 9500/10500 ~ 0.905 (except border effects)
    rr, cc = np.mgrid[:1000, :1000]
    gt = (rr // 100 * 10 + cc // 100 + 1).astype(np.uint16)
    pred = np.roll(gt, 5, axis=1)
    t0 = time.perf_counter()
    s = instance_scores(pred, gt)
    assert time.perf_counter() - t0 < 2.0
    assert s["ap50"] == 1.0 and s["count_gt"] == 100
    assert s["ap_per_threshold"][0.95] == 0.0
