"""Figures: overlays change only what they should, every figure has its panels, nothing left in pyplot."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from indprior import viz  # noqa: E402
from indprior.viz.figures import _ema  # noqa: E402


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    """viz must never register figures with pyplot (they would pile up in notebooks)."""
    plt.close("all")
    yield
    assert plt.get_fignums() == []


def img_and_mask(h: int = 24, w: int = 32):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[6:18, 8:20] = True
    return img, mask


def two_touching_instances(h: int = 24, w: int = 32) -> np.ndarray:
    lab = np.zeros((h, w), np.uint16)
    lab[4:16, 4:14] = 1
    lab[4:16, 14:26] = 2  # touches instance 1
    return lab


# ----------------------------------------------------------------------------- overlays
@pytest.mark.parametrize("as_torch", [False, True])
def test_overlay_mask_tints_inside_only(as_torch):
    img, mask = img_and_mask()
    color = np.array([255, 0, 0])
    m = torch.from_numpy(mask.astype(np.float32)) if as_torch else mask
    out = viz.overlay_mask(img, m, color=tuple(color), alpha=0.5, contour=False)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], img[~mask])
    d_before = np.abs(img[mask].astype(int) - color).sum(1)
    d_after = np.abs(out[mask].astype(int) - color).sum(1)
    assert (d_after <= d_before).all() and d_after.mean() < 0.6 * d_before.mean()


def test_overlay_mask_contour_stays_on_mask_and_has_colour():
    img, mask = img_and_mask()
    out = viz.overlay_mask(img, mask, color=(0, 255, 0), contour=True)
    assert np.array_equal(out[~mask], img[~mask])
    assert (out[6, 8:20] == [0, 255, 0]).all()  # top edge of the square is drawn in full colour
    assert not (out[10:14, 12:16] == [0, 255, 0]).all(-1).any()  # interior only tinted


def test_overlay_mask_float_chw_image_and_shape_error():
    img = torch.rand(3, 10, 12) * 2 - 1
    out = viz.overlay_mask(img, torch.zeros(1, 10, 12))
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="mask"):
        viz.overlay_mask(img, np.zeros((9, 12)))


def test_instance_colors_distinct_and_deterministic():
    c = viz.instance_colors(12)
    assert c.shape == (12, 3) and c.dtype == np.uint8
    assert len({tuple(x) for x in c}) == 12
    assert np.abs(c[0].astype(int) - c[1]).sum() > 100  # neighbouring labels are far apart
    assert np.array_equal(c, viz.instance_colors(12))
    assert not np.array_equal(c, viz.instance_colors(12, seed=1))
    assert viz.instance_colors(0).shape == (0, 3)


@pytest.mark.parametrize("contour", [False, True])
def test_overlay_instances_neighbours_differ_background_untouched(contour):
    img = np.full((24, 32, 3), 128, np.uint8)
    lab = two_touching_instances()
    out = viz.overlay_instances(img, torch.from_numpy(lab.astype(np.int64)), contour=contour)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out[lab == 0], img[lab == 0])
    assert not np.array_equal(out[10, 8], out[10, 20])  # interiors of instances 1 and 2
    if contour:
        assert set(map(tuple, out[4:16, 13])) <= {(0, 0, 0), (255, 255, 255)}  # shared edge drawn


def test_visible_to_labels():
    v = torch.zeros(2, 1, 4, 4)
    v[0, 0, :2] = 0.9
    v[1, 0, 1:3] = 0.95  # row 1 overlaps: instance 2 is on top (larger visible value)
    lab = viz.visible_to_labels(v)
    assert lab.tolist() == [[1] * 4, [2] * 4, [2] * 4, [0] * 4]


# ----------------------------------------------------------------------------- figures
@pytest.mark.parametrize("as_torch", [False, True])
def test_mask_grid(as_torch):
    imgs = np.random.default_rng(0).uniform(-1, 1, (5, 3, 16, 16)).astype(np.float32)
    masks = np.zeros((5, 1, 16, 16), np.float32)
    masks[:, :, 4:12, 4:12] = 1
    gts = masks[:, 0].copy()
    gts[0] = 0
    gts[0, 4:12, 4:8] = 1  # IoU 0.5 for the first image
    if as_torch:
        imgs, masks, gts = map(torch.from_numpy, (imgs, masks, gts))
    fig = viz.mask_grid(imgs, masks, gts=gts, titles=[f"im{i}" for i in range(5)], ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert fig.axes[0].get_title() == "im0  IoU 0.50"
    assert fig.axes[1].get_title() == "im1  IoU 1.00"
    fig = viz.mask_grid(list(imgs[:2]), list(masks[:2]), ious=[0.25, 0.75])
    assert [a.get_title() for a in fig.axes] == ["IoU 0.25", "IoU 0.75"]
    with pytest.raises(ValueError, match="masks"):
        viz.mask_grid(imgs, masks[:2])


def test_threshold_strip_and_histogram():
    img, mask = img_and_mask()
    prob = np.where(mask, 0.6, 0.1)
    fig = viz.threshold_strip(torch.from_numpy(img), prob, thresholds=(0.3, 0.5, 0.7), gt=mask)
    assert len(fig.axes) == 5
    assert "IoU 1.00" in fig.axes[3].get_title() and "IoU 0.00" in fig.axes[4].get_title()
    fig = viz.iou_histogram(torch.tensor([0.2, 0.5, 0.9]), reference={"whole box": 0.6, "GrabCut": 0.7})
    assert len(fig.axes) == 1
    assert len(fig.axes[0].lines) == 3  # mean + 2 references
    assert "whole box" in [t.get_text().split()[0] + " " + t.get_text().split()[1]
                           for t in fig.axes[0].get_legend().get_texts()]


@pytest.mark.parametrize("as_torch", [False, True])
def test_generator_figures(as_torch):
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (5, 3, 12, 12)).astype(np.float32)
    m = rng.uniform(0, 1, (5, 1, 12, 12)).astype(np.float32)
    fake = rng.uniform(-1, 1, (3, 3, 20, 20)).astype(np.float32)
    vis = np.zeros((3, 2, 1, 20, 20), np.float32)
    vis[:, 0, :, 2:10, 2:10] = 1
    vis[:, 1, :, 10:18, 10:18] = 1
    if as_torch:
        a, m, fake, vis = map(torch.from_numpy, (a, m, fake, vis))
    assert len(viz.provider_grid(a, m, n=4).axes) == 12
    assert len(viz.provider_grid(a, m, n=8).axes) == 15  # n capped at the batch size
    fig = viz.composite_figure(fake, vis, n=2)
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "2 visible instances"
    assert len(viz.composite_figure(fake, vis, background=fake[0], n=4).axes) == 9


def test_displacement_figure_and_gallery():
    img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    lab = two_touching_instances()
    lab[18:22, 2:5] = 3
    off = np.random.default_rng(1).normal(0, 3, (2, 24, 32)).astype(np.float32)
    rgb = viz.offset_field_rgb(torch.from_numpy(off))
    assert rgb.shape == (24, 32, 3) and rgb.dtype == np.uint8
    fig = viz.displacement_figure(img, lab > 0, torch.from_numpy(off), np.zeros((24, 32)), lab)
    assert len(fig.axes) == 5
    fig = viz.instance_gallery(img, lab, max_instances=2)
    assert [a.get_title() for a in fig.axes] == ["#2  144 px", "#1  120 px"]  # largest first, capped
    assert len(viz.instance_gallery(img, np.zeros((24, 32), np.int32)).axes) == 1


# ----------------------------------------------------------------------------- training curves
def log_rows(n: int = 30) -> list[dict]:
    rows = []
    for s in range(0, n * 10, 10):
        rows.append({"step": s, "time": 0.1 * s, "loss/D": 1.0 / (1 + s), "loss/G_adv": 0.5, "loss/area": 0.2,
                     "mask/area_of_box": 0.4, "D/real": 0.8, "D/fake": -0.8})
        if s % 100 == 0:
            rows.append({"step": s, "val/iou": 0.3 + s / 1000, "val/acc": 0.7})
    return rows


def test_training_curves_from_rows_and_run_dir(tmp_path):
    fig = viz.training_curves(log_rows())
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["losses", "mask", "discriminator", "validation"]
    assert len(fig.axes[0].get_legend().get_texts()) == 3  # D, G_adv, area
    val_x = fig.axes[3].lines[0].get_xdata()
    assert list(val_x) == [0, 100, 200]
    rows = [r for r in log_rows() if "val/iou" not in r]
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    fig = viz.training_curves(tmp_path)
    assert [a.get_title() for a in fig.axes] == ["losses", "mask", "discriminator"]
    with pytest.raises(ValueError, match="rows"):
        viz.training_curves([{"step": 0, "time": 1.0}])


def test_ema_is_debiased():
    y = np.full(5, 3.0)
    assert np.allclose(_ema(y, 0.9), 3.0)


# ----------------------------------------------------------------------------- saving
def test_save_figure_atomic_png(tmp_path):
    img, mask = img_and_mask()
    fig = viz.mask_grid([img], [mask])
    path = viz.save_figure(fig, tmp_path / "sub" / "dir" / "grid.png", dpi=50)
    assert path.is_file()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 10
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temp file left behind
