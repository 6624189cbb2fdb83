"""Behaviour of the box I/O layer: parsing, every bad-input message, mask paths, RLE, COCO output."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from indprior.data.boxes import BoxRecord, read_annotations, read_boxes
from indprior.data.coco import (
    ann_entry,
    coco_results,
    decode_rle,
    encode_rle,
    group_by_image,
    image_entry,
    mask_path,
    mask_paths,
    write_coco,
)
from indprior.data.images import DataError

# ------------------------------------------------------------------------------------ fixtures


def save_image(path: Path, w: int, h: int, mode: str = "RGB", colour=(40, 90, 160)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = colour if mode in ("RGB", "RGBA") else colour[0]
    Image.new(mode, (w, h), fill).save(path)


def coco_dict() -> dict:
    """Two images with known sizes: a.png has two 'bird' boxes (+ one crowd), sub/b.png one box."""
    return {
        "images": [{"id": 10, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 20, "file_name": "sub/b.png", "width": 40, "height": 30}],
        "categories": [{"id": 3, "name": "bird"}],
        "annotations": [
            {"id": 101, "image_id": 10, "category_id": 3, "bbox": [2, 3, 20, 10], "iscrowd": 0,
             "segmentation": [[2, 3, 22, 3, 22, 13, 2, 13]]},
            {"id": 102, "image_id": 10, "category_id": 3, "bbox": [30, 20, 30.5, 20]},
            {"id": 103, "image_id": 10, "category_id": 3, "bbox": [0, 0, 64, 48], "iscrowd": 1,
             "segmentation": {"size": [48, 64], "counts": [0, 3072]}},
            {"id": 201, "image_id": 20, "category_id": 3, "bbox": [5, 5, 10, 10]},
        ],
    }


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    save_image(d / "a.png", 64, 48)
    save_image(d / "sub" / "b.png", 40, 30, mode="L")
    return d


# ----------------------------------------------------------------------------------- COCO read


def test_coco_boxes_keep_ids_and_skip_crowd(tmp_path: Path, images: Path) -> None:
    ann = read_annotations(write_json(tmp_path / "boxes.json", coco_dict()), images_dir=images)
    recs = ann.records
    assert [r.ann_id for r in recs] == [101, 102, 201]  # 103 is iscrowd=1
    assert ann.n_crowd == 1
    assert recs[0] == BoxRecord("a.png", 2.0, 3.0, 20.0, 10.0, 101, 3, 10, [[2, 3, 22, 3, 22, 13, 2, 13]])
    assert recs[1].box == (30.0, 20.0, 30.5, 20.0) and recs[1].segmentation is None
    assert recs[2].file == "sub/b.png" and recs[2].image_id == 20
    assert ann.categories == [{"id": 3, "name": "bird"}]
    assert ann.sizes == {"a.png": (64, 48), "sub/b.png": (40, 30)}
    groups = group_by_image(recs)
    assert list(groups) == ["a.png", "sub/b.png"] and [len(v) for v in groups.values()] == [2, 1]


def two_category_file(tmp_path: Path) -> Path:
    data = coco_dict()
    data["categories"].append({"id": 7, "name": "cat"})
    data["annotations"][1]["category_id"] = 7
    return write_json(tmp_path / "two.json", data)


@pytest.mark.parametrize("category", ["cat", 7, "7"])
def test_coco_category_by_name_or_id(tmp_path: Path, category) -> None:
    recs = read_boxes(two_category_file(tmp_path), category=category)
    assert [r.ann_id for r in recs] == [102]


def test_coco_category_needed_when_several(tmp_path: Path) -> None:
    path = two_category_file(tmp_path)
    with pytest.raises(DataError) as e:
        read_boxes(path)
    msg = str(e.value)
    assert str(path) in msg and "'bird' (id 3): 2 boxes" in msg and "'cat' (id 7): 1 boxes" in msg
    assert [r.ann_id for r in read_boxes(path, category="bird")] == [101, 201]
    with pytest.raises(DataError, match="'dog' is unknown.*'cat' \\(id 7\\)"):
        read_boxes(path, category="dog")
    with pytest.raises(DataError, match="category 5 is unknown"):
        read_boxes(path, category=5)


def _set(data: dict, i: int, **kv) -> dict:
    data["annotations"][i].update(kv)
    return data


BAD_COCO = {
    "unknown image": (lambda d: _set(d, 1, image_id=99), "annotation id 102", "image_id 99"),
    "short bbox": (lambda d: _set(d, 1, bbox=[1, 2, 3]), "annotation id 102", "4 finite numbers"),
    "nan bbox": (lambda d: _set(d, 3, bbox=[1, float("nan"), 3, 4]), "annotation id 201", "4 finite numbers"),
    "string bbox": (lambda d: _set(d, 3, bbox=["1", 2, 3, 4]), "annotation id 201", "4 finite numbers"),
    "no bbox": (lambda d: _set(d, 0, bbox=None), "annotation id 101", "bbox None"),
    "zero width": (lambda d: _set(d, 1, bbox=[1, 2, 0, 4]), "annotation id 102", "w or h <= 0"),
    "negative height": (lambda d: _set(d, 1, bbox=[1, 2, 3, -4]), "annotation id 102", "w or h <= 0"),
    "duplicate id": (lambda d: _set(d, 3, id=101), "annotation id 101 (annotations[3])", "duplicate"),
    "unknown category": (lambda d: _set(d, 0, category_id=4), "annotation id 101", "category_id 4"),
    "no id": (lambda d: _set(d, 2, id="x"), "annotations[2]", "integer 'id'"),
    "bad segmentation": (lambda d: _set(d, 0, segmentation=[[1, 2, 3]]), "annotation id 101", "segmentation"),
    "outside declared": (lambda d: _set(d, 3, bbox=[40, 0, 5, 5]), "annotation id 201", "outside the 40x30"),
    "missing key": (lambda d: {k: v for k, v in d.items() if k != "categories"}, "'categories'", "expected COCO"),
    "absolute file": (lambda d: d["images"][0].update(file_name="/etc/a.png") or d, "images[0] (id 10)",
                      "relative path"),
    "duplicate image": (lambda d: d["images"][1].update(file_name="a.png") or d, "images[1] (id 20)",
                        "also used by image id 10"),
}


@pytest.mark.parametrize("case", sorted(BAD_COCO))
def test_bad_coco_names_file_and_annotation(tmp_path: Path, case: str) -> None:
    edit, where, what = BAD_COCO[case]
    path = write_json(tmp_path / "bad.json", edit(coco_dict()))
    with pytest.raises(DataError) as e:
        read_boxes(path)
    msg = str(e.value)
    assert str(path) in msg and where in msg and what in msg, msg


def test_not_json_and_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "boxes.json"
    path.write_text('{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(DataError, match=r"boxes\.json: not valid JSON \(line 2"):
        read_boxes(path)
    other = tmp_path / "boxes.txt"
    other.write_text("a.png 1 2 3 4\n")
    with pytest.raises(DataError) as e:
        read_boxes(other)
    assert str(other) in str(e.value) and ".json" in str(e.value) and ".csv" in str(e.value)
    with pytest.raises(DataError, match="no such file"):
        read_boxes(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------------ CSV read


def test_csv_with_and_without_header(tmp_path: Path, images: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("a.png,1,2,10,10\n\na.png,20,20,5.5,5\nsub/b.png,0,0,40,30\n")
    recs = read_boxes(plain, images_dir=images)
    assert [(r.file, r.ann_id) for r in recs] == [("a.png", 1), ("a.png", 2), ("sub/b.png", 3)]
    assert recs[1].box == (20.0, 20.0, 5.5, 5.0) and recs[0].image_id is None and recs[0].category_id is None
    named = tmp_path / "named.csv"
    named.write_text("\ufeffscore,file,h,w,y,x,note\n0.9,a.png,4,3,2,1,\"x, y\"\n")
    (r,) = read_boxes(named)
    assert (r.file, r.box, r.ann_id) == ("a.png", (1.0, 2.0, 3.0, 4.0), 1)
    assert read_annotations(named).categories == []


BAD_CSV = {
    "too few columns": ("a.png,1,2,3,4\na.png,1,2,3\n", "line 2", "4 columns"),
    "extra column without header": ("a.png,1,2,3,4,0.9\n", "line 1", "header line"),
    "not a number": ("a.png,1,2,3,4\n\nb.png,1,two,3,4\n", "line 3", "not all numbers"),
    "zero height": ("file,x,y,w,h\na.png,1,2,3,0\n", "line 2", "w or h <= 0"),
    "inf": ("a.png,1,2,inf,3\n", "line 1", "4 finite numbers"),
    "dotdot": ("a.png,1,2,3,4\n../x.png,1,2,3,4\n", "line 2", "relative path"),
    "absolute": ("/x.png,1,2,3,4\n", "line 1", "relative path"),
    "bad header": ("file,x,y,width,h\na.png,1,2,3,4\n", "line 1", "missing ['w']"),
    "empty": ("\n\n", "no boxes", "file,x,y,w,h"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_names_file_and_line(tmp_path: Path, case: str) -> None:
    text, where, what = BAD_CSV[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError) as e:
        read_boxes(path)
    msg = str(e.value)
    assert str(path) in msg and where in msg and what in msg, msg


def test_csv_has_no_categories(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("a.png,1,2,3,4\n")
    with pytest.raises(DataError, match="no categories"):
        read_boxes(path, category="bird")


# ------------------------------------------------------------------------------- image checks


def test_missing_images_are_listed(tmp_path: Path, images: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("a.png,1,2,3,4\n" + "".join(f"gone{i}.png,1,2,3,4\n" for i in range(7)))
    with pytest.raises(DataError) as e:
        read_boxes(path, images_dir=images)
    msg = str(e.value)
    assert str(path) in msg and "7 of 8 images not found" in msg and "gone0.png" in msg and "line 2" in msg
    with pytest.raises(DataError, match="images folder does not exist"):
        read_boxes(path, images_dir=tmp_path / "nowhere")


def test_box_outside_image_read_from_header(tmp_path: Path, images: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("a.png,1,2,3,4\nsub/b.png,-20,5,20,5\n")  # ends exactly at x=0: no overlap
    assert len(read_boxes(path)) == 2  # sizes unknown without images_dir
    with pytest.raises(DataError) as e:
        read_boxes(path, images_dir=images)
    msg = str(e.value)
    assert str(path) in msg and "line 2" in msg and "outside the 40x30 (WxH) image sub/b.png" in msg
    path.write_text("sub/b.png,-19,5,20,5\n")  # one column of overlap is enough
    assert len(read_boxes(path, images_dir=images)) == 1


def test_declared_size_must_match_image(tmp_path: Path, images: Path) -> None:
    data = coco_dict()
    data["images"][1].update(width=30, height=40)  # e.g. an EXIF-rotated export
    data["annotations"][3]["bbox"] = [1, 1, 5, 5]
    path = write_json(tmp_path / "rot.json", data)
    with pytest.raises(DataError, match=r"image id 20 \(sub/b.png\) is declared 30x40 .* is 40x30"):
        read_boxes(path, images_dir=images)


# --------------------------------------------------------------------------------- mask paths


def test_mask_path_one_or_several(tmp_path: Path) -> None:
    assert mask_path(tmp_path, "sub/b.jpg", 5, several=False) == tmp_path / "masks" / "sub" / "b.png"
    assert mask_path(tmp_path, "sub/b.v2.jpg", 5, several=True) == tmp_path / "masks" / "sub" / "b.v2_5.png"
    recs = [BoxRecord("a.jpg", 0, 0, 1, 1, 1), BoxRecord("b.jpg", 0, 0, 1, 1, 2), BoxRecord("a.jpg", 0, 0, 1, 1, 3)]
    assert mask_paths(tmp_path, recs) == [tmp_path / "masks" / n for n in ("a_1.png", "b.png", "a_3.png")]
    clash = recs + [BoxRecord("b.png", 0, 0, 1, 1, 4)]
    with pytest.raises(DataError, match="b.jpg .box 2. and b.png .box 4. would share"):
        mask_paths(tmp_path, clash)


# ---------------------------------------------------------------------------------------- RLE


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (48, 64)])
def test_rle_round_trip(shape) -> None:
    rng = np.random.default_rng(sum(shape))
    for m in (rng.random(shape) < 0.3, np.zeros(shape, bool), np.ones(shape, bool),
              np.asfortranarray(rng.random(shape) < 0.5)):
        rle = encode_rle(m)
        assert isinstance(rle["counts"], str) and rle["size"] == list(shape)
        out = decode_rle(rle)
        assert out.dtype == np.bool_ and out.shape == shape and np.array_equal(out, m)
        assert json.loads(json.dumps(rle)) == rle


def test_rle_order_and_input_checks() -> None:
    m = np.zeros((3, 4), bool)
    m[0, 1] = True  # row-major index 1, column-major index 3: a transposition bug would move it
    assert decode_rle({"size": [3, 4], "counts": [3, 1, 8]})[0, 1] and decode_rle(encode_rle(m)).sum() == 1
    assert np.array_equal(decode_rle(encode_rle(m.astype(np.uint8) * 255)), m)
    with pytest.raises(DataError, match="threshold"):
        encode_rle(m.astype(float))
    with pytest.raises(DataError, match="2-D"):
        encode_rle(np.zeros((2, 3, 1), bool))


# ---------------------------------------------------------------------------------- COCO write


def random_masks(recs, sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random(sizes[r.file][::-1]) < 0.4 for r in recs]


def test_written_coco_keeps_input_ids_and_reads_in_pycocotools(tmp_path: Path, images: Path) -> None:
    ann = read_annotations(write_json(tmp_path / "boxes.json", coco_dict()), images_dir=images)
    masks = random_masks(ann.records, ann.sizes)
    groups = group_by_image(ann.records)
    imgs = [image_entry(rs, ann.sizes[f][1], ann.sizes[f][0]) for f, rs in groups.items()]
    anns = [ann_entry(r, m, score=0.5 + i / 10) for i, (r, m) in enumerate(zip(ann.records, masks))]
    out = tmp_path / "out" / "masks.json"
    write_coco(out, imgs, anns, ann.categories)
    assert sorted(os.listdir(out.parent)) == ["masks.json"]  # no temp file left
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [10, 20] and coco.getCatIds() == [3]
    assert coco.loadCats(3)[0]["name"] == "bird"
    assert sorted(coco.getAnnIds(imgIds=[10])) == [101, 102]
    for r, m in zip(ann.records, masks):
        a = coco.loadAnns(r.ann_id)[0]
        assert a["image_id"] == r.image_id and a["category_id"] == 3 and a["iscrowd"] == 0
        assert a["bbox"] == list(r.box) and a["area"] == m.sum()
        assert np.array_equal(coco.annToMask(a).astype(bool), m)
    assert [coco.loadAnns(i)[0]["score"] for i in (101, 102, 201)] == [0.5, 0.6, 0.7]


def test_written_coco_makes_up_ids_for_csv(tmp_path: Path, images: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("sub/b.png,0,0,10,10\na.png,1,2,10,10\na.png,5,5,10,10\n")
    ann = read_annotations(path, images_dir=images)
    masks = random_masks(ann.records, ann.sizes, seed=1)
    masks[0][:] = False  # an empty mask is still a valid annotation
    imgs = [image_entry(rs, ann.sizes[f][1], ann.sizes[f][0]) for f, rs in group_by_image(ann.records).items()]
    anns = [ann_entry(r, m) for r, m in zip(ann.records, masks)]
    for a in anns:
        a["bbox"] = None  # use the masks' tight boxes instead of the input boxes
    data = write_coco(tmp_path / "masks.json", imgs, anns)
    assert [im["id"] for im in data["images"]] == [1, 2] and data["categories"] == [{"id": 1, "name": "foreground"}]
    ids = [(a["id"], a["image_id"], a["category_id"]) for a in data["annotations"]]
    assert ids == [(1, 1, 1), (2, 2, 1), (3, 2, 1)]
    assert "score" not in data["annotations"][0]
    coco = COCO(str(tmp_path / "masks.json"))
    for a_id, m in zip((1, 2, 3), masks):
        a = coco.loadAnns(a_id)[0]
        assert np.array_equal(coco.annToMask(a).astype(bool), m)
        if m.any():
            ys, xs = np.nonzero(m)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_coco_results_rejects_inconsistent_input() -> None:
    imgs = [{"file_name": "a.png", "width": 4, "height": 3}]
    with pytest.raises(DataError, match=r"mask is 4x3 \(HxW\), expected 3x4"):
        coco_results(imgs, [{"file_name": "a.png", "mask": np.zeros((4, 3), bool)}])
    with pytest.raises(DataError, match="not in images"):
        coco_results(imgs, [{"file_name": "b.png", "mask": np.zeros((3, 4), bool)}])
    with pytest.raises(DataError, match="used more than once"):
        coco_results(imgs, [{"file_name": "a.png", "mask": np.zeros((3, 4), bool), "id": 2}] * 2)
    with pytest.raises(DataError, match="score nan"):
        coco_results(imgs, [{"file_name": "a.png", "mask": np.zeros((3, 4), bool), "score": math.nan}])
    given = coco_results(imgs, [{"file_name": "a.png", "mask": np.zeros((3, 4), bool), "id": 7},
                                {"file_name": "a.png", "mask": np.ones((3, 4), bool)}])
    assert [a["id"] for a in given["annotations"]] == [7, 8] and given["annotations"][1]["area"] == 12
