"""Masks out: where each box's mask PNG goes, RLE encoding, and one COCO JSON of all masks.

The COCO file is what FiftyOne, CVAT and detectron2 import; it keeps the input's image, annotation
and category ids when the boxes came from COCO, so results join back to the source annotations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..core.files import atomic_write_text
from .boxes import BoxRecord
from .images import DataError

DEFAULT_CATEGORY = {"id": 1, "name": "foreground"}  # for CSV input, which has no categories



def group_by_image(records: Iterable[BoxRecord]) -> dict[str, list[BoxRecord]]:
    """{file: its boxes}, files in order of first appearance, boxes in input order."""
    groups: dict[str, list[BoxRecord]] = {}
    for r in records:
        groups.setdefault(r.file, []).append(r)
    return groups


def mask_path(out_dir: str | Path, file: str, ann_id: int | None, several: bool) -> Path:
    """<out>/masks/<file as .png> for an image's only box; <out>/masks/<dir>/<stem>_<ann_id>.png for each of several.

    One box keeps the images/ -> masks/ mirror the CUB tooling uses; several need the id to stay apart.
    """
    rel = Path(file)
    if several:
        if ann_id is None:
            raise DataError(f"{file}: several boxes but no annotation id to tell their masks apart")
        rel = rel.with_name(f"{rel.stem}_{ann_id}.png")
    else:
        rel = rel.with_suffix(".png")
    return Path(out_dir) / "masks" / rel


def mask_paths(out_dir: str | Path, records: Sequence[BoxRecord]) -> list[Path]:
    """`mask_path` of every record (parallel list); two boxes landing on one file is a DataError.

    E.g. 'a.jpg' and 'a.png', or 'a_3.jpg' (one box) and 'a.jpg' (several, one with id 3).
    """
    groups = group_by_image(records)
    out: list[Path] = []
    owner: dict[Path, BoxRecord] = {}
    for r in records:
        p = mask_path(out_dir, r.file, r.ann_id, len(groups[r.file]) > 1)
        if p in owner:
            o = owner[p]
            raise DataError(f"{p}: the masks of {o.file} (box {o.ann_id}) and {r.file} (box {r.ann_id}) "
                            "would share this file (expected distinct image names up to the suffix)")
        owner[p] = r
        out.append(p)
    return out


# ----------------------------------------------------------------------------------------- RLE


def encode_rle(mask: np.ndarray) -> dict:
    """Bool (or 0/nonzero integer) HxW mask -> COCO compressed RLE {'size': [h, w], 'counts': str}.

    counts is a str (not bytes) so the dict goes straight into JSON; pycocotools wants Fortran order.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DataError(f"mask: expected a 2-D HxW array, got shape {m.shape}")
    if m.dtype.kind not in "biu":
        raise DataError(f"mask: dtype {m.dtype} (expected bool; threshold soft masks first, e.g. mask >= 0.5)")
    rle = mask_utils.encode(np.asfortranarray(m != 0, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _compressed(rle: Any, where: str = "rle") -> dict:
    """Any COCO RLE (counts str, bytes or an uncompressed list) as pycocotools' bytes form."""
    if not (isinstance(rle, dict) and "counts" in rle and isinstance(rle.get("size"), (list, tuple))
            and len(rle["size"]) == 2):
        raise DataError(f"{where}: expected an RLE dict {{'size': [h, w], 'counts': ...}}, got {type(rle).__name__}")
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise DataError(f"{where}: RLE counts of type {type(counts).__name__} (expected str, bytes or list)")
    return {"size": [h, w], "counts": counts}


def decode_rle(rle: dict) -> np.ndarray:
    """COCO RLE (compressed str/bytes or uncompressed list counts) -> bool HxW, C order."""
    return np.ascontiguousarray(mask_utils.decode(_compressed(rle)).astype(bool))


def segmentation_mask(seg: Any, height: int, width: int, where: str = "segmentation") -> np.ndarray:
    """A COCO annotation's polygons or RLE as a bool HxW mask (pycocotools' annToMask logic)."""
    if isinstance(seg, list):
        if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
            raise DataError(f"{where}: malformed polygons (expected [[x1, y1, x2, y2, x3, y3, ...], ...])")
        try:
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        except (TypeError, ValueError, IndexError) as e:
            raise DataError(f"{where}: malformed polygons: {e}") from e
    else:
        rle = _compressed(seg, where)
        if list(rle["size"]) != [height, width]:
            raise DataError(f"{where}: RLE size {list(rle['size'])} (HxW) differs from the "
                            f"{height}x{width} (HxW) image")
    return np.ascontiguousarray(mask_utils.decode(rle).astype(bool))


# ---------------------------------------------------------------------------------------- COCO


def _assign_ids(values: Sequence[Any], what: str) -> list[int]:
    """Given ids are kept (they must be unique integers); missing ones continue after the largest."""
    given = [v for v in values if v is not None]
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in given):
        raise DataError(f"{what} ids {given[:5]}...: expected integers or None")
    if len(set(given)) != len(given):
        dup = sorted({int(v) for v in given if given.count(v) > 1})
        raise DataError(f"{what} ids {dup[:5]} are used more than once (expected unique ids)")
    nxt = max((int(v) for v in given), default=0) + 1
    out = []
    for v in values:
        if v is None:
            v, nxt = nxt, nxt + 1
        out.append(int(v))
    return out


def _result_images(images: Sequence[dict]) -> list[dict]:
    ids = _assign_ids([im.get("id") for im in images], "image")
    out, seen = [], set()
    for i, (im, iid) in enumerate(zip(images, ids)):
        w, h, name = im.get("width"), im.get("height"), im.get("file_name")
        if not (isinstance(name, str) and all(isinstance(v, (int, np.integer)) and v > 0 for v in (w, h))):
            raise DataError(f"images[{i}]: expected file_name (str), width and height (positive integers), got {im!r}")
        if name in seen:
            raise DataError(f"images[{i}]: file_name {name!r} appears twice (expected one entry per image)")
        seen.add(name)
        out.append({"id": iid, "file_name": name, "width": int(w), "height": int(h)})
    return out


def _result_ann(i: int, a: dict, aid: int, image: dict, default_cat: int | None, cat_ids: set) -> dict:
    where = f"annotations[{i}] ({a.get('file_name')})"
    if a.get("segmentation") is not None:
        rle = _compressed(a["segmentation"], where)
    elif a.get("mask") is not None:
        rle = _compressed(encode_rle(a["mask"]), where)
    else:
        raise DataError(f"{where}: no 'mask' (bool HxW) or 'segmentation' (RLE)")
    if list(rle["size"]) != [image["height"], image["width"]]:
        raise DataError(f"{where}: mask is {rle['size'][0]}x{rle['size'][1]} (HxW), expected "
                        f"{image['height']}x{image['width']} like its image")
    bbox = a.get("bbox")
    bbox = [float(v) for v in (mask_utils.toBbox(rle) if bbox is None else bbox)]
    cid = default_cat if a.get("category_id") is None else int(a["category_id"])
    if len(bbox) != 4 or not all(map(math.isfinite, bbox)) or cid not in cat_ids:
        raise DataError(f"{where}: bbox {bbox} / category_id {cid} (expected 4 finite numbers and one "
                        f"of the category ids {sorted(cat_ids)})")
    out = {"id": aid, "image_id": image["id"], "category_id": cid, "bbox": bbox,
           "area": float(mask_utils.area(rle)), "iscrowd": 0,
           "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}}
    if a.get("score") is not None:
        if not math.isfinite(float(a["score"])):
            raise DataError(f"{where}: score {a['score']} (expected a finite number)")
        out["score"] = float(a["score"])
    return out


def image_entry(records: Sequence[BoxRecord], height: int, width: int) -> dict:
    """The `images` entry of one image for coco_results, keeping the input's image id (None for CSV)."""
    return {"file_name": records[0].file, "id": records[0].image_id, "width": width, "height": height}


def ann_entry(record: BoxRecord, mask: np.ndarray, score: float | None = None) -> dict:
    """The `anns` entry of one box for coco_results: its ids, the input box as bbox, and the mask."""
    return {"file_name": record.file, "id": record.ann_id, "category_id": record.category_id,
            "bbox": list(record.box), "mask": mask, "score": score}


def coco_results(images: Sequence[dict], anns: Sequence[dict], categories: Sequence[dict] | None = None) -> dict:
    """Masks as one COCO dataset dict (instance segmentation, RLE), readable by pycocotools.coco.COCO.

    images: {file_name, width, height, id?}. anns: {file_name, mask (bool HxW) or segmentation (RLE),
    id?, category_id?, bbox?, score?}. Ids given (COCO input) are kept; None ones are made up
    (1..n for CSV input). bbox defaults to the mask's tight box (pass the input box to keep it);
    category_id None means the only category. categories default to [{id 1, 'foreground'}].
    """
    out_images = _result_images(images)
    by_file = {im["file_name"]: im for im in out_images}
    cats = [dict(c) for c in categories] if categories else [dict(DEFAULT_CATEGORY)]
    if not all(isinstance(c.get("id"), int) and isinstance(c.get("name"), str) for c in cats):
        raise DataError(f"categories {cats!r}: expected objects with an integer id and a name")
    cat_ids = {c["id"] for c in cats}
    default = cats[0]["id"] if len(cats) == 1 else None
    out_anns = []
    for i, (a, aid) in enumerate(zip(anns, _assign_ids([a.get("id") for a in anns], "annotation"))):
        if a.get("file_name") not in by_file:
            raise DataError(f"annotations[{i}]: file_name {a.get('file_name')!r} is not in images")
        out_anns.append(_result_ann(i, a, aid, by_file[a["file_name"]], default, cat_ids))
    return {"info": {"description": "masks from indprior segment"}, "images": out_images,
            "annotations": out_anns, "categories": cats}


def write_coco(path: str | Path, images: Sequence[dict], anns: Sequence[dict],
               categories: Sequence[dict] | None = None) -> dict:
    """`coco_results` written atomically (temp file + rename), so readers never see half a file; returns it."""
    data = coco_results(images, anns, categories)
    atomic_write_text(path, json.dumps(data, allow_nan=False))
    return data
