"""Losses and regularisers of the independence-prior GAN, and differentiable augmentation.

- hinge adversarial loss (as ReDO / SAGAN)
- mask-area penalty: makes every mask as small as possible; the adversarial loss makes it cover the
  whole instance, because a cut instance looks fake. An optional minimal area `eta` turns it into a
  hinge `relu(area - eta)` so that it stops pushing once a mask is small enough (HOC task).
- binarisation penalty `min(m, 1 - m)`: masks end near 0 / 1.
- DiffAugment (Zhao et al. 2020): the same random, differentiable augmentation of reals and fakes
  before D, the known remedy for a discriminator that over-fits a small data set.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .core.config import ConfigError


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def area_penalty(mask: torch.Tensor, norm: torch.Tensor | None = None, eta: float = 0.0,
                 floor: float = 0.0) -> torch.Tensor:
    """mean over the batch of relu(area - eta) (+ relu(floor - area) when floor > 0: a mask that must not
    vanish); area = mean mask value, divided by `norm` if given.

    mask: b ... h w.  norm: b (e.g. the box area as a fraction of the window) or None.
    """
    area = mask.flatten(1).mean(1)  # b
    if norm is not None:
        area = area / norm.clamp_min(1e-6)
    penalty = F.relu(area - eta)
    return (penalty + F.relu(floor - area) if floor > 0 else penalty).mean()


def binarisation_penalty(mask: torch.Tensor) -> torch.Tensor:
    return torch.minimum(mask, 1 - mask).mean()


def edge_aware_smoothness(mask: torch.Tensor, image: torch.Tensor, sigma: float = 0.15,
                          offsets: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0))) -> torch.Tensor:
    """A label-free pairwise (CRF-like) term: mean over neighbour pairs of w_ij |m_i - m_j| with
    w_ij = exp(-|I_i - I_j|^2 / (2 sigma^2)). Mask edges across similar colours cost ~1, edges on strong
    image edges ~0, so masks snap to object borders (the "regularized loss" idea of Tang et al., ECCV 2018).
    mask: b 1 h w in [0, 1]; image: b c h w (here in [-1, 1])."""
    total = mask.new_zeros(())
    for dy, dx in offsets:
        h, w = mask.shape[-2] - dy, mask.shape[-1] - abs(dx)
        x0, x1 = (0, dx) if dx >= 0 else (-dx, 0)
        m_a, m_b = mask[..., :h, x0:x0 + w], mask[..., dy:dy + h, x1:x1 + w]
        i_a, i_b = image[..., :h, x0:x0 + w], image[..., dy:dy + h, x1:x1 + w]
        weight = torch.exp(-(i_a - i_b).pow(2).sum(1, keepdim=True) / (2 * sigma ** 2))
        total = total + (weight * (m_a - m_b).abs()).mean()
    return total / len(offsets)


def box_projection(mask: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """The box-tightness prior of box-supervised segmentation (BoxInst, Tian et al. CVPR 2021): a tight box
    is touched by its object on every side, so the mask's maximum over each column (and each row) should
    match the box's. Dice loss of the two projections, averaged over both axes and the batch; 0 when the mask
    spans the box in both directions. mask, box: b 1 h w in [0, 1]."""
    total = mask.new_zeros(())
    for dim in (-2, -1):
        p, t = mask.amax(dim).flatten(1), box.to(mask.dtype).amax(dim).flatten(1)  # b w (or b h)
        dice = 2 * (p * t).sum(1) / (p.pow(2).sum(1) + t.pow(2).sum(1)).clamp_min(1e-6)
        total = total + (1 - dice).mean()
    return total / 2


def r1_penalty(real: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): squared gradient norm of D at the reals; `real` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


# ---------------------------------------------------------------- DiffAugment (Zhao et al. 2020)
def colour_jitter(x: torch.Tensor, brightness: torch.Tensor, saturation: torch.Tensor,
                  contrast: torch.Tensor) -> torch.Tensor:
    """DiffAugment's colour ops, in its order, from given per-image uniform draws in [0, 1) (each b 1 1 1):
    brightness shift draw - 0.5, saturation x 2 draw, contrast x (draw + 0.5). x: b c h w."""
    x = x + (brightness - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (saturation * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (contrast + 0.5) + mean


def _colour(x: torch.Tensor) -> torch.Tensor:
    return colour_jitter(x, *(torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) for _ in range(3)))


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy[None] + dy + 1).clamp(0, h + 1)
    gx = (gx[None] + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # zeros outside, as the reference implementation
    idx = (gy * (w + 2) + gx).flatten(1)  # b h*w
    return padded.flatten(2).gather(2, idx[:, None].expand(-1, x.shape[1], -1)).view_as(x)


def _cutout(x: torch.Tensor, ratio: float = 0.25) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = ((gy[None] - cy).abs() <= ch // 2) & ((gx[None] - cx).abs() <= cw // 2)
    return x * (~inside)[:, None].to(x.dtype)


_AUGMENTS = {"color": [_colour], "translation": [_translation], "cutout": [_cutout]}


def check_diffaug(cfg: object) -> None:
    """ConfigError naming `cfg.diffaug` when its comma list holds an augmentation DiffAugment does not know."""
    bad = [p for p in (q.strip() for q in cfg.diffaug.split(",")) if p and p not in _AUGMENTS]
    if bad:
        raise ConfigError(f"{type(cfg).__name__}.diffaug={cfg.diffaug!r}: unknown {bad}; "
                          f"expected a comma list of {sorted(_AUGMENTS)}")


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the comma-separated policy ('color,translation,cutout'); '' = identity."""
    for name in filter(None, (p.strip() for p in policy.split(","))):
        if name not in _AUGMENTS:
            raise ValueError(f"diffaug policy {name!r} unknown; expected a comma list of {sorted(_AUGMENTS)}")
        for fn in _AUGMENTS[name]:
            x = fn(x)
    return x


class EMA:
    """Exponential moving average of a module's weights (buffers copied): the model we evaluate and ship.

    GAN-trained mask nets swing from one evaluation to the next (method.md); the average does not.
    """

    def __init__(self, module: nn.Module, decay: float = 0.995):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for ema_p, p in zip(self.module.parameters(), module.parameters()):
            ema_p.lerp_(p.detach(), 1 - self.decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)
