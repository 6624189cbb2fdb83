"""The mask explorer: static fallback on real smoke runs, widgets without a frontend, clear errors."""
import json
import warnings

import ipywidgets
import numpy as np
import pytest
from matplotlib.figure import Figure

from indprior import data, explore, hoc, task1
from indprior import data as synth
from indprior.core import config as C
from indprior.data import load_label_map, save_png_atomic
from indprior.task1 import Task1Config


@pytest.fixture(scope="module")
def task1_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explore_task1")
    root = synth.make_synthetic_cub(tmp / "cub", n_images=12, n_test=4, image_size=64)
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{root}", device="cpu")
    task1.run_task1(cfg, tmp / "run", progress=False, cache_dir=tmp / "cache")
    return tmp / "run"


@pytest.fixture(scope="module")
def hoc_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore_hoc")
    image, gt = synth.make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    save_png_atomic(out / "image.png", image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        hoc.run_hoc(C.make_config(hoc.HOCConfig, "smoke", device="cpu", estimate_factor=1.0),  # the size these
                    out / "image.png", out, gt, progress=False)  # smoke runs were written for (test_hoc.smoke_cfg)
    return out


def test_headless_reads_the_env_var(monkeypatch):
    for value, expected in (("1", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv(explore.HEADLESS_ENV, value)
        assert explore.headless() is expected
    monkeypatch.delenv(explore.HEADLESS_ENV)
    assert explore.headless() is False


def test_static_fallback_on_a_task1_run(task1_run, monkeypatch):
    monkeypatch.setenv(explore.HEADLESS_ENV, "1")
    figs = explore.show(task1_run)  # headless: the static figures are displayed and returned
    assert figs and all(isinstance(f, Figure) for f in figs)
    assert len(figs[0].axes) == 3 * 3  # worst / median / best (4 test images) x 3 thresholds
    assert all("IoU" in ax.get_title() for ax in figs[0].axes)


def test_soft_masks_reproduce_the_written_masks_and_are_cached(task1_run):
    run = explore.load_task1(task1_run)
    assert explore.load_task1(task1_run) is run  # computed once
    assert len(run.probs) == len(run.test) == 4 and np.isfinite(run.ious).all()
    for i, name in enumerate(run.test.names):
        written = np.asarray(load_label_map(task1_run / "masks" / data.mask_file(name))) > 0
        assert np.array_equal(run.soft(i) >= 0.5, written)


def test_widget_threshold_changes_the_displayed_mask(task1_run):
    w = explore.explorer(task1_run)  # no frontend: the widgets are built and their callbacks run
    assert isinstance(w, ipywidgets.Widget)
    thr = w.controls["threshold"]
    thr.value = 0.05
    low, png_low = w.state["area"], w.children[-1].children[0].value
    thr.value = 0.95
    high = w.state["area"]
    assert low > high and w.state["mask"].sum() == high and w.state["threshold"] == 0.95
    assert w.children[-1].children[0].value != png_low  # the image shown was redrawn
    assert f"threshold {0.95:.2f}" in w.children[2].value and "IoU" in w.children[2].value


def test_widget_image_rank_and_difference_toggle(task1_run):
    w = explore.explorer(task1_run)
    run = explore.load_task1(task1_run)
    w.controls["rank"].value = 3  # the best image
    assert w.state["index"] == int(np.argmax(run.ious)) == w.controls["image"].value
    before = w.children[-1].children[0].value
    w.controls["difference"].value = True
    assert w.children[-1].children[0].value != before and "FP" in w.children[2].value


def test_hoc_static_and_instance_picker(hoc_run):
    figs = explore.static_views(hoc_run)  # the photo is found as image.png beside the outputs
    assert len(figs) == 1 and "photo unknown" not in figs[0].axes[0].get_title()
    w = explore.explorer(hoc_run)
    labels = explore.load_hoc(hoc_run).labels
    ids = [v for _, v in w.controls["instance"].options if v]
    assert ids, "the smoke run found no instance"
    w.controls["instance"].value = ids[-1]
    assert w.state["area"] == int((labels == ids[-1]).sum()) and w.children[-1].children[1].value


def test_hoc_without_photo_still_shows_instances(hoc_run, tmp_path):
    (tmp_path / "instances.png").write_bytes((hoc_run / "instances.png").read_bytes())
    metrics = json.loads((hoc_run / "metrics.json").read_text())
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics, "image": str(tmp_path / "moved_away.png")}))
    figs = explore.static_views(tmp_path)
    assert "photo unknown" in figs[0].axes[0].get_title()
    with pytest.raises(ValueError, match="does not match"):
        explore.load_hoc(tmp_path, image=np.zeros((10, 10, 3), np.uint8))


def test_run_dir_without_the_expected_files_names_them(tmp_path, task1_run):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        explore.explorer(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"checkpoint\.pt.*instances\.png"):
        explore.static_views(tmp_path)
    (tmp_path / "metrics.json").write_text((task1_run / "metrics.json").read_text())  # a task-1 run, no checkpoint
    with pytest.raises(FileNotFoundError, match=r"checkpoint\.pt: missing"):
        explore.explorer(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"task": "redo"}))
    with pytest.raises(ValueError, match="task='redo'"):
        explore.static_views(tmp_path)
