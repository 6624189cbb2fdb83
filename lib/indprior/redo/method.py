"""ReDO's training step (Chen, Artieres, Denoyer, NeurIPS 2019): mask net f, region generators G, critic D and
the z encoder delta; one step updates f, G and delta on the generator loss, then D (the reference code's order).

    Gmain: m = f(x); h_k = G_k(m_k, z_k) * m_k; fake_k = h_k + (1 - m_k) x   (every region redrawn: b*k fakes)
           loss = hinge_G(D(fake)) + lambda_z * |delta(sum_k h_k) - z|^2   -> update f, G, delta
    Dmain: the same fakes regenerated without grad (after the update) vs another real batch -> update D
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.profiler import record_function

from ..core.trainer import opt_step
from ..data.images import to_float
from ..losses import d_hinge, g_hinge
from .config import ReDOConfig
from .nets import MaskNet, RegionGenerators, ResCritic, init_orthogonal


def _random_flip(x: torch.Tensor) -> torch.Tensor:
    return torch.where((torch.rand(x.shape[0], device=x.device) < 0.5)[:, None, None, None], x.flip(3), x)


class ReDOBatches:
    """Two independent batches of random windows with flips, on the device: one redrawn, one real for D."""

    def __init__(self, windows: torch.Tensor, batch_size: int, device: torch.device):
        self.windows, self.batch_size, self.device = windows.to(device), batch_size, device  # n 3 s s uint8

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        n, b = len(self.windows), self.batch_size
        pick = lambda: _random_flip(to_float(self.windows[torch.randint(n, (b,), device=self.device)]))  # noqa: E731
        return {"image": pick(), "real": pick()}  # b 3 s s each, in [-1, 1]


class ReDO:
    """Loss/step object for `core.trainer.Trainer`: mask net f, region generators G, critic D, z encoder delta."""

    def __init__(self, cfg: ReDOConfig, device: torch.device):
        self.cfg, self.device, k = cfg, device, cfg.n_regions
        self.M = MaskNet(k, cfg.nf_m, cfg.n_res_m, cfg.temperature).to(device)
        self.G = RegionGenerators(k, cfg.image_size, cfg.z_dim, cfg.nf_g, cfg.cond_norm, cfg.self_attention_g).to(device)
        self.D = ResCritic(cfg.image_size, cfg.nf_d, 1, cfg.self_attention_d).to(device)
        self.Z = ResCritic(cfg.image_size, cfg.nf_z, k * cfg.z_dim, False).to(device)
        for net in (self.M, self.G, self.D, self.Z):
            init_orthogonal(net, cfg.init_gain)
        betas = cfg.betas
        self.opt = {"M": torch.optim.Adam(self.M.parameters(), cfg.lr_m, betas, weight_decay=cfg.weight_decay_m),
                    "G": torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas),
                    "D": torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas),
                    "Z": torch.optim.Adam(self.Z.parameters(), cfg.lr_z, betas)}

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"M": self.M, "G": self.G, "D": self.D, "Z": self.Z}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opt

    def redraw(self, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every region of every image redrawn once: masks b k h w, regions b k 3 h w, fakes b k 3 h w."""
        masks = self.M(x)  # b k h w
        regions = self.G(masks, z)  # b k 3 h w, each already * m_k
        fake = regions + (1 - masks[:, :, None]) * x[:, None]  # region k redrawn, the rest kept
        return {"masks": masks, "regions": regions, "fake": fake}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, x = self.cfg, batch["image"]
        b, k = x.shape[0], cfg.n_regions
        z = torch.randn(b, k, cfg.z_dim, device=x.device)
        with record_function("Gmain"):
            self.D.requires_grad_(False)
            out = self.redraw(x, z)
            adv = g_hinge(self.D(out["fake"].flatten(0, 1)))
            z_rec = self.Z(out["regions"].sum(1)).view(b, k, cfg.z_dim)  # from the wholly generated image
            loss_z = F.mse_loss(z_rec, z)
            loss_g = adv + cfg.lambda_z * loss_z
            opt_step([self.opt[name] for name in ("M", "G", "Z")], loss_g)
        with record_function("Dmain"):
            self.D.requires_grad_(True)
            with torch.no_grad():
                fake = self.redraw(x, z)["fake"].flatten(0, 1)  # b*k 3 h w
            d_real, d_fake = self.D(batch["real"]), self.D(fake)
            loss_d = d_hinge(d_real, d_fake)
            opt_step(self.opt["D"], loss_d)
        area = out["masks"].detach().mean((0, 2, 3))  # k: share of the windows each region takes
        return {"loss/D": loss_d.detach(), "loss/G_adv": adv.detach(), "loss/z_rec": loss_z.detach(),
                "mask/mean0": area[0], "mask/min_region": area.min(),
                "D/real": d_real.detach().mean(), "D/fake": d_fake.detach().mean()}

    @torch.no_grad()
    def predict_masks(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Region-0 probability, b 1 h w, for float images b 3 h w in [-1, 1]. Which region is the object
        is unknown: pick the polarity with `best_polarity` (uses GT) or `border_polarity` (does not)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected b 3 h w in [-1, 1], got shape {tuple(images.shape)}")
        was_training = self.M.training
        self.M.eval()
        out = [self.M(images[s:s + batch_size].to(self.device))[:, :1].cpu() for s in range(0, len(images), batch_size)]
        self.M.train(was_training)
        return torch.cat(out) if out else images.new_zeros(0, 1, *images.shape[2:])
