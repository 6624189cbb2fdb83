"""The comparison table of notebook 05: rows, columns, CSV and markdown, GrabCut masks, reuse of runs."""
import json

import numpy as np
import pytest

from indprior import compare
from indprior.core import config as C
from indprior.data import CubDataset, make_synthetic_cub
from indprior.redo import ReDOConfig, run_redo
from indprior.task1 import Task1Config, run_task1

METHODS = ["independence prior (EMA U-Net)", "independence prior + GrabCut refinement",
           "independence prior + self-training (GrabCut pseudo-labels)", "independence prior + self-training + GrabCut refinement",
           "the colour cue alone (no learning)", "GrabCut (box init)", "whole box", "ReDO", "ReDO (GT-free side)"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Every method of the table, smoke-sized, on 12 synthetic images (4 test): a few seconds."""
    tmp = tmp_path_factory.mktemp("compare")
    root = make_synthetic_cub(tmp / "cub", n_images=12, n_test=4, image_size=64)
    ds, cache = f"cub:{root}", tmp / "cache"
    t1 = run_task1(C.make_config(Task1Config, "smoke", dataset=ds, device="cpu"), tmp / "t1", progress=False, cache_dir=cache)
    gc = compare.grabcut_run(ds, tmp / "gc", cache, progress=False)
    rd = run_redo(C.make_config(ReDOConfig, "smoke", dataset=ds, device="cpu"), tmp / "redo", progress=False, cache_dir=cache)
    rates = compare.prior_inference_rates(tmp / "t1", cache, "cpu")
    redo_rate = compare.redo_inference_rate(tmp / "redo", cache, "cpu")
    rows = compare.comparison_table(compare.method_rows(t1, gc, rd, prior_rates=rates, redo_rate=redo_rate))
    return {"root": root, "tmp": tmp, "rows": rows, "t1": t1, "gc": gc}


def test_one_row_per_method_with_the_documented_columns(smoke_runs):
    rows = smoke_runs["rows"]
    assert [r["method"] for r in rows] == METHODS
    assert all(tuple(r) == compare.COLUMNS for r in rows)
    by = {r["method"]: r for r in rows}
    assert by["ReDO"]["eval"] == compare.BEST_SIDE and "uses GT" in by["ReDO"]["eval"]
    assert all(by[m]["eval"] == compare.BOX for m in METHODS[:7])
    cue = by["the colour cue alone (no learning)"]
    assert abs(cue["iou_mean"] - smoke_runs["t1"]["colour_cue_box"]["iou_mean"]) < 1e-3 and cue["train_seconds"] is None
    for m in METHODS[:4] + ["GrabCut (box init)", "ReDO"]:
        r = by[m]
        assert 0 <= r["acc"] <= 1 and 0 <= r["iou_mean"] <= 1 and 0 <= r["iou_pooled"] <= 1 and r["split"] == "test"
        assert r["infer_images_per_s"] > 0
    assert by["independence prior (EMA U-Net)"]["profile"] == "smoke" and by["ReDO"]["train_seconds"] >= 0
    assert by["GrabCut (box init)"]["train_seconds"] is None, "GrabCut has no training"
    assert by[METHODS[2]]["train_seconds"] == round(smoke_runs["t1"]["train_seconds"] + smoke_runs["t1"]["self_train_seconds"], 1)
    assert by["independence prior + GrabCut refinement"]["infer_images_per_s"] < by["independence prior (EMA U-Net)"]["infer_images_per_s"]


def test_csv_round_trip(smoke_runs, tmp_path):
    rows = smoke_runs["rows"]
    path = compare.write_csv_atomic(rows, tmp_path / "comparison.csv")
    assert compare.read_csv(path) == rows
    assert path.read_text().splitlines()[0] == ",".join(compare.COLUMNS)


def test_markdown_has_a_header_and_one_line_per_row(smoke_runs):
    rows = smoke_runs["rows"]
    lines = compare.to_markdown(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[0] == "| " + " | ".join(compare.COLUMNS) + " |" and set(lines[1]) <= set("|-")
    assert all(line.startswith(f"| {r['method']} |") and line.count("|") == len(compare.COLUMNS) + 1
               for line, r in zip(lines[2:], rows))
    assert "–" in lines[2 + METHODS.index("GrabCut (box init)")], "a missing value shows as a dash"


def test_grabcut_masks_lie_inside_the_boxes(smoke_runs):
    ds = CubDataset(smoke_runs["root"], "test")
    masks = compare.read_masks(smoke_runs["tmp"] / "gc" / "masks", ds.names)
    assert len(masks) == len(ds) == smoke_runs["gc"]["n_images"]
    for s, m in zip(ds, masks):
        x, y, w, h = (int(round(v)) for v in s.box)
        inside = np.zeros(m.shape, bool)
        inside[y:y + h, x:x + w] = True
        assert m.shape == s.image.shape[:2] and not (m & ~inside).any()
    assert any(m.any() for m in masks), "GrabCut found some foreground"


def test_grabcut_run_reuses_a_finished_run(smoke_runs):
    again = compare.grabcut_run(f"cub:{smoke_runs['root']}", smoke_runs["tmp"] / "gc", smoke_runs["tmp"] / "cache", progress=False)
    assert again == json.loads(json.dumps(smoke_runs["gc"]))


def test_reusable_run_checks_profile_dataset_and_files(smoke_runs):
    t1 = smoke_runs["tmp"] / "t1"
    assert compare.reusable_run(t1, "smoke", f"cub:{smoke_runs['root']}") == smoke_runs["t1"]
    assert compare.reusable_run(t1, "cpu") is None
    assert compare.reusable_run(t1, "smoke", "synthetic") is None
    assert compare.reusable_run(t1, "smoke", need=("no_such_file",)) is None
    assert compare.reusable_run(smoke_runs["tmp"] / "missing", "smoke") is None


def test_table_rejects_duplicate_methods_and_unknown_columns():
    with pytest.raises(ValueError, match="distinct"):
        compare.comparison_table([{"method": "a"}, {"method": "a"}])
    with pytest.raises(ValueError, match="unknown columns"):
        compare.comparison_table([{"method": "a", "iou": 0.5}])
    assert compare.comparison_table([{"method": "a", "iou_mean": 0.123456}])[0]["iou_mean"] == 0.1235


def test_hoc_rows_from_metrics_or_watershed_alone():
    m = {"count_pred": 20, "count_gt": 24, "ap50": 0.5, "ap": 0.3, "miou_matched": 0.8, "seconds": 12.0,
         "baseline_watershed": {"count_pred": 30, "count_gt": 24, "ap50": 0.7, "ap": 0.6, "miou_matched": 0.9, "seconds": 0.1}}
    rows = compare.hoc_rows(m)
    assert [r["method"] for r in rows] == ["independence prior (HOC GAN + SISeg)", "Otsu + watershed"]
    img = np.zeros((64, 64, 3), np.uint8)
    gt = np.zeros((64, 64), np.uint16)
    for k, (r, c) in enumerate([(16, 16), (16, 48), (48, 32)], 1):
        yy, xx = np.ogrid[:64, :64]
        img[(yy - r) ** 2 + (xx - c) ** 2 <= 64] = 220
        gt[(yy - r) ** 2 + (xx - c) ** 2 <= 64] = k
    (row,) = compare.hoc_rows(None, img, gt)
    assert row["count_pred"] == row["count_gt"] == 3 and row["ap50"] == 1.0
    assert len(compare.to_markdown(rows).splitlines()) == 4
