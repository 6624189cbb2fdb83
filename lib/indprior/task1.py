"""Task 1: foreground segmentation of category-specific images that have only box annotations.

Each training step cuts the object out of its box window with the segmenting provider's soft mask,
moves it with the layout module, and alpha-composes it onto a background window taken from *another*
image, away from that image's box. The critic compares composites with real box windows. A mask that
is too big carries its old background along (a visible seam), one that is too small cuts the object:
both look fake; the area penalty removes everything the critic does not need.

Inference: S(window) pasted back into the image at the box -> threshold 0.5 -> binary mask.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.autograd.profiler import record_function
from tqdm.auto import tqdm

from . import config as C
from . import dist
from .baselines import grabcut_refine, map_threads
from .data import CubDataset, resolve_dataset
from .losses import (EMA, area_penalty, binarisation_penalty, box_projection, d_hinge, diff_augment,
                     edge_aware_smoothness, g_hinge, r1_penalty)
from .metrics import foreground_scores
from .models import Discriminator, Layout, SegmentingProvider, compose, pose_to_theta, warp
from .selftrain import pseudo_labels, self_train
from .train import (CompiledOrEager, autocast_enabled, atomic_write_bytes, atomic_write_text, fit_with_restarts, load_checkpoint, loop_seconds, prepare_out_dir,
                     resolve_device, seed_everything, sustained)
from .windows import (PastedMasks, WindowSet, evaluate, full_masks, mask_file, paste_mask,  # noqa: F401
                      predict_window_masks, prepare_windows, save_masks, to_float, window_rect)  # task1.<name> works


# ----------------------------------------------------------------------------- data: the GAN's batches
def background_bank(dataset: CubDataset, size: int, per_image: int, rng: np.random.Generator,
                    progress: bool = True) -> torch.Tensor:
    """Patches that do not touch any annotated box: backgrounds onto which instances are pasted.

    Patch sides are drawn between 30% and 90% of the image's short side; a patch that would meet the
    (slightly grown) box is redrawn. Images whose box leaves no room contribute nothing.
    """
    patches = []
    for i in tqdm(range(len(dataset)), desc="backgrounds", disable=not progress, leave=False):
        s = dataset[i]
        h, w = s.image.shape[:2]
        bx, by, bw, bh = s.box
        gx0, gy0, gx1, gy1 = bx - 0.05 * bw, by - 0.05 * bh, bx + 1.05 * bw, by + 1.05 * bh
        got = 0
        for _ in range(60):
            side = int(rng.uniform(0.3, 0.9) * min(h, w))
            if side < 8:
                break
            x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            if x0 < gx1 and x0 + side > gx0 and y0 < gy1 and y0 + side > gy0:
                continue
            crop = cv2.resize(s.image[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
            patches.append(torch.from_numpy(crop).permute(2, 0, 1))
            got += 1
            if got == per_image:
                break
    if not patches:
        raise ValueError("no background patch could be cut outside the boxes: every box covers (nearly) its whole image")
    return torch.stack(patches)  # m 3 s s uint8


class Task1Batches:
    """Random batches on the device: windows with their boxes, backgrounds, and (other) real windows."""

    def __init__(self, train: WindowSet, bank: torch.Tensor, batch_size: int, device: torch.device,
                 rows: slice = slice(None)):  # rows: this process's shard of the windows (dist.shard)
        self.windows, self.boxes = train.windows[rows].to(device), train.boxes[rows].to(device)
        self.bank, self.batch_size, self.device = bank.to(device), batch_size, device
        self.box_frac = self.boxes.float().mean((1, 2, 3))  # n

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        n, b = len(self.windows), self.batch_size
        i = torch.randint(n, (b,), device=self.device)
        j = torch.randint(n, (b,), device=self.device)
        k = torch.randint(len(self.bank), (b,), device=self.device)
        win, box = to_float(self.windows[i]), self.boxes[i].float()
        flip = torch.rand(b, device=self.device) < 0.5  # the same flip for a window and its box
        win = torch.where(flip[:, None, None, None], win.flip(3), win)
        box = torch.where(flip[:, None, None, None], box.flip(3), box)
        real, real_box = to_float(self.windows[j]), self.boxes[j].float()
        flip_real = (torch.rand(b, device=self.device) < 0.5)[:, None, None, None]
        real, real_box = torch.where(flip_real, real.flip(3), real), torch.where(flip_real, real_box.flip(3), real_box)
        bg = to_float(self.bank[k])
        bg = torch.where((torch.rand(b, device=self.device) < 0.5)[:, None, None, None], bg.flip(3), bg)
        return {"window": win, "box": box, "box_frac": self.box_frac[i], "background": bg, "real": real,
                "real_box": real_box}


# ----------------------------------------------------------------------------- the method
class IndependencePriorTask1:
    """Loss/step object: segmenting provider + layout + composition vs a spectral-norm critic."""

    code_dim = 16

    def __init__(self, cfg: C.Task1Config, device: torch.device):
        self.cfg, self.device = cfg, device
        self.provider = SegmentingProvider(cfg.unet_base, cfg.unet_levels).to(device)
        self.layout = Layout(self.code_dim, cfg.pose_scale, cfg.pose_rotation_deg, cfg.pose_translation).to(device)
        self.D = Discriminator(cfg.image_size, cfg.d_base, cin=4 if cfg.d_box else 3, head=cfg.d_head).to(device)
        self.ema = EMA(self.provider, cfg.ema_decay)
        g_params = list(self.provider.parameters()) + list(self.layout.parameters())
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr_g, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
        self.amp = autocast_enabled(device, cfg.amp, cfg.amp_cpu)
        self.memory_format = torch.channels_last if cfg.channels_last and (device.type == "cuda" or self.amp) \
            else torch.contiguous_format
        for module in (self.provider, self.D, self.ema.module):
            module.to(memory_format=self.memory_format)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
        self.provider_fn, self.D_fn = CompiledOrEager(self.provider, cfg.compile), CompiledOrEager(self.D, cfg.compile)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"provider": self.provider, "layout": self.layout, "D": self.D, "provider_ema": self.ema.module}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def generate(self, batch: dict[str, torch.Tensor], provider: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
        """providers -> layout -> composition for one batch; returns every intermediate (for figures too)."""
        a, m = (provider or self.provider_fn)(batch["window"], batch["box"])  # b 3 s s, b 1 s s
        pose = self.layout(torch.randn(a.shape[0], self.code_dim, device=a.device))
        theta = pose_to_theta(pose)
        A, M = warp(a, m, theta, a.shape[-2:])
        fake, visible = compose(batch["background"], [(A, M)])
        out = {"a": a, "m": m, "A": A, "M": M, "fake": fake, "visible": visible}
        if self.cfg.d_box:  # the box moves with the instance: the critic sees where it now stands
            out["fake_box"] = (warp(a, batch["box"].to(a.dtype), theta, a.shape[-2:])[1] > 0.5).to(a.dtype)
        return out

    def critic_input(self, image: torch.Tensor, box: torch.Tensor | None) -> torch.Tensor:
        """What D sees: the image, plus the box as a 4th channel in [-1, 1] when `d_box`."""
        return torch.cat([image, box.to(image.dtype) * 2 - 1], 1) if self.cfg.d_box else image

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, aug = self.cfg, (lambda x: diff_augment(x, self.cfg.diffaug))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.generate(batch)
            with record_function("Dmain"):
                self.D.requires_grad_(True)
                real = batch["real"].requires_grad_(cfg.r1_gamma > 0)
                fake_in = self.critic_input(out["fake"], out.get("fake_box")).detach()
                # one critic call on real + fake: a spectral-norm critic called twice before backward breaks
                # under torch.compile (its power iteration updates u in place), and one big batch is faster
                d_real, d_fake = self.D_fn(aug(torch.cat([self.critic_input(real, batch.get("real_box")), fake_in]))
                                           ).split([len(real), len(fake_in)])
                loss_d = d_hinge(d_real.float(), d_fake.float())
                if cfg.r1_gamma > 0:
                    loss_d = loss_d + cfg.r1_gamma / 2 * r1_penalty(real, d_real.float())
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            with record_function("Gmain"):
                self.D.requires_grad_(False)
                adv = g_hinge(self.D_fn(aug(self.critic_input(out["fake"], out.get("fake_box")))).float())
                m = out["m"].float()
                area = area_penalty(m, norm=batch["box_frac"], eta=cfg.area_min)
                binar = binarisation_penalty(m)
                loss_g = adv + cfg.lambda_area * area + cfg.lambda_bin * binar
                if cfg.lambda_edge > 0:
                    edge = edge_aware_smoothness(m, batch["window"], cfg.edge_sigma)
                    loss_g = loss_g + cfg.lambda_edge * edge
                if cfg.lambda_proj > 0:
                    proj = box_projection(m, batch["box"])
                    loss_g = loss_g + cfg.lambda_proj * proj
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
        self.ema.update(self.provider)
        mask_frac = (m.flatten(1).mean(1) / batch["box_frac"]).mean()
        return {"loss/D": loss_d.detach(), "loss/G_adv": adv.detach(), "loss/area": area.detach(),
                "loss/bin": binar.detach(), "mask/area_of_box": mask_frac.detach(),
                **({"loss/edge": edge.detach()} if cfg.lambda_edge > 0 else {}),
                **({"loss/proj": proj.detach()} if cfg.lambda_proj > 0 else {}),
                "D/real": d_real.detach().float().mean(), "D/fake": d_fake.detach().float().mean()}


def load_run(out_dir: str | Path, device: str | torch.device = "cpu") -> tuple[C.Task1Config, IndependencePriorTask1]:
    """Rebuild the method of a finished (or interrupted) run from its checkpoint; the config is inside."""
    path = Path(out_dir) / "checkpoint.pt"
    state = load_checkpoint(path)
    cfg = C.from_dict(C.Task1Config, state["config"])
    method = IndependencePriorTask1(cfg, torch.device(device))
    load_checkpoint(path, method, map_location=device)
    return cfg, method


@torch.no_grad()
def sample_composites(method: IndependencePriorTask1, windows: WindowSet, bank: torch.Tensor, n: int = 8,
                      use_ema: bool = True) -> dict[str, torch.Tensor]:
    """Composites of the (EMA) provider on `n` random windows: for figures. Returns generate()'s dict + batch."""
    batch = Task1Batches(windows, bank, n, method.device)(0)
    method.layout.eval()
    out = method.generate(batch, method.ema.module if use_ema else method.provider)
    method.layout.train()
    return {**batch, **out}


# ----------------------------------------------------------------------------- the whole experiment
def collapse_reason(cfg: C.Task1Config, history: list[dict[str, Any]]) -> str | None:
    """method.md's collapse: masks (nearly) empty or (nearly) the whole box, or the critic wins outright."""
    p = cfg.collapse_patience
    if sustained(history, "mask/area_of_box", p, lambda v: v < cfg.collapse_low):
        return f"mask area < {cfg.collapse_low} of the box for {p} steps"
    if sustained(history, "mask/area_of_box", p, lambda v: v > cfg.collapse_high):
        return f"mask area > {cfg.collapse_high} of the box for {p} steps"
    if sustained(history, "loss/D", p, lambda v: v < cfg.collapse_d_loss):
        return f"critic hinge loss < {cfg.collapse_d_loss} for {p} steps (D wins outright)"
    return None


def _scores(preds: Sequence[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    s = foreground_scores(preds, gts)
    return {"acc": s["acc_mean"], "iou_mean": s["iou_mean"], "iou_pooled": s["iou_pooled"],
            "acc_pooled": s["acc_pooled"], "n_with_gt": len(gts)}


def self_trained(cfg: C.Task1Config, provider: torch.nn.Module, train: WindowSet, train_ds: CubDataset,
                 device: torch.device, out_dir: Path, progress: bool = False) -> torch.nn.Module:
    """selftrain.py's stage: GrabCut pseudo-labels on the training images, then a trained copy of `provider`
    (saved as out_dir/self_trained.pt: {"state", "steps"}). Uses boxes only, like the GAN."""
    targets = pseudo_labels(full_masks(provider, train, device), train_ds, train.rects, train.image_boxes,
                            cfg.image_size, progress)
    student = self_train(provider, train.windows, train.boxes, targets, steps=cfg.self_train_steps,
                         lr=cfg.self_train_lr, batch_size=cfg.batch_size, seed=cfg.seed, device=device,
                         augmented=cfg.self_train_augment, progress=progress)
    atomic_write_bytes(out_dir / "self_trained.pt",
                       lambda f: torch.save({"state": student.state_dict(), "steps": cfg.self_train_steps}, f))
    return student


def run_task1(cfg: C.Task1Config, out_dir: str | Path, *, resume: bool = True, progress: bool = True,
              cache_dir: str | Path = ".cache/data") -> dict[str, Any]:
    """Train on the train split using boxes only, segment the test split, write masks + metrics.json."""
    t0 = time.perf_counter()
    out_dir = prepare_out_dir(out_dir)
    device = dist.device_for_rank(resolve_device(cfg.device))
    seed_everything(cfg.seed)
    if not dist.is_main():
        dist.barrier()  # rank 0 generates/validates the data set first
    root = resolve_dataset(cfg.dataset, cache_dir)
    if dist.is_main():
        dist.barrier()
    train_ds, test_ds = CubDataset(root, "train"), CubDataset(root, "test")
    train = prepare_windows(train_ds, cfg.image_size, cfg.window_scale, keep_gt=False, progress=progress)
    test = prepare_windows(test_ds, cfg.image_size, cfg.window_scale, progress=progress)
    bank = background_bank(train_ds, cfg.image_size, cfg.bg_per_image, np.random.default_rng(cfg.seed), progress)
    batches = Task1Batches(train, bank, cfg.batch_size, device, rows=dist.shard(len(train)))  # all rows unless torchrun

    def monitor(method: IndependencePriorTask1, step: int) -> dict[str, float]:  # monitoring only: nothing is selected by it
        scores = evaluate(method.ema.module, test, device)
        return {"val/iou": scores.get("iou_mean", float("nan")), "val/acc": scores.get("acc_mean", float("nan"))}

    def samples(method: IndependencePriorTask1, step: int, folder: Path) -> None:  # composites with their instance masks
        from .viz import composite_figure, save_figure  # lazy: matplotlib only when figures are made
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # keep the training's RNG stream
            out = sample_composites(method, train, bank, n=4)
        save_figure(composite_figure(out["fake"], out["visible"], background=out["background"], n=4),
                    folder / "samples" / f"composites_{step:06d}.png")

    t_fit = time.perf_counter()
    method, restarts = fit_with_restarts(
        lambda seed: IndependencePriorTask1(cfg, device), out_dir, C.to_dict(cfg), batches, cfg.steps, seed=cfg.seed,
        collapse_reason=lambda history: collapse_reason(cfg, history), check_every=cfg.collapse_check_every,
        check_until=cfg.collapse_until, max_restarts=cfg.max_restarts, resume=resume, name="task 1",
        eval_fn=monitor, sample_fn=samples, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every,
        eval_every=cfg.eval_every, sample_every=cfg.sample_every, progress=progress)
    train_seconds = (t_fit - t0) + loop_seconds(out_dir)  # this call's data preparation + every training loop

    rank = dist.rank()
    dist.leave()  # training was the only collective work
    if rank != 0:  # rank 0 segments the test split and writes every output
        return {"rank": rank, "restarts": len(restarts)}
    (out_dir / "metrics.json").unlink(missing_ok=True)  # metrics.json is written last: it marks complete outputs
    probs = full_masks(method.ema.module, test, device)
    save_masks(out_dir / "masks", test.names, probs)
    metrics: dict[str, Any] = {"task": "foreground", "split": "test", "n_images": len(test), "profile": cfg.profile,
                               "dataset": cfg.dataset, "device": str(device), "steps": cfg.steps,
                               "model": "EMA provider at the last step (no checkpoint selection)",
                               "restarts": len(restarts), "collapses": restarts,
                               "averaging": "iou_mean/acc: per-image mean; *_pooled: pooled over all test pixels"}
    has_gt = [g is not None for g in test.gt]
    gts = [g for g in test.gt if g is not None]
    rows = [i for i, ok in enumerate(has_gt) if ok]
    if gts:
        metrics.update(_scores(probs.where(rows, 0.5), gts))
        ones = np.broadcast_to(np.ones((1, *test.windows.shape[-2:]), np.float32), (len(test), *test.windows.shape[-2:]))
        whole_box = PastedMasks(ones, test, 0.5, rows)  # a read-only view: no n x s x s array of ones
        metrics["whole_box_iou_mean"] = foreground_scores(whole_box, gts)["iou_mean"]

    def refine(probs: PastedMasks, folder_name: str, key: str) -> None:  # GrabCut from the masks: its own row
        refined = map_threads(lambda i: grabcut_refine(test_ds[i].image, tuple(test.image_boxes[i]), probs[i]),
                              len(test), desc="grabcut refine", progress=progress)
        save_masks(out_dir / folder_name, test.names, refined)
        if gts:
            metrics[key] = _scores([m for m, ok in zip(refined, has_gt) if ok], gts)

    grabcut, self_train_on = cfg.refine == "grabcut", cfg.self_train_steps > 0
    stage_outputs = {"masks_refined": grabcut, "masks_self_trained": self_train_on, "self_trained.pt": self_train_on,
                     "masks_self_trained_refined": grabcut and self_train_on}
    for name in (name for name, on in stage_outputs.items() if not on):  # left by an earlier run with the stage on
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    if grabcut:
        refine(probs, "masks_refined", "refined_grabcut")
    if self_train_on:  # second stage (not in the paper): a copy of the provider on GrabCut pseudo-labels
        t_self = time.perf_counter()
        student = self_trained(cfg, method.ema.module, train, train_ds, device, out_dir, progress)
        metrics["self_train_seconds"] = round(time.perf_counter() - t_self, 1)  # pseudo-labels + training
        s_probs = full_masks(student, test, device)
        save_masks(out_dir / "masks_self_trained", test.names, s_probs)
        if gts:
            metrics["self_trained"] = _scores(s_probs.where(rows, 0.5), gts)
        if grabcut:
            refine(s_probs, "masks_self_trained_refined", "self_trained_grabcut")
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    metrics["train_seconds"] = round(train_seconds, 1)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
