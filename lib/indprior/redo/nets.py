"""ReDO's four networks (Chen, Artières, Denoyer, NeurIPS 2019), after the paper's supplementary
tables 2-4 and its reference code (github.com/mickaelChen/ReDO, models.py), with width and resolution
as parameters so the same code runs the `smoke`, `cpu` and `paper` profiles.

    MaskNet           f: image -> k soft region masks           b k h w, sum 1 over k  (PSPNet-like)
    RegionGenerators  G_k(m_k, z_k) -> pixels of region k       b k 3 h w, already * m_k
    ResCritic         D: image -> score (n_out=1)               spectral norm, self-attention
                      delta: generated image -> z of every region (n_out = k * z_dim), no attention

Where the paper's text and its code differ we follow the code, because the code made the paper's numbers:
  * the generator's "conditional batch norm" is an instance norm without affine whose scale and shift
    are linear maps of z (`cond_norm="instance"`); `cond_norm="batch"` gives the paper's wording;
  * every region has its own whole generator (the text says all but the last layers are shared);
  * the critics' last linear layer has no spectral norm; the mask net has none at all.
The reference code runs at 128 px only; here any size 2**n >= 32 works: the generator has log2(size/4)
up blocks, the critics log2(size) - 3 down blocks after their first block.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm as sn


def check_size(size: int) -> int:
    if size < 32 or size & (size - 1):
        raise ValueError(f"image_size={size}: ReDO's networks need a power of two >= 32")
    return size


def init_orthogonal(module: nn.Module, gain: float = 0.8) -> None:
    """Orthogonal init of every conv / linear weight: the paper found gain 0.8-1 critical (0.2, 1.4 fail).

    Spectral-norm layers keep the raw weight in `weight_orig`; that is the one to initialise.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight_orig if hasattr(m, "weight_orig") else m.weight, gain)


class SelfAttention(nn.Module):
    """SAGAN attention as ReDO's code: keys and values max-pooled by 2, output scaled by gamma (starts at 0)."""

    def __init__(self, ch: int):
        super().__init__()
        self.heads = max(ch // 8, 1)
        self.f = sn(nn.Conv2d(ch, self.heads, 1, bias=False))
        self.g = sn(nn.Conv2d(ch, self.heads, 1, bias=False))
        self.h = sn(nn.Conv2d(ch, ch // 2, 1, bias=False))
        self.o = sn(nn.Conv2d(ch // 2, ch, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        query = self.f(x).flatten(2)  # b n hw
        key = F.max_pool2d(self.g(x), 2).flatten(2)  # b n hw/4
        value = F.max_pool2d(self.h(x), 2).flatten(2)  # b c/2 hw/4
        attn = F.softmax(key.transpose(1, 2) @ query, dim=1)  # b hw/4 hw: over the keys
        out = (value @ attn).view(b, c // 2, hh, ww)
        return x + self.gamma * self.o(out)


# ------------------------------------------------------------------------------------ mask network f
class _Residual(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.InstanceNorm2d(ch, affine=True),
                                  nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1))
        self.post = nn.Sequential(nn.InstanceNorm2d(ch, affine=True), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.body(x) + x)


def _conv_in_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
    pad = [nn.ReflectionPad2d(k // 2)] if k == 7 else []
    return pad + [nn.Conv2d(cin, cout, k, stride, padding=0 if k == 7 else 1, bias=False),
                  nn.InstanceNorm2d(cout, affine=True), nn.ReLU()]


class MaskNet(nn.Module):
    """Table 2: CycleGAN-like encoder (/4), residual blocks, a pyramid pooling module, decoder (x4).

    The pyramid pools the features into 1, 2, 3 and 6 bins (PSPNet), so every pixel sees the whole
    window: which region is "the object" is a global question. Two regions = a sigmoid and its
    complement (as the reference), more = a softmax.
    """

    BINS = (1, 2, 3, 6)

    def __init__(self, n_regions: int = 2, nf: int = 64, n_res: int = 3, temperature: float = 1.0):
        super().__init__()
        if n_regions < 2:
            raise ValueError(f"n_regions={n_regions}: ReDO needs at least 2 regions (object + background)")
        self.n_regions, self.temperature = n_regions, temperature
        self.encoder = nn.Sequential(*_conv_in_relu(3, nf // 4, 7), *_conv_in_relu(nf // 4, nf // 2, 3, 2),
                                     *_conv_in_relu(nf // 2, nf, 3, 2), *[_Residual(nf) for _ in range(n_res)])
        self.pyramid = nn.ModuleList(nn.Conv2d(nf, 1, 1) for _ in self.BINS)
        c = nf + len(self.BINS)
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), *_conv_in_relu(c, c // 2),
            nn.Upsample(scale_factor=2, mode="nearest"), *_conv_in_relu(c // 2, c // 4),
            nn.ReflectionPad2d(3), nn.Conv2d(c // 4, 1 if n_regions == 2 else n_regions, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 4 and x.shape[1] == 3, f"images must be b 3 h w, got {tuple(x.shape)}"
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"MaskNet input {tuple(x.shape[-2:])} must be divisible by 4")
        f = self.encoder(x)  # b nf h/4 w/4
        pooled = [F.interpolate(conv(F.adaptive_avg_pool2d(f, bins)), size=f.shape[-2:], mode="bilinear",
                                align_corners=False) for bins, conv in zip(self.BINS, self.pyramid)]
        logits = self.decoder(torch.cat([f, *pooled], 1)) / self.temperature  # b 1|k h w
        if self.n_regions == 2:
            m = torch.sigmoid(logits)
            return torch.cat([m, 1 - m], 1)  # b 2 h w
        return F.softmax(logits, 1)  # b k h w


# ------------------------------------------------------------------------------------ region generators
class CondNorm(nn.Module):
    """Normalise (no affine), then scale and shift by linear maps of z: the noise steers texture and colour."""

    def __init__(self, ch: int, z_dim: int, kind: str = "instance"):
        super().__init__()
        if kind not in ("instance", "batch"):
            raise ValueError(f"cond_norm={kind!r}; expected 'instance' (reference code) or 'batch' (paper text)")
        self.norm = nn.InstanceNorm2d(ch, affine=False) if kind == "instance" else nn.BatchNorm2d(ch, affine=False)
        self.gamma, self.beta = nn.Linear(z_dim, ch), nn.Linear(z_dim, ch)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.gamma(z)[:, :, None, None] + self.beta(z)[:, :, None, None]


class _UpBlock(nn.Module):
    """Up residual block; the region's mask, pooled to the block's input scale, is concatenated in."""

    def __init__(self, cin: int, cout: int, z_dim: int, norm: str):
        super().__init__()
        self.norm_a, self.conv_a = CondNorm(cin, z_dim, norm), sn(nn.Conv2d(cin + 1, cout, 3, padding=1, bias=False))
        self.norm_b, self.conv_b = CondNorm(cout, z_dim, norm), sn(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = sn(nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor, m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # x: b cin s s;  m: b 1 s s;  z: b z_dim
        h = torch.cat([F.relu(self.norm_a(x, z)), m], 1)
        h = self.conv_a(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.conv_b(F.relu(self.norm_b(h, z)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))  # b cout 2s 2s


class RegionGenerator(nn.Module):
    """Table 3: z -> 4x4 -> up blocks (channels nf * 2**(n-1) ... nf) -> RGB, multiplied by the mask."""

    def __init__(self, size: int, z_dim: int = 32, nf: int = 32, norm: str = "instance", self_attention: bool = True):
        super().__init__()
        n_up = int(math.log2(check_size(size) // 4))
        chs = [nf * 2 ** (n_up - 1 - i) for i in range(n_up)]  # output channels of each up block
        self.z_dim = z_dim
        self.dense = nn.Linear(z_dim, chs[0] * 16)
        self.blocks = nn.ModuleList(_UpBlock(cin, cout, z_dim, norm) for cin, cout in zip([chs[0], *chs[:-1]], chs))
        self.attn = SelfAttention(chs[-2]) if self_attention else nn.Identity()  # before the last block
        self.norm_out = CondNorm(nf, z_dim, norm)
        self.out = sn(nn.Conv2d(nf + 1, 3, 3, padding=1))

    def forward(self, m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # m: b 1 H W region mask;  z: b z_dim
        x = self.dense(z).view(z.shape[0], -1, 4, 4)
        for i, block in enumerate(self.blocks):
            if i == len(self.blocks) - 1:
                x = self.attn(x)
            x = block(x, F.adaptive_avg_pool2d(m, x.shape[-2:]), z)
        x = self.out(torch.cat([F.relu(self.norm_out(x, z)), m], 1))
        return torch.tanh(x) * m  # b 3 H W, zero outside the region


class RegionGenerators(nn.Module):
    """One generator per region, each drawing its region from its own noise z_k."""

    def __init__(self, n_regions: int, size: int, z_dim: int = 32, nf: int = 32, norm: str = "instance",
                 self_attention: bool = True):
        super().__init__()
        self.nets = nn.ModuleList(RegionGenerator(size, z_dim, nf, norm, self_attention) for _ in range(n_regions))

    def forward(self, masks: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # masks: b k H W;  z: b k z_dim
        assert masks.shape[1] == len(self.nets) == z.shape[1], f"masks {tuple(masks.shape)} / z {tuple(z.shape)}"
        return torch.stack([g(masks[:, k:k + 1], z[:, k]) for k, g in enumerate(self.nets)], 1)  # b k 3 H W


# ------------------------------------------------------------------------------------ D and delta
class _DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool = True, first: bool = False):
        super().__init__()
        self.first, self.down = first, down
        self.conv1, self.conv2 = sn(nn.Conv2d(cin, cout, 3, padding=1)), sn(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = sn(nn.Conv2d(cin, cout, 1)) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if not self.down:
            return h + self.skip(x)
        return F.avg_pool2d(h, 2) + self.skip(F.avg_pool2d(x, 2))  # pool first on the skip, as the reference


class ResCritic(nn.Module):
    """Table 4: residual down blocks to 4x4 (channels nf ... 16 nf at 128 px), a block at 4x4, sum-pool, linear.

    The discriminator (n_out=1, self-attention after the first block) and the z encoder delta
    (n_out = k * z_dim, no attention) share this body.
    """

    def __init__(self, size: int, nf: int = 64, n_out: int = 1, self_attention: bool = False):
        super().__init__()
        n_down = int(math.log2(check_size(size))) - 3
        self.first = _DownBlock(3, nf, first=True)
        self.attn = SelfAttention(nf) if self_attention else nn.Identity()
        chs = [nf * 2**i for i in range(n_down + 1)]
        self.blocks = nn.Sequential(*[_DownBlock(a, b) for a, b in zip(chs[:-1], chs[1:])],
                                    _DownBlock(chs[-1], chs[-1], down=False))
        self.fc = nn.Linear(chs[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.attn(self.first(x)))  # b c 4 4
        return self.fc(h.sum((2, 3)))  # b n_out (no ReLU before the sum, as the reference)
