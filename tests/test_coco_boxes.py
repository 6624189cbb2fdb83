"""CocoBoxes, the COCO training view: split by image, samples, GT masks against drawn polygons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from indprior.data.coco import encode_rle, segmentation_mask
from indprior.data.coco_boxes import CocoBoxes, box_name, is_test_image
from indprior.data.images import DataError
from indprior.data.images import load_image as load_rgb


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


SHAPES = [[4, 4, 26, 6, 20, 22], [30, 8, 44, 8, 44, 26, 30, 26]]  # a triangle and a rectangle


def make_polygon_set(tmp_path: Path, n_images: int = 24) -> tuple[Path, Path]:
    """n images 48x32; each has the two SHAPES drawn in colour, annotated as polygons; some are grayscale/RGBA."""
    d = tmp_path / "imgs"
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "blob"}]}
    for i in range(n_images):
        name = f"set{i % 3}/img{i:02d}.png"
        img = Image.new("RGB", (48, 32), (255, 255, 255))
        for poly in SHAPES:
            ImageDraw.Draw(img).polygon(poly, fill=(200, 30, 30))
        mode = ("RGB", "L", "RGBA")[i % 3]
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        img.convert(mode).save(d / name)
        data["images"].append({"id": i + 1, "file_name": name, "width": 48, "height": 32})
        for k, poly in enumerate(SHAPES):
            xs, ys = poly[0::2], poly[1::2]
            data["annotations"].append({"id": 100 * (i + 1) + k, "image_id": i + 1, "category_id": 1,
                                        "bbox": [min(xs) - 5, min(ys), max(xs) - min(xs) + 5, max(ys) - min(ys)],
                                        "segmentation": [poly] if i != 1 else []})
    return d, write_json(tmp_path / "train.json", data)


def drawn_mask(poly: list, shape=(32, 48)) -> np.ndarray:
    im = Image.new("L", shape[::-1], 0)
    ImageDraw.Draw(im).polygon(poly, fill=1)
    return np.asarray(im).astype(bool)


def shifts(m: np.ndarray) -> list[np.ndarray]:
    p = np.pad(m, 1)
    return [p[1 + dy:p.shape[0] - 1 + dy, 1 + dx:p.shape[1] - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def test_cocoboxes_split_by_image_and_deterministic(tmp_path: Path) -> None:
    d, path = make_polygon_set(tmp_path)
    train, test, every = (CocoBoxes(d, path, s, test_fraction=0.3) for s in ("train", "test", "all"))
    assert len(every) == 48 and len(train) + len(test) == 48 and len(test) > 0 and len(train) > 0
    assert not set(train.files) & set(test.files)
    assert all(len([r for r in s.records if r.file == f]) == 2 for s in (train, test) for f in s.files)
    assert train.names == CocoBoxes(d, path, "train", test_fraction=0.3).names
    assert len(set(every.names)) == 48 and every.names[0] == "set0/img00_100.png"
    shuffled = json.loads(path.read_text())
    shuffled["annotations"].reverse()
    other = CocoBoxes(d, write_json(tmp_path / "rev.json", shuffled), "test", test_fraction=0.3)
    assert set(other.names) == set(test.names)  # by file name, not by position
    assert set(CocoBoxes(d, path, "test", test_fraction=0.3, seed=1).files) != set(test.files)
    with pytest.raises(DataError, match="split 'test' is empty"):
        CocoBoxes(d, path, "test", test_fraction=0.0)
    with pytest.raises(DataError, match="unknown split"):
        CocoBoxes(d, path, "val")


def test_cocoboxes_samples_and_gt_masks_match_drawn_polygons(tmp_path: Path) -> None:
    d, path = make_polygon_set(tmp_path, n_images=3)
    ds = CocoBoxes(d, path, "all")
    for i, sample in enumerate(ds):
        name, image, box, mask = sample.name, sample.image, sample.box, sample.mask
        r = ds.records[i]
        assert sample.id == r.ann_id
        assert name == box_name(r) and image.dtype == np.uint8 and image.shape == (32, 48, 3)
        assert box == (max(r.x, 0.0), r.y, r.x + r.w - max(r.x, 0.0), r.h)  # the triangle's box starts at x=-1
        if r.image_id == 2:
            assert mask is None  # empty segmentation list (this is also the grayscale image)
            continue
        expected = drawn_mask(SHAPES[r.ann_id % 100])
        assert mask.dtype == np.bool_ and mask.shape == (32, 48)
        # Rasterisers differ only on the outline: within one pixel of the drawn polygon both ways.
        assert not (mask & ~np.logical_or.reduce(shifts(expected))).any()
        assert not (np.logical_and.reduce(shifts(expected)) & ~mask).any()
        inside = np.logical_and.reduce(shifts(mask))  # the drawn colour, in the RGB and the RGBA image
        assert inside.sum() > 50 and (image[inside] == (200, 30, 30)).all()
    gray = ds[2].image
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_rle_gt_and_image_conversion(tmp_path: Path) -> None:
    m = np.zeros((6, 8), bool)
    m[1:4, 2:7] = True
    assert np.array_equal(segmentation_mask(encode_rle(m), 6, 8), m)
    with pytest.raises(DataError, match="differs from the 5x8"):
        segmentation_mask(encode_rle(m), 5, 8)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red stays red; transparent becomes white
    Image.fromarray(rgba).save(tmp_path / "t.png")
    out = load_rgb(tmp_path / "t.png")
    assert out.tolist() == [[[255, 0, 0], [255, 255, 255]], [[255, 255, 255], [255, 255, 255]]]
    assert not is_test_image("a.png", 0.0) and is_test_image("a.png", 1.0)
