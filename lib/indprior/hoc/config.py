"""Task 2's config: every knob of the HOC experiment, with its smoke / cpu / paper profiles.

Sizes are in pixels of the RESCALED image, where an instance is `crop / crop_instances` wide; the photo is
rescaled so that it is (see scale.py). What was measured for these defaults is in docs/method.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..core import config as C
from ..losses import check_diffaug
from .siseg import VIEWS


@dataclass
class HOCConfig:
    """Task 2: a GAN on crops of one photo, then an instance segmenter on its composites."""

    SAVED_WITHOUT: ClassVar[dict[str, Any]] = {"area_min_elongated": None, "estimate_factor": 1.0,
                                                 "rim_cap": False}  # runs saved before session 18 masked elongated
    # objects with area_min, before session 33 worked at the estimate itself, before session 41 had no rim cap
    # (core.config.from_dict)
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset(
        {"gan_steps", "seg_steps", "device", "log_every", "ckpt_every", "sample_every", "max_restarts", "amp",
         "amp_cpu", "ghost_peak", "seg_base", "seg_levels", "seg_members", "factory_singles",
         "second_round"})  # ghost_peak, seg_*, factory_singles, second_round: the labelled-data factory and the
    # segmenter alone, made after the GAN
    # (run.train_segmenter_on_composites trains it again when they change; bench/hoc_suite.py --refit)

    profile: str = "cpu"
    seed: int = 0
    device: str = "auto"
    instance_size: float | None = None  # typical diameter in input pixels; None = estimate_instance_size
    estimate_factor: float = 0.8  # round objects in heaps, instance_size not given: the size used is the estimate x
    # this. The estimate runs high where touching objects merge in the foreground, and a size too large merges touching
    # objects; a size too small cuts objects, which the cut check sees and tries again larger (segment.size_for;
    # docs/method.md, session 33)
    rim_cap: bool = True  # ... but their opened diameter, read off the heaps' rims (scale.opened_diameter), where
    # that exceeds it by more than scale.RIM_MARGIN: the estimate x estimate_factor still ran up to 1.2-1.5 x the truth
    # on development heaps (docs/method.md, session 41)
    provider: str = "copypaste"  # "copypaste": masks of real cut-outs (copypaste.py); "generative": the paper's
    # generative providers G(z) -> (RGB, mask) over a coarse generated background (method.py)
    crop: int = 48  # GAN crop side (copypaste: grown to 1.6 object lengths for elongated objects)
    crop_instances: float = 2.5  # crop side in instance diameters: sets the rescale factor
    n_providers: int = 8  # K: the most instances per crop
    provider_size: int = 24
    provider_extent: float = 1.4  # provider canvas side in instance diameters (room for a bigger mask)
    provider_window: bool = False  # mask x a soft disc inscribed in the canvas (no square masks); off by default
    provider_base: int = 16  # provider width; wider is much slower on a CPU
    z_dim: int = 32
    bg_res: int = 6  # background resolution before bilinear upsampling: too coarse to draw an instance
    scale_range: tuple[float, float] = (0.7, 1.4)  # learned instance scale, x the estimated size
    rotation_deg: float = 180.0  # uniform random rotation in +-rotation_deg
    min_gap: float = 0.85  # centres at least min_gap x (r_i + r_j) apart: touching, slight overlap
    border: float = 0.6  # centres may lie up to this many radii outside the crop (cut instances)
    area_eta: float = 0.3  # area hinge bites above this mask fraction of the provider canvas
    lambda_area: float = 1.0
    lambda_bin: float = 0.5  # binarisation: soft masks draw unlabelled "ghosts"
    lambda_div: float = 0.02  # mode-seeking diversity term (Mao et al. 2019); 0 = off
    min_width: float = 0.0  # elongated objects: the rescaled photo keeps them at least this many px wide (0 = off)
    window_extent: float = 1.4  # copypaste: cut-out window side in object lengths
    reach: float = 0.7  # copypaste: a mask is zero further than this many object lengths from its window's centre
    max_objects: int = 24  # copypaste: places per composite at most (a dense crop's layout is cut there)
    keep_layout: float = 0.5  # copypaste: in the segmenter's composites, the chance that a place keeps the object
    # that stands there in the photo, in its own pose (the photo's own arrangements, e.g. rods side by side)
    factory_singles: str = "elongated"  # copypaste, the labelled-data factory: paste the cut-outs centred on an
    # isolated single object with that object's own foreground mask, not the GAN's ("elongated": rods and grains
    # only, "all", "none"). On dim, crowded rods the GAN's masks took pieces of neighbours (docs/method.md, session 20)
    second_round: str = "round"  # copypaste: the labelled-data factory's second round. The first segmenter's
    # instances become the cut-outs' centres (in dense photos the candidates miss up to half of the objects), those that
    # look like one object are pasted with their own masks, and the segmenter is trained again ("round": photos of
    # round objects, "all", "none"). Touching stones of different sizes merged less (docs/method.md, session 21)
    mask_base: int = 16  # copypaste: the mask net's U-Net width and depth
    mask_levels: int = 3
    area_min: float = 0.7  # copypaste: the area penalty bites above this fraction of a typical object's area
    area_min_elongated: float | None = 1.0  # ... for elongated objects (scale.is_elongated: rods, grains); None = area_min.
    # At 0.7 the GAN's masks covered 0.6-0.7 of a rod (a shorter rod still looks like a rod to the critic), so the
    # segmenter learned short rods and cut long ones in two (docs/method.md, session 18)
    ghost_peak: float = 0.05  # copypaste, the labelled-data factory: a cut-out's EMA mask whose peak is below 0.5
    # but at least this is divided by its peak. The GAN gives dim objects faint "ghost" masks of the right shape (pasted
    # at low opacity, a dim object hardly changes a composite); at 0.5 they would be empty, and the segmenter would
    # learn only the bright objects (docs/method.md, sessions 10-11: 0.1, then 0.05). 0 = off
    area_floor: float = 0.0  # copypaste: ... and below this one: every cut-out is centred on an object candidate,
    # so its mask may not vanish (dim objects, which the critic hardly misses, get faint masks). Off: measured on
    # one development photo only (docs/method.md, session 10)
    lambda_edge: float = 5.0  # copypaste: edge-aware smoothness of the masks (losses.edge_aware_smoothness)
    edge_sigma: float = 0.15
    amp: bool = True  # copypaste: bf16 autocast on CUDA
    amp_cpu: bool = True  # copypaste: bf16 autocast on CPUs with native bf16 (others stay fp32)
    diffaug: str = "translation,cutout"
    d_base: int = 16
    gan_steps: int = 800
    batch_size: int = 16
    lr_g: float = 2e-4
    lr_d: float = 1e-4  # the critic learns slower than the generator: at 2e-4 it won outright
    betas: tuple[float, float] = (0.0, 0.9)
    ema_decay: float = 0.995
    seg_steps: int = 600
    seg_batch: int = 16
    seg_lr: float = 1e-3
    seg_base: int = 16
    seg_levels: int = 3
    seg_members: int = 1  # segmenters trained on different draws of the composites, heads averaged; 3 cost 3x the
    # segmenter's time for +0.008 mean F1 on the development rods (docs/method.md, session 17), so 1
    min_visible: float = 0.2  # composites: instances with fewer labelled px than this x a disc's area -> background
    tile: int = 256  # sliding-window side for inference
    views: int = 4  # test-time views averaged by the segmenter: 1 (as it is), 2, 4 (+ flips) or 8 (+ transposes)
    log_every: int = 50
    ckpt_every: int = 500
    sample_every: int = 500
    # a GAN that collapsed (masks empty or everywhere, or the critic far ahead for collapse_patience steps,
    # checked every collapse_check_every steps up to collapse_until) restarts from seed + 1000 k
    collapse_patience: int = 300
    collapse_check_every: int = 250
    collapse_until: int = 1000
    max_restarts: int = 2

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        C.check_fields(self, at_least_1=("crop", "n_providers", "provider_size", "provider_base", "z_dim", "bg_res",
                                         "d_base", "gan_steps", "batch_size", "seg_steps", "seg_batch", "seg_base", "seg_members",
                                         "seg_levels", "tile", "log_every", "max_objects", "mask_base",
                                         "mask_levels"),
                       non_negative=("area_eta", "min_width", "lambda_area", "lambda_bin", "lambda_div", "rotation_deg", "min_gap",
                                     "border", "ckpt_every", "sample_every", "area_min", "area_floor", "ghost_peak", "lambda_edge", "collapse_patience",
                                     "collapse_check_every", "collapse_until", "max_restarts"),
                       unit=("ema_decay", "min_visible", "keep_layout"),
                       positive=("estimate_factor", "crop_instances", "provider_extent", "lr_g", "lr_d", "seg_lr", "window_extent", "edge_sigma",
                                 "reach"))
        C.check_choice(self, "provider", ("copypaste", "generative"))
        C.check_choice(self, "views", VIEWS)
        C.check_choice(self, "factory_singles", ("elongated", "all", "none"))
        C.check_choice(self, "second_round", ("round", "all", "none"))
        check_diffaug(self)
        if self.area_min_elongated is not None and not self.area_min_elongated >= 0:
            raise C.ConfigError(f"HOCConfig.area_min_elongated={self.area_min_elongated!r}: expected None (as area_min) "
                                "or a value >= 0")
        if self.instance_size is not None and not self.instance_size > 0:
            raise C.ConfigError(f"HOCConfig.instance_size={self.instance_size!r}: expected None (estimate) or a size > 0 px")
        C.check_range(self, "scale_range")


C.register_profiles(HOCConfig, {
    "smoke": dict(crop=32, n_providers=4, provider_size=16, provider_base=16, z_dim=8, d_base=8, gan_steps=4,
                  batch_size=4, seg_steps=4, seg_batch=4, seg_base=8, seg_levels=2, log_every=2, ckpt_every=4,
                  sample_every=4, tile=64, mask_base=8, mask_levels=2, max_objects=8, collapse_patience=2,
                  collapse_check_every=2, collapse_until=0, views=1),
    "cpu": dict(),
    "paper": dict(crop=64, provider_size=32, provider_base=64, d_base=64, gan_steps=20000, batch_size=64,
                  seg_steps=10000, seg_batch=32, seg_base=32, log_every=100, ckpt_every=2000, sample_every=2000,
                  mask_base=32, mask_levels=4, collapse_patience=2000, collapse_check_every=1000, collapse_until=10000),
})
