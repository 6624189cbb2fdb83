"""Task 2 end to end on ONE photo: scale -> GAN -> segmenter on the GAN's composites -> instances, with a status.

`run_hoc` is a sequence of named stages (`measure_scale`, `train_gan`, `train_segmenter_on_composites`,
`segment_photo`), each resumable from the files it leaves in `out_dir`. Outputs: instances.png (uint16, the
photo's size, 0 = background), overlay.png, image.png (the photo), run.json (what `segment` needs to apply the
run to other photos), segmenter.pt, segmenter_log.jsonl (the first round's: segmenter_round1.pt, ..._log.jsonl, when
the factory runs a second round), gan/ (checkpoint, log, samples) and metrics.json,
written last, whose "status" says "ok" or "failed" with the reason and advice. A failed run leaves no
instances.png: an empty label map is never presented as a result. A run whose instances look like pieces of the
objects trains again at a larger size in larger/ and keeps the rounder of the two (`_larger_if_cut`); a run whose
instances disagree with the photo's own reading of one object warns (`checks.size_check`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..core import config as C
from ..core.files import atomic_write_bytes, prepare_out_dir, write_json, write_jsonl
from ..core.restarts import fit_with_restarts, sustained
from ..core.runtime import resolve_device, seed_everything, warn_if_cpu_busy
from ..core.trainer import TrainingError
from ..data.images import DataError, ImageCrops, check_rgb, load_image, load_label_map, save_png_atomic, to_uint8
from ..metrics import count_instances
from ..viz import overlay_instances
from .checks import axis_ratio, size_check, size_note
from .config import HOCConfig
from .copypaste import CopyPasteGAN, composite_sampler, factory_pool, object_fraction
from .cutouts import CompositeBatches, instance_centres, make_scene, one_object_instances
from .method import HOCGAN, composite_batches
from .outputs import Failed, appearance_match, finish, write_instances
from .scale import LEFT_OUT, PhotoStats, is_elongated, photo_stats
from .segment import (
    LARGER,
    drop_rim_frame,
    scaled_geometry,
    segment_photo,
    segment_rescaled,
    segmenter_from_saved,
    size_for,
)
from .siseg import InstanceSegmenter, Segmenter, combine, train_segmenter

COVERED = 0.5  # a run warns when its instances cover less than this share of the photo's foreground (on the
# development runs of session 26 good runs covered 0.87-0.99; a run whose size estimate was 0.7 x the truth, 0.13)
CUT = 1.33  # instances at least this many times as elongated (median axis ratio) as the photo's lone objects are pieces
# of objects (round objects only): on 45 saved development runs with F1 >= 0.85 it was 0.69-1.29 times; on 7 of the 12
# under 0.85 (F1 0.14-0.34, pieces of objects or of objects and backdrop) 1.34-1.73 (docs/method.md, session 30)
GROW = 1.5  # such a run, when its size was estimated, is trained again at this many times the size; the run whose
# instances are less elongated is kept, and a run still cut warns


def _round8(x: float) -> int:
    return max(8, int(math.ceil(x / 8)) * 8)


@dataclass
class Scale:
    """How run_hoc sees a photo: its statistics, the instance size used (given or estimated, input px), the
    rescale factor (one crop spans `crop_instances` sizes), the crops of the rescaled photo, and the copy-paste
    geometry in rescaled px: crop side, cut-out window side, object width and length."""

    stats: PhotoStats
    size: float
    rescale: float
    crops: ImageCrops
    crop: int
    window: int
    width: float
    length: float

    @property
    def elongated(self) -> bool:
        """Rods and grains (`scale.is_elongated`): their own area hinge for the GAN and anisotropic grouping."""
        return is_elongated(self.length, self.width)


def measure_scale(cfg: HOCConfig, img: np.ndarray) -> Scale:
    """The photo's `Scale`. DataError when no objects stand out, or when the rescaled photo is smaller than a crop."""
    stats = photo_stats(img)
    size = size_for(cfg, stats)
    rescale, width, length = scaled_geometry(cfg, stats, size)
    crop = cfg.crop if cfg.provider == "generative" else _round8(max(cfg.crop, 1.6 * length))
    window = _round8(cfg.window_extent * length)
    return Scale(stats, size, rescale, ImageCrops(img, crop, rescale), crop, window, width, length)


def _fg_rescaled(sc: Scale) -> np.ndarray:
    h, w = sc.crops.image.shape[:2]
    return cv2.resize(sc.stats.fg.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0


def collapse_reason(cfg: HOCConfig, history: list[dict[str, Any]]) -> str | None:
    """Masks empty or everywhere, or the critic far ahead, for collapse_patience steps."""
    p = cfg.collapse_patience
    key, low, high = (("mask/area_of_object", 0.2, 4.0) if cfg.provider == "copypaste" else ("mask/area", 0.01, 0.9))
    if sustained(history, key, p, lambda v: v < low):
        return f"masks nearly empty ({key} < {low}) for {p} steps"
    if sustained(history, key, p, lambda v: v > high):
        return f"masks cover everything ({key} > {high}) for {p} steps"
    if sustained(history, "loss/D", p, lambda v: v < 0.1):
        return f"critic far ahead (hinge loss < 0.1) for {p} steps"
    return None


def _samples(batches: CompositeBatches):
    """sample_fn for the Trainer: 8 real crops, 8 composites, their label outlines (gan/samples_<step>.png)."""
    def save(gan: CopyPasteGAN, step: int, folder: Path) -> None:
        batch = {k: v[:8] for k, v in batches(10**8 + step).items()}
        out = gan.generate(batch)
        real = [to_uint8(x) for x in batch["real"].cpu()]
        fake = [to_uint8(x) for x in out["image"].cpu()]
        tiles = [overlay_instances(f, lab, alpha=0.0) for f, lab in zip(fake, out["labels"].cpu().numpy())]
        rows = [np.concatenate(r, 1) for r in (real, fake, tiles)]
        save_png_atomic(folder / f"samples_{step:06d}.png", np.concatenate(rows))
    return save


def gan_run_config(cfg: HOCConfig, sc: Scale) -> dict[str, Any]:
    """What the GAN's checkpoint records and a resume must match: the config, the size used and the rescale. A
    photo of round objects never uses `area_min_elongated`, so it is recorded as None (as area_min) there, which is
    what a checkpoint saved before the field existed reads as: such a run still resumes."""
    run_cfg = {**C.to_dict(cfg), "instance_size_used": sc.size, "rescale": sc.rescale}
    if not sc.elongated:
        run_cfg["area_min_elongated"] = None
    return run_cfg


def train_gan(cfg: HOCConfig, sc: Scale, run_cfg: dict[str, Any], out_dir: Path, device: torch.device,
              resume: bool, progress: bool) -> tuple[Any, list[Any], list[dict[str, Any]], dict[str, Any] | None]:
    """The GAN in out_dir/gan, restarted from a new seed when it collapses. Returns (method, one sampler of
    labelled composites per segmenter member (`seg_members`; each its own draws), collapse events, the copy-paste
    factory's pool: `copypaste.factory_pool`'s record, None for the generative provider)."""
    common = dict(seed=cfg.seed, collapse_reason=lambda h: collapse_reason(cfg, h),
                  check_every=cfg.collapse_check_every, check_until=cfg.collapse_until,
                  max_restarts=cfg.max_restarts, resume=resume, name="HOC GAN", log_every=cfg.log_every,
                  ckpt_every=cfg.ckpt_every, progress=progress, may_change=HOCConfig.RESUME_MAY_CHANGE)
    if cfg.provider == "generative":
        def batches(step: int) -> torch.Tensor:  # seeded by step: a resumed run sees the same crops
            return torch.from_numpy(sc.crops.sample(cfg.batch_size, np.random.default_rng([cfg.seed, step]))).to(device)
        gan, events = fit_with_restarts(lambda s: HOCGAN(cfg, device, fg_frac=sc.stats.fg_frac), out_dir / "gan",
                                        run_cfg, batches, cfg.gan_steps, **common)
        return gan, [composite_batches(gan, cfg.seg_batch) for _ in range(cfg.seg_members)], events, None
    scene, new_gan = _copypaste_parts(cfg, sc, device)
    batches = CompositeBatches(scene, cfg.batch_size, cfg.max_objects, cfg.seed, device)
    gan, events = fit_with_restarts(lambda s: new_gan(), out_dir / "gan", run_cfg, batches, cfg.gan_steps,
                                    sample_fn=_samples(batches), sample_every=cfg.sample_every, **common)
    singles = cfg.factory_singles == "all" or (cfg.factory_singles == "elongated" and sc.elongated)
    pool, record = factory_pool(gan, sc.width, sc.length, singles=singles)  # cut-outs that look like one object,
    # and (rods) cut-outs of lone objects with their own masks
    return gan, factory_samplers(cfg, gan, pool, device), events, record


def factory_samplers(cfg: HOCConfig, gan: CopyPasteGAN, pool: np.ndarray, device: torch.device) -> list[Any]:
    """One sampler of labelled composites per segmenter member, drawn from the cut-outs `pool` of the GAN's scene
    (member 0 draws what a one-member run always drew)."""
    return [composite_sampler(gan, CompositeBatches(gan.scene, cfg.seg_batch, cfg.max_objects, cfg.seed + 1 + 1000 * i,
                                                    device, pool, cfg.keep_layout), cfg.min_visible)
            for i in range(cfg.seg_members)]


def second_round(cfg: HOCConfig, sc: Scale, gan: CopyPasteGAN, seg: Segmenter,
                 device: torch.device) -> tuple[list[Any] | None, dict[str, Any]]:
    """The labelled-data factory again, from what the first segmenter found: its instances' centroids become the
    cut-outs' centres (with the candidates that fell in no instance), the GAN's mask net gives their masks, and
    the windows centred on an instance that looks like one object (`cutouts.one_object_instances`) carry that
    instance's mask, as lone objects do. In dense photos the foreground's candidates miss up to half of the
    objects, so the factory had few cut-outs and sparse layouts (docs/method.md, session 21). Returns (samplers,
    the record for metrics.json: the round's pool, and how many instances and centres it started from); samplers
    None (and the record says why) when the instances give fewer than 2 centres."""
    labels, _ = segment_rescaled(seg, sc.crops.image, cfg, device, sc.length, width=sc.width)
    fg = _fg_rescaled(sc)
    centres = instance_centres(labels, fg, gan.scene.centres)
    if len(centres) < 2:  # one instance over every candidate, its centroid off the foreground: no second round
        return None, {"skipped": f"the first segmenter's {int(labels.max())} instance(s) give {len(centres)} centre(s)"}
    scene = make_scene(sc.crops.image, fg, sc.width, sc.length, sc.window, sc.crop, device, centres=centres)
    scene = scene.with_objects(one_object_instances(labels, sc.width, sc.length))
    gan2 = gan.on_scene(scene)
    pool, record = factory_pool(gan2, sc.width, sc.length, singles=True)
    record.update(instances=int(labels.max()), candidates=int(gan.scene.n))
    return factory_samplers(cfg, gan2, pool, device), record


def train_segmenter_on_composites(cfg: HOCConfig, samplers: list[Any], gan_step: Any, out_dir: Path,
                                  device: torch.device, resume: bool, progress: bool,
                                  factory: dict[str, Any] | None = None, second: bool = False,
                                  name: str = "segmenter") -> Segmenter:
    """The SISeg segmenter trained on the GAN's labelled composites (out_dir/segmenter.pt), one member per sampler
    (`seg_members` > 1: a MeanSegmenter of them); a saved one is reused only when it was made from this very
    generator, factory (`factory`: train_gan's record of its pool) and architecture. `second`: the segmenter of
    the factory's second round (`second_round`), seeded apart from the first. Saved as out_dir/<name>.pt, its
    training log as <name>_log.jsonl."""
    seg_path = out_dir / f"{name}.pt"
    made_from = {"gan": gan_step, "seg_steps": cfg.seg_steps, "seg_base": cfg.seg_base, "seg_levels": cfg.seg_levels,
                 "ghost_peak": cfg.ghost_peak,
                 **({"seg_members": cfg.seg_members} if cfg.seg_members > 1 else {}),  # a saved one-member run matches
                 **({"factory_singles": True} if factory and factory.get("singles") else {}),  # only where lone
                 # objects were pasted with their own masks (rods by default), so a saved run of round objects
                 **({"second_round": True} if second else {})}  # still matches
    other = "segmenter" if name != "segmenter" else "segmenter_round1"  # the first segmenter is saved as one or the
    for path in (seg_path, out_dir / f"{other}.pt"):  # other, as a second round followed it or not
        saved = torch.load(path, map_location="cpu", weights_only=True) if resume and path.is_file() else None
        if saved is not None and saved.get("made_from") == made_from:
            if path != seg_path:
                copy_segmenter(out_dir, other, name)
            return segmenter_from_saved(saved, cfg)
    members, hist = [], []
    for i, sampler in enumerate(samplers):
        seg = InstanceSegmenter(cfg.seg_base, cfg.seg_levels)
        torch.manual_seed(cfg.seed + i + (31 if second else 0))
        rows = train_segmenter(seg, sampler, cfg.seg_steps, cfg.seg_batch, cfg.seg_lr, device, progress)
        members.append(seg)
        hist += [{**r, "member": i} for r in rows] if len(samplers) > 1 else rows
    states = [m.state_dict() for m in members]
    atomic_write_bytes(seg_path, lambda f: torch.save({"state": states[0], "made_from": made_from,
                                                       **({"members": states[1:]} if len(states) > 1 else {})}, f))
    write_jsonl(out_dir / f"{name}_log.jsonl", hist)
    return combine(members)


def copy_segmenter(out_dir: Path, src: str, dst: str) -> None:
    """out_dir/<src>.pt and its <src>_log.jsonl (when there is one) copied to <dst>.pt, <dst>_log.jsonl, atomically."""
    for suffix in (".pt", "_log.jsonl"):
        if (out_dir / f"{src}{suffix}").is_file():
            data = (out_dir / f"{src}{suffix}").read_bytes()
            atomic_write_bytes(out_dir / f"{dst}{suffix}", lambda f, b=data: f.write(b))


def rebuild_gan(out_dir: str | Path, img: np.ndarray, device: str | torch.device = "cpu") -> dict[str, Any]:
    """A finished run's trained copy-paste GAN, for figures: {"cfg", "scale", "scene", "gan", "batches", "step"}."""
    from ..core.trainer import CHECKPOINT, load_checkpoint
    info = json.loads((Path(out_dir) / "run.json").read_text())
    if info.get("larger"):  # the run kept its second try (_larger_if_cut)
        return rebuild_gan(Path(out_dir) / LARGER, img, device)
    cfg = C.from_dict(HOCConfig, info["config"])
    if cfg.provider != "copypaste":
        raise ValueError(f"{out_dir}: provider={cfg.provider!r}; rebuild_gan shows the copy-paste GAN")
    device = torch.device(device)
    built = build_copypaste(cfg, img, device, batch_size=8, batch_seed=cfg.seed + 2)
    state = load_checkpoint(Path(out_dir) / "gan" / CHECKPOINT, built["gan"], map_location=device)
    return {"cfg": cfg, **built, "step": state["step"]}


def _copypaste_parts(cfg: HOCConfig, sc: Scale, device: torch.device) -> tuple[Any, Callable[[], CopyPasteGAN]]:
    """The cut-out scene of the rescaled photo and a maker of fresh copy-paste GANs on it (one per restart)."""
    scene = make_scene(sc.crops.image, _fg_rescaled(sc), sc.width, sc.length, sc.window, sc.crop, device)
    frac = object_fraction(sc.width, sc.length, sc.window)
    return scene, lambda: CopyPasteGAN(cfg, scene, frac, device, sc.length, elongated=sc.elongated)


def build_copypaste(cfg: HOCConfig, img: np.ndarray, device: torch.device | str = "cpu", batch_size: int | None = None,
                    batch_seed: int | None = None) -> dict[str, Any]:
    """An untrained copy-paste GAN on a photo, as train_gan builds it: {"scale", "scene", "gan", "batches"}
    (for figures and benchmarks; training goes through run_hoc)."""
    device = torch.device(device)
    sc = measure_scale(cfg, img)
    scene, new_gan = _copypaste_parts(cfg, sc, device)
    gan = new_gan()
    batches = CompositeBatches(scene, batch_size or cfg.batch_size, cfg.max_objects,
                               cfg.seed if batch_seed is None else batch_seed, device)
    return {"scale": sc, "scene": scene, "gan": gan, "batches": batches}


# ----------------------------------------------------------------------------- inputs
def _photo(image: str | Path | np.ndarray) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return load_image(image)
    return check_rgb(image, "image (array)")


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


# ----------------------------------------------------------------------------- the whole experiment
def _warn(facts: dict[str, Any], note: str) -> None:
    """A run that goes on but may be wrong: the note under metrics.json's "warnings" and as a RuntimeWarning."""
    facts.setdefault("warnings", []).append(note)
    warnings.warn(note, RuntimeWarning, stacklevel=3)


def _train_and_segment(cfg: HOCConfig, img: np.ndarray, out_dir: Path, device: torch.device, resume: bool,
                       progress: bool, facts: dict[str, Any]) -> np.ndarray:
    """Every stage after the inputs; `facts` collects what metrics.json reports. Raises Failed with advice."""
    try:
        sc = measure_scale(cfg, img)
    except DataError as err:
        raise Failed(str(err), "check that the photo shows many objects on a background; pass instance_size "
                               "(typical object diameter in px) if the objects are tiny") from err
    facts.update(instance_size=sc.size, instance_size_estimated=sc.stats.diameter, width=sc.stats.width,
                 length=sc.stats.length, fg_frac=sc.stats.fg_frac, rescale=sc.rescale,
                 elongated=sc.elongated,  # which area hinge the GAN's masks had, and grouping
                 foreground_left_out=round(sc.stats.left_out, 3), heaped=round(sc.stats.heaped, 3),
                 instance_size_opened=sc.stats.opened or None)  # heaped round objects: read off the rims
    if sc.stats.left_out > LEFT_OUT:  # the run goes on, but says that its objects may come out cut
        _warn(facts, f"the foreground leaves out {sc.stats.left_out:.0%} of its own area in parts that clearly "
                     "differ from the backdrop: objects may come out cut to one face or one colour (check overlay.png)")
    run_cfg = gan_run_config(cfg, sc)
    write_json(out_dir / "run.json", {"config": C.to_dict(cfg), "rescale": sc.rescale, "instance_size": sc.size,
                                      "crop": sc.crop, "window": sc.window, "width": sc.width, "length": sc.length})
    t0 = time.perf_counter()
    try:
        gan, samplers, events, pool = train_gan(cfg, sc, run_cfg, out_dir, device, resume, progress)
    except TrainingError as err:
        raise Failed(str(err), "try another seed (--set seed=1) or pass instance_size") from err
    facts.update(gan_seconds=round(time.perf_counter() - t0, 1), restarts=len(events), collapses=events)
    if pool is not None:
        facts["factory_pool"] = pool  # how many cut-outs the segmenter's composites were drawn from
        if pool["all_used"]:
            lone = f" and {pool['singles']} are lone objects" if pool.get("singles") else ""
            _warn(facts, f"only {pool['one_object']} of {pool['cutouts']} cut-outs' masks look like one object{lone}, "
                         "so the segmenter learns from all of them, masks over several objects included: touching "
                         "objects may come out merged. Try another seed (--set seed=1)")
    gan_step = [cfg.seed, len(events), cfg.gan_steps]
    again = cfg.provider == "copypaste" and (cfg.second_round == "all" or (cfg.second_round == "round" and not sc.elongated))
    seg = train_segmenter_on_composites(cfg, samplers, gan_step, out_dir, device, resume, progress, factory=pool,
                                        name="segmenter_round1" if again else "segmenter")
    if cfg.provider == "copypaste":
        facts["appearance_match"] = appearance_match(samplers[0], img, sc.stats.fg)
    if again:
        samplers, facts["second_round"] = second_round(cfg, sc, gan, seg, device)
    if again and samplers is None:  # skipped: the first segmenter is the final one (segment_with_run reads it)
        copy_segmenter(out_dir, "segmenter_round1", "segmenter")
    elif again:
        seg = train_segmenter_on_composites(cfg, samplers, gan_step, out_dir, device, resume, progress,
                                            factory=facts["second_round"], second=True)
    labels, pieces = segment_photo(seg, sc.crops.image, cfg, img.shape[:2], device, sc.length, width=sc.width,
                                   with_pieces=True)
    joined = pieces is not labels  # (segment_photo gives the instances themselves when no pieces were joined)
    labels, facts["rim_frame_dropped"] = drop_rim_frame(labels, sc.stats.fg, sc.stats.width)
    pieces = drop_rim_frame(pieces, sc.stats.fg, sc.stats.width)[0] if joined else labels
    covered = float(((labels > 0) & sc.stats.fg).sum() / max(1, sc.stats.fg.sum()))
    facts["foreground_covered"] = round(covered, 3)
    if covered < COVERED:  # the run goes on, but says that most of the photo's objects may be missing
        _warn(facts, f"the instances cover only {covered:.0%} of the photo's foreground: most objects may be missing "
                     "or the size used may be wrong (check overlay.png; pass instance_size, the typical object "
                     "diameter in px)")
    _check_cut(facts, pieces, sc)
    facts["size_check"] = size_check(labels, sc.stats, sc.elongated)
    return labels


def _check_cut(facts: dict[str, Any], labels: np.ndarray, sc: Scale) -> None:
    """Records the instances' median axis ratio and the lone objects' (length / width), and whether the instances
    are much longer for their width than the lone objects (`CUT`, round objects only): pieces of objects, which
    `foreground_covered` cannot see (a size far too small cuts each object in two or three, and the instances still
    cover the foreground). `_larger_if_cut` acts on it. `labels` are the instances before round pieces are joined
    (`join_round_pieces` would hide the pieces a size too small makes: docs/method.md, session 38)."""
    ratio = axis_ratio(labels)
    facts["instance_axis_ratio"] = None if ratio is None else round(ratio, 3)
    facts["lone_axis_ratio"] = round(max(1.0, sc.stats.length / sc.stats.width), 3)
    facts["cut"] = ratio is not None and not sc.elongated and ratio >= CUT * facts["lone_axis_ratio"]


def _cut_note(facts: dict[str, Any]) -> str:
    return (f"the instances are {facts['instance_axis_ratio']:.2f} times as long as wide (median), the photo's lone "
            f"objects {facts['lone_axis_ratio']:.2f}: objects may be cut into pieces (or joined to the backdrop between "
            f"them) because the size used ({facts['instance_size']:.0f} px) is wrong (check overlay.png; pass "
            "instance_size, the typical object diameter in px)")


def _tried(facts: dict[str, Any], labels: np.ndarray | None) -> dict[str, Any]:
    """One try's line in metrics.json's "sizes_tried"."""
    return {"instance_size": facts.get("instance_size"), "instance_axis_ratio": facts.get("instance_axis_ratio"),
            "status": facts.get("status", "ok"), "reason": facts.get("reason"),
            "count": None if labels is None else count_instances(labels)}


def _larger_if_cut(cfg: HOCConfig, img: np.ndarray, out_dir: Path, device: torch.device, resume: bool,
                   progress: bool, base: dict[str, Any], facts: dict[str, Any],
                   labels: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """A run whose size was estimated and whose instances look like pieces (`_check_cut`) is trained again in
    out_dir/larger at `GROW` x that size. The run whose instances are less elongated is kept: its label map and facts
    (with both tries under "sizes_tried"), and, when it is the larger one, run.json says so ("larger": true), so that
    `segment` and `rebuild_gan` read that folder. The kept run warns if it still looks cut, else if its size check
    (`checks.size_check`) says the instances disagree with the photo. (`base`: the facts known before any stage ran.)"""
    if facts["cut"] and cfg.instance_size is None:
        bigger = dataclasses.replace(cfg, instance_size=GROW * facts["instance_size"])
        alt = dict(base)
        try:
            alt_labels = _train_and_segment(bigger, img, prepare_out_dir(out_dir / LARGER), device, resume, progress,
                                            alt)
        except Failed as failure:
            alt_labels, alt = None, {**alt, **failure.as_status()}
        tried = [_tried(facts, labels), _tried(alt, alt_labels)]
        keep_larger = alt_labels is not None and alt["instance_axis_ratio"] is not None and (
            alt["instance_axis_ratio"] < facts["instance_axis_ratio"])
        info = json.loads((out_dir / "run.json").read_text())
        write_json(out_dir / "run.json", {**info, "larger": keep_larger})
        labels, facts = (alt_labels, alt) if keep_larger else (labels, facts)
        facts = {**facts, "sizes_tried": tried}
    if facts["cut"]:
        _warn(facts, _cut_note(facts))
    elif note := size_note(facts["size_check"], facts["instance_size"]):  # (a cut run's warning says it already)
        _warn(facts, note)
    return labels, facts


def run_hoc(cfg: HOCConfig, image: str | Path | np.ndarray, out_dir: str | Path,
            gt_instances: str | Path | np.ndarray | None = None, *, resume: bool = True,
            progress: bool = True) -> dict[str, Any]:
    """GAN on crops of ONE photo -> segmenter on its composites -> instances.png / overlay.png / metrics.json.

    Returns the metrics; "status" is "ok" or "failed" (then "reason" and "advice" say why and what to try, a
    RuntimeWarning is raised and no instances.png is left). The GT (optional) is read first, so a bad file fails
    before any training; it is used for the metrics only. The Otsu + watershed baseline runs on the same photo.
    """
    t0 = time.perf_counter()
    out_dir = prepare_out_dir(out_dir)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    busy = warn_if_cpu_busy(device)
    img = _photo(image)
    gt = _gt(gt_instances, img.shape[:2])
    (out_dir / "metrics.json").unlink(missing_ok=True)  # metrics.json is written last: it marks complete outputs
    save_png_atomic(out_dir / "image.png", img)
    facts: dict[str, Any] = {"task": "hoc", "provider": cfg.provider, "profile": cfg.profile, "device": str(device),
                             "seed": cfg.seed, "gan_steps": cfg.gan_steps, "seg_steps": cfg.seg_steps,
                             "instance_size_given": cfg.instance_size is not None,  # else estimated (size_for)
                             "image": str(Path(image).resolve()) if isinstance(image, (str, Path)) else "image.png",
                             "gt": str(Path(gt_instances).resolve()) if isinstance(gt_instances, (str, Path)) else None}
    if busy:
        facts["cpu_busy_at_start"] = busy  # so its seconds are read as what they are
    try:
        base = dict(facts)
        labels = _train_and_segment(cfg, img, out_dir, device, resume, progress, facts)
        labels, facts = _larger_if_cut(cfg, img, out_dir, device, resume, progress, base, facts, labels)
        status = write_instances(out_dir, img, labels)
    except Failed as failure:
        labels, status = None, failure.as_status()
        (out_dir / "instances.png").unlink(missing_ok=True)
        (out_dir / "overlay.png").unlink(missing_ok=True)
    metrics = finish(facts, status, labels, gt, img, time.perf_counter() - t0)
    write_json(out_dir / "metrics.json", metrics)
    if metrics["status"] != "ok":
        warnings.warn(f"HOC run failed: {metrics['reason']} ({metrics['advice']})", RuntimeWarning, stacklevel=2)
    return metrics
