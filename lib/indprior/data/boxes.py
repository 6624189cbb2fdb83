"""Boxes in, mask file names out: the input side of `python -m indprior segment`.

Reads boxes from COCO JSON or a plain CSV into `BoxRecord`s and checks them against the images up
front, so a bad box file fails before any model runs, naming the file and the line or annotation.
Mask file names, RLE and the COCO output are in coco.py; the COCO training view in coco_boxes.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .images import DataError

FORMATS = "'.json' (COCO: images, annotations, categories) or '.csv' (columns file,x,y,w,h)"
CSV_COLUMNS = ("file", "x", "y", "w", "h")


@dataclass(frozen=True)
class BoxRecord:
    """One box to segment; `file` is the image path relative to the images folder, as written.

    COCO input keeps its ids (and the annotation's `segmentation`, ground truth for evaluation only);
    CSV input has ann_id = 1-based data row number and no image or category id.
    """

    file: str
    x: float
    y: float
    w: float
    h: float
    ann_id: int | None = None
    category_id: int | None = None
    image_id: int | None = None
    segmentation: Any | None = field(default=None, hash=False, repr=False)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.w, self.h


@dataclass
class Annotations:
    """What `read_annotations` found: the boxes plus what a COCO output needs to keep the input's ids."""

    path: Path
    records: list[BoxRecord]
    where: list[str]  # how each record is named in messages: 'annotation id 7', 'line 12'
    sizes: dict[str, tuple[int, int]]  # file -> (width, height), declared (COCO) or read from the image
    categories: list[dict]  # the selected COCO categories as written ({id, name, ...}); [] for CSV
    n_crowd: int = 0  # iscrowd=1 annotations skipped


def read_boxes(path: str | Path, images_dir: str | Path | None = None,
               category: int | str | None = None) -> list[BoxRecord]:
    """Boxes of a COCO JSON or CSV file; see `read_annotations` (which also keeps ids and categories)."""
    return read_annotations(path, images_dir, category).records


def read_annotations(path: str | Path, images_dir: str | Path | None = None,
                     category: int | str | None = None) -> Annotations:
    """Read and check a box file; every problem is a DataError naming the file and line / annotation.

    COCO (.json): iscrowd=1 annotations are skipped (a crowd region is not one object to segment).
    `category` is a name or an id (int or digit string; a name wins over an equal id); None takes
    all boxes when they share one category and otherwise fails listing the categories, so a
    multi-class file is never silently mixed. Every annotation is checked, selected or not.
    CSV (.csv): rows 'file,x,y,w,h'; an optional first line naming the columns (one is 'file') may
    reorder them and add extra ones, which are ignored. With `images_dir`, every image must exist
    there and every box must overlap its image; declared COCO sizes must match the image headers
    (catches EXIF-rotated exports). Boxes outside a declared COCO size fail even without images_dir.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a box file: {FORMATS})")
    suffix = path.suffix.lower()
    if suffix == ".json":
        ann = _read_coco(path, category)
    elif suffix == ".csv":
        if category is not None:
            raise DataError(f"{path}: category={category!r} given, but a CSV box file has no categories "
                            "(expected category=None)")
        ann = _read_csv(path)
    else:
        raise DataError(f"{path}: unknown box file format {path.suffix!r} (expected {FORMATS})")
    _check_bounds(ann, "as declared in the file")
    if images_dir is not None:
        _check_images(ann, Path(images_dir))
    return ann


# ------------------------------------------------------------------------------------ helpers


def _few(items: Sequence[Any], n: int = 5) -> str:
    return ", ".join(map(str, items[:n])) + (f" ... ({len(items)} in all)" if len(items) > n else "")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _relfile(value: Any) -> str | None:
    """A safe relative image path (masks are written under it), or None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    rel = value.strip()
    p = Path(rel)
    return None if p.is_absolute() or ".." in p.parts or rel.startswith("\\") else rel


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet exports start with a BOM
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as UTF-8 text: {e}") from e


def _box_values(path: Path, where: str, values: Sequence[Any]) -> tuple[float, float, float, float]:
    if len(values) != 4 or not all(_is_num(v) for v in values):
        raise DataError(f"{path}, {where}: bbox {list(values)!r} is not 4 finite numbers (expected x, y, w, h)")
    x, y, w, h = (float(v) for v in values)
    if not (w > 0 and h > 0):
        raise DataError(f"{path}, {where}: box (x={x}, y={y}, w={w}, h={h}) has w or h <= 0 "
                        "(expected a positive width and height)")
    return x, y, w, h


# --------------------------------------------------------------------------------------- COCO


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                        f"expected COCO") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level is a {type(data).__name__} (expected a COCO object with "
                        "'images', 'annotations' and 'categories')")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: missing or non-list key {key!r} (expected COCO with 'images', "
                            "'annotations' and 'categories' lists)")
    return data


def _coco_images(path: Path, data: dict) -> dict[int, tuple[str, int | None, int | None]]:
    """image id -> (file_name, width, height); ids and file names must be unique."""
    out: dict[int, tuple[str, int | None, int | None]] = {}
    by_file: dict[str, int] = {}
    for i, im in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise DataError(f"{path}, {where}: expected an object with an integer 'id'")
        iid, where = im["id"], f"{where} (id {im['id']})"
        fname = _relfile(im.get("file_name"))
        if fname is None:
            raise DataError(f"{path}, {where}: file_name {im.get('file_name')!r} is not a relative path "
                            "inside the images folder (expected e.g. 'birds/0001.jpg', no '..')")
        size = im.get("width"), im.get("height")
        if any(v is not None and not (_is_int(v) and v > 0) for v in size):
            raise DataError(f"{path}, {where}: width/height {size} (expected positive integers or absent)")
        if iid in out:
            raise DataError(f"{path}, {where}: duplicate image id {iid}")
        if fname in by_file:
            raise DataError(f"{path}, {where}: file_name {fname!r} also used by image id {by_file[fname]}")
        out[iid], by_file[fname] = (fname, *size), iid
    return out


def _coco_categories(path: Path, data: dict) -> dict[int, dict]:
    cats: dict[int, dict] = {}
    for i, c in enumerate(data["categories"]):
        if not (isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)):
            raise DataError(f"{path}, categories[{i}]: expected an object with an integer 'id' and a 'name'")
        if c["id"] in cats:
            raise DataError(f"{path}, categories[{i}]: duplicate category id {c['id']}")
        cats[c["id"]] = c
    return cats


def _check_segmentation(path: Path, where: str, seg: Any) -> Any | None:
    """Polygons [[x, y, ...], ...] or RLE {size, counts}; None when absent or empty."""
    if seg is None or seg == [] or seg == {}:
        return None
    if isinstance(seg, list):
        if all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(map(_is_num, p)) for p in seg):
            return seg
    elif isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 0 for v in size)
                and (isinstance(counts, str) or isinstance(counts, list) and all(map(_is_int, counts)))):
            return seg
    raise DataError(f"{path}, {where}: malformed segmentation (expected polygons [[x1, y1, x2, y2, x3, y3, ...]] "
                    "or RLE {'size': [h, w], 'counts': ...})")


def _coco_record(path: Path, where: str, a: dict, images: dict, cats: dict) -> BoxRecord:
    img = a.get("image_id")
    if not _is_int(img) or img not in images:
        raise DataError(f"{path}, {where}: image_id {img!r} is not the id of an entry in 'images'")
    cid = a.get("category_id")
    if not _is_int(cid) or cid not in cats:
        raise DataError(f"{path}, {where}: category_id {cid!r} is not in 'categories' "
                        f"(expected one of the ids {_few(sorted(cats), 10) or 'none defined'})")
    bbox = a.get("bbox")
    if not isinstance(bbox, list):
        raise DataError(f"{path}, {where}: bbox {bbox!r} is not 4 finite numbers (expected [x, y, w, h])")
    x, y, w, h = _box_values(path, where, bbox)
    seg = _check_segmentation(path, where, a.get("segmentation"))
    return BoxRecord(images[img][0], x, y, w, h, a["id"], cid, img, seg)


def _select_category(path: Path, pairs: list, cats: dict, category: int | str | None) -> tuple[list, list]:
    """Keep the boxes of one category: by name or id, or all when they share one category."""
    counts = Counter(rec.category_id for rec, _ in pairs)
    if category is None:
        if len(counts) <= 1:
            return pairs, [cats[c] for c in counts] or list(cats.values())[:1]
        listing = "; ".join(f"{c['name']!r} (id {cid}): {counts.get(cid, 0)} boxes" for cid, c in cats.items())
        raise DataError(f"{path}: boxes of {len(counts)} categories (expected category=<name or id>, "
                        f"one of: {listing})")
    named = [cid for cid, c in cats.items() if c["name"] == category]
    if not named and (_is_int(category) or isinstance(category, str) and category.strip().isdigit()):
        named = [cid for cid in cats if cid == int(category)]
    if len(named) != 1:
        listing = "; ".join(f"{c['name']!r} (id {cid})" for cid, c in cats.items())
        what = "is ambiguous" if named else "is unknown"
        raise DataError(f"{path}: category {category!r} {what} (expected a name or id of: {listing})")
    return [p for p in pairs if p[0].category_id == named[0]], [cats[named[0]]]


def _read_coco(path: Path, category: int | str | None) -> Annotations:
    data = _load_json(path)
    images, cats = _coco_images(path, data), _coco_categories(path, data)
    pairs: list[tuple[BoxRecord, str]] = []
    seen: dict[int, int] = {}
    n_crowd = 0
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or not _is_int(a.get("id")):
            raise DataError(f"{path}, annotations[{i}]: expected an object with an integer 'id'")
        where = f"annotation id {a['id']} (annotations[{i}])"
        if a["id"] in seen:
            raise DataError(f"{path}, {where}: duplicate annotation id (also annotations[{seen[a['id']]}])")
        seen[a["id"]] = i
        if a.get("iscrowd", 0) not in (0, 1):
            raise DataError(f"{path}, {where}: iscrowd {a['iscrowd']!r} (expected 0 or 1)")
        if a.get("iscrowd", 0) == 1:
            n_crowd += 1
            continue
        pairs.append((_coco_record(path, where, a, images, cats), where))
    pairs, selected = _select_category(path, pairs, cats, category)
    if not pairs:
        raise DataError(f"{path}: no boxes to segment ({len(seen)} annotations, {n_crowd} crowd skipped, "
                        f"category={category!r})")
    sizes = {f: (w, h) for f, w, h in images.values() if w is not None and h is not None}
    return Annotations(path, [r for r, _ in pairs], [w for _, w in pairs], sizes, selected, n_crowd)


# ---------------------------------------------------------------------------------------- CSV


def _csv_header(path: Path, line: str, row: list[str]) -> tuple[dict[str, int], int]:
    names = [c.strip().lower() for c in row]
    missing = [c for c in CSV_COLUMNS if c not in names]
    dups = sorted({n for n in names if names.count(n) > 1})
    if missing or dups or "" in names:
        raise DataError(f"{path}, {line}: header {','.join(row)!r} (expected column names including "
                        f"{','.join(CSV_COLUMNS)}, each once; missing {missing}, repeated {dups})")
    return {c: names.index(c) for c in CSV_COLUMNS}, len(names)


def _read_csv(path: Path) -> Annotations:
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    index, ncols, header = {c: i for i, c in enumerate(CSV_COLUMNS)}, len(CSV_COLUMNS), ",".join(CSV_COLUMNS)
    records, where, first = [], [], True
    for row in reader:
        line = f"line {reader.line_num}"
        if not any(c.strip() for c in row):
            continue
        if first and "file" in (c.strip().lower() for c in row):
            (index, ncols), header = _csv_header(path, line, row), ",".join(c.strip() for c in row)
            first = False
            continue
        first = False
        if len(row) != ncols:
            raise DataError(f"{path}, {line}: {len(row)} columns (expected {ncols}: {header}; "
                            "extra columns are allowed only when a header line names them)")
        fname = _relfile(row[index["file"]])
        if fname is None:
            raise DataError(f"{path}, {line}: file {row[index['file']]!r} is not a relative path inside "
                            "the images folder (expected e.g. 'birds/0001.jpg', no '..')")
        try:
            values = [float(row[index[c]]) for c in CSV_COLUMNS[1:]]
        except ValueError:
            raise DataError(f"{path}, {line}: x,y,w,h {[row[index[c]] for c in CSV_COLUMNS[1:]]} are not "
                            f"all numbers (expected a row {header}, or a header line naming the columns)") from None
        records.append(BoxRecord(fname, *_box_values(path, line, values), ann_id=len(records) + 1))
        where.append(line)
    if not records:
        raise DataError(f"{path}: no boxes (expected rows {header})")
    return Annotations(path, records, where, {}, [])


# ------------------------------------------------------------------------------------- images


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header only: cheap even for thousands of photos."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read the image header (expected an image file): {e}") from e


def _check_bounds(ann: Annotations, source: str) -> None:
    """Every box must overlap its image: a box outside it is a typo or a mismatched image."""
    for r, where in zip(ann.records, ann.where):
        if r.file in ann.sizes:
            W, H = ann.sizes[r.file]
            if not (r.x < W and r.y < H and r.x + r.w > 0 and r.y + r.h > 0):
                raise DataError(f"{ann.path}, {where}: box (x={r.x}, y={r.y}, w={r.w}, h={r.h}) lies outside "
                                f"the {W}x{H} (WxH) image {r.file} ({source}); expected it to overlap the image")


def _check_images(ann: Annotations, images_dir: Path) -> None:
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: images folder does not exist (expected the images named in {ann.path})")
    first = {r.file: (r, w) for r, w in reversed(list(zip(ann.records, ann.where)))}
    files = list(dict.fromkeys(r.file for r in ann.records))
    missing = [f for f in files if not (images_dir / f).is_file()]
    if missing:
        raise DataError(f"{ann.path}: {len(missing)} of {len(files)} images not found in {images_dir}: "
                        f"{_few(missing)} (first referenced at {first[missing[0]][1]})")
    for f in files:
        actual = _image_size(images_dir / f)
        declared = ann.sizes.get(f)
        if declared is not None and declared != actual:
            raise DataError(f"{ann.path}: image id {first[f][0].image_id} ({f}) is declared {declared[0]}x"
                            f"{declared[1]} (WxH) but {images_dir / f} is {actual[0]}x{actual[1]} "
                            "(expected equal sizes; EXIF rotation is not applied)")
        ann.sizes[f] = actual
    _check_bounds(ann, f"read from {images_dir}")
