"""COCO boxes as a training set: one sample per box, split by image, GT masks for evaluation only.

Gives the same `Sample`s as CubDataset (id, name, uint8 HxWx3 image, clipped box, bool mask or None), so task 1
trains on any COCO export (CVAT, Label Studio, FiftyOne): dataset spec 'coco:<images_dir>:<annotations.json>'.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from .boxes import BoxRecord, read_annotations
from .coco import segmentation_mask
from .cub import Sample
from .images import DataError, load_image

SPLITS = ("train", "test", "all")


def is_test_image(file: str, test_fraction: float, seed: int = 0) -> bool:
    """Stable per-image coin: sha256 of (seed, file name) against test_fraction.

    Not Python's hash() (salted per process); adding images never moves existing ones across the split.
    """
    digest = hashlib.sha256(f"{seed}\0{file}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < test_fraction


def box_name(record: BoxRecord) -> str:
    """'birds/0001.jpg', ann 7 -> 'birds/0001_7.jpg': unique per box since annotation ids are.

    The image suffix is kept so Path(name).with_suffix('.png') (indprior's mask_file) stays right
    for stems with dots, and equals the mask file maskio.mask_path writes for several boxes.
    """
    p = Path(record.file)
    return str(p.with_name(f"{p.stem}_{record.ann_id}{p.suffix}"))


class CocoBoxes:
    """Boxes of a COCO file (or box CSV, without GT) as samples (name, image, box, gt mask or None).

    Boxes are checked up front (read_annotations with images_dir), images decoded lazily. The split
    is by image (all boxes of a photo on one side, so no test object was seen in training).
    """

    def __init__(self, images_dir: str | Path, ann_json: str | Path, split: str = "train",
                 category: int | str | None = None, test_fraction: float = 0.2, seed: int = 0) -> None:
        if split not in SPLITS:
            raise DataError(f"split={split!r}: unknown split (expected one of {', '.join(SPLITS)})")
        if not (isinstance(test_fraction, (int, float)) and 0.0 <= test_fraction <= 1.0):
            raise DataError(f"test_fraction={test_fraction!r}: expected a number in [0, 1]")
        self.images_dir, self.ann_json, self.split = Path(images_dir), Path(ann_json), split
        ann = read_annotations(self.ann_json, self.images_dir, category)
        keep = [r for r in ann.records
                if split == "all" or is_test_image(r.file, test_fraction, seed) == (split == "test")]
        if not keep:
            n = len({r.file for r in ann.records})
            raise DataError(f"{self.ann_json}: split {split!r} is empty ({n} images, test_fraction="
                            f"{test_fraction}, seed={seed}; expected at least one image on each side)")
        self.records: list[BoxRecord] = keep
        self.names: list[str] = [box_name(r) for r in keep]
        self.categories: list[dict] = ann.categories
        self.sizes: dict[str, tuple[int, int]] = ann.sizes  # file -> (width, height)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    @property
    def files(self) -> list[str]:
        """The images of this split, in order of first appearance."""
        return list(dict.fromkeys(r.file for r in self.records))

    def image_path(self, index: int) -> Path:
        return self.images_dir / self.records[index].file

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        r = self.records[index % len(self)]
        path = self.images_dir / r.file
        image = load_image(path)
        H, W = image.shape[:2]
        x0, y0 = max(r.x, 0.0), max(r.y, 0.0)
        x1, y1 = min(r.x + r.w, float(W)), min(r.y + r.h, float(H))
        if x1 <= x0 or y1 <= y0:  # read_annotations checked the header size; the file changed since
            raise DataError(f"{path}: box {r.box} of annotation {r.ann_id} lies outside the {W}x{H} (WxH) image")
        mask = None
        if r.segmentation is not None:
            mask = segmentation_mask(r.segmentation, H, W, where=f"{self.ann_json}, annotation id {r.ann_id}")
        return Sample(id=int(r.ann_id), name=self.names[index % len(self)], image=image,
                      box=(x0, y0, x1 - x0, y1 - y0), mask=mask)
