"""Task 2's GAN: K generative providers with shared weights -> layout -> composition, against a critic.

K providers with SHARED weights and independent z_k draw (RGB, mask) pairs; a layout places them (learned
scale within a prior range, random rotation / flip, random non-overlapping centres across the crop, a
data-driven number of instances); composition alpha-blends them over a background generated at 6x6 and
upsampled, so the background CANNOT draw an instance (docs/method.md: an expressive background drew the whole
cluster and every mask collapsed). A spectral-norm critic with DiffAugment compares composites with real
crops. The trained generator is a labelled-data factory (`composite_batches`): each composite comes with an
exact instance label map, on which the SISeg segmenter is trained.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.profiler import record_function

from ..core.trainer import opt_step
from ..losses import EMA, area_penalty, binarisation_penalty, d_hinge, diff_augment, g_hinge
from ..models import Discriminator, GenerativeProvider, Layout, compose, label_map, pose_to_theta, warp
from .config import HOCConfig


class HOCGenerator(nn.Module):
    """K shared-weight providers + layout + composition over a coarse background, at crop resolution."""

    def __init__(self, cfg: HOCConfig, fg_frac: float = 0.35):
        super().__init__()
        self.cfg, self.size = cfg, cfg.crop
        self.provider = GenerativeProvider(cfg.z_dim, cfg.provider_size, cfg.provider_base, n_up=3)
        self.layout = Layout(cfg.z_dim, tuple(cfg.scale_range), rotation_deg=0.0, translation=0.0, flip=False)
        self.background = nn.Sequential(nn.Linear(cfg.z_dim, 128), nn.ReLU(inplace=True),
                                        nn.Linear(128, 3 * cfg.bg_res**2))
        self.bg_noise = nn.Parameter(torch.tensor(-2.0))  # sensor-like noise, amplitude <= 0.1
        p = cfg.provider_size
        yy, xx = torch.meshgrid(torch.arange(p) + 0.5, torch.arange(p) + 0.5, indexing="ij")
        rad = torch.hypot(yy - p / 2, xx - p / 2) / (p / 2)  # 1 at the middle of each canvas side
        window = ((1 - rad) / 0.15).clamp(0, 1) if cfg.provider_window else torch.ones(p, p)
        self.register_buffer("window", window[None, None], persistent=False)  # 1 1 p p, from the config
        self.r_n = 1.0 / cfg.crop_instances  # instance radius in normalised canvas units (canvas = [-1, 1])
        lim = 1 + cfg.border * self.r_n
        # mean number of instances per crop: foreground area over the sampling window / one disc's area
        self.register_buffer("n_mean", torch.tensor(fg_frac * (2 * lim) ** 2 / (math.pi * self.r_n**2)))

    def _centres(self, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dart throwing: per slot 16 candidates, the first that keeps its distance; b k 2 and b k present."""
        b, k = scale.shape
        lim, dev = 1 + self.cfg.border * self.r_n, scale.device
        n_present = torch.poisson(self.n_mean.expand(b)).clamp(1, k)  # b
        centres, present = torch.zeros(b, k, 2, device=dev), torch.zeros(b, k, dtype=torch.bool, device=dev)
        for j in range(k):
            cand = (torch.rand(b, 16, 2, device=dev) * 2 - 1) * lim  # b 16 2
            ok = torch.ones(b, 16, dtype=torch.bool, device=dev)
            if j:
                dist = torch.cdist(cand, centres[:, :j])  # b 16 j
                need = self.cfg.min_gap * self.r_n * (scale[:, j, None, None] + scale[:, None, :j])  # b 1 j
                ok = ((dist >= need) | ~present[:, None, :j]).all(2)
            first = ok.float().argmax(1)
            centres[:, j] = cand[torch.arange(b, device=dev), first]
            present[:, j] = ok.any(1) & (j < n_present)
        return centres, present

    def forward(self, b: int) -> dict[str, torch.Tensor]:
        cfg, k, s, dev = self.cfg, self.cfg.n_providers, self.size, self.bg_noise.device
        z = torch.randn(b * k, cfg.z_dim, device=dev)
        a, m = self.provider(z)  # bk 3 p p, bk 1 p p
        m = m * self.window  # option: no square masks (lambda_bin 0.1 runs drew 2-3 discs per provider)
        scale = self.layout(z)["scale"]  # bk, learned within scale_range
        centres, present = self._centres(scale.detach().view(b, k))
        rot = math.radians(cfg.rotation_deg) * (torch.rand(b * k, device=dev) * 2 - 1)
        flip = (torch.rand(b * k, device=dev) < 0.5).float() * 2 - 1
        pose = dict(scale=scale, rotation=rot, flip=flip, tx=centres.view(-1, 2)[:, 0], ty=centres.view(-1, 2)[:, 1])
        A, M = warp(a, m, pose_to_theta(pose, cfg.provider_extent * self.r_n), (s, s))  # bk 3 s s, bk 1 s s
        A, M = A.view(b, k, 3, s, s), M.view(b, k, 1, s, s) * present[:, :, None, None, None]
        zb = torch.randn(b, cfg.z_dim, device=dev)
        bg = torch.tanh(self.background(zb)).view(b, 3, cfg.bg_res, cfg.bg_res)
        bg = F.interpolate(bg, size=(s, s), mode="bilinear", align_corners=False)  # b 3 s s
        bg = bg + 0.1 * torch.sigmoid(self.bg_noise) * torch.randn_like(bg)
        image, visible = compose(bg, [(A[:, j], M[:, j]) for j in range(k)])  # b 3 s s, b k 1 s s
        return dict(image=image, visible=visible, a=a.view(b, k, 3, *a.shape[-2:]), m=m.view(b, k, 1, *m.shape[-2:]),
                    present=present, scale=scale.view(b, k), z=z.view(b, k, -1))


class HOCGAN:
    """Method object for `core.trainer.Trainer`: D step and G step of the HOC generator (phases Dmain, Gmain)."""

    def __init__(self, cfg: HOCConfig, device: torch.device | str = "cpu", fg_frac: float = 0.35):
        self.cfg, self.device = cfg, torch.device(device)
        self.G = HOCGenerator(cfg, fg_frac).to(self.device)
        self.D = Discriminator(cfg.crop, cfg.d_base).to(self.device)
        self.ema = EMA(self.G, cfg.ema_decay)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.ema.module}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def train_step(self, real: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        cfg, aug = self.cfg, (lambda x: diff_augment(x, self.cfg.diffaug))
        out = self.G(real.shape[0])
        with record_function("Dmain"):
            self.D.requires_grad_(True)
            d_real, d_fake = self.D(aug(real)), self.D(aug(out["image"].detach()))
            loss_d = d_hinge(d_real, d_fake)
            opt_step(self.opt_d, loss_d)
        with record_function("Gmain"):
            self.D.requires_grad_(False)
            adv = g_hinge(self.D(aug(out["image"])))
            present = out["present"].flatten()  # bk: absent slots get no adversarial signal, so no penalty
            m = out["m"].flatten(0, 1)[present]  # n 1 p p
            area, binar = area_penalty(m, eta=cfg.area_eta), binarisation_penalty(m)
            x = (out["a"] * out["m"]).flatten(0, 1)[present].flatten(1)  # n 3pp: what each provider draws
            z = out["z"].flatten(0, 1)[present]
            perm = torch.randperm(len(x), device=x.device)
            spread = (x - x[perm]).abs().mean()  # appearance diversity across providers (logged)
            div = 1.0 / (spread / (z - z[perm]).abs().mean() + 1e-5)  # mode seeking: small when outputs differ
            loss_g = adv + cfg.lambda_area * area + cfg.lambda_bin * binar + cfg.lambda_div * div
            opt_step(self.opt_g, loss_g)
        self.ema.update(self.G)
        return {"loss/D": loss_d.detach(), "loss/G_adv": adv.detach(), "loss/area": area.detach(),
                "loss/bin": binar.detach(), "loss/div": div.detach(), "div/appearance": spread.detach(),
                "mask/area": m.mean().detach(), "layout/n_present": present.float().sum() / real.shape[0],
                "layout/scale": out["scale"].detach().flatten()[present].mean(),
                "D/real": d_real.detach().mean(), "D/fake": d_fake.detach().mean()}

    @torch.no_grad()
    def generate(self, n: int, ema: bool = True) -> dict[str, torch.Tensor]:
        """n composites from the (EMA) generator: image b 3 H W, visible b k 1 H W, labels b H W (long)."""
        G = self.ema.module if ema else self.G
        was = G.training
        G.eval()
        out = G(n)
        G.train(was)
        return dict(image=out["image"], visible=out["visible"], labels=label_map(out["visible"]))


def composite_batches(gan: HOCGAN, batch_size: int) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """sample(b=batch_size) -> (images b 3 H W in [-1, 1], labels b H W) for `siseg.train_segmenter`.

    Instances with fewer labelled pixels than `min_visible` x the area of a typical instance become
    background: slivers hidden behind others or cut by the crop edge teach nothing but noise.
    """
    cfg = gan.cfg
    min_px = cfg.min_visible * math.pi * (cfg.crop / cfg.crop_instances / 2) ** 2

    def sample(b: int = batch_size) -> tuple[torch.Tensor, torch.Tensor]:
        out = gan.generate(b)
        labels = out["labels"]  # b h w
        counts = F.one_hot(labels, cfg.n_providers + 1).sum((1, 2))  # b k+1
        small = counts < min_px
        small[:, 0] = False
        labels = torch.where(small.gather(1, labels.flatten(1)).view_as(labels), torch.zeros_like(labels), labels)
        return out["image"].cpu(), labels.cpu()

    return sample
