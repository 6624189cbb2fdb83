"""Files that are never half-written: atomic writes (temp file + rename), PNGs, run folders, JSONL logs.

Every output of a run goes through here, so a crash or a reader in the middle of a write never sees a
truncated checkpoint, a half PNG or a folder holding a mix of old and new masks.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


class DataError(ValueError):
    """Input data is missing, malformed or inconsistent; the message names the file."""


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create `out_dir` and prove it is writable before any work starts (a clear error, not one at the end)."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"out_dir={str(path)!r} is not a writable folder ({err.strerror or err}); "
                              "choose another out_dir") from err
    return path


def atomic_write_bytes(path: str | Path, write: Callable[[Any], None]) -> None:
    """Write through a temp file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_json(path: str | Path, obj: Any) -> None:
    """`obj` as indented JSON, atomically (metrics.json, restarts.json)."""
    atomic_write_text(path, json.dumps(obj, indent=2))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a fresh folder that replaces `path` only when the block ends without error.

        with atomic_dir(out / "masks") as tmp:
            save_png_atomic(tmp / "a.png", ...)

    A crash inside leaves the old `path` (if any) untouched, never a half-written mix of old and new files;
    the temp folder (`.name.tmp-*`) is removed. The swap is two renames: old -> `.name.old-*`, temp -> path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove(path: str | Path) -> None:
    """Delete a file or a folder if it exists (outputs of a stage that is now switched off)."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def save_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write a PNG atomically (`atomic_write_bytes`), so readers never see half a file.

    Accepts uint8 HxW / HxWx3 / HxWx4, uint16 HxW (label maps, written as 16-bit) and bool HxW
    (written as 0/255 uint8, the mask convention). Parent folders are created.
    """
    path = Path(path)
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    ok = (arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)))
          or arr.dtype == np.uint16 and arr.ndim == 2)
    if not ok or arr.size == 0:
        raise DataError(f"{path}: cannot save array of dtype {arr.dtype} and shape {arr.shape} "
                        "(expected uint8 HxW/HxWx3/HxWx4, uint16 HxW or bool HxW)")
    atomic_write_bytes(path, lambda f: Image.fromarray(np.ascontiguousarray(arr)).save(f, format="PNG"))


# ----------------------------------------------------------------------------- JSONL logs
def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
