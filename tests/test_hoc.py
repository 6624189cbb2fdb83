"""HOC task: size estimate from the data, one GAN step, composites as labelled data, run_hoc end to end."""
import dataclasses
import json
import math

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import indprior.hoc.run as hoc_run
from indprior.core import config as C
from indprior.data import DataError, load_label_map, make_synthetic_hoc
from indprior.hoc import (
    COINS_GT,
    HOCGAN,
    HOCConfig,
    composite_batches,
    estimate_instance_size,
    fill_instance_holes,
    load_segmenter,
    run_hoc,
    segment_with_run,
    upsample_labels,
)
from indprior.hoc.checks import axis_ratio
from indprior.hoc.figures import summary_markdown
from indprior.hoc.scale import LEFT_OUT, photo_stats
from indprior.hoc.segment import load_hoc_run
from indprior.hoc.siseg import MeanSegmenter
from indprior.models import label_map


@pytest.fixture(scope="module")
def smoke_cfg() -> HOCConfig:
    """The smoke profile at the estimated size itself: the smoke nets are tiny and their runs a matter of chance, and
    these tests check files and stages on runs of this photo at that size (the factor has its own tests)."""
    return C.make_config(HOCConfig, "smoke", device="cpu", estimate_factor=1.0)


# ----------------------------------------------------------------------------- size estimate
@pytest.mark.parametrize("seed,size,radius", [(0, (256, 256), (13, 16)), (1, (256, 256), (13, 16)),
                                              (2, (128, 128), (10, 12)), (3, (160, 224), (7, 9))])
def test_size_estimate_within_25_percent_on_synthetic(seed, size, radius):
    image, _ = make_synthetic_hoc(seed=seed, size=size, n_instances=(4, 40), radius=radius)
    truth = radius[0] + radius[1]  # mean diameter
    assert abs(estimate_instance_size(image) / truth - 1) <= 0.25


def test_size_estimate_on_coins_matches_hand_checked_gt():
    gt = load_label_map(COINS_GT)
    areas = np.bincount(gt.ravel())[1:]
    truth = float(np.median(2 * np.sqrt(areas / np.pi)))  # 43.4 px
    est = estimate_instance_size(np.repeat(skimage.data.coins()[..., None], 3, 2))
    assert len(areas) == 24 and abs(est / truth - 1) <= 0.25


def test_size_estimate_rejects_bad_input():
    with pytest.raises(ValueError, match="image"):
        estimate_instance_size(np.zeros((64, 64), np.uint8))


# ----------------------------------------------------------------------------- the GAN
def test_one_train_step_changes_parameters_and_losses_are_finite(smoke_cfg):
    torch.manual_seed(0)
    gan = HOCGAN(smoke_cfg, "cpu")
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in gan.modules().items() if k != "G_ema"}
    stats = gan.train_step(torch.rand(4, 3, smoke_cfg.crop, smoke_cfg.crop) * 2 - 1, 0)
    assert stats and all(torch.isfinite(v).all() for v in stats.values())
    for key, params in before.items():
        changed = [not torch.equal(a, b) for a, b in zip(params, gan.modules()[key].parameters())]
        assert any(changed), f"{key} did not change"
    ema, g = next(gan.ema.module.parameters()), next(gan.G.parameters())
    assert not torch.equal(ema, g) and not torch.equal(ema, before["G"][0])  # the EMA moved, a little


def test_generate_shapes_and_label_map_is_argmax_of_visible(smoke_cfg):
    torch.manual_seed(1)
    gan = HOCGAN(smoke_cfg, "cpu")
    out = gan.generate(5)
    k, s = smoke_cfg.n_providers, smoke_cfg.crop
    assert out["image"].shape == (5, 3, s, s) and out["visible"].shape == (5, k, 1, s, s)
    assert out["labels"].shape == (5, s, s)
    assert out["image"].min() >= -1.2 and out["image"].max() <= 1.2
    best, idx = out["visible"][:, :, 0].max(1)
    expected = torch.where(best > 0.5, idx + 1, torch.zeros_like(idx))
    assert torch.equal(out["labels"], expected)
    # visible masks of one pixel never sum above 1: they are an exact partition of the composite
    assert out["visible"].sum(1).max() <= 1 + 1e-5


def test_label_map_hand_made():
    vis = torch.zeros(1, 2, 1, 2, 3)
    vis[0, 0, 0, 0, :] = torch.tensor([0.9, 0.4, 0.3])
    vis[0, 1, 0, :, 2] = torch.tensor([0.6, 0.8])
    assert label_map(vis).tolist() == [[[1, 0, 2], [0, 0, 2]]]  # 0.4 < 0.5: background


def test_composite_batches_drop_tiny_instances_and_keep_the_rest(smoke_cfg):
    torch.manual_seed(2)
    gan = HOCGAN(smoke_cfg, "cpu")
    gan.ema.module.provider.mask.bias.data.fill_(4.0)  # opaque providers: an untrained G draws instances
    min_px = smoke_cfg.min_visible * math.pi * (smoke_cfg.crop / smoke_cfg.crop_instances / 2) ** 2
    torch.manual_seed(3)
    raw = gan.generate(6)["labels"]
    torch.manual_seed(3)
    images, labels = composite_batches(gan, 6)()
    s = smoke_cfg.crop
    assert images.shape == (6, 3, s, s) and labels.shape == (6, s, s)
    n_kept = n_dropped = 0
    for r, lab in zip(raw, labels):
        counts = torch.bincount(r.flatten(), minlength=smoke_cfg.n_providers + 1)
        kept = {i for i in range(1, len(counts)) if counts[i] >= min_px}
        assert set(lab.unique().tolist()) - {0} == kept  # the instance count the segmenter sees
        for i in kept:
            assert torch.equal(lab == i, r == i)
        n_kept, n_dropped = n_kept + len(kept), n_dropped + int(((counts[1:] > 0) & (counts[1:] < min_px)).sum())
    assert n_kept > 0 and n_dropped > 0, (n_kept, n_dropped)  # both branches were exercised


# ----------------------------------------------------------------------------- post-processing
def test_fill_instance_holes_fills_only_enclosed_background():
    lab = np.zeros((9, 12), np.uint16)
    lab[1:6, 1:6] = 1
    lab[3, 3] = 0  # a hole in 1
    lab[1:6, 6:11] = 2
    lab[3, 8] = 0  # a hole in 2
    lab[5, 3] = 0  # a notch on 1's border: not enclosed
    out = fill_instance_holes(lab)
    assert out[3, 3] == 1 and out[3, 8] == 2 and out[5, 3] == 0 and (out[lab > 0] == lab[lab > 0]).all()


def test_a_frame_of_strips_along_the_rim_outside_the_foreground_is_dropped_but_one_object_at_the_edge_stays():
    from indprior.hoc.segment import drop_rim_frame
    lab = np.zeros((100, 120), np.uint16)
    fg = np.zeros((100, 120), bool)
    lab[40:50, 30:60] = 1  # an object in the foreground
    fg[40:50, 30:60] = True
    lab[0:3, 10:110], lab[97:100, 10:110] = 2, 3  # strips lining the top and bottom edges, off the foreground
    lab[10:90, 0:3], lab[10:90, 117:120] = 4, 5  # and the left and right ones: the frame
    out, n = drop_rim_frame(lab, fg, band=8)
    assert n == 4 and out.max() == 1 and (out == np.where(lab == 1, 1, 0)).all()
    # an object cut by the left edge that the foreground missed, and one short strip: a small share of the rim
    one = np.where(lab == 1, 1, 0).astype(np.uint16)
    one[60:75, 0:6], one[0:3, 10:40] = 2, 3
    kept, n = drop_rim_frame(one, fg, band=8)
    assert n == 0 and (kept == one).all()
    # the frame inside the foreground (objects lining the edge) stays
    kept, n = drop_rim_frame(lab, fg | (lab > 0), band=8)
    assert n == 0 and (kept == lab).all()
    with pytest.raises(ValueError, match="fg: expected shape"):
        drop_rim_frame(lab, fg[:50], band=8)


def test_only_elongated_objects_are_grouped_anisotropically():
    from indprior.hoc.segment import anisotropy_for
    assert anisotropy_for(26.9, 6.9) == 3.0  # rods: their aspect, at most 3
    assert anisotropy_for(30.0, 12.0) == 2.5
    assert anisotropy_for(21.2, 17.4) == anisotropy_for(19.2, 19.2) == 1.0  # nuclei, fruit: isotropic
    assert anisotropy_for(None, 6.9) == anisotropy_for(26.9, None) == 1.0  # a run without a measured width


def test_upsample_labels_keeps_instances_and_smooths_a_disc():
    yy, xx = np.mgrid[:20, :20]
    small = ((yy - 9.5) ** 2 + (xx - 9.5) ** 2 <= 36).astype(np.uint16)  # a disc of radius 6
    small[0:3, 0:3] = 2
    big = upsample_labels(small, (80, 80))
    assert big.shape == (80, 80) and set(np.unique(big)) == {0, 1, 2}
    r = np.sqrt((big == 1).sum() / np.pi)  # equivalent radius, ~24 = 4 x 6
    assert abs(r - 24) < 1.5


def test_axis_ratio_tells_whole_round_objects_from_objects_cut_into_pieces():
    yy, xx = np.mgrid[:200, :200]
    whole = np.zeros((200, 200), np.int32)
    for i, (cy, cx) in enumerate([(40, 40), (40, 120), (120, 40), (120, 120), (170, 170)], start=1):
        whole[(yy - cy) ** 2 + (xx - cx) ** 2 < 30 ** 2] = i  # discs of diameter 60, some touching
    assert 0.97 < axis_ratio(whole) < 1.05
    thirds = np.where(whole > 0, 3 * whole + (xx % 60 >= 20) + (xx % 60 >= 40), 0)  # each cut by two vertical lines
    assert len(np.unique(thirds)) - 1 == 3 * 5
    assert axis_ratio(thirds) > 1.5 > hoc_run.CUT  # strips of a disc are long and thin; a run of round objects warns
    halves = np.where(whole > 0, 2 * whole + (yy > xx), 0)  # cut along a diagonal into half-discs
    assert axis_ratio(halves) > hoc_run.CUT
    two = np.where(whole <= 2, whole, 0)
    specks = two.copy()
    for i in range(5):
        specks[195:197, 10 * i:10 * i + 2] = 10 + i  # 4 px each: too small to have a shape
    assert axis_ratio(two) is None and axis_ratio(specks) is None  # fewer than three instances to say anything from
    assert axis_ratio(np.where(whole <= 3, whole, 0)) == pytest.approx(axis_ratio(whole), abs=0.02)


# ----------------------------------------------------------------------------- run_hoc
def test_run_hoc_smoke_writes_outputs(tmp_path, smoke_cfg, monkeypatch):
    image, gt = make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    m = run_hoc(smoke_cfg, image, tmp_path, gt, progress=False)
    inst = np.asarray(Image.open(tmp_path / "instances.png"))
    assert inst.dtype == np.uint16 and inst.shape == (96, 96)
    assert np.asarray(Image.open(tmp_path / "overlay.png")).shape == (96, 96, 3)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    keys = {"task", "count_pred", "count_gt", "ap50", "ap", "miou_matched", "seconds", "instance_size", "profile",
            "baseline_watershed"}
    assert keys <= set(saved) and saved["task"] == "hoc" and saved["profile"] == "smoke"
    assert keys - {"task", "instance_size", "profile", "baseline_watershed"} <= set(saved["baseline_watershed"])
    assert saved["count_pred"] == len(np.unique(inst[inst > 0])) and saved["count_gt"] == int(gt.max())
    assert m == saved
    assert 0 <= saved["foreground_left_out"] < LEFT_OUT  # the foreground holds the objects
    fg = photo_stats(image).fg  # the share of it the instances cover, and the warning when that is small
    assert saved["foreground_covered"] == round(float(((inst > 0) & fg).sum() / fg.sum()), 3)
    assert saved["rim_frame_dropped"] == 0  # no frame along the rim of the synthetic photo
    assert saved["instance_axis_ratio"] is not None  # (of the pieces before they are joined: its own test) and the
    own = max(1.0, saved["length"] / saved["width"])  # warning when objects come out cut
    cut = saved["instance_axis_ratio"] >= hoc_run.CUT * own and not saved["elongated"]
    pool = saved["factory_pool"]  # how many cut-outs the segmenter learned from, and whether all were used
    check = saved["size_check"]  # the instances against the photo's lone objects and their own shape (test_hoc_checks)
    assert set(check) == {"lone_objects", "lone_diameter", "area_vs_lone", "fill", "fill_expected", "verdict"}
    assert check["verdict"] in ("ok", "pieces", "merged", "misshapen") and check["lone_objects"] >= 0
    assert ("warnings" in saved) == (saved["foreground_covered"] < hoc_run.COVERED or cut or pool["all_used"]
                                     or check["verdict"] != "ok")
    assert pool["all_used"] == any("cut-outs' masks look like one object" in w for w in saved.get("warnings", []))
    assert 0 <= pool["one_object"] <= pool["cutouts"] and pool["cutouts"] > 0
    assert pool["all_used"] == (pool["one_object"] < 5) and pool["pool"] == (pool["cutouts"] if pool["all_used"]
                                                                             else pool["one_object"])
    assert (tmp_path / "gan" / "checkpoint.pt").is_file() and (tmp_path / "segmenter.pt").is_file()
    again = saved["second_round"]  # round objects: the factory's second round, from the first segmenter's instances
    assert again["candidates"] == pool["cutouts"] and again["cutouts"] >= 2 and "singles" in again
    first, final = (torch.load(tmp_path / f, weights_only=True) for f in ("segmenter_round1.pt", "segmenter.pt"))
    assert final["made_from"] == {**first["made_from"], "second_round": True, "factory_singles": True} or (
        final["made_from"] == {**first["made_from"], "second_round": True} and not again["singles"])
    files = {f: (tmp_path / f).read_bytes() for f in ("gan/checkpoint.pt", "segmenter_round1.pt", "segmenter.pt")}
    # without GT: no GT-dependent keys
    m2 = run_hoc(smoke_cfg, image, tmp_path, progress=False)  # resumes: nothing is retrained
    assert "ap50" not in m2 and "count_gt" not in m2["baseline_watershed"] and m2["second_round"] == again
    assert all((tmp_path / f).read_bytes() == b for f, b in files.items())
    one_round = dataclasses.replace(smoke_cfg, second_round="none")
    run_hoc(one_round, image, tmp_path, progress=False)  # one round: the saved first segmenter is the final one
    assert (tmp_path / "segmenter.pt").read_bytes() != files["segmenter.pt"]
    assert torch.load(tmp_path / "segmenter.pt", weights_only=True)["made_from"] == first["made_from"]
    assert (tmp_path / "segmenter_round1.pt").read_bytes() == files["segmenter_round1.pt"]
    gan, seg = ((tmp_path / f).read_bytes() for f in ("gan/checkpoint.pt", "segmenter.pt"))
    deeper = dataclasses.replace(one_round, seg_levels=smoke_cfg.seg_levels + 1, seg_steps=smoke_cfg.seg_steps + 2)
    run_hoc(deeper, image, tmp_path, progress=False)  # the segmenter alone is trained again, the GAN is kept
    assert (tmp_path / "gan/checkpoint.pt").read_bytes() == gan and (tmp_path / "segmenter.pt").read_bytes() != seg
    assert len(load_segmenter(tmp_path, deeper).down) == deeper.seg_levels
    members = dataclasses.replace(deeper, seg_members=2)
    before = load_segmenter(tmp_path, deeper)
    run_hoc(members, image, tmp_path, progress=False)  # two members now: the first is the one-member run's network
    both = load_segmenter(tmp_path, members)
    assert isinstance(both, MeanSegmenter) and len(both.members) == 2
    first, second = (dict(m.state_dict()) for m in both.members)
    assert all(torch.equal(first[k], v) for k, v in before.state_dict().items())
    assert any(not torch.equal(second[k], v) for k, v in first.items() if v.is_floating_point())
    log = [json.loads(line) for line in (tmp_path / "segmenter_log.jsonl").read_text().splitlines()]
    assert sorted({r["member"] for r in log}) == [0, 1] and len(log) == 2 * members.seg_steps
    seg = (tmp_path / "segmenter.pt").read_bytes()  # round objects: lone ones are pasted with their own mask only
    m3 = run_hoc(dataclasses.replace(members, factory_singles="all"), image, tmp_path, progress=False)  # when asked;
    assert "singles" not in saved["factory_pool"] and m3["factory_pool"]["singles"] == 0  # this photo has none, so
    assert (tmp_path / "segmenter.pt").read_bytes() == seg  # the factory is the same and nothing is trained again
    monkeypatch.setattr(hoc_run, "LEFT_OUT", -1.0)  # as if the foreground had left objects out: the run says so
    with pytest.warns(RuntimeWarning, match="foreground leaves out"):
        m4 = run_hoc(smoke_cfg, image, tmp_path / "warned", progress=False)
    assert m4["status"] == "ok" and "come out cut" in m4["warnings"][0]
    assert "**Warning:** the foreground leaves out" in summary_markdown(m4)  # what notebook 03 shows
    assert json.loads((tmp_path / "warned" / "metrics.json").read_text())["warnings"] == m4["warnings"]
    monkeypatch.setattr(hoc_run, "LEFT_OUT", 1.0)
    monkeypatch.setattr(hoc_run, "COVERED", 1.01)  # as if the instances had missed most objects: the run says so
    with pytest.warns(RuntimeWarning, match="instances cover only"):
        m5 = run_hoc(smoke_cfg, image, tmp_path / "warned", progress=False)
    assert m5["status"] == "ok" and any("pass instance_size" in w for w in m5["warnings"])
    monkeypatch.setattr(hoc_run, "COVERED", -1.0)
    monkeypatch.setattr(hoc_run, "CUT", 0.0)  # as if the instances had come out as pieces of objects: the run says so
    with pytest.warns(RuntimeWarning, match="cut into pieces"):
        m6 = run_hoc(smoke_cfg, image, tmp_path / "warned", progress=False)
    notes = [w for w in m6["warnings"] if "look like one object" not in w]  # the factory's note stands apart
    assert m6["status"] == "ok" and notes == [w for w in notes if "cut into pieces" in w]
    assert "pass instance_size" in notes[0] and len(m6["sizes_tried"]) == 2  # a larger size was tried
    monkeypatch.setattr(hoc_run, "CUT", 1e9)  # as if the instances were half the size of the photo's lone objects
    verdict = {"lone_objects": 7, "lone_diameter": 12.0, "area_vs_lone": 0.5, "fill": 1.2, "fill_expected": 1.0,
               "verdict": "pieces"}
    monkeypatch.setattr(hoc_run, "size_check", lambda labels, stats, elongated: verdict)
    with pytest.warns(RuntimeWarning, match="cut into pieces"):
        m7 = run_hoc(smoke_cfg, image, tmp_path / "warned", progress=False)
    assert m7["status"] == "ok" and m7["size_check"] == verdict and "sizes_tried" not in m7
    assert any("instance_size=12 (the lone objects' median diameter)" in w for w in m7["warnings"])
    assert "**Warning:** the median instance has 0.50 x the area of the photo's 7 lone objects" in summary_markdown(m7)


def test_a_run_cut_into_pieces_is_trained_again_larger_and_the_rounder_run_is_kept(tmp_path, smoke_cfg, monkeypatch):
    image, gt = make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    other, _ = make_synthetic_hoc(seed=1, size=(96, 96), n_instances=(5, 10))
    ratios = iter([2.0, 1.1, 2.0, 1.1, 2.0, 3.0])  # first try, second try; per run below
    monkeypatch.setattr(hoc_run, "axis_ratio", lambda labels: next(ratios))
    m = run_hoc(smoke_cfg, image, tmp_path / "kept", gt, progress=False)  # the larger try is rounder: kept, no warning
    first, second = m["sizes_tried"]
    assert second["instance_size"] == pytest.approx(hoc_run.GROW * first["instance_size"])
    assert (first["instance_axis_ratio"], second["instance_axis_ratio"]) == (2.0, 1.1)
    assert m["instance_size"] == second["instance_size"] and m["instance_axis_ratio"] == 1.1
    assert not any("cut into pieces" in w for w in m.get("warnings", []))  # (the factory's note may stand)
    assert m["count_pred"] == second["count"] and not m["cut"]
    assert f"(a second try: at {first['instance_size']:.1f} px" in summary_markdown(m)  # what notebook 03 shows
    kept = np.asarray(Image.open(tmp_path / "kept" / "instances.png"))
    assert len(np.unique(kept[kept > 0])) == second["count"]
    assert json.loads((tmp_path / "kept" / "run.json").read_text())["larger"] is True
    assert (tmp_path / "kept" / hoc_run.LARGER / "segmenter.pt").is_file()
    cfg, info, _ = load_hoc_run(tmp_path / "kept")  # segment reads the kept run and applies its size
    assert cfg.instance_size == second["instance_size"] and info["size_factor"] == pytest.approx(hoc_run.GROW)
    seg = segment_with_run(tmp_path / "kept", other, tmp_path / "seg")
    assert seg["instance_size"] == pytest.approx(hoc_run.GROW * photo_stats(other).diameter)  # factor 1 (smoke_cfg)
    assert seg["rim_frame_dropped"] == 0 and ("warnings" in seg) == (seg["size_check"]["verdict"] != "ok")
    gan = hoc_run.rebuild_gan(tmp_path / "kept", image)
    assert gan["cfg"].instance_size == second["instance_size"]
    m2 = run_hoc(smoke_cfg, image, tmp_path / "kept", gt, progress=False)  # resumes both tries: same outcome
    assert m2["sizes_tried"] == m["sizes_tried"] and m2["count_pred"] == m["count_pred"]
    with pytest.warns(RuntimeWarning, match="cut into pieces"):  # the larger try is worse: the first is kept, warned
        m3 = run_hoc(smoke_cfg, image, tmp_path / "first", gt, progress=False)
    assert m3["instance_size"] == m3["sizes_tried"][0]["instance_size"] and m3["cut"]
    assert sum("cut into pieces" in w for w in m3["warnings"]) == 1
    assert json.loads((tmp_path / "first" / "run.json").read_text())["larger"] is False
    assert load_hoc_run(tmp_path / "first")[0].instance_size is None
    monkeypatch.setattr(hoc_run, "axis_ratio", lambda labels: 2.0)
    sized = dataclasses.replace(smoke_cfg, instance_size=m["sizes_tried"][0]["instance_size"])
    with pytest.warns(RuntimeWarning, match="cut into pieces"):  # a size the user gave is not second-guessed
        m4 = run_hoc(sized, image, tmp_path / "given", gt, progress=False)
    assert "sizes_tried" not in m4 and not (tmp_path / "given" / hoc_run.LARGER).exists()


def test_the_cut_check_reads_the_pieces_before_they_are_joined(tmp_path, smoke_cfg, monkeypatch):
    """Joining the pieces of round objects (`join_round_pieces`) would hide the pieces a size too small makes: the
    run's instances are the joined ones, its cut check (and so its larger try) reads the pieces."""
    image, gt = make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    yy, xx = np.indices((96, 96))
    whole = np.zeros((96, 96), np.uint16)
    for k, (cy, cx) in enumerate([(20, 20), (20, 60), (60, 20), (60, 60)], start=1):
        whole[np.hypot(yy - cy, xx - cx) <= 10] = k
    halves = np.where((whole > 0) & (xx % 40 >= 20), whole + 4, whole).astype(np.uint16)  # each disc in two
    seen = []

    def segment_photo(*args, with_pieces=False, **kwargs):
        seen.append(with_pieces)
        return whole, halves

    monkeypatch.setattr(hoc_run, "segment_photo", segment_photo)
    m = run_hoc(smoke_cfg, image, tmp_path, gt, progress=False)
    assert seen and all(seen) and m["count_pred"] == 4  # the joined instances are the result ...
    first, second = m["sizes_tried"]  # ... but the halves (2 x as long as wide) said "cut": a larger size was tried
    assert first["instance_axis_ratio"] == round(axis_ratio(halves), 3) >= hoc_run.CUT
    assert second["instance_size"] == pytest.approx(hoc_run.GROW * first["instance_size"])


def test_run_hoc_wrong_size_gt_is_a_data_error_naming_file_and_sizes(tmp_path, smoke_cfg):
    image, _ = make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    path = tmp_path / "gt.png"
    Image.fromarray(np.zeros((80, 90), np.uint16)).save(path)
    with pytest.raises(DataError, match=r"gt\.png.*80x90.*96x96"):
        run_hoc(smoke_cfg, image, tmp_path / "out", path, progress=False)
    with pytest.raises(DataError, match=r"gt_instances.*96x96"):
        run_hoc(smoke_cfg, image, tmp_path / "out", np.zeros((80, 90), np.uint16), progress=False)
    assert not (tmp_path / "out" / "gan").exists()  # failed before any training


def test_a_second_round_without_centres_is_skipped_and_keeps_the_first_segmenter(tmp_path, smoke_cfg, monkeypatch):
    import indprior.hoc.run as hoc_run
    image, gt = make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    monkeypatch.setattr(hoc_run, "instance_centres", lambda labels, fg, old: np.zeros((0, 2), np.int64))
    m = run_hoc(smoke_cfg, image, tmp_path, gt, progress=False)
    assert "skipped" in m["second_round"] and "0 centre(s)" in m["second_round"]["skipped"]
    assert (tmp_path / "segmenter.pt").read_bytes() == (tmp_path / "segmenter_round1.pt").read_bytes()
    assert (tmp_path / "segmenter_log.jsonl").read_bytes() == (tmp_path / "segmenter_round1_log.jsonl").read_bytes()
    assert "second_round" not in torch.load(tmp_path / "segmenter.pt", weights_only=True)["made_from"]
