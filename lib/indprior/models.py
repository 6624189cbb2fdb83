"""The generator of the independence prior: instance providers -> layout -> composition, and the critic.

    provider_k  ->  (a_k: b 3 h w RGB in [-1, 1],  m_k: b 1 h w soft mask in [0, 1])
    layout      ->  per-instance affine pose theta_k (scale, rotation, translation, flip) in prior ranges,
                    applied with a spatial transformer to a_k and m_k alike -> A_k, M_k on the canvas
    composition ->  I = B;  for k in depth order:  I = M_k * A_k + (1 - M_k) * I
                    plus each instance's *visible* mask, an exact instance label of the composite.

Providers never see each other: that is the independence the prior is named after.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    raise ValueError(f"norm={kind!r}; expected 'instance' or 'batch'")


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str = "instance"):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.LeakyReLU(0.2, inplace=True),
        )


class UNet(nn.Module):
    """A plain U-Net: `levels` poolings, channels base * 2**i (capped at 8 * base)."""

    def __init__(self, cin: int, cout: int, base: int = 32, levels: int = 4, norm: str = "instance"):
        super().__init__()
        self.levels = levels
        chs = [min(base * 2**i, 8 * base) for i in range(levels + 1)]
        self.down = nn.ModuleList([ConvBlock(cin, chs[0], norm)])
        self.down.extend(ConvBlock(chs[i], chs[i + 1], norm) for i in range(levels))
        self.up = nn.ModuleList(ConvBlock(chs[i + 1] + chs[i], chs[i], norm) for i in reversed(range(levels)))
        self.head = nn.Conv2d(chs[0], cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = 2**self.levels
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ValueError(f"UNet input {tuple(x.shape[-2:])} must be divisible by 2**levels = {step}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        return self.head(x)


@torch.no_grad()
def colour_cue(window: torch.Tensor, box: torch.Tensor, levels: int = 8) -> torch.Tensor:
    """How much more often each pixel's colour occurs inside the box than in the window's margin around it.

    The colours are binned (`levels` per channel); with h_in, h_out the normalised histograms of the box and of
    the rest of the window (each bin + 0.5), the cue of a pixel is h_in / (h_in + h_out) of its bin: near 1 for
    colours found only inside the box, 0.5 for colours found alike in both, 0 outside the box. A label-free
    feature of the window alone (the first estimate GrabCut's colour models start from), so it is computed
    again for every view, flip or pasted window. window: b 3 s s in [-1, 1]; box: b 1 s s in {0, 1}. Returns
    b 1 s s float32 in [0, 1].
    """
    b, n_bins = window.shape[0], levels ** 3
    q = ((window.float() + 1) * (levels / 2)).long().clamp(0, levels - 1)
    bins = ((q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]).flatten(1)  # b (s s)
    inside = box.flatten(1).float()
    h_in = torch.zeros(b, n_bins, device=window.device).scatter_add_(1, bins, inside) + 0.5
    h_out = torch.zeros(b, n_bins, device=window.device).scatter_add_(1, bins, 1 - inside) + 0.5
    p_in = (h_in / h_in.sum(1, keepdim=True)).gather(1, bins)
    p_out = (h_out / h_out.sum(1, keepdim=True)).gather(1, bins)
    return (p_in / (p_in + p_out) * inside).view(box.shape)


class SegmentingProvider(nn.Module):
    """Task-1 provider: the instance is the real box window; its mask is predicted by a U-Net.

    The net sees the window and the box (4th channel) and its mask is multiplied by the box, so the
    mask is zero outside the box by construction. With `cue` > 0 (colour levels per channel) it also sees
    `colour_cue` (5th channel), and its logits are a correction to the cue's log-odds: it starts from the
    window's own colour statistics and the adversarial game reshapes that (docs/method.md, session 27).
    """

    CUE_CLAMP = 0.02  # the cue's log-odds are taken of the cue clamped to [0.02, 0.98] (at most +-3.9)

    def __init__(self, base: int = 32, levels: int = 4, cue: int = 0):
        super().__init__()
        self.cue = cue
        self.net = UNet(5 if cue else 4, 1, base, levels, norm="instance")

    def forward(self, window: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # window: b 3 h w in [-1, 1];  box: b 1 h w in {0, 1}
        assert window.dim() == 4 and window.shape[1] == 3, f"window must be b 3 h w, got {tuple(window.shape)}"
        assert box.shape[1:] == (1, *window.shape[2:]), f"box must be b 1 h w, got {tuple(box.shape)}"
        if not self.cue:
            return window, torch.sigmoid(self.net(torch.cat([window, box * 2 - 1], 1))) * box
        cue = colour_cue(window, box, self.cue)
        logits = self.net(torch.cat([window, box * 2 - 1, cue.to(window.dtype) * 2 - 1], 1)).float()  # b 1 h w
        cue = cue.clamp(self.CUE_CLAMP, 1 - self.CUE_CLAMP)
        logits = logits + torch.log(cue / (1 - cue))
        return window, torch.sigmoid(logits) * box


class GenerativeProvider(nn.Module):
    """Task-2 provider: z_k -> (a_k RGB, m_k mask) at instance resolution `size`."""

    def __init__(self, z_dim: int = 32, size: int = 24, base: int = 64, n_up: int = 3):
        super().__init__()
        if size % 2**n_up:
            raise ValueError(f"provider size={size} must be divisible by 2**n_up = {2**n_up}")
        self.z_dim, self.size, self.start = z_dim, size, size // 2**n_up
        ch = [base * 2 ** max(n_up - i - 1, 0) for i in range(n_up + 1)]
        self.fc = nn.Linear(z_dim, ch[0] * self.start**2)
        self.ch0 = ch[0]
        blocks = []
        for i in range(n_up):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch[i], ch[i + 1], 3, padding=1),
                       nn.BatchNorm2d(ch[i + 1]), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(nn.BatchNorm2d(ch[0]), nn.ReLU(inplace=True), *blocks)
        self.rgb = nn.Conv2d(ch[-1], 3, 3, padding=1)
        self.mask = nn.Conv2d(ch[-1], 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert z.dim() == 2 and z.shape[1] == self.z_dim, f"z must be b {self.z_dim}, got {tuple(z.shape)}"
        h = self.body(self.fc(z).view(-1, self.ch0, self.start, self.start))
        return torch.tanh(self.rgb(h)), torch.sigmoid(self.mask(h))  # b 3 s s, b 1 s s


class Layout(nn.Module):
    """Per-instance pose within prior ranges: scale, rotation, translation (+ random flip).

    An MLP maps a code (noise or pooled instance features) to four numbers squashed into the ranges,
    so the pose is learned but can never leave what is plausible.
    """

    def __init__(self, code_dim: int, scale: tuple[float, float] = (0.9, 1.1), rotation_deg: float = 10.0,
                 translation: float = 0.1, flip: bool = True, hidden: int = 64):
        super().__init__()
        self.code_dim, self.scale, self.flip = code_dim, scale, flip
        self.rotation, self.translation = math.radians(rotation_deg), translation
        self.mlp = nn.Sequential(nn.Linear(code_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 4))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, code: torch.Tensor) -> dict[str, torch.Tensor]:
        u = self.mlp(code)  # b 4
        lo, hi = self.scale
        pose = {
            "scale": lo + (hi - lo) * torch.sigmoid(u[:, 0]),
            "rotation": self.rotation * torch.tanh(u[:, 1]),
            "tx": self.translation * torch.tanh(u[:, 2]),
            "ty": self.translation * torch.tanh(u[:, 3]),
        }
        if self.flip and self.training:
            pose["flip"] = (torch.rand(code.shape[0], device=code.device) < 0.5).float() * 2 - 1
        else:
            pose["flip"] = torch.ones(code.shape[0], device=code.device)
        return pose


def pose_to_theta(pose: dict[str, torch.Tensor], instance_frac: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Inverse affine (canvas -> instance coordinates) for `F.affine_grid`, b 2 3.

    `instance_frac` = instance side / canvas side: an instance of half the canvas at scale 1 covers half.
    """
    s = pose["scale"] * instance_frac
    cos, sin = torch.cos(pose["rotation"]), torch.sin(pose["rotation"])
    # forward map: x_canvas = s * R * diag(flip, 1) * x_inst + t  ->  invert
    inv = torch.stack([torch.stack([cos * pose["flip"], sin * pose["flip"]], -1),
                       torch.stack([-sin, cos], -1)], -2) / s[:, None, None]  # b 2 2
    t = torch.stack([pose["tx"], pose["ty"]], -1)[..., None]  # b 2 1
    return torch.cat([inv, -inv @ t], -1)


def warp(a: torch.Tensor, m: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial transformer: place instance (a, m) on a canvas of `size` with pose `theta` (b 2 3)."""
    b = a.shape[0]
    grid = F.affine_grid(theta, [b, 4, *size], align_corners=False)
    out = F.grid_sample(torch.cat([a, m], 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, :3], out[:, 3:]  # b 3 H W, b 1 H W  (mask is 0 where the instance does not reach)


def compose(background: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha-over in depth order (first = deepest). Returns the image and each layer's visible mask.

    visible_k = M_k * prod_{j > k} (1 - M_j): what of instance k survives the ones drawn over it.
    """
    image = background  # b 3 H W
    for a, m in layers:
        assert a.shape == background.shape and m.shape == (a.shape[0], 1, *a.shape[2:]), "layer shape mismatch"
        image = m * a + (1 - m) * image
    visible, cover = [], torch.ones_like(background[:, :1])
    for _, m in reversed(layers):
        visible.append(m * cover)
        cover = cover * (1 - m)
    if not layers:
        return image, background.new_zeros(background.shape[0], 0, 1, *background.shape[2:])
    return image, torch.stack(visible[::-1], 1)  # b 3 H W, b k 1 H W


def compose_stacked(background: torch.Tensor, A: torch.Tensor, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`compose` for stacked layers, without a Python loop: A b k 3 H W, M b k 1 H W (first = deepest).

    visible_k = M_k * prod_{j > k} (1 - M_j) (a reverse cumulative product) and I = B * prod_j (1 - M_j) +
    sum_k visible_k * A_k: the same image as alpha-over in depth order, in a handful of batched ops."""
    assert A.dim() == 5 and M.shape == (A.shape[0], A.shape[1], 1, *A.shape[3:]), "layer shape mismatch"
    keep = 1 - M  # b k 1 H W
    after = torch.cat([keep[:, 1:].flip(1).cumprod(1).flip(1), torch.ones_like(keep[:, :1])], 1)  # prod_{j > k}
    visible = M * after
    image = background * (keep[:, 0] * after[:, 0]) + (visible * A).sum(1)  # b 3 H W
    return image, visible


def label_map(visible: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """... k 1 h w visible masks (from `compose`) -> ... h w labels: 1 + argmax where the best mask > threshold, else 0.
    The exact instance label map of a composite."""
    best, idx = visible[..., 0, :, :].max(-3)  # ... h w
    return torch.where(best > threshold, idx + 1, torch.zeros_like(idx))


class Discriminator(nn.Module):
    """Spectral-norm conv critic (as ReDO): strided convs down to ~4x4, then a linear score per image.

    head="sum": sum-pool the 4x4 features first (any input size; a bag of local features);
    head="flatten": a linear layer over the whole 4x4 map (fixed input size; knows where things are).
    """

    def __init__(self, size: int, base: int = 32, cin: int = 3, head: str = "sum"):
        super().__init__()
        if size < 8:
            raise ValueError(f"Discriminator size={size}: expected at least 8 pixels")
        if head not in ("sum", "flatten"):
            raise ValueError(f"Discriminator head={head!r}: expected 'sum' or 'flatten'")
        n_down = max(1, int(math.log2(size / 4)))
        layers, ch = [spectral_norm(nn.Conv2d(cin, base, 3, padding=1)), nn.LeakyReLU(0.2, inplace=True)], base
        for i in range(n_down):
            nxt = min(base * 2 ** (i + 1), 8 * base)
            layers += [spectral_norm(nn.Conv2d(ch, nxt, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            ch = nxt
        self.body = nn.Sequential(*layers)
        self.head, self.size = head, size
        side = size // 2 ** n_down
        self.fc = spectral_norm(nn.Linear(ch * (side * side if head == "flatten" else 1), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head == "flatten" and x.shape[-1] != self.size:
            raise ValueError(f"Discriminator(head='flatten') was built for {self.size} px, got {tuple(x.shape[-2:])}")
        h = self.body(x)
        return self.fc(h.flatten(1) if self.head == "flatten" else h.sum((2, 3))).squeeze(1)  # b
