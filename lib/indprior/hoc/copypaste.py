"""Task 2's copy-paste GAN: the independence prior with segmenting providers on real cut-outs of the photo.

A provider is a mask network on a window cut from the photo around an object candidate: the instance is the
real window, its mask m = S(window) (never outside the grown foreground). The layout takes the places where
objects stand in another crop of the photo and puts an independently drawn cut-out at each, with a random
rotation and flip; composition alpha-blends them in random depth order over a crop of the object-free plate.
The critic compares composites with real crops. A mask that carries a piece of a neighbour, or cuts its own
object, looks wrong wherever it is pasted; the area penalty removes what the critic does not need.

Appearance comes from the photo, so it cannot collapse onto one mode (all of the photo's objects are drawn
from); which side is object comes from the foreground (hoc/scale.py), so the background cannot be learned as
the instances. Each composite comes with the exact label map of its instances (the visible masks).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.measure import regionprops
from torch.autograd.profiler import record_function

from ..core.runtime import autocast_enabled
from ..core.trainer import opt_step
from ..data.images import to_float
from ..losses import EMA, area_penalty, binarisation_penalty, d_hinge, diff_augment, edge_aware_smoothness, g_hinge
from ..models import Discriminator, SegmentingProvider, compose_stacked, label_map, pose_to_theta, warp
from .config import HOCConfig
from .cutouts import CompositeBatches, CutoutScene


class CopyPasteGAN:
    """Method object for `core.trainer.Trainer`: mask net (+ EMA) and critic; phases Dmain, Gmain."""

    def __init__(self, cfg: HOCConfig, scene: CutoutScene, obj_frac: float, device: torch.device | str = "cpu",
                 length: float | None = None, elongated: bool = False):
        self.cfg, self.scene, self.device = cfg, scene, torch.device(device)
        self.obj_frac = obj_frac  # a typical object's area / the window's area
        long_min = cfg.area_min_elongated
        self.area_min = long_min if elongated and long_min is not None else cfg.area_min  # the area hinge
        p = scene.window
        self.mask_net = SegmentingProvider(cfg.mask_base, cfg.mask_levels).to(self.device)
        self.D = Discriminator(scene.crop, cfg.d_base).to(self.device)
        self.ema = EMA(self.mask_net, cfg.ema_decay)
        self.opt_g = torch.optim.Adam(self.mask_net.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
        yy, xx = torch.meshgrid(torch.arange(p) + 0.5, torch.arange(p) + 0.5, indexing="ij")
        reach = min(p / 2, cfg.reach * length) if length else p / 2  # a mask never reaches further from the centre
        disc = (torch.hypot(yy - p / 2, xx - p / 2) <= reach).float()  # one object, about a typical one's size
        self.prior = disc[None, None].to(self.device)  # 1 1 P P
        self.amp = autocast_enabled(self.device, cfg.amp, cfg.amp_cpu)
        self._ema_masks: torch.Tensor | None = None  # cache_ema_masks

    def on_scene(self, scene: CutoutScene) -> CopyPasteGAN:
        """A copy of this GAN (mask nets with its weights; a fresh critic) drawing from another scene of the same
        photo: the labelled-data factory's second round cuts its windows around other centres."""
        other = CopyPasteGAN(self.cfg, scene, self.obj_frac, self.device, elongated=False)
        other.area_min, other.prior = self.area_min, self.prior  # the same masks as this GAN's, window for window
        other.mask_net.load_state_dict(self.mask_net.state_dict())
        other.ema.module.load_state_dict(self.ema.module.state_dict())
        return other

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"mask_net": self.mask_net, "D": self.D, "mask_net_ema": self.ema.module}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def masks(self, idx: torch.Tensor, net: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(windows n 3 P P in [-1, 1], masks n 1 P P) of the cut-outs `idx` (flat). A cut-out drawn for several
        places runs through the mask net once (its mask does not depend on where it is pasted; the net's
        instance norm is per sample), and the frozen EMA masks of `cache_ema_masks` are looked up, not recomputed."""
        if net is self.ema.module and self._ema_masks is not None:
            return to_float(self.scene.windows[idx]), self._ema_masks[idx]
        uniq, inverse = torch.unique(idx, return_inverse=True)
        win = to_float(self.scene.windows[uniq])
        m = (net or self.mask_net)(win, self.prior.expand(len(uniq), -1, -1, -1))[1] * self.scene.fg_windows[uniq]
        return win[inverse], m[inverse]

    @torch.no_grad()
    def cache_ema_masks(self) -> None:
        """Compute the EMA mask of every cut-out once, for the labelled-data factory after training (the EMA net
        no longer changes then; a further train_step drops the cache)."""
        if self._ema_masks is not None:
            return
        net, chunks = self.ema.module, []
        for s in range(0, self.scene.n, 64):
            idx = torch.arange(s, min(s + 64, self.scene.n), device=self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                chunks.append(self.masks(idx, net)[1].float())
        self._ema_masks = rescale_ghosts(torch.cat(chunks), self.cfg.ghost_peak)

    @torch.no_grad()
    def use_single_masks(self) -> np.ndarray:
        """For the labelled-data factory: the cut-outs centred on an isolated single object (`scene.singles`) get
        that object's own foreground mask instead of their EMA mask, which on dim, crowded objects covers part of
        the object and part of a neighbour (docs/method.md, session 20). Returns their indices. Lasts until the
        next train_step, like the cache it edits."""
        self.cache_ema_masks()
        idx = self.scene.single_indices()
        if len(idx):
            t = torch.from_numpy(idx).to(self.device)
            self._ema_masks[t] = self.scene.singles[t].to(self._ema_masks.dtype)
        return idx

    def compose(self, batch: dict[str, torch.Tensor], net: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
        """The composites of a batch: image b 3 C C, visible b k 1 C C, and the windows and masks of the n
        places in use (n 3 P P, n 1 P P). Only the places in use run through the mask net."""
        b, k = batch["idx"].shape
        c, p = self.scene.crop, self.scene.window
        used = batch["present"].flatten().nonzero().squeeze(1)  # n
        win, m = self.masks(batch["idx"].flatten()[used], net)  # n 3 P P, n 1 P P
        pose = {"scale": torch.ones(len(used), device=self.device), "rotation": batch["rotation"].flatten()[used],
                "flip": batch["flip"].flatten()[used], "tx": batch["pos"][..., 0].flatten()[used],
                "ty": batch["pos"][..., 1].flatten()[used]}
        a_n, m_n = warp(win, m, pose_to_theta(pose, p / c), (c, c))  # n 3 C C, n 1 C C
        A = torch.zeros(b * k, 3, c, c, device=self.device, dtype=a_n.dtype).index_copy(0, used, a_n)
        M = torch.zeros(b * k, 1, c, c, device=self.device, dtype=m_n.dtype).index_copy(0, used, m_n)
        image, visible = compose_stacked(batch["background"], A.view(b, k, 3, c, c), M.view(b, k, 1, c, c))
        return {"image": image, "visible": visible, "window": win, "m": m}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        self._ema_masks = None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self._step(batch)

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg, aug = self.cfg, (lambda x: diff_augment(x, self.cfg.diffaug))
        out = self.compose(batch)
        with record_function("Dmain"):
            self.D.requires_grad_(True)
            d_real, d_fake = self.D(aug(torch.cat([batch["real"], out["image"].detach()]))).float().split(len(batch["real"]))
            loss_d = d_hinge(d_real, d_fake)
            opt_step(self.opt_d, loss_d)
        with record_function("Gmain"):
            self.D.requires_grad_(False)
            adv = g_hinge(self.D(aug(out["image"])).float())
            m, win = out["m"].float(), out["window"]
            area = area_penalty(m, norm=torch.full((len(m),), self.obj_frac, device=self.device), eta=self.area_min,
                                floor=cfg.area_floor)
            binar, edge = binarisation_penalty(m), edge_aware_smoothness(m, win, cfg.edge_sigma)
            loss_g = adv + cfg.lambda_area * area + cfg.lambda_bin * binar + cfg.lambda_edge * edge
            opt_step(self.opt_g, loss_g)
        self.ema.update(self.mask_net)
        return {"loss/D": loss_d.detach(), "loss/G_adv": adv.detach(), "loss/area": area.detach(),
                "loss/bin": binar.detach(), "loss/edge": edge.detach(), "D/real": d_real.detach().mean(),
                "D/fake": d_fake.detach().mean(), "mask/area_of_object": m.detach().mean() / self.obj_frac,
                "layout/n_present": batch["present"].float().sum() / len(batch["real"])}

    @torch.no_grad()
    def generate(self, batch: dict[str, torch.Tensor], ema: bool = True) -> dict[str, torch.Tensor]:
        """Composites of a batch with the (EMA) mask net: image b 3 C C, visible b k 1 C C, labels b C C."""
        net = self.ema.module if ema else self.mask_net
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.compose(batch, net)
        out = {k: v.float() for k, v in out.items()}
        return {**out, "labels": label_map(out["visible"])}


def rescale_ghosts(masks: torch.Tensor, min_peak: float) -> torch.Tensor:
    """Masks (n 1 P P in [0, 1]) whose peak lies in [min_peak, 0.5) divided by their peak; the others as they are
    (min_peak 0: all as they are). A "ghost" (a dim object's mask, faint but of the object's shape, empty at the
    0.5 threshold) becomes the object's mask; an empty mask (peak below min_peak) stays empty, and a mask that is
    already one at 0.5 is left alone (dividing it too would grow every object's soft border)."""
    if min_peak <= 0:
        return masks
    peak = masks.amax((1, 2, 3), keepdim=True)
    ghost = (peak >= min_peak) & (peak < 0.5)
    return torch.where(ghost, masks / peak.clamp_min(1e-6), masks).clamp(0, 1)


MIN_POOL = 5  # the labelled-data factory draws from every cut-out when fewer than this look like one object


@torch.no_grad()
def one_object_cutouts(gan: CopyPasteGAN, width: float, length: float, tolerance: float = 1.5) -> np.ndarray:
    """Indices of the cut-outs whose (EMA) mask looks like ONE object: one connected blob (at 0.5) whose area,
    width and length are within `tolerance` x (and area above 1 / tolerance^2 x) those of a typical object
    (`width`, `length` in window px). A window centred between touching objects can learn a mask over several
    of them (a cluster pasted elsewhere still looks real); as one label it would teach the segmenter to merge."""
    keep = []
    gan.cache_ema_masks()
    masks = (gan.masks(torch.arange(gan.scene.n, device=gan.device), gan.ema.module)[1][:, 0] > 0.5).cpu().numpy()
    for i, mask in enumerate(masks):  # n P P
        blobs, n = ndi.label(mask)
        if n != 1:
            continue
        p, area = regionprops(blobs)[0], mask.mean() / gan.obj_frac
        if (tolerance**-2 <= area <= tolerance and p.axis_minor_length <= tolerance * width
                and p.axis_major_length <= tolerance * length):
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def factory_pool(gan: CopyPasteGAN, width: float, length: float, tolerance: float = 1.5,
                 singles: bool = False) -> tuple[np.ndarray, dict[str, int | bool]]:
    """The cut-outs the labelled-data factory draws from: those whose EMA mask looks like one object
    (`one_object_cutouts`), with `singles` also those centred on an isolated single object, pasted with that
    object's own mask (`CopyPasteGAN.use_single_masks`); all cut-outs when fewer than `MIN_POOL` qualify. And the
    record of it for metrics.json: {"one_object", "cutouts", "all_used", "pool"} (+ "singles" when used; "pool":
    how many cut-outs the factory draws from)."""
    keep = one_object_cutouts(gan, width, length, tolerance)  # judged on the GAN's own masks: before they are
    # replaced for the lone objects (a second call would judge those)
    record: dict[str, int | bool] = {"one_object": len(keep), "cutouts": gan.scene.n}
    if singles:
        alone = gan.use_single_masks()
        keep = np.union1d(keep, alone)
        record["singles"] = len(alone)
    record["all_used"] = all_used = len(keep) < MIN_POOL
    pool = np.arange(gan.scene.n) if all_used else keep
    record["pool"] = len(pool)
    return pool, record


def composite_sampler(gan: CopyPasteGAN, batches: CompositeBatches, min_visible: float, start: int = 10**6):
    """sample(b) -> (images b 3 C C in [-1, 1], labels b C C) for `siseg.train_segmenter`: fresh layouts every call
    (steps from `start` on, never the GAN's), instances with fewer visible pixels than `min_visible` x a typical
    object's area become background (slivers teach nothing but noise)."""
    min_px = min_visible * gan.obj_frac * gan.scene.window ** 2
    gan.cache_ema_masks()  # the EMA net is frozen from here on: every cut-out's mask once
    counter = iter(range(start, start + 10**9))

    def sample(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch = batches(next(counter))
        batch = {k: v[:b] for k, v in batch.items()}
        out = gan.generate(batch)
        labels = out["labels"]  # b C C
        k = out["visible"].shape[1]
        counts = torch.nn.functional.one_hot(labels, k + 1).sum((1, 2))  # b k+1
        small = counts < min_px
        small[:, 0] = False
        labels = torch.where(small.gather(1, labels.flatten(1)).view_as(labels), torch.zeros_like(labels), labels)
        return out["image"].cpu(), labels.cpu()

    return sample


def object_fraction(width: float, length: float, window: int) -> float:
    """A typical object's area (an ellipse width x length) as a fraction of a window's area."""
    return math.pi / 4 * width * length / window**2
