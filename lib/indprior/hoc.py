"""Task 2: instances from ONE image of a homogeneous object cluster (HOC: coins, berries, cells).

1. `estimate_instance_size`: the typical instance diameter, read off the image itself, fixes the scale:
   the image is rescaled so that a training crop spans `crop_instances` instance diameters.
2. `HOCGAN`: K generative providers with SHARED weights and independent z_k draw (RGB, mask) pairs; a
   layout places them (learned scale within a prior range, random rotation / flip, random non-overlapping
   centres across the crop, a data-driven number of instances); composition alpha-blends them over a
   background generated at 6x6 and upsampled, so the background CANNOT draw an instance (method.md dead
   end #1: an expressive background drew the whole cluster and every mask collapsed). A spectral-norm
   critic with DiffAugment compares composites with real crops.
3. The trained generator is a labelled-data factory (`composite_batches`): each composite comes with an
   exact instance label map, on which the SISeg segmenter is trained and then applied to the real image.

Measured (1,500 GAN + 600 segmenter steps, seed 0, one run each, shared 2-core CPU; AP = score-less AP):
  coins (hand-checked GT, 24):  AP50 0.70, AP 0.46, count 27   | watershed AP50 0.74, AP 0.70, count 30
    (re-run in session 2 with this code, 1 thread; session 1 had reported 0.92 / 0.63 / 24 from an earlier
    code state - not reproducible. The rows below are session 1's and were not re-run.)
  synthetic seed 0 (35 discs):  AP50 0.92, AP 0.75, count 34   | watershed 0.00 (grey Otsu misses the discs)
  synthetic seed 2 (32 discs):  AP50 1.00, AP 0.85, count 32   | watershed AP50 1.00, AP 0.44  (provider_window on)
  provider_window on (canvas 1.25 d, eta 0.35): coins AP50 0.70; on with canvas 1.4 d: 0.88; syn 0: same AP50.
  Open: every provider draws nearly the same instance (appearance collapse; the mode-seeking term at
  lambda_div 0.02 did not lift the logged spread) and mask borders stay coarse.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage as ndi
from skimage.color import rgb2lab
from skimage.segmentation import relabel_sequential
from torch.autograd.profiler import record_function

from . import config as C
from .baselines import otsu_watershed
from .data import DataError, ImageCrops, load_image, load_label_map, save_png_atomic, to_uint8
from .losses import EMA, area_penalty, binarisation_penalty, d_hinge, diff_augment, g_hinge
from .metrics import instance_scores
from .models import Discriminator, GenerativeProvider, Layout, compose, pose_to_theta, warp
from .siseg import InstanceSegmenter, predict_instances, train_segmenter
from .train import Trainer, atomic_write_bytes, atomic_write_text, prepare_out_dir, resolve_device, seed_everything
from .viz import overlay_instances

COINS_GT = Path(__file__).with_name("assets") / "coins_gt.png"  # see assets/make_coins_gt.py


# ----------------------------------------------------------------------------- scale from the data
def _foreground(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """2-means in standardised Lab of the blurred image; foreground = the class that owns less border.

    Why not Otsu on grey: coloured instances on a textured background often share its brightness.
    """
    lab = rgb2lab(cv2.GaussianBlur(image, (0, 0), sigma)).reshape(-1, 3).astype(np.float32)
    lab = (lab - lab.mean(0)) / (lab.std(0) + 1e-6)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.1)
    cv2.setRNGSeed(0)  # k-means++ init: same image, same answer
    _, lbl, _ = cv2.kmeans(lab, 2, None, crit, 3, cv2.KMEANS_PP_CENTERS)
    fg = lbl.reshape(image.shape[:2]) == 1
    border = np.concatenate([fg[0], fg[-1], fg[:, 0], fg[:, -1]])
    fg = ~fg if border.mean() > 0.5 else fg
    return ndi.binary_opening(fg, np.ones((3, 3), bool))


def cluster_stats(image: np.ndarray) -> dict[str, float]:
    """{'diameter': typical instance diameter in px, 'fg_frac': foreground fraction} of a cluster image.

    Diameter = 2 x the area-weighted median *local thickness* of the foreground (the radius of the
    largest disc inside the foreground that covers a pixel; computed by openings with discs of every
    radius, via two distance transforms each). Touching instances keep their own thickness, unlike
    connected-component areas; thin debris weighs little because it has little area.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 16:
        raise ValueError(f"image: expected uint8 HxWx3 with sides >= 16, got {image.dtype} {image.shape}")
    fg = _foreground(image)
    total = float(fg.sum())
    if total < 16:
        raise ValueError("image: no foreground found; pass instance_size explicitly")
    dist = ndi.distance_transform_edt(fg)
    areas = [total]
    for r in range(1, int(dist.max()) + 2):  # area of the opening by a disc of radius r
        core = dist >= r
        areas.append(float((ndi.distance_transform_edt(~core) < r).sum()) if core.any() else 0.0)
    removed = -np.diff(areas)  # pixels whose local thickness lies in (r - 1, r]
    radius = float(np.interp(0.5, np.cumsum(removed) / removed.sum(), np.arange(1, len(areas))))
    return {"diameter": 2.0 * radius, "fg_frac": total / fg.size}


def estimate_instance_size(image: np.ndarray) -> float:
    """Typical instance diameter in pixels (see `cluster_stats`). Measured: within 25% of the truth on
    47 of 60 synthetic HOC images (median ratio 0.93, range 0.69-1.71; the misses come from the 2-means
    foreground merging dense packs or losing shaded halves); 47.3 px on coins, whose hand-checked GT has
    a median equivalent diameter of 43.4 px (+9%). The layout's learned scale range absorbs such errors."""
    return cluster_stats(image)["diameter"]


# ----------------------------------------------------------------------------- config
@dataclass
class HOCConfig:
    """Task 2. Sizes are in pixels of the RESCALED image, where an instance is crop / crop_instances wide."""

    profile: str = "cpu"
    seed: int = 0
    device: str = "auto"
    instance_size: float | None = None  # typical diameter in input pixels; None = estimate_instance_size
    crop: int = 48  # GAN crop side
    crop_instances: float = 2.5  # crop side in instance diameters: sets the rescale factor
    n_providers: int = 8  # K: the most instances per crop
    provider_size: int = 24
    provider_extent: float = 1.4  # provider canvas side in instance diameters (room for a bigger mask)
    provider_window: bool = False  # mask x a soft disc inscribed in the canvas; measured no better (see notes)
    provider_base: int = 16  # 2-core CPU: base 64 runs ~5x slower per step (measured 1.05 vs 5.6 steps/s)
    z_dim: int = 32
    bg_res: int = 6  # background resolution before bilinear upsampling: too coarse to draw an instance
    scale_range: tuple[float, float] = (0.7, 1.4)  # learned instance scale, x the estimated size
    rotation_deg: float = 180.0  # uniform random rotation in +-rotation_deg
    min_gap: float = 0.85  # centres at least min_gap x (r_i + r_j) apart: touching, slight overlap
    border: float = 0.6  # centres may lie up to this many radii outside the crop (cut instances)
    area_eta: float = 0.3  # area hinge bites above this mask fraction of the provider canvas
    lambda_area: float = 1.0
    lambda_bin: float = 0.5  # 0.1: soft masks drew unlabelled ghosts (session 1: coins AP50 0.46 -> 0.92 with lr_d 1e-4,
    # at an earlier code state; the shipped code re-measured 0.70)
    lambda_div: float = 0.02  # mode-seeking diversity term (Mao et al. 2019); 0 = off
    diffaug: str = "translation,cutout"
    d_base: int = 16
    gan_steps: int = 1500  # cpu: 1500 + 600 segmenter steps took 14.7 min on a shared 2-core CPU
    batch_size: int = 16
    lr_g: float = 2e-4
    lr_d: float = 1e-4  # 2e-4: D won outright (D/real 3.5, D/fake -2.7 at 1.4k steps)
    betas: tuple[float, float] = (0.0, 0.9)
    ema_decay: float = 0.995
    seg_steps: int = 600
    seg_batch: int = 16
    seg_lr: float = 1e-3
    seg_base: int = 16
    seg_levels: int = 3
    min_visible: float = 0.2  # composites: instances with fewer labelled px than this x a disc's area -> background
    tile: int = 256  # sliding-window side for inference
    log_every: int = 50
    ckpt_every: int = 500
    sample_every: int = 500

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        C.check_fields(self, at_least_1=("crop", "n_providers", "provider_size", "provider_base", "z_dim", "bg_res",
                                         "d_base", "gan_steps", "batch_size", "seg_steps", "seg_batch", "seg_base",
                                         "seg_levels", "tile", "log_every"),
                       non_negative=("area_eta", "lambda_area", "lambda_bin", "lambda_div", "rotation_deg", "min_gap",
                                     "border", "ckpt_every", "sample_every"),
                       unit=("ema_decay", "min_visible"), positive=("crop_instances", "provider_extent", "lr_g", "lr_d", "seg_lr"))
        if self.instance_size is not None and not self.instance_size > 0:
            raise C.ConfigError(f"HOCConfig.instance_size={self.instance_size!r}: expected None (estimate) or a size > 0 px")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise C.ConfigError(f"HOCConfig.scale_range={self.scale_range}: expected (low, high) with 0 < low <= high")


C.register_profiles(HOCConfig, {
    "smoke": dict(crop=32, n_providers=4, provider_size=16, provider_base=16, z_dim=8, d_base=8, gan_steps=4,
                  batch_size=4, seg_steps=4, seg_batch=4, seg_base=8, seg_levels=2, log_every=2, ckpt_every=4,
                  sample_every=4, tile=64),
    "cpu": dict(),
    "paper": dict(crop=64, provider_size=32, provider_base=64, d_base=64, gan_steps=20000, batch_size=64,
                  seg_steps=10000, seg_batch=32, seg_base=32, log_every=100, ckpt_every=2000, sample_every=2000),
})


# ----------------------------------------------------------------------------- generator
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


def label_map(visible: torch.Tensor) -> torch.Tensor:
    """b k 1 h w visible masks -> b h w labels: 1 + argmax where the best visible mask > 0.5, else 0."""
    best, idx = visible[:, :, 0].max(1)  # b h w
    return torch.where(best > 0.5, idx + 1, torch.zeros_like(idx))


class HOCGAN:
    """Method object for `train.Trainer`: D step and G step of the HOC generator (phases Dmain, Gmain)."""

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
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
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
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
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


# ----------------------------------------------------------------------------- the whole experiment
def fill_instance_holes(labels: np.ndarray) -> np.ndarray:
    """Background enclosed by one instance joins it: instances are compact, and the segmenter's
    foreground head misses dark details inside bright objects (coin reliefs)."""
    out = labels.copy()
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None:
            region = out[sl]
            region[ndi.binary_fill_holes(region == k) & (region == 0)] = k
    return out


def upsample_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label map to (h, w) with smooth borders: each instance's mask is resized bilinearly and the
    highest one above 0.5 wins (nearest-neighbour resizing leaves 1/rescale-pixel staircases)."""
    h, w = size
    if labels.max() == 0 or int(labels.max()) * h * w > 5e8:  # too many instances x pixels: nearest
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    best, out = np.full((h, w), 0.5, np.float32), np.zeros((h, w), labels.dtype)
    for k in np.unique(labels[labels > 0]):
        p = cv2.resize((labels == k).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        win = p > best
        out[win], best[win] = k, p[win]
    return out


def _gt(gt: str | Path | np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if gt is None:
        return None
    if isinstance(gt, (str, Path)):
        return load_label_map(gt, expected_shape=shape)  # DataError names the file and both sizes
    arr = np.asarray(gt)
    if arr.ndim != 2 or arr.shape != tuple(shape) or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"gt_instances (array): label map is {arr.dtype} {arr.shape}, expected an integer "
                        f"{shape[0]}x{shape[1]} (HxW) map to match the image")
    return arr.astype(np.uint16)


def _scores(pred: np.ndarray, gt: np.ndarray | None, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {"count_pred": int(len(np.unique(pred[pred > 0]))), "seconds": round(seconds, 1)}
    if gt is not None:
        s = instance_scores(pred, gt)
        row.update({k: s[k] for k in ("count_gt", "ap50", "ap", "miou_matched")})
    return row


def _sampler(gan: HOCGAN) -> Callable[[int, Path], None]:
    def save(step: int, out_dir: Path) -> None:  # 8 composites; below them, their label outlines
        out = gan.generate(8)
        ims = [to_uint8(im) for im in out["image"].cpu()]
        labs = out["labels"].cpu().numpy()
        tiles = [overlay_instances(im, lab, alpha=0.0) for im, lab in zip(ims, labs)]
        grid = np.concatenate([np.concatenate(ims, 1), np.concatenate(tiles, 1)])  # 2s 8s 3
        save_png_atomic(out_dir / f"samples_{step:06d}.png", grid)
    return save


def segment_rescaled(seg: InstanceSegmenter, image: np.ndarray, cfg: HOCConfig, device: torch.device | str = "cpu"):
    """The trained segmenter on the rescaled photo with run_hoc's grouping settings -> (labels, head maps)."""
    d_px = cfg.crop / cfg.crop_instances  # instance diameter in rescaled px
    return predict_instances(seg, image.copy(), tile=cfg.tile, overlap=cfg.tile // 8, device=device,
                             min_size=max(8, int(cfg.min_visible * math.pi * (d_px / 2) ** 2)),
                             bandwidth=max(1.5, d_px / 10))


def load_segmenter(out_dir: str | Path, cfg: HOCConfig) -> InstanceSegmenter:
    """The instance segmenter run_hoc trained (out_dir/segmenter.pt)."""
    path = Path(out_dir) / "segmenter.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run hoc.run_hoc into {out_dir} first")
    seg = InstanceSegmenter(cfg.seg_base, cfg.seg_levels)
    seg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state"])
    return seg


def run_hoc(cfg: HOCConfig, image: str | Path | np.ndarray, out_dir: str | Path,
            gt_instances: str | Path | np.ndarray | None = None, *, resume: bool = True,
            progress: bool = True) -> dict[str, Any]:
    """GAN on crops of ONE image -> segmenter on its composites -> instances.png / overlay.png / metrics.json.

    The GT (optional) is read first, so a bad file fails before any training; it is used for the metrics
    only. The watershed baseline runs on the same image at its original size.
    """
    t0 = time.perf_counter()
    out_dir = prepare_out_dir(out_dir)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    img = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise DataError(f"image (array): expected uint8 HxWx3, got {img.dtype} {img.shape}")
    gt = _gt(gt_instances, img.shape[:2])
    stats = cluster_stats(img)
    size = float(cfg.instance_size or stats["diameter"])
    rescale = cfg.crop / cfg.crop_instances / size
    crops = ImageCrops(img, cfg.crop, rescale)  # DataError when the rescaled image is smaller than a crop
    gan = HOCGAN(cfg, device, fg_frac=stats["fg_frac"])

    def batches(step: int) -> torch.Tensor:  # seeded by step: a resumed run sees the same crops
        return torch.from_numpy(crops.sample(cfg.batch_size, np.random.default_rng([cfg.seed, step]))).to(device)

    run_cfg = {**C.to_dict(cfg), "instance_size_used": size, "rescale": rescale}
    trainer = Trainer(gan, out_dir / "gan", run_cfg, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every,
                      sample_every=cfg.sample_every, sample_fn=_sampler(gan), progress=progress)
    trainer.fit(batches, cfg.gan_steps, resume=resume)
    t_gan = time.perf_counter() - t0
    fg_gen = float((gan.generate(64)["labels"] > 0).float().mean())
    if cfg.gan_steps >= 200 and fg_gen < 0.05:  # a few smoke steps draw nothing yet, by design
        warnings.warn(f"HOC generator draws almost no instances (foreground {fg_gen:.3f}): mask collapse; "
                      "try another seed", RuntimeWarning, stacklevel=2)

    seg = InstanceSegmenter(cfg.seg_base, cfg.seg_levels)
    seg_path = out_dir / "segmenter.pt"
    made_from = {"gan_step": trainer.step, "seg_steps": cfg.seg_steps, "seg_base": cfg.seg_base, "seg_levels": cfg.seg_levels}
    saved = torch.load(seg_path, map_location="cpu", weights_only=True) if resume and seg_path.is_file() else None
    if saved is not None and saved.get("made_from") == made_from:  # reuse only a segmenter of this very generator
        seg.load_state_dict(saved["state"])
    else:
        torch.manual_seed(cfg.seed)
        hist = train_segmenter(seg, composite_batches(gan, cfg.seg_batch), cfg.seg_steps, cfg.seg_batch,
                               cfg.seg_lr, device, progress)
        atomic_write_bytes(seg_path, lambda f: torch.save({"state": seg.state_dict(), "made_from": made_from}, f))
        atomic_write_text(out_dir / "segmenter_log.jsonl", "".join(json.dumps(h) + "\n" for h in hist))
    (out_dir / "metrics.json").unlink(missing_ok=True)  # metrics.json is written last: it marks complete outputs
    small, _ = segment_rescaled(seg, crops.image, cfg, device)
    h, w = img.shape[:2]
    labels = relabel_sequential(fill_instance_holes(upsample_labels(small, (h, w))))[0].astype(np.uint16)
    save_png_atomic(out_dir / "instances.png", labels)
    save_png_atomic(out_dir / "overlay.png", overlay_instances(img, labels, alpha=0.45))
    seconds = time.perf_counter() - t0

    tb = time.perf_counter()
    base = otsu_watershed(img)
    metrics: dict[str, Any] = {"task": "hoc", **_scores(labels, gt, seconds), "instance_size": size,
                               "image": str(Path(image).resolve()) if isinstance(image, (str, Path)) else None,
                               "gt": str(Path(gt_instances).resolve()) if isinstance(gt_instances, (str, Path)) else None,
                               "instance_size_estimated": stats["diameter"], "rescale": rescale,
                               "profile": cfg.profile, "device": str(device), "gan_steps": cfg.gan_steps,
                               "seg_steps": cfg.seg_steps, "gan_seconds": round(t_gan, 1),
                               "baseline_watershed": _scores(base, gt, time.perf_counter() - tb)}
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
