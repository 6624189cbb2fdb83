"""Task 1's method: the segmenting provider, layout and composition against a critic, and its batches.

Each training step cuts the object out of its box window with the segmenting provider's soft mask,
moves it with the layout module, and alpha-composes it onto a background window taken from *another*
image, away from that image's box. The critic compares composites with real box windows. A mask that
is too big carries its old background along (a visible seam), one that is too small cuts the object:
both look fake; the area penalty removes everything the critic does not need.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torch.autograd.profiler import record_function
from tqdm.auto import tqdm

from ..core.restarts import sustained
from ..core.runtime import CompiledOrEager, autocast_enabled
from ..core.trainer import opt_step
from ..data.cub import CubDataset
from ..data.images import to_float
from ..data.windows import WindowSet
from ..losses import (
    EMA,
    area_penalty,
    binarisation_penalty,
    box_projection,
    d_hinge,
    diff_augment,
    edge_aware_smoothness,
    g_hinge,
    r1_penalty,
)
from ..models import Discriminator, Layout, SegmentingProvider, compose, pose_to_theta, warp
from .config import Task1Config


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


class IndependencePriorTask1:
    """Loss/step object: segmenting provider + layout + composition vs a spectral-norm critic."""

    code_dim = 16

    def __init__(self, cfg: Task1Config, device: torch.device):
        self.cfg, self.device = cfg, device
        self.provider = SegmentingProvider(cfg.unet_base, cfg.unet_levels, cfg.colour_cue).to(device)
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

    def _d_loss(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor], aug) -> dict[str, torch.Tensor]:
        """Dmain: hinge loss of the critic on real windows vs composites (+ R1 when r1_gamma > 0)."""
        cfg = self.cfg
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
        return {"loss/D": loss_d, "D/real": d_real.detach().float().mean(), "D/fake": d_fake.detach().float().mean()}

    def _g_loss(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor], aug) -> dict[str, torch.Tensor]:
        """Gmain: fool the critic; mask area (hinge above area_min of the box), binarisation, and our terms."""
        cfg = self.cfg
        self.D.requires_grad_(False)
        adv = g_hinge(self.D_fn(aug(self.critic_input(out["fake"], out.get("fake_box")))).float())
        m = out["m"].float()
        parts = {"loss/G_adv": adv, "loss/area": area_penalty(m, norm=batch["box_frac"], eta=cfg.area_min),
                 "loss/bin": binarisation_penalty(m)}
        loss_g = adv + cfg.lambda_area * parts["loss/area"] + cfg.lambda_bin * parts["loss/bin"]
        if cfg.lambda_edge > 0:
            parts["loss/edge"] = edge_aware_smoothness(m, batch["window"], cfg.edge_sigma)
            loss_g = loss_g + cfg.lambda_edge * parts["loss/edge"]
        if cfg.lambda_proj > 0:
            parts["loss/proj"] = box_projection(m, batch["box"])
            loss_g = loss_g + cfg.lambda_proj * parts["loss/proj"]
        parts["mask/area_of_box"] = (m.flatten(1).mean(1) / batch["box_frac"]).mean()
        return {"loss/G": loss_g, **parts}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        aug = (lambda x: diff_augment(x, self.cfg.diffaug))  # noqa: E731
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.generate(batch)
            with record_function("Dmain"):
                d = self._d_loss(batch, out, aug)
            opt_step(self.opt_d, d["loss/D"])
            with record_function("Gmain"):
                g = self._g_loss(batch, out, aug)
            opt_step(self.opt_g, g.pop("loss/G"))
        self.ema.update(self.provider)
        return {k: v.detach() for k, v in {**d, **g}.items()}


@torch.no_grad()
def sample_composites(method: IndependencePriorTask1, windows: WindowSet, bank: torch.Tensor, n: int = 8,
                      use_ema: bool = True) -> dict[str, torch.Tensor]:
    """Composites of the (EMA) provider on `n` random windows: for figures. Returns generate()'s dict + batch."""
    batch = Task1Batches(windows, bank, n, method.device)(0)
    method.layout.eval()
    out = method.generate(batch, method.ema.module if use_ema else method.provider)
    method.layout.train()
    return {**batch, **out}


def collapse_reason(cfg: Task1Config, history: list[dict[str, Any]]) -> str | None:
    """method.md's collapse: masks (nearly) empty or (nearly) the whole box, or the critic wins outright."""
    p = cfg.collapse_patience
    if sustained(history, "mask/area_of_box", p, lambda v: v < cfg.collapse_low):
        return f"mask area < {cfg.collapse_low} of the box for {p} steps"
    if sustained(history, "mask/area_of_box", p, lambda v: v > cfg.collapse_high):
        return f"mask area > {cfg.collapse_high} of the box for {p} steps"
    if sustained(history, "loss/D", p, lambda v: v < cfg.collapse_d_loss):
        return f"critic hinge loss < {cfg.collapse_d_loss} for {p} steps (D wins outright)"
    return None
