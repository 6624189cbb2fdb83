"""Task 2's data for the copy-paste variant: cut-out windows around object candidates, an object-free plate,
and layouts read off the photo, all on the rescaled photo.

    candidates  object centres: peaks of the foreground's Laplacian-of-Gaussian at the object scale
    plate       the photo with its objects inpainted away (what is left when every object is lifted)
    windows     a window of side `window` around each candidate (reflect-padded at the photo's edge)
    layouts     where objects stand in a random crop of the photo (its candidates), and how much of it they cover

Layouts come from the photo itself, so a composite is as sparse or as dense as the photo where it was read;
which object stands at each place is drawn independently (the independence prior).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import regionprops

from ..data.images import to_float
from .scale import single_objects


def candidates(fg: np.ndarray, width: float, length: float | None = None, spacing: float = 0.5) -> np.ndarray:
    """n 2 (row, col) object centres: maxima of the foreground's scale-normalised Laplacian of Gaussian at the
    object scale (sigma = d / (2 sqrt 2), d = the width, or sqrt(width x length) for elongated objects, whose
    ridge would otherwise give a peak per width), at least `spacing` x d/2 apart, inside the foreground."""
    d = width if length is None or length < 1.5 * width else float(np.sqrt(width * length))
    r = max(1.0, d / 2)
    s = max(1.0, r / np.sqrt(2))
    resp = -ndi.gaussian_laplace(fg.astype(np.float32), s) * s * s
    return peak_local_max(resp, min_distance=max(1, int(spacing * r)), threshold_abs=0.05, labels=fg.astype(np.int32),
                          exclude_border=False)


def plate(image: np.ndarray, fg: np.ndarray, margin: float) -> np.ndarray:
    """The photo with every foreground pixel (grown by `margin` px) inpainted from its surroundings."""
    k = max(1, int(round(margin)))
    grown = cv2.dilate(fg.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return cv2.inpaint(np.ascontiguousarray(image), grown, max(3, k), cv2.INPAINT_TELEA)


def _windows(arr: np.ndarray, centres: np.ndarray, side: int) -> np.ndarray:
    """side x side windows of arr (h w c) centred on each centre (reflect-padded): n side side c."""
    half = side // 2
    pad = np.pad(arr, ((side, side), (side, side), (0, 0)), mode="reflect")
    out = np.empty((len(centres), side, side, arr.shape[2]), arr.dtype)
    for i, (y, x) in enumerate(centres):
        y0, x0 = int(y) + side - half, int(x) + side - half
        out[i] = pad[y0:y0 + side, x0:x0 + side]
    return out


@dataclass
class CutoutScene:
    """Everything the copy-paste GAN draws from, as tensors on its device."""

    image: np.ndarray  # h w 3 uint8, the rescaled photo
    plate: np.ndarray  # h w 3 uint8, objects inpainted away
    fg: np.ndarray  # h w bool
    centres: np.ndarray  # n 2 int
    windows: torch.Tensor  # n 3 P P uint8: the cut-outs
    fg_windows: torch.Tensor  # n 1 P P float: the (grown) foreground in each window; a mask never leaves it
    crop: int
    window: int
    singles: torch.Tensor  # n 1 P P float: the lone object (`scale.single_objects`) a window is
    # centred on, with a soft rim (which may reach a pixel or two past fg_windows); all zero unless the window is
    # centred on a lone object that lies wholly inside it

    @property
    def n(self) -> int:
        return len(self.centres)

    def single_indices(self) -> np.ndarray:
        """The cut-outs centred on a whole lone object (their `singles` mask is not empty)."""
        return np.nonzero(self.singles.flatten(1).amax(1).cpu().numpy() > 0)[0]

    def with_objects(self, objects: np.ndarray) -> CutoutScene:
        """This scene where the windows centred on a whole object of the label map `objects` (rescaled photo) also
        carry that object's mask in `singles`, as the lone objects do (`single_windows`)."""
        extra = torch.from_numpy(single_windows(objects, self.centres, self.window))[:, None]
        return dataclasses.replace(self, singles=torch.maximum(self.singles, extra.to(self.singles.device)))


def make_scene(image: np.ndarray, fg: np.ndarray, width: float, length: float, window: int, crop: int,
               device: torch.device | str = "cpu", centres: np.ndarray | None = None) -> CutoutScene:
    """Candidates (or the given `centres`, n 2 int), plate and cut-out windows of the rescaled photo (typical object
    width and length, px)."""
    centres = candidates(fg, width, length) if centres is None else np.asarray(centres, np.int64).reshape(-1, 2)
    if len(centres) < 2:
        raise ValueError(f"found {len(centres)} object candidate(s) in the foreground; a cluster photo has many")
    grow = max(1, int(round(0.1 * width)))
    fg_grown = cv2.dilate(fg.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    win = torch.from_numpy(_windows(image, centres, window)).permute(0, 3, 1, 2).contiguous()
    fgw = torch.from_numpy(_windows(fg_grown[..., None], centres, window)).permute(0, 3, 1, 2).float()
    singles = torch.from_numpy(single_windows(single_objects(fg, width), centres, window))[:, None]
    return CutoutScene(image, plate(image, fg, 0.15 * width), fg, centres, win.to(device), fgw.to(device), crop, window,
                       singles.to(device))


def single_windows(singles: np.ndarray, centres: np.ndarray, side: int, soften: float = 1.0) -> np.ndarray:
    """n side side float32: for each window centred on a lone object (a label of `singles`) that lies wholly
    inside it, that object's mask with a soft rim (blurred by `soften` px outside the object, so it blends like a
    real border; the mask above 0.5 is the object, give or take a pixel in a notch); zeros for the other windows."""
    out = np.zeros((len(centres), side, side), np.float32)
    half = side // 2
    boxes = {p.label: p.bbox for p in regionprops(singles)}
    for i, (y, x) in enumerate(centres):
        c = int(singles[y, x])
        if c == 0:
            continue
        y0, x0, y1, x1 = boxes[c]
        top, left = int(y) - half, int(x) - half
        if y0 < top or x0 < left or y1 > top + side or x1 > left + side:
            continue  # the object is cut by the window: no whole object to paste
        m = np.zeros((side, side), np.float32)
        m[y0 - top:y1 - top, x0 - left:x1 - left] = singles[y0:y1, x0:x1] == c
        out[i] = np.maximum(m, cv2.GaussianBlur(m, (0, 0), soften)) if soften > 0 else m
    return out


def instance_centres(labels: np.ndarray, fg: np.ndarray, old: np.ndarray) -> np.ndarray:
    """n 2 int: the centroid of every instance of `labels` that lies in the foreground `fg`, then the centres `old`
    that fall in no instance (objects the instances missed keep their candidate)."""
    props = regionprops(labels.astype(np.int32))
    new = np.array([np.rint(p.centroid) for p in props], np.int64).reshape(-1, 2)
    new = new[fg[new[:, 0], new[:, 1]]]
    old = np.asarray(old, np.int64).reshape(-1, 2)
    return np.concatenate([new, old[labels[old[:, 0], old[:, 1]] == 0]])


def one_object_instances(labels: np.ndarray, width: float, length: float, tolerance: float = 1.5,
                         solidity: float = 0.9) -> np.ndarray:
    """The instances of `labels` that look like one object: convex (solidity >= `solidity`) and of a typical
    object's area (an ellipse `width` x `length`) within 1 / tolerance^2 .. tolerance of it, as the factory's
    one-object cut-outs (`copypaste.one_object_cutouts`). Label map (int32, 0 elsewhere)."""
    typical = np.pi / 4 * width * length
    keep = np.zeros(int(labels.max()) + 1, bool)
    for p in regionprops(labels.astype(np.int32)):
        keep[p.label] = p.solidity >= solidity and tolerance**-2 <= p.area / typical <= tolerance
    return np.where(keep[labels], labels, 0).astype(np.int32)


class CompositeBatches:
    """Per step: real crops, plate crops, and layouts (candidate positions of other real crops) with a random
    cut-out, rotation and flip for every place. Seeded by step, so a resumed run sees the same batches.

    `pool`: the cut-outs that may be drawn (default: all). `keep`: the chance that a place keeps the object that
    stands there in the photo, in its own pose, over the plate of that very crop (the labelled-data factory uses
    it, so the segmenter also sees the photo's own arrangements, e.g. rods side by side); 0 for the GAN."""

    def __init__(self, scene: CutoutScene, batch_size: int, max_objects: int, seed: int, device: torch.device,
                 pool: np.ndarray | None = None, keep: float = 0.0):
        self.s, self.b, self.k, self.seed, self.device = scene, batch_size, max_objects, seed, device
        self.pool = np.arange(scene.n) if pool is None else np.asarray(pool)
        self.keep, self.in_pool = keep, np.isin(np.arange(scene.n), self.pool)
        h, w = scene.image.shape[:2]
        if min(h, w) < scene.crop:
            raise ValueError(f"the rescaled photo ({h}x{w}) is smaller than a {scene.crop} px crop")
        self.image = to_float(torch.from_numpy(scene.image.copy()).permute(2, 0, 1)).to(device)  # 3 h w
        self.plate = to_float(torch.from_numpy(scene.plate.copy()).permute(2, 0, 1)).to(device)

    def _crops(self, src: torch.Tensor, ys: np.ndarray, xs: np.ndarray, rng: np.random.Generator,
               flips: bool = True) -> torch.Tensor:
        c = self.s.crop
        out = torch.stack([src[:, y:y + c, x:x + c] for y, x in zip(ys, xs)])  # b 3 c c
        flip = torch.from_numpy((rng.random(len(ys)) < 0.5) & flips).to(src.device)[:, None, None, None]
        return torch.where(flip, out.flip(3), out)

    def _layout(self, y: int, x: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The candidates that reach into the crop at (y, x): their centres in the crop's [-1, 1] coordinates
        (x, y) and their indices, in a random depth order."""
        c, half = self.s.crop, self.s.window / 2
        rel = self.s.centres - np.array([y, x])
        which = np.nonzero(np.all((rel > -half) & (rel < c + half), axis=1))[0]
        rng.shuffle(which)
        which = which[: self.k]
        return rel[which][:, ::-1] / c * 2 - 1, which  # a window centred on pixel y spans y - P/2 .. y + P/2

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        h, w = self.s.image.shape[:2]
        c, b, k = self.s.crop, self.b, self.k
        pick = lambda: (rng.integers(0, h - c + 1, b), rng.integers(0, w - c + 1, b))  # noqa: E731
        real = self._crops(self.image, *pick(), rng)
        plate_at = pick()
        ly, lx = plate_at if self.keep > 0 else pick()  # kept objects stand over the plate of their own crop
        background = self._crops(self.plate, *plate_at, rng, flips=self.keep == 0)
        pos, present, here = np.zeros((b, k, 2), np.float32), np.zeros((b, k), bool), np.full((b, k), -1)
        for i in range(b):
            p, which = self._layout(int(ly[i]), int(lx[i]), rng)
            pos[i, : len(p)], present[i, : len(p)], here[i, : len(p)] = p, True, which
        idx = self.pool[rng.integers(0, len(self.pool), (b, k))]
        rotation = rng.uniform(-np.pi, np.pi, (b, k)).astype(np.float32)
        flip = np.where(rng.random((b, k)) < 0.5, -1.0, 1.0).astype(np.float32)
        kept = (rng.random((b, k)) < self.keep) & (here >= 0) & self.in_pool[np.maximum(here, 0)]
        idx, rotation, flip = np.where(kept, here, idx), np.where(kept, 0.0, rotation), np.where(kept, 1.0, flip)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        return {"real": real, "background": background, "pos": t(pos), "present": t(present), "idx": t(idx),
                "rotation": t(rotation.astype(np.float32)), "flip": t(flip.astype(np.float32))}
