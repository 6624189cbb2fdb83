"""Foreground and instance metrics, written out so every number in a table has one definition.

Task 1 (foreground masks, bool HxW):
  * accuracy = correct pixels / pixels, IoU = |pred & gt| / |pred | gt|;
  * "mean" = average of the per-image values; "pooled" = sums over the whole split first
    (pooled IoU = sum of intersections / sum of unions). Tables must say which one they show.
  * An image where prediction and GT are both empty has IoU 1.0 (nothing to find, nothing found).

Task 2 (instance label maps, integer HxW, 0 = background):
  * IoU matrix between every predicted and every GT instance from one joint histogram.
  * AP_t = TP / (TP + FP + FN) at IoU threshold t, the score-less "AP" of the cell-segmentation
    community (Data Science Bowl 2018, StarDist), averaged over t = 0.50:0.05:0.95 like COCO.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

AP_THRESHOLDS: tuple[float, ...] = tuple(float(np.round(0.5 + 0.05 * i, 2)) for i in range(10))
_IOU_TOL = 1e-9  # so that an IoU of exactly 3/5 counts at t = 0.6 despite float rounding

# ------------------------------------------------------------------ validation helpers


def _as_binary_mask(x: np.ndarray, name: str) -> np.ndarray:
    """Accept bool masks, or numeric masks holding only 0/1; anything else is a caller bug."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D HxW mask, got shape {x.shape}")
    if x.dtype == bool:
        return x
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{name}: expected a bool mask, got dtype {x.dtype}")
    if not np.isin(x, (0, 1)).all():
        raise ValueError(f"{name}: expected a binary mask (bool or 0/1 values), got values "
                         f"in [{x.min()}, {x.max()}]; threshold soft masks first")
    return x.astype(bool)


def _check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {name_a} has shape {a.shape}, {name_b} has shape {b.shape}")


def _check_label_map(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D HxW label map, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):  # bool is not an integer dtype in numpy
        raise ValueError(f"{name}: expected an integer label map (e.g. uint16), got dtype {x.dtype}")
    if x.size and x.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0 (0 = background), got min {x.min()}")
    return x


# ------------------------------------------------------------------ foreground masks


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two binary masks; 1.0 when both are empty (a correct 'nothing here')."""
    a, b = _as_binary_mask(a, "a"), _as_binary_mask(b, "b")
    _check_same_shape(a, b, "a", "b")
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def foreground_scores(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict:
    """Accuracy and IoU over a split, both per-image mean and pooled (see module docstring).

    Images may have different sizes; pooled accuracy therefore weights large images more.
    """
    if len(preds) != len(gts):
        raise ValueError(f"preds and gts: expected the same number of masks, got {len(preds)} and {len(gts)}")
    if len(preds) == 0:
        raise ValueError("preds: expected at least one mask, got none")
    per_iou: list[float] = []
    per_acc: list[float] = []
    inter_sum = union_sum = correct_sum = pixel_sum = 0
    for i, (p, g) in enumerate(zip(preds, gts)):
        p, g = _as_binary_mask(p, f"preds[{i}]"), _as_binary_mask(g, f"gts[{i}]")
        _check_same_shape(p, g, f"preds[{i}]", f"gts[{i}]")
        inter = int(np.count_nonzero(p & g))
        union = int(np.count_nonzero(p | g))
        correct = int(np.count_nonzero(p == g))
        per_iou.append(1.0 if union == 0 else inter / union)
        per_acc.append(correct / p.size)
        inter_sum, union_sum = inter_sum + inter, union_sum + union
        correct_sum, pixel_sum = correct_sum + correct, pixel_sum + p.size
    return {
        "n_images": len(per_iou),
        "acc_mean": float(np.mean(per_acc)),
        "iou_mean": float(np.mean(per_iou)),
        "acc_pooled": correct_sum / pixel_sum,
        "iou_pooled": 1.0 if union_sum == 0 else inter_sum / union_sum,
        "per_image_iou": per_iou,
        "per_image_acc": per_acc,
    }


def foreground_summary(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict[str, float]:
    """The row every task-1 table shows: acc (per-image mean), iou_mean, iou_pooled, acc_pooled, n_with_gt."""
    s = foreground_scores(preds, gts)
    return {"acc": s["acc_mean"], "iou_mean": s["iou_mean"], "iou_pooled": s["iou_pooled"],
            "acc_pooled": s["acc_pooled"], "n_with_gt": len(gts)}


# ------------------------------------------------------------------ instances


def count_instances(labels: np.ndarray) -> int:
    """How many instances a label map holds: its distinct labels other than 0 (gaps in the numbering allowed)."""
    labels = np.asarray(labels)
    return int(len(np.unique(labels[labels > 0])))


def _compact_labels(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map labels to 0..n (0 stays background). Returns (index map, sorted non-zero labels)."""
    flat = x.ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= 4 * flat.size + 65536:  # lookup table: O(pixels), no sort
        flat = flat.astype(np.intp, copy=False)  # bincount refuses uint64
        present = np.flatnonzero(np.bincount(flat, minlength=top + 1))
        labels = present[present > 0]
        lut = np.zeros(top + 1, dtype=np.intp)
        lut[labels] = np.arange(1, len(labels) + 1)
        return lut[flat], labels.astype(x.dtype)
    uniq = np.unique(flat)
    labels = uniq[uniq > 0]
    idx = np.searchsorted(labels, flat) + 1
    idx[flat == 0] = 0
    return idx, labels


def match_instances(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """IoU matrix and the one-to-one matching that maximises the total IoU (Hungarian).

    Returns `iou` of shape (n_pred, n_gt), rows/columns ordered by increasing non-zero label, and
    `pairs` = [(pred_label, gt_label, iou)] for the matched pairs with IoU > 0, sorted by gt label.
    Label 0 is background and is ignored. The IoU matrix comes from one joint histogram
    (np.bincount over pred_index * (n_gt + 1) + gt_index), so the cost is O(pixels + n_pred * n_gt).
    """
    pred, gt = _check_label_map(pred, "pred"), _check_label_map(gt, "gt")
    _check_same_shape(pred, gt, "pred", "gt")
    iou, pred_labels, gt_labels = _iou_matrix(pred, gt)
    pairs: list[tuple[int, int, float]] = []
    if iou.size:
        rows, cols = linear_sum_assignment(iou, maximize=True)
        pairs = [(int(pred_labels[r]), int(gt_labels[c]), float(iou[r, c]))
                 for r, c in zip(rows, cols) if iou[r, c] > 0]
        pairs.sort(key=lambda p: p[1])
    return iou, pairs


def _iou_matrix(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p_idx, pred_labels = _compact_labels(pred)
    g_idx, gt_labels = _compact_labels(gt)
    n_p, n_g = len(pred_labels) + 1, len(gt_labels) + 1  # +1: background index 0
    joint = np.bincount(p_idx * n_g + g_idx, minlength=n_p * n_g).reshape(n_p, n_g)
    area_p = joint.sum(axis=1)[1:]                       # every pixel of a pred instance
    area_g = joint.sum(axis=0)[1:]
    inter = joint[1:, 1:].astype(np.float64)             # n_pred n_gt
    union = area_p[:, None] + area_g[None, :] - inter     # > 0: every instance has >= 1 pixel
    return inter / union, pred_labels, gt_labels


def _matches_at(iou: np.ndarray, t: float) -> int:
    """Most one-to-one pairs with IoU >= t (ties broken by larger IoU), as StarDist's `matching`.

    Matching at each threshold, rather than thresholding one IoU-maximising matching, matters:
    a max-total-IoU assignment can trade one pair of IoU 0.51 for two pairs of 0.3 each.
    """
    hit = iou >= t - _IOU_TOL
    rows = np.flatnonzero(hit.any(axis=1))
    cols = np.flatnonzero(hit.any(axis=0))
    if len(rows) == 0:
        return 0
    sub_hit, sub_iou = hit[np.ix_(rows, cols)], iou[np.ix_(rows, cols)]
    # a hit is worth more than any sum of IoUs, so the count is maximised first
    r, c = linear_sum_assignment(sub_hit * (sub_iou.size + 1.0) + sub_iou, maximize=True)
    return int(sub_hit[r, c].sum())


def instance_scores(pred: np.ndarray, gt: np.ndarray,
                    thresholds: Sequence[float] = AP_THRESHOLDS) -> dict:
    """Instance metrics of a predicted label map against a GT label map (0 = background).

    Our predictions are label maps without confidence scores, so "AP" here is the score-less
    AP of the cell-segmentation community (DSB 2018 / StarDist): at threshold t, TP = one-to-one
    matched pairs with IoU >= t (matching maximises the number of such pairs, re-solved with
    the Hungarian algorithm at each t), FP = unmatched predictions, FN = unmatched GT, and
    AP_t = TP / (TP + FP + FN). It is NOT the area under a precision-recall curve.
      * "ap50": AP_0.5;  "ap": mean of AP_t over `thresholds` (COCO's 0.50:0.05:0.95).
      * "ap_per_threshold": {t: AP_t}.
      * "miou_matched": mean IoU of the Hungarian (max total IoU) pairs with IoU > 0; it ignores
        missed and extra instances (the counts show those); 0.0 when there is no such pair.
      * "miou_gt": the same sum divided by the number of GT instances (misses count as 0).
      * "count_pred", "count_gt": numbers of non-zero labels.
      * "f1": F1 at IoU 0.5, 2 TP / (2 TP + FP + FN), with TP counted as for AP_0.5.
    With no instance in either map every AP_t, F1 and both mIoUs are 1.0.
    """
    iou, pairs = match_instances(pred, gt)
    n_pred, n_gt = iou.shape
    per_t: dict[float, float] = {}
    tp50 = _matches_at(iou, 0.5) if iou.size else 0
    for t in thresholds:
        tp = _matches_at(iou, float(t)) if iou.size else 0
        denom = n_pred + n_gt - tp  # TP + FP + FN
        per_t[float(t)] = 1.0 if denom == 0 else tp / denom
    matched = [p[2] for p in pairs]
    empty = n_pred == 0 and n_gt == 0
    return {
        "ap50": per_t.get(0.5, float(np.nan)),
        "ap": float(np.mean(list(per_t.values()))),
        "ap_per_threshold": per_t,
        "miou_matched": 1.0 if empty else (float(np.mean(matched)) if matched else 0.0),
        "miou_gt": 1.0 if empty else (float(np.sum(matched)) / n_gt if n_gt else 0.0),
        "count_pred": int(n_pred),
        "count_gt": int(n_gt),
        "f1": 1.0 if n_pred + n_gt == 0 else 2 * tp50 / (n_pred + n_gt),
    }
