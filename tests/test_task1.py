"""Task 1 end to end: windows, one step, checkpoints, outputs, and a learning test."""
import json

import numpy as np
import pytest
import torch
from variants import step_and_check_variant

from indprior.core import config as C
from indprior.core.runtime import cpu_has_bf16
from indprior.core.trainer import Trainer, load_checkpoint
from indprior.data import CubDataset, make_synthetic_cub, resolve_dataset
from indprior.data.windows import paste_mask, prepare_windows, window_rect
from indprior.task1 import IndependencePriorTask1, Task1Batches, Task1Config, background_bank, run_task1


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return make_synthetic_cub(tmp_path_factory.mktemp("cub") / "CUB", n_images=16, n_test=6, image_size=96, seed=1)


def _method_and_batches(root, seed=0):
    torch.manual_seed(seed)
    cfg = C.make_config(Task1Config, "smoke", seed=seed)
    train = prepare_windows(CubDataset(root, "train"), cfg.image_size, cfg.window_scale, progress=False)
    bank = background_bank(CubDataset(root, "train"), cfg.image_size, 2, np.random.default_rng(0), progress=False)
    method = IndependencePriorTask1(cfg, torch.device("cpu"))
    return cfg, method, Task1Batches(train, bank, cfg.batch_size, torch.device("cpu"))


def test_window_rect_contains_box_and_stays_inside():
    x0, y0, w, h = window_rect((5, 10, 40, 20), 100, 80, 1.3)
    assert (w, h) == (52, 26) and 0 <= x0 <= 5 and x0 + w >= 45 and 0 <= y0 <= 10 and y0 + h >= 30
    x0, y0, w, h = window_rect((0, 0, 80, 100), 100, 80, 1.3)  # box = whole image: window clipped to it
    assert (x0, y0, w, h) == (0, 0, 80, 100)


def test_windows_and_paste_back_round_trip(tiny_root):
    ds = CubDataset(tiny_root, "test")
    ws = prepare_windows(ds, 32, 1.3, progress=False)
    assert ws.windows.shape == (len(ds), 3, 32, 32) and ws.windows.dtype == torch.uint8
    for i in range(len(ds)):
        full = paste_mask(np.ones((32, 32)), ws.rects[i], ws.image_boxes[i], ws.image_sizes[i]) > 0.5
        x, y, w, h = ds[i].box
        assert full.sum() == pytest.approx(w * h, rel=0.08), "a full window mask pastes back as the box"
        assert not full[: int(y)].any() and not full[:, int(np.ceil(x + w)) + 1:].any()


def test_one_step_changes_parameters_with_finite_losses(tiny_root):
    _, method, batches = _method_and_batches(tiny_root)
    before = [p.detach().clone() for p in method.provider.parameters()]
    d_before = [p.detach().clone() for p in method.D.parameters()]
    stats = method.train_step(batches(0), 0)
    assert all(torch.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, method.provider.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, method.D.parameters()))


def test_checkpoint_round_trip_restores_identical_outputs(tiny_root, tmp_path):
    cfg, method, batches = _method_and_batches(tiny_root)
    Trainer(method, tmp_path, C.to_dict(cfg), log_every=2, ckpt_every=3, progress=False).fit(batches, 3)
    _, fresh, _ = _method_and_batches(tiny_root, seed=5)
    state = load_checkpoint(tmp_path / "checkpoint.pt", fresh)
    assert state["step"] == 3 and state["config"]["profile"] == "smoke"
    x = batches(0)
    with torch.no_grad():
        for key in ("provider", "provider_ema"):
            a = method.modules()[key](x["window"], x["box"])[1]
            b = fresh.modules()[key](x["window"], x["box"])[1]
            assert torch.equal(a, b)


def test_resume_continues_from_the_checkpoint(tiny_root, tmp_path):
    cfg, method, batches = _method_and_batches(tiny_root)
    Trainer(method, tmp_path, C.to_dict(cfg), log_every=2, ckpt_every=2, progress=False).fit(batches, 4)
    _, again, batches2 = _method_and_batches(tiny_root, seed=1)
    t = Trainer(again, tmp_path, C.to_dict(cfg), log_every=2, ckpt_every=2, progress=False)
    t.fit(batches2, 6)
    steps = [r["step"] for r in t.history]
    assert steps == [2, 4, 6], "the log keeps steps before the checkpoint and continues after it"


def test_run_task1_smoke_writes_masks_and_metrics(tiny_root, tmp_path):
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{tiny_root}", steps=4)
    metrics = run_task1(cfg, tmp_path / "out", progress=False)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved == metrics
    for key in ("task", "split", "n_images", "acc", "iou_mean", "iou_pooled", "profile", "seconds"):
        assert key in saved
    assert saved["task"] == "foreground" and saved["split"] == "test" and saved["n_images"] == 6
    cue_alone = saved["colour_cue_box"]  # the baseline beside every run: the colour cue without learning
    assert 0 <= cue_alone["iou_mean"] <= 1 and cue_alone["n_with_gt"] == 6
    assert sorted(p.name for p in (tmp_path / "out" / "samples").iterdir()) == ["composites_000004.png"]
    ds = CubDataset(tiny_root, "test")
    from PIL import Image
    for i in range(len(ds)):
        png = tmp_path / "out" / "masks" / ds.names[i].replace(".jpg", ".png")
        arr = np.asarray(Image.open(png))
        assert arr.shape == ds[i].image.shape[:2] and set(np.unique(arr)) <= {0, 255}


@pytest.mark.slow
def test_learning_beats_the_whole_box_mask(tmp_path):
    """A few hundred steps with the cpu profile's networks lift test IoU well above the whole-box mask."""
    root = resolve_dataset("synthetic", tmp_path)  # the default set: 180 train / 60 test images, 160 px
    cfg = C.make_config(Task1Config, "cpu", dataset=f"cub:{root}", steps=400, eval_every=0, ckpt_every=0,
                        refine="none", self_train_steps=0)
    metrics = run_task1(cfg, tmp_path / "run", progress=False)
    print(metrics)
    assert metrics["iou_mean"] > metrics["whole_box_iou_mean"] + 0.1, metrics
    assert metrics["iou_mean"] > 0.54, metrics


def test_resume_with_another_config_is_a_clear_error(tiny_root, tmp_path):
    cfg, method, batches = _method_and_batches(tiny_root)
    Trainer(method, tmp_path, C.to_dict(cfg), ckpt_every=2, progress=False).fit(batches, 2)
    other = C.to_dict(cfg) | {"lambda_area": 0.25, "steps": 10}  # steps may change, lambda_area may not
    with pytest.raises(ValueError, match=f"lambda_area: {cfg.lambda_area} -> 0.25"):
        Trainer(method, tmp_path, other, progress=False).fit(batches, 4)


def test_load_run_and_sample_composites(tiny_root, tmp_path):
    from indprior.task1 import load_run, sample_composites
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{tiny_root}", steps=2)
    run_task1(cfg, tmp_path, progress=False)
    cfg2, method = load_run(tmp_path)
    assert cfg2 == cfg
    train = prepare_windows(CubDataset(tiny_root, "train"), cfg.image_size, cfg.window_scale, progress=False)
    bank = background_bank(CubDataset(tiny_root, "train"), cfg.image_size, 2, np.random.default_rng(0), progress=False)
    out = sample_composites(method, train, bank, n=3)
    assert out["fake"].shape == (3, 3, cfg.image_size, cfg.image_size) and out["visible"].shape[1] == 1


@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_profile_models_build_and_step_on_cpu(profile):
    """The real profiles' networks fit together at their resolution (one tiny-batch step on the CPU)."""
    cfg = C.make_config(Task1Config, profile)
    method = IndependencePriorTask1(cfg, torch.device("cpu"))
    s, b = cfg.image_size, 2
    box = torch.zeros(b, 1, s, s)
    box[:, :, s // 4: 3 * s // 4, s // 4: 3 * s // 4] = 1
    batch = {"window": torch.rand(b, 3, s, s) * 2 - 1, "box": box, "box_frac": box.mean((1, 2, 3)),
             "background": torch.rand(b, 3, s, s) * 2 - 1, "real": torch.rand(b, 3, s, s) * 2 - 1, "real_box": box}
    step_and_check_variant(method, cfg, batch)
    assert len(method.provider.net.down) == cfg.unet_levels + 1 and _convs_out(method.provider)[0] == cfg.unet_base


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    from indprior.core import runtime as train

    def broken(fn):
        def call(*a, **k):
            raise RuntimeError("no compiler here")
        return call
    monkeypatch.setattr(train.torch, "compile", broken)
    net = torch.nn.Linear(2, 1)
    wrapped = train.CompiledOrEager(net)
    x = torch.ones(1, 2)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        assert torch.equal(wrapped(x), net(x))
    assert wrapped.failed and torch.equal(wrapped(x), net(x)), "later calls go straight to eager"


@pytest.mark.parametrize("over", [dict(amp_cpu=True), dict(amp_cpu=False), dict(d_head="flatten"),
                                  dict(channels_last=False), dict(d_box=True), dict(lambda_edge=0, lambda_proj=0)])
def test_step_variants_change_what_they_switch(tiny_root, over):
    cfg = C.make_config(Task1Config, "smoke", **over)
    train = prepare_windows(CubDataset(tiny_root, "train"), cfg.image_size, cfg.window_scale, progress=False)
    bank = background_bank(CubDataset(tiny_root, "train"), cfg.image_size, 2, np.random.default_rng(0), progress=False)
    method = IndependencePriorTask1(cfg, torch.device("cpu"))
    assert method.amp == (cfg.amp_cpu and cpu_has_bf16())
    step_and_check_variant(method, cfg, Task1Batches(train, bank, cfg.batch_size, torch.device("cpu"))(0))


def test_bf16_inference_agrees_with_fp32(tiny_root):
    from indprior.task1 import predict_window_masks
    cfg = C.make_config(Task1Config, "smoke")
    ws = prepare_windows(CubDataset(tiny_root, "test"), cfg.image_size, cfg.window_scale, progress=False)
    torch.manual_seed(0)
    provider = IndependencePriorTask1(cfg, torch.device("cpu")).provider
    fp32 = predict_window_masks(provider, ws, torch.device("cpu"))
    bf16 = predict_window_masks(provider, ws, torch.device("cpu"), bf16=True)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert (bf16 - fp32).abs().max() < 0.05 and ((bf16 > 0.5) == (fp32 > 0.5)).float().mean() > 0.97


def test_two_views_average_the_mirror_image_so_a_mirrored_window_gets_the_mirrored_mask(tiny_root):
    from indprior.data.windows import WindowSet
    from indprior.task1 import predict_window_masks
    cfg = C.make_config(Task1Config, "smoke")
    ws = prepare_windows(CubDataset(tiny_root, "test"), cfg.image_size, cfg.window_scale, progress=False)
    torch.manual_seed(0)
    provider = IndependencePriorTask1(cfg, torch.device("cpu")).provider
    mirrored = WindowSet(ws.windows.flip(-1), ws.boxes.flip(-1), ws.rects, ws.image_boxes, ws.image_sizes, ws.names,
                         ws.gt)
    cpu = torch.device("cpu")
    one, one_m = predict_window_masks(provider, ws, cpu), predict_window_masks(provider, mirrored, cpu)
    two, two_m = predict_window_masks(provider, ws, cpu, views=2), predict_window_masks(provider, mirrored, cpu, views=2)
    assert (one - one_m.flip(-1)).abs().max() > 1e-3  # an untrained net does not see left and right alike ...
    assert torch.allclose(two, two_m.flip(-1), atol=1e-5)  # ... its two-view mask does
    assert torch.allclose(two, (one + one_m.flip(-1)) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="views=3"):
        predict_window_masks(provider, ws, cpu, views=3)
    with pytest.raises(C.ConfigError, match="views"):
        C.make_config(Task1Config, "smoke", views=4)


def test_zoomed_views_are_mapped_back_onto_the_window():
    from indprior.task1.infer import _view_masks

    class Const(torch.nn.Module):  # the same mask everywhere: every view must give it back, borders included
        def forward(self, x, box):
            return x, torch.full_like(box, 0.3)

    class Box(torch.nn.Module):  # the box itself as the mask: zoomed and mapped back, it must land on the box
        def forward(self, x, box):
            return x, box

    win = torch.rand(2, 3, 32, 32) * 2 - 1
    box = torch.zeros(2, 1, 32, 32)
    box[:, :, 6:26, 9:23] = 1
    assert torch.allclose(_view_masks(Const(), win, box, 10), torch.full_like(box, 0.3), atol=1e-5)
    back = _view_masks(Box(), win, box, 10)
    assert ((back > 0.5) == (box > 0.5)).float().mean() > 0.98  # a zoom's resampling moves edges by < 1 px
    assert torch.equal(_view_masks(Box(), win, box, 2), box)


def test_pasted_masks_are_lazy_and_match_eager_pasting(tiny_root):
    from indprior.data.windows import PastedMasks
    from indprior.task1 import full_masks
    cfg = C.make_config(Task1Config, "smoke")
    ws = prepare_windows(CubDataset(tiny_root, "test"), cfg.image_size, cfg.window_scale, progress=False)
    torch.manual_seed(0)
    masks = full_masks(IndependencePriorTask1(cfg, torch.device("cpu")).provider, ws, torch.device("cpu"))
    assert isinstance(masks, PastedMasks) and len(masks) == len(ws)
    assert masks.probs.shape == (len(ws), cfg.image_size, cfg.image_size), "only window masks are held"
    eager = [paste_mask(p, r, b, hw) for p, r, b, hw in zip(masks.probs, ws.rects, ws.image_boxes, ws.image_sizes)]
    assert all(np.array_equal(a, b) for a, b in zip(masks, eager))
    sub = masks.where([2, 0], threshold=0.5)
    assert len(sub) == 2 and sub[0].dtype == bool and np.array_equal(sub[1], eager[0] >= 0.5)
    assert len(masks[1:3]) == 2


def _convs_out(module: torch.nn.Module) -> list[int]:
    return [m.out_channels for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
