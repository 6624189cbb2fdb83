"""The CUDA path: skipped on machines without a GPU (CI), run on a lent GPU machine (see README, "GPU").

Every other test pins the CPU, so these are the only ones that exercise bf16 autocast on CUDA, channels_last,
torch.compile, checkpoints moving between GPU and CPU, and the three runners end to end on a GPU.
"""
import json

import numpy as np
import pytest
import torch
from variants import step_and_check_variant

from indprior.core import config as C
from indprior.core.trainer import Trainer, load_checkpoint
from indprior.data import CubDataset, load_label_map, make_synthetic_cub
from indprior.data.windows import prepare_windows
from indprior.task1 import (
    IndependencePriorTask1,
    Task1Batches,
    Task1Config,
    background_bank,
    predict_window_masks,
    run_task1,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return make_synthetic_cub(tmp_path_factory.mktemp("cub") / "CUB", n_images=16, n_test=6, image_size=96, seed=1)


def _method_and_batches(root, device, seed=0, **over):
    torch.manual_seed(seed)
    cfg = C.make_config(Task1Config, "smoke", seed=seed, **over)
    train = prepare_windows(CubDataset(root, "train"), cfg.image_size, cfg.window_scale, progress=False)
    bank = background_bank(CubDataset(root, "train"), cfg.image_size, 2, np.random.default_rng(0), progress=False)
    return cfg, IndependencePriorTask1(cfg, device), Task1Batches(train, bank, cfg.batch_size, device)


@pytest.mark.parametrize("over", [dict(), dict(amp=False), dict(channels_last=False), dict(d_box=True, d_head="flatten")])
def test_step_on_cuda_changes_what_it_switches_and_keeps_stats_on_the_gpu(tiny_root, over):
    cfg, method, batches = _method_and_batches(tiny_root, CUDA, **over)
    assert method.amp == cfg.amp
    stats = step_and_check_variant(method, cfg, batches(0))
    assert all(v.device.type == CUDA.type for v in stats.values()), "no host sync in the step"


def test_compiled_step_runs_and_does_not_fall_back(tiny_root):
    _, method, batches = _method_and_batches(tiny_root, CUDA, compile=True)
    for i in range(3):  # the first calls compile; later ones reuse the graphs
        stats = method.train_step(batches(i), i)
    assert all(torch.isfinite(v) for v in stats.values()), stats
    assert not method.provider_fn.failed and not method.D_fn.failed, "torch.compile fell back to eager on this GPU"


@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_profile_networks_step_on_cuda(profile):
    cfg = C.make_config(Task1Config, profile)
    method = IndependencePriorTask1(cfg, CUDA)
    s, b = cfg.image_size, 8
    box = torch.zeros(b, 1, s, s, device=CUDA)
    box[:, :, s // 4: 3 * s // 4, s // 4: 3 * s // 4] = 1
    rand = lambda: torch.rand(b, 3, s, s, device=CUDA) * 2 - 1  # noqa: E731
    step_and_check_variant(method, cfg, {"window": rand(), "box": box, "box_frac": box.mean((1, 2, 3)),
                                         "background": rand(), "real": rand(), "real_box": box})


def test_gpu_checkpoint_loads_on_the_cpu_with_the_same_outputs(tiny_root, tmp_path):
    cfg, method, batches = _method_and_batches(tiny_root, CUDA)
    Trainer(method, tmp_path, C.to_dict(cfg), log_every=2, ckpt_every=3, progress=False).fit(batches, 3)
    _, on_cpu, cpu_batches = _method_and_batches(tiny_root, torch.device("cpu"), seed=5)
    assert load_checkpoint(tmp_path / "checkpoint.pt", on_cpu)["step"] == 3
    x = cpu_batches(0)
    with torch.no_grad():
        a = method.ema.module(x["window"].to(CUDA), x["box"].to(CUDA))[1].float().cpu()
        b = on_cpu.ema.module(x["window"], x["box"])[1]
    assert (a - b).abs().max() < 1e-3, "the same weights give the same masks on GPU and CPU (fp32)"


def test_bf16_inference_on_cuda_agrees_with_fp32(tiny_root):
    cfg = C.make_config(Task1Config, "smoke")
    ws = prepare_windows(CubDataset(tiny_root, "test"), cfg.image_size, cfg.window_scale, progress=False)
    torch.manual_seed(0)
    provider = IndependencePriorTask1(cfg, CUDA).provider
    fp32 = predict_window_masks(provider, ws, CUDA)
    bf16 = predict_window_masks(provider, ws, CUDA, bf16=True)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert ((bf16 > 0.5) == (fp32 > 0.5)).float().mean() > 0.97


def test_run_task1_on_cuda_writes_masks_and_metrics(tiny_root, tmp_path):
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{tiny_root}", steps=12, device="cuda")
    metrics = run_task1(cfg, tmp_path, progress=False)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert 0 <= metrics["iou_mean"] <= 1 and metrics["n_images"] == 6
    assert len(list((tmp_path / "masks").rglob("*.png"))) == 6


def test_run_redo_on_cuda(tiny_root, tmp_path):
    from indprior.redo import ReDOConfig, run_redo
    metrics = run_redo(C.make_config(ReDOConfig, "smoke", dataset=f"cub:{tiny_root}", device="cuda"), tmp_path,
                       progress=False)
    assert 0 <= metrics["iou_mean"] <= 1 and len(list((tmp_path / "masks").rglob("*.png"))) == 6


def test_run_hoc_on_cuda(tmp_path):
    from indprior.data import make_synthetic_hoc
    from indprior.hoc import HOCConfig, run_hoc
    image, gt = make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    metrics = run_hoc(C.make_config(HOCConfig, "smoke", device="cuda"), image, tmp_path, gt, progress=False)
    labels = load_label_map(tmp_path / "instances.png", expected_shape=image.shape[:2])
    assert metrics["device"].startswith("cuda") and metrics["count_gt"] == len(np.unique(gt[gt > 0]))
    assert metrics["count_pred"] == len(np.unique(labels[labels > 0])), "metrics describe the written label map"
