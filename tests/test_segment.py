"""`segment`: a finished run applied to new photos. Task 1: boxes in (CSV / COCO), masks out (PNGs + COCO RLE)
that equal the run's own test masks for the same boxes. HOC: a run applied to a second photo."""
import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from indprior import make_config
from indprior.__main__ import main
from indprior.core.config import ConfigError
from indprior.data import CubDataset, load_label_map, make_synthetic_cub, make_synthetic_hoc, mask_file
from indprior.data.coco import decode_rle
from indprior.data.images import DataError, save_png_atomic
from indprior.hoc import HOCConfig, run_hoc, segment_with_run
from indprior.task1 import Task1Config, run_task1, segment_boxes


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    root = make_synthetic_cub(tmp_path_factory.mktemp("cub") / "CUB", n_images=14, n_test=5, image_size=80, seed=3)
    out = tmp_path_factory.mktemp("run")
    run_task1(make_config(Task1Config, "smoke", dataset=f"cub:{root}", steps=6), out, progress=False)
    return root, out


def _csv(root, path, rows):
    path.write_text("file,x,y,w,h\n" + "".join(f"{f},{x},{y},{w},{h}\n" for f, (x, y, w, h) in rows))
    return path


def test_masks_equal_the_runs_own_test_masks(run, tmp_path):
    root, out = run
    test = CubDataset(root, "test")
    boxes = _csv(root, tmp_path / "boxes.csv", [(n, b) for n, b in zip(test.names, test.boxes)])
    for stage, folder in (("gan", "masks"), ("last", "masks_self_trained_refined")):
        res = segment_boxes(out, root / "images", boxes, tmp_path / stage, stage=stage, progress=False)
        assert res["boxes"] == len(test) and res["stage"] == ("gan" if stage == "gan" else "self_trained_grabcut")
        for name in test.names:
            mine = load_label_map(tmp_path / stage / "masks" / mask_file(name)) > 0
            theirs = load_label_map(out / folder / mask_file(name)) > 0
            assert (mine == theirs).mean() > 0.999, (stage, name)


def test_coco_in_several_boxes_per_image_and_rle_out(run, tmp_path):
    root, out = run
    test = CubDataset(root, "test")
    name, (x, y, w, h) = test.names[0], test.boxes[0]
    coco = {"images": [{"id": 7, "file_name": name}],
            "annotations": [{"id": 11, "image_id": 7, "category_id": 3, "bbox": [x, y, w, h]},
                            {"id": 12, "image_id": 7, "category_id": 3, "bbox": [x + 2, y + 2, w / 2, h / 2]}],
            "categories": [{"id": 3, "name": "kite"}]}
    (tmp_path / "in.json").write_text(json.dumps(coco))
    main(["segment", "--run", str(out), "--images", str(root / "images"), "--boxes", str(tmp_path / "in.json"),
          "--out", str(tmp_path / "o"), "--stage", "gan", "--no-progress"])
    stem = (tmp_path / "o" / "masks" / name).with_suffix("")
    pngs = {i: load_label_map(f"{stem}_{i}.png") > 0 for i in (11, 12)}
    result = COCO(str(tmp_path / "o" / "masks.json"))
    assert sorted(result.getAnnIds()) == [11, 12] and result.loadImgs(7)[0]["file_name"] == name
    for ann in result.loadAnns([11, 12]):
        assert ann["category_id"] == 3 and np.array_equal(decode_rle(ann["segmentation"]), pngs[ann["id"]])
    assert pngs[12].sum() < pngs[11].sum(), "the smaller box gives the smaller mask"


def test_bad_boxes_are_named_errors(run, tmp_path):
    root, out = run
    bad = tmp_path / "bad.csv"
    bad.write_text("file,x,y,w,h\nmissing.jpg,1,2,3,4\n")
    with pytest.raises(DataError, match="not found"):
        segment_boxes(out, root / "images", bad, tmp_path / "o", progress=False)
    name = CubDataset(root, "test").names[0]
    bad.write_text(f"file,x,y,w,h\n{name},1,2,0,4\n")
    with pytest.raises(DataError, match=r"line 2: .*w or h <= 0"):
        segment_boxes(out, root / "images", bad, tmp_path / "o", progress=False)
    with pytest.raises(SystemExit):  # a task-1 run needs --images and --boxes
        main(["segment", "--run", str(out), "--out", str(tmp_path / "o")])


def test_hoc_run_on_a_second_photo(tmp_path, one_thread):
    image, gt = make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    other, _ = make_synthetic_hoc(seed=1, size=(96, 96), n_instances=(5, 10))
    run_hoc(make_config(HOCConfig, "smoke", estimate_factor=1.0), image, tmp_path / "run", gt, progress=False)  # the
    save_png_atomic(tmp_path / "other.png", other)  # size this smoke run was written for (test_hoc.smoke_cfg)
    with pytest.raises(ConfigError, match=r"views=3: expected one of 1, 2, 4, 8"):
        segment_with_run(tmp_path / "run", tmp_path / "other.png", tmp_path / "seg", views=3)
    try:
        m = main(["segment", "--run", str(tmp_path / "run"), "--image", str(tmp_path / "other.png"),
                  "--out", str(tmp_path / "seg"), "--views", "2"])
    except SystemExit as failed:  # a smoke run may find too little: then it must say so, and write no map
        metrics = json.loads((tmp_path / "seg" / "metrics.json").read_text())
        assert failed.code == 1 and metrics["status"] == "failed" and metrics["reason"]
        assert not (tmp_path / "seg" / "instances.png").exists()
        return
    labels = load_label_map(tmp_path / "seg" / "instances.png", expected_shape=other.shape[:2])
    assert m["status"] == "ok" and m["image"].endswith("other.png") and m["views"] == 2
    assert m["count_pred"] == len(np.unique(labels[labels > 0])) >= 2
