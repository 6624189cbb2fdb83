"""ReDO baseline: network shapes, one step learns, Trainer integration, collapse detection and restarts, run_redo."""
import json

import numpy as np
import pytest
import torch

from indprior.core import config as C
from indprior.core.trainer import CHECKPOINT, Trainer, TrainingError, load_checkpoint, read_log
from indprior.data import make_synthetic_cub
from indprior.redo import (
    ReDO,
    ReDOBatches,
    ReDOConfig,
    best_polarity,
    border_polarity,
    collapse_detected,
    paste_window,
    run_redo,
)
from indprior.redo.nets import MaskNet, RegionGenerators, ResCritic

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def cub_root(tmp_path_factory):
    return make_synthetic_cub(tmp_path_factory.mktemp("cub"), n_images=12, n_test=4, image_size=64)


def smoke(**overrides) -> ReDOConfig:
    return C.make_config(ReDOConfig, "smoke", device="cpu", **overrides)


def test_networks_shapes_and_mask_partition():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    for k in (2, 3):
        m = MaskNet(n_regions=k, nf=8, n_res=1)(x)
        assert m.shape == (3, k, 32, 32)
        assert torch.allclose(m.sum(1), torch.ones(3, 32, 32), atol=1e-5), "regions must partition every pixel"
        assert m.min() >= 0
    masks = MaskNet(2, nf=8, n_res=1)(x)
    masks[:, :, :, :8] = 0  # a strip that belongs to no region must be drawn as nothing
    h = RegionGenerators(2, 32, z_dim=8, nf=4)(masks, torch.randn(3, 2, 8))
    assert h.shape == (3, 2, 3, 32, 32) and h.abs().max() <= 1
    assert (h[..., :8] == 0).all(), "a region generator's output is multiplied by its mask"
    assert ResCritic(32, nf=8, n_out=1, self_attention=True)(x).shape == (3, 1)
    assert ResCritic(64, nf=8, n_out=16)(torch.zeros(2, 3, 64, 64)).shape == (2, 16)


def test_bad_config_values_name_the_parameter():
    with pytest.raises(ValueError, match="image_size"):
        smoke(image_size=48)
    with pytest.raises(ValueError, match="n_regions"):
        smoke(n_regions=1)
    with pytest.raises(ValueError, match="collapse_min_area"):
        smoke(collapse_min_area=0.6)
    assert smoke().betas == (0.0, 0.9) and isinstance(smoke().betas[0], float)
    assert C.make_config(ReDOConfig, "paper").image_size == 128


def test_one_step_changes_every_network_with_finite_losses():
    torch.manual_seed(0)
    method = ReDO(smoke(), torch.device("cpu"))
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in method.modules().items()}
    batch = {"image": torch.rand(4, 3, 32, 32) * 2 - 1, "real": torch.rand(4, 3, 32, 32) * 2 - 1}
    stats = method.train_step(batch, 0)
    assert {"loss/D", "loss/G_adv", "loss/z_rec", "mask/min_region"} <= set(stats)
    assert all(torch.isfinite(v) for v in stats.values())
    for name, module in method.modules().items():
        changed = any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters()))
        assert changed, f"{name} did not change after one step"
    probs = method.predict_masks(batch["image"])
    assert probs.shape == (4, 1, 32, 32) and 0 <= probs.min() and probs.max() <= 1
    assert method.M.training, "predict_masks must restore training mode"


def test_trainer_runs_redo_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    cfg = smoke()
    method = ReDO(cfg, torch.device("cpu"))
    batches = ReDOBatches(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8), cfg.batch_size, torch.device("cpu"))
    b = batches(0)
    assert b["image"].shape == (4, 3, 32, 32) and b["image"].min() >= -1 and b["real"].max() <= 1
    Trainer(method, tmp_path, C.to_dict(cfg), log_every=2, ckpt_every=4, progress=False).fit(batches, 4)
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["step"] == 4 and set(state["modules"]) == {"M", "G", "D", "Z"}
    assert state["config"]["lambda_z"] == 5.0
    assert [r["step"] for r in read_log(tmp_path)] == [2, 4]


def _log(values, every=25):
    return [{"step": every * (i + 1), "mask/min_region": v} for i, v in enumerate(values)]


def test_collapse_detector_on_hand_made_logs():
    healthy = _log([0.45, 0.4, 0.35, 0.3, 0.3, 0.32, 0.28, 0.3, 0.31, 0.3, 0.29, 0.3])
    dip = _log([0.4, 0.3, 0.05, 0.04, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])  # short dip: not a collapse
    collapsed = _log([0.4, 0.3, 0.2, 0.09, 0.05, 0.02, 0.01, 0.01, 0.0, 0.0, 0.0, 0.0])
    young = _log([0.01, 0.01])  # too short a history to judge
    assert not collapse_detected(healthy, 0.1, 200)
    assert not collapse_detected(dip, 0.1, 200)
    assert collapse_detected(collapsed, 0.1, 200)
    assert not collapse_detected(young, 0.1, 200)
    assert not collapse_detected([{"step": 300, "val/iou": 0.1}], 0.1, 200), "rows without the key are ignored"


def test_polarity_choice_uses_the_window_only():
    prob = np.zeros((8, 8), np.float32)
    prob[2:6, 2:6] = 1  # region 0 = the centre
    rect, hw = (4, 4, 8, 8), (16, 16)
    gt = np.zeros(hw, bool)
    gt[6:10, 6:10] = True
    assert border_polarity(prob) and not border_polarity(1 - prob)
    assert best_polarity(prob, rect, hw, gt) and not best_polarity(1 - prob, rect, hw, gt)
    full = paste_window(1 - prob, rect, hw)
    assert full[:4].max() == 0 and full[4:12, 4:12].max() == 1, "outside the window stays background"


def test_run_redo_smoke_writes_metrics(cub_root, tmp_path):
    metrics = run_redo(smoke(dataset=f"cub:{cub_root}"), tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("task", "method", "split", "n_images", "acc", "iou_mean", "iou_pooled", "eval", "restarts",
                "profile", "seconds", "train_seconds", "border_polarity_iou_mean"):
        assert key in on_disk, key
    assert on_disk == metrics and metrics["method"] == "redo" and metrics["n_images"] == 4
    assert metrics["restarts"] == 0 and "uses GT" in metrics["eval"]
    assert 0 <= metrics["iou_mean"] <= 1 and len(list((tmp_path / "masks").rglob("*.png"))) == 4
    assert (tmp_path / CHECKPOINT).is_file() and not (tmp_path / "restarts.json").exists()


def test_collapse_restarts_then_gives_up(cub_root, tmp_path):
    # two regions: the smaller one is below 0.4999 unless exactly balanced, so every attempt "collapses"
    cfg = smoke(dataset=f"cub:{cub_root}", collapse_min_area=0.4999, max_restarts=1, eval_every=0)
    with pytest.raises(TrainingError, match="collapsed in all 2 attempts"):
        run_redo(cfg, tmp_path, progress=False)
    events = json.loads((tmp_path / "restarts.json").read_text())
    assert [e["seed"] for e in events] == [0, 1000] and events[0]["step"] == cfg.collapse_patience
    assert all((tmp_path / "collapsed" / f"attempt{k}" / CHECKPOINT).is_file() for k in (0, 1))
    assert not (tmp_path / CHECKPOINT).exists(), "a collapsed attempt's checkpoint is archived, not resumed"
    with pytest.raises(TrainingError):  # resuming knows both attempts are spent: no third attempt
        run_redo(cfg, tmp_path, progress=False)
    assert not (tmp_path / CHECKPOINT).exists()
