"""The data layer: generators are deterministic and consistent, loaders read what was written,
and every bad input is a DataError that names the file at fault."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from indprior.data import (
    CubDataset,
    DataError,
    ImageCrops,
    load_image,
    load_label_map,
    make_synthetic_cub,
    make_synthetic_hoc,
    resolve_dataset,
    save_png_atomic,
    to_float,
    to_uint8,
)

SMALL = dict(n_images=12, n_test=4, image_size=96)
INDEX_FILES = ("images.txt", "bounding_boxes.txt", "train_test_split.txt", "classes.txt", "image_class_labels.txt")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return make_synthetic_cub(tmp_path_factory.mktemp("cub") / "syn", seed=3, **SMALL)


@pytest.fixture
def cub(tmp_path, synth_root) -> Path:
    """A private, editable copy of the small synthetic set."""
    return Path(shutil.copytree(synth_root, tmp_path / "cub"))


def _mask_files(root: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted((root / "segmentations").rglob("*.png"))}


# ----------------------------------------------------------------------------- generators


def test_synthetic_cub_is_deterministic_by_seed(tmp_path, synth_root):
    again = make_synthetic_cub(tmp_path / "again", seed=3, **SMALL)
    other = make_synthetic_cub(tmp_path / "other", seed=4, **SMALL)
    for f in INDEX_FILES:
        assert (again / f).read_bytes() == (synth_root / f).read_bytes()
    a, b, c = _mask_files(synth_root), _mask_files(again), _mask_files(other)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert (other / "bounding_boxes.txt").read_bytes() != (synth_root / "bounding_boxes.txt").read_bytes()
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_synthetic_cub_layout_and_split_counts(synth_root):
    assert (synth_root / "classes.txt").read_text() == "1 001.Kite\n"
    assert (synth_root / "images" / "001.Kite" / "kite_0001.jpg").is_file()
    assert (synth_root / "segmentations" / "001.Kite" / "kite_0001.png").is_file()
    split = [line.split() for line in (synth_root / "train_test_split.txt").read_text().splitlines()]
    assert sum(s == "1" for _, s in split) == 8 and sum(s == "0" for _, s in split) == 4
    assert len(CubDataset(synth_root, "train")) == 8 and len(CubDataset(synth_root, "test")) == 4
    assert len(CubDataset(synth_root, "all")) == 12


def test_synthetic_box_is_tight_bbox_of_mask_and_object_fills_part_of_it(synth_root):
    for s in CubDataset(synth_root, "all"):
        assert s.image.shape == (96, 96, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == (96, 96) and set(np.unique(s.mask)) == {False, True}
        ys, xs = np.nonzero(s.mask)
        assert s.box == (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)
        x, y, w, h = s.box
        assert 0.3 <= s.mask.sum() / (w * h) <= 0.8
        assert 0.2 * 96 <= max(w, h) <= 0.65 * 96


def test_synthetic_masks_are_0_255(synth_root):
    for m in _mask_files(synth_root).values():
        assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}


def test_hoc_count_in_range_and_labels_consecutive():
    for seed, rng in ((0, (15, 40)), (1, (5, 8)), (2, (20, 20))):
        img, lab = make_synthetic_hoc(seed, size=(160, 192), n_instances=rng)
        assert img.shape == (160, 192, 3) and img.dtype == np.uint8 and lab.dtype == np.uint16
        ids = np.unique(lab)
        assert list(ids) == list(range(len(ids)))  # 0 plus 1..N, no gaps
        assert rng[0] <= len(ids) - 1 <= rng[1]


def test_hoc_labels_cover_the_instances_exactly():
    img, lab = make_synthetic_hoc(5, size=(192, 192))
    areas = np.bincount(lab.ravel())[1:]
    assert areas.min() > 0.4 * np.median(areas)  # visible parts: occlusion is slight
    for k in range(1, lab.max() + 1):
        assert ndimage.label(lab == k)[1] == 1  # one piece each
    # label 0 is background: its colour statistics differ from the instances'
    fg, bg = img[lab > 0].astype(float), img[lab == 0].astype(float)
    assert np.abs(fg.mean(0) - bg.mean(0)).max() > 10 or abs(fg.std() - bg.std()) > 10


def test_hoc_is_deterministic_and_seed_dependent():
    a, la = make_synthetic_hoc(3, size=(128, 128), n_instances=(8, 12))
    b, lb = make_synthetic_hoc(3, size=(128, 128), n_instances=(8, 12))
    c, lc = make_synthetic_hoc(4, size=(128, 128), n_instances=(8, 12))
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(la, lc)


def test_hoc_instances_touch():
    _, lab = make_synthetic_hoc(0, size=(192, 192))
    touching = [np.any((lab[ndimage.binary_dilation(lab == k, iterations=2)] != k)
                       & (lab[ndimage.binary_dilation(lab == k, iterations=2)] > 0))
                for k in range(1, lab.max() + 1)]
    assert np.mean(touching) >= 0.6


def test_hoc_bad_arguments():
    with pytest.raises(ValueError, match="n_instances"):
        make_synthetic_hoc(0, n_instances=(10, 5))
    with pytest.raises(ValueError, match="radius"):
        make_synthetic_hoc(0, size=(64, 64), n_instances=(30, 30), radius=(20.0, 25.0))


# ------------------------------------------------------------------------------- CubDataset


def test_cub_reads_names_boxes_and_thresholds_soft_masks(cub):
    rel = "001.Kite/kite_0002"
    soft = np.zeros((96, 96), np.uint8)
    soft[10:20, 10:20], soft[10:20, 20:30], soft[30:40, 30:40] = 127, 128, 255
    Image.fromarray(soft).save(cub / "segmentations" / f"{rel}.png")
    ds = CubDataset(cub, "all")
    assert ds.names[1] == f"{rel}.jpg" and ds.ids[:3] == [1, 2, 3]
    s = ds[1]
    assert s.id == 2 and s.name == f"{rel}.jpg" and s.mask.dtype == bool
    assert s.mask.sum() == 200 and not s.mask[15, 15] and s.mask[15, 25] and s.mask[35, 35]
    line = (cub / "bounding_boxes.txt").read_text().splitlines()[1].split()
    assert s.box == tuple(float(v) for v in line[1:])


def test_cub_without_segmentations_gives_no_mask(cub):
    shutil.rmtree(cub / "segmentations")
    assert CubDataset(cub, "all")[0].mask is None
    assert CubDataset(cub, "all", load_masks=False)[0].mask is None


def _rewrite(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_no] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("fname", ["images.txt", "bounding_boxes.txt", "train_test_split.txt"])
def test_cub_missing_index_file(cub, fname):
    (cub / fname).unlink()
    with pytest.raises(DataError, match=fname):
        CubDataset(cub)


@pytest.mark.parametrize("fname, text", [("bounding_boxes.txt", "3 1.0 2.0 oops 4.0"),
                                         ("bounding_boxes.txt", "3 1.0 2.0 4.0"),
                                         ("train_test_split.txt", "3 2"), ("images.txt", "x a.jpg")])
def test_cub_malformed_line_names_file_and_line(cub, fname, text):
    _rewrite(cub / fname, 2, text)
    with pytest.raises(DataError, match=rf"{fname}, line 3: malformed"):
        CubDataset(cub)


def test_cub_id_mismatch_names_the_ids(cub):
    _rewrite(cub / "bounding_boxes.txt", 4, "99 1.0 2.0 3.0 4.0")
    with pytest.raises(DataError, match=r"bounding_boxes.txt.*missing ids \[5\].*extra ids \[99\]"):
        CubDataset(cub)


def test_cub_empty_and_unknown_split(cub):
    (cub / "train_test_split.txt").write_text("".join(f"{i} 1\n" for i in range(1, 13)))
    with pytest.raises(DataError, match="train_test_split.txt.*'test' is empty"):
        CubDataset(cub, "test")
    with pytest.raises(DataError, match="split='val'"):
        CubDataset(cub, "val")


def test_cub_missing_and_corrupt_image_files(cub):
    ds = CubDataset(cub, "all")
    (cub / "images" / ds.names[0]).unlink()
    with pytest.raises(DataError, match="kite_0001.jpg: no such file"):
        ds[0]
    (cub / "images" / ds.names[1]).write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match="kite_0002.jpg: cannot decode"):
        ds[1]
    data = (cub / "images" / ds.names[2]).read_bytes()
    (cub / "images" / ds.names[2]).write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DataError, match="kite_0003.jpg"):
        ds[2]


@pytest.mark.parametrize("box, match", [("1 10.0 10.0 0.0 20.0", "zero area"),
                                        ("1 200.0 10.0 20.0 20.0", "outside"),
                                        ("1 -50.0 10.0 20.0 20.0", "outside")])
def test_cub_bad_boxes(cub, box, match):
    _rewrite(cub / "bounding_boxes.txt", 0, box)
    with pytest.raises(DataError, match=rf"kite_0001.jpg: box .*{match}"):
        CubDataset(cub, "all")[0]


def test_cub_box_partly_outside_is_clipped(cub):
    _rewrite(cub / "bounding_boxes.txt", 0, "1 -5.0 80.0 20.0 30.0")
    assert CubDataset(cub, "all")[0].box == (0.0, 80.0, 15.0, 16.0)


# ------------------------------------------------------------------------------ image files


def test_load_image_converts_modes(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert np.array_equal(load_image(tmp_path / "g.png"), np.repeat(gray[..., None], 3, 2))
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[:2, :, 3], rgba[2:, :, 3] = 200, 255, 0  # top opaque red, bottom transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out[0, 0].tolist() == [200, 0, 0] and out[3, 3].tolist() == [255, 255, 255]  # on white
    g16 = np.array([[0, 257, 65535]], np.uint16)
    Image.fromarray(g16).save(tmp_path / "w.png")
    assert load_image(tmp_path / "w.png")[0, :, 0].tolist() == [0, 1, 255]
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png")[0, 1].tolist() == [200, 100, 50]
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = np.arange(16)[None] * 16, 180  # a smooth gradient survives JPEG
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    assert np.abs(load_image(tmp_path / "c.jpg").astype(int) - rgb).max() < 12


def test_load_image_missing_empty_unreadable(tmp_path):
    with pytest.raises(DataError, match="nope.png: no such file"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty.png: empty file"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="junk.png: cannot decode"):
        load_image(tmp_path / "junk.png")


def test_load_label_map_shape_and_channels(tmp_path):
    lab = np.array([[0, 1, 2], [300, 0, 1]], np.uint16)
    save_png_atomic(tmp_path / "l.png", lab)
    assert np.array_equal(load_label_map(tmp_path / "l.png", (2, 3)), lab)
    with pytest.raises(DataError, match=r"l.png: label map is 2x3 .*expected 4x5"):
        load_label_map(tmp_path / "l.png", (4, 5))
    save_png_atomic(tmp_path / "rgb.png", np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DataError, match="rgb.png: .*single-channel"):
        load_label_map(tmp_path / "rgb.png")


def test_save_png_atomic_round_trip(tmp_path):
    m = np.zeros((5, 7), np.uint8)
    m[1:3, 2:5] = 255
    save_png_atomic(tmp_path / "deep" / "er" / "m.png", m)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "deep" / "er" / "m.png")), m)
    save_png_atomic(tmp_path / "b.png", m > 0)  # bool -> 0/255
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), m)
    lab = np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000
    save_png_atomic(tmp_path / "l.png", lab)
    assert np.array_equal(load_label_map(tmp_path / "l.png"), lab)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "deep", "l.png"]  # no temp files
    with pytest.raises(DataError, match="f.png.*float64"):
        save_png_atomic(tmp_path / "f.png", np.zeros((3, 3)))


# ---------------------------------------------------------------------------- dataset specs


def test_resolve_synthetic_generates_once_into_cache(tmp_path):
    kw = dict(n_images=4, n_test=1, image_size=64)
    root = resolve_dataset("synthetic", tmp_path / "cache", synth_kwargs=kw)
    assert root.parent == (tmp_path / "cache").resolve() and root.name.startswith("synthetic_v1")
    assert len(CubDataset(root, "all")) == 4
    stamp = (root / "images.txt").stat().st_mtime_ns
    assert resolve_dataset("synthetic", tmp_path / "cache", synth_kwargs=kw) == root
    assert (root / "images.txt").stat().st_mtime_ns == stamp  # not regenerated
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [root.name]  # no temp folder left


def test_resolve_cub_and_bad_specs(tmp_path, synth_root):
    assert resolve_dataset(f"cub:{synth_root}") == synth_root
    with pytest.raises(DataError, match="missing.*images.txt"):
        resolve_dataset(f"cub:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="'bogus'.*'synthetic', 'synthetic:<seed>', 'birds', 'birds:<seed>', 'cub:<root>' or 'coco:"):
        resolve_dataset("bogus")


# -------------------------------------------------------------------------- single-image crops


def test_image_crops_shapes_range_and_flips():
    img = np.zeros((40, 50, 3), np.uint8)
    img[:, :25] = 255  # left half white
    crops = ImageCrops(img, crop=40).sample(64, np.random.default_rng(0))
    assert crops.shape == (64, 3, 40, 40) and crops.dtype == np.float32
    assert crops.min() >= -1 and crops.max() <= 1
    left_white = crops[:, 0, 0, 0] > 0  # a horizontal flip puts the white half on the right
    assert 0 < left_white.sum() < 64
    small = ImageCrops(img, crop=8, scale=0.5)
    assert small.image.shape == (20, 25, 3) and small.sample(3, np.random.default_rng(1)).shape == (3, 3, 8, 8)
    with pytest.raises(DataError, match=r"crop=41: image is 40x50"):
        ImageCrops(img, crop=41)


def test_tensor_helpers_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    x = to_float(img.transpose(2, 0, 1))
    assert x.dtype == np.float32 and x.shape == (3, 6, 5) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x), img) and np.array_equal(to_uint8(x.transpose(1, 2, 0)), img)
    assert np.array_equal(to_float(torch.from_numpy(img)).numpy(), to_float(img))  # torch and numpy agree
    assert to_uint8(np.full((1, 2, 2), 3.0))[0, 0].tolist() == [255, 255, 255]  # clipped


def test_resolve_dataset_synthetic_seed_is_another_draw(tmp_path):
    from indprior.data import resolve_dataset
    kw = dict(n_images=6, n_test=2, image_size=64)
    a = resolve_dataset("synthetic:1", tmp_path, kw)
    b = resolve_dataset("synthetic", tmp_path, {**kw, "seed": 1})
    c = resolve_dataset("synthetic", tmp_path, kw)
    assert a == b and a != c
    assert (a / "bounding_boxes.txt").read_text() != (c / "bounding_boxes.txt").read_text()
    with pytest.raises(DataError, match="<synthetic|birds>:<non-negative integer seed>"):
        resolve_dataset("synthetic:x", tmp_path)
    birds = resolve_dataset("birds:1", tmp_path, kw)
    assert birds not in (a, c) and (birds / "classes.txt").read_text().strip() == "1 001.Bird"
    assert resolve_dataset("birds", tmp_path, {**kw, "seed": 1}) == birds
