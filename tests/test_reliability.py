"""Reliability: bad inputs -> clear errors, atomic outputs, NaN stop, collapse restarts, SIGKILL resume, determinism."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indprior import data, explore, hoc, task1
from indprior.core import config as C
from indprior.core.files import atomic_dir, prepare_out_dir
from indprior.core.restarts import RESTARTS, fit_with_restarts, loop_seconds
from indprior.core.runtime import resolve_device
from indprior.core.trainer import CHECKPOINT, Trainer, TrainingError, load_checkpoint, read_log
from indprior.data import (
    CubDataset,
    DataError,
    ImageCrops,
    load_image,
    load_label_map,
    make_synthetic_cub,
    resolve_dataset,
    save_png_atomic,
)
from indprior.redo import ReDOConfig
from indprior.task1 import Task1Config


@pytest.fixture(scope="module")
def clean_cub(tmp_path_factory) -> Path:
    return make_synthetic_cub(tmp_path_factory.mktemp("cub") / "CUB", n_images=12, n_test=4, image_size=80, seed=3)


@pytest.fixture
def cub(tmp_path, clean_cub) -> Path:
    """A fresh, writable copy to break."""
    return Path(shutil.copytree(clean_cub, tmp_path / "CUB"))


def _edit(path: Path, line_no: int, text: str | None) -> None:
    """Replace (or with None delete) line `line_no` (0-based) of a text file."""
    lines = path.read_text().splitlines()
    if text is None:
        del lines[line_no]
    else:
        lines[line_no] = text
    path.write_text("\n".join(lines) + "\n")


def _first_image(root: Path) -> Path:
    return root / "images" / (root / "images.txt").read_text().split()[1]


def _w(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return path


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


# Each case breaks one thing and names the error it must raise: (exception, regex the message must match).
# The regex always includes what is wrong and, where there is one, the file or parameter.
def _cub_all(root: Path) -> None:
    ds = CubDataset(root, "train")
    for i in range(len(ds)):
        ds[i]


BAD_INPUTS = {
    # --- single image files
    "image missing": (lambda t, r: load_image(t / "nope.png"), DataError, r"nope\.png: no such file"),
    "image empty": (lambda t, r: load_image(_w(t / "e.jpg", b"")), DataError, r"e\.jpg: empty file"),
    "image corrupt": (lambda t, r: load_image(_w(t / "c.jpg", b"\xff\xd8garbage" * 20)),
                      DataError, r"c\.jpg: cannot decode"),
    "image is text": (lambda t, r: load_image(_w(t / "x.png", "hello")), DataError, r"x\.png: cannot decode"),
    "image is a folder": (lambda t, r: load_image(t), DataError, r"expected"),
    # --- label maps
    "label map RGB colours": (lambda t, r: load_label_map(_png(t / "l.png", np.full((8, 8, 3), 7, np.uint8))),
                              DataError, r"l\.png: label map has mode RGB"),
    "label map float": (lambda t, r: load_label_map(_png(t / "f.tif", np.full((8, 8), 1.5, np.float32), "F")),
                        DataError, r"f\.tif: label values must be integers"),
    "label map wrong size": (lambda t, r: load_label_map(_png(t / "s.png", np.zeros((8, 9), np.uint8)), (8, 8)),
                             DataError, r"s\.png: label map is 8x9"),
    "hoc GT wrong size": (lambda t, r: hoc.run_hoc(C.make_config(hoc.HOCConfig, "smoke"), np.zeros((64, 64, 3), np.uint8), t / "o",
                                                   gt_instances=_png(t / "g.png", np.zeros((10, 10), np.uint8)), progress=False),
                          DataError, r"g\.png.*10x10"),
    "hoc image missing": (lambda t, r: hoc.run_hoc(C.make_config(hoc.HOCConfig, "smoke"), t / "gone.jpg", t / "o", progress=False),
                          DataError, r"gone\.jpg: no such file"),
    "hoc image smaller than a crop": (lambda t, r: ImageCrops(np.zeros((10, 12, 3), np.uint8), 32), DataError, r"crop=32: image is 10x12"),
    "array image of wrong dtype": (lambda t, r: hoc.run_hoc(C.make_config(hoc.HOCConfig, "smoke"), np.zeros((64, 64, 3)), t / "o",
                                                            progress=False), DataError, r"expected a uint8 HxWx3"),
    # --- CUB layout
    "CUB folder missing": (lambda t, r: CubDataset(t / "nothing"), DataError, r"nothing: dataset folder does not exist"),
    "CUB images.txt missing": (lambda t, r: (r / "images.txt").unlink() or CubDataset(r), DataError, r"images\.txt: missing index file"),
    "CUB boxes missing": (lambda t, r: (r / "bounding_boxes.txt").unlink() or CubDataset(r), DataError,
                          r"bounding_boxes\.txt: missing index file"),
    "CUB split missing": (lambda t, r: (r / "train_test_split.txt").unlink() or CubDataset(r), DataError,
                          r"train_test_split\.txt: missing index file"),
    "CUB malformed box": (lambda t, r: _edit(r / "bounding_boxes.txt", 1, "2 1.0 x 3.0 4.0") or CubDataset(r), DataError,
                          r"bounding_boxes\.txt, line 2: malformed"),
    "CUB malformed split flag": (lambda t, r: _edit(r / "train_test_split.txt", 0, "1 7") or CubDataset(r), DataError,
                                 r"train_test_split\.txt, line 1: malformed"),
    "CUB duplicate id": (lambda t, r: _edit(r / "images.txt", 1, (r / "images.txt").read_text().splitlines()[0]) or CubDataset(r),
                         DataError, r"images\.txt, line 2: duplicate id 1"),
    "CUB id mismatch": (lambda t, r: _edit(r / "bounding_boxes.txt", 0, None) or CubDataset(r), DataError,
                        r"bounding_boxes\.txt: ids differ from images\.txt"),
    "CUB empty split": (lambda t, r: _w(r / "train_test_split.txt", "".join(f"{i} 1\n" for i in range(1, 13)))
        and CubDataset(r, "test"), DataError, r"split 'test' is empty"),
    "CUB unknown split": (lambda t, r: CubDataset(r, "val"), DataError, r"split='val': unknown split"),
    "CUB zero-area box": (lambda t, r: _edit(r / "bounding_boxes.txt", 0, "1 10.0 10.0 0.0 5.0") or CubDataset(r, "all")[0],
                          DataError, r"zero area"),
    "CUB box outside image": (lambda t, r: _edit(r / "bounding_boxes.txt", 0, "1 500.0 500.0 5.0 5.0") or CubDataset(r, "all")[0],
                              DataError, r"lies outside the 80x80"),
    "CUB image file missing": (lambda t, r: _first_image(r).unlink() or CubDataset(r, "all")[0], DataError, r"no such file"),
    "CUB image file corrupt": (lambda t, r: _w(_first_image(r), b"not a jpeg") and CubDataset(r, "all")[0], DataError,
                               r"cannot decode"),
    "CUB segmentation wrong size": (lambda t, r: [_png(p, np.zeros((5, 5), np.uint8)) for p in (r / "segmentations").rglob("*.png")]
                                    and _cub_all(r), DataError, r"segmentation is 5x5"),
    # --- specs, profiles, config values, devices
    "dataset spec unknown": (lambda t, r: resolve_dataset("imagenet", t), DataError, r"'imagenet' not understood"),
    "dataset synthetic seed": (lambda t, r: resolve_dataset("synthetic:-4", t), DataError, r"non-negative integer seed"),
    "dataset cub root wrong": (lambda t, r: resolve_dataset(f"cub:{t}", t), DataError, r"not a CUB-200-2011 folder"),
    "profile unknown": (lambda t, r: C.make_config(Task1Config, "laptop"), C.ConfigError, r"profile='laptop' is unknown"),
    "config field unknown": (lambda t, r: C.make_config(Task1Config, "smoke", lr=1e-3), C.ConfigError, r"no field 'lr'"),
    "image_size not divisible": (lambda t, r: C.make_config(Task1Config, "cpu", image_size=60), C.ConfigError,
                                 r"image_size=60: expected a multiple of 2\*\*unet_levels"),
    "steps zero": (lambda t, r: C.make_config(Task1Config, "smoke", steps=0), C.ConfigError, r"steps=0: expected an integer >= 1"),
    "learning rate negative": (lambda t, r: C.make_config(Task1Config, "smoke", lr_d=-1e-4), C.ConfigError, r"lr_d=-0\.0001"),
    "diffaug unknown": (lambda t, r: C.make_config(Task1Config, "smoke", diffaug="blur"), C.ConfigError, r"diffaug='blur'"),
    "refine unknown": (lambda t, r: C.make_config(Task1Config, "smoke", refine="crf"), C.ConfigError, r"refine='crf'"),
    "collapse bounds": (lambda t, r: C.make_config(Task1Config, "smoke", collapse_low=0.5, collapse_high=0.4), C.ConfigError,
                        r"collapse_low=0\.5 must be < collapse_high"),
    "box critic with colour jitter": (lambda t, r: C.make_config(Task1Config, "smoke", d_box=True, diffaug="color"),
                                     C.ConfigError, r"d_box with diffaug 'color'"),
    "hoc crop zero": (lambda t, r: C.make_config(hoc.HOCConfig, "smoke", crop=0), C.ConfigError, r"HOCConfig\.crop=0"),
    "hoc instance size": (lambda t, r: C.make_config(hoc.HOCConfig, "smoke", instance_size=-3.0), C.ConfigError, r"instance_size=-3"),
    "redo image size": (lambda t, r: C.make_config(ReDOConfig, "smoke", image_size=33), ValueError, r"33"),
    "device cuda without GPU": (lambda t, r: resolve_device("cuda") if not torch.cuda.is_available() else resolve_device("tpu"),
                                ValueError, r"device="),
    "device nonsense": (lambda t, r: resolve_device("gpu0"), ValueError, r"device='gpu0' is not a torch device"),
    # --- run folders and outputs
    "run_dir without checkpoint": (lambda t, r: task1.load_run(t), FileNotFoundError, r"checkpoint.pt does not exist"),
    "checkpoint truncated": (lambda t, r: load_checkpoint(_w(t / CHECKPOINT, b"PK\x03\x04junk")),
                             ValueError, r"checkpoint.pt is unreadable or truncated"),
    "hoc run_dir empty": (lambda t, r: explore.load_hoc(t), FileNotFoundError, r"instances\.png: missing"),
    "hoc segmenter missing": (lambda t, r: hoc.load_segmenter(t, C.make_config(hoc.HOCConfig, "smoke")), FileNotFoundError,
                              r"segmenter\.pt does not exist"),
    "out_dir under a file": (lambda t, r: task1.run_task1(C.make_config(Task1Config, "smoke", dataset=f"cub:{r}"),
                                                          _w(t / "f", "") / "run", progress=False),
                             PermissionError, r"out_dir='.*f/run' is not a writable folder"),
    "save float array as png": (lambda t, r: save_png_atomic(t / "m.png", np.zeros((4, 4), np.float64)), DataError,
                                r"m\.png: cannot save array of dtype float64"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_a_clear_error(case, tmp_path, cub):
    fn, exc, match = BAD_INPUTS[case]
    with pytest.raises(exc, match=match):
        fn(tmp_path, cub)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P", "LA"])
def test_odd_image_modes_are_accepted_as_rgb(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 255, (9, 7, 3), np.uint8)
    img = Image.fromarray(rgb).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img).astype(np.uint16) * 257)
    img.save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png")
    assert out.shape == (9, 7, 3) and out.dtype == np.uint8


def test_tiny_image_still_gives_a_window_and_a_full_size_mask(tmp_path):
    """An image smaller than the network's window is resized up, and the mask comes back at its own size."""
    root = make_synthetic_cub(tmp_path / "CUB", n_images=4, n_test=2, image_size=80, seed=0)
    ds = CubDataset(root, "all")
    tiny = tmp_path / "CUB" / "images" / ds.image_path(0).relative_to(root / "images")
    Image.fromarray(np.full((12, 10, 3), 128, np.uint8)).save(tiny)
    _edit(root / "bounding_boxes.txt", 0, "1 2.0 3.0 5.0 6.0")
    _png(ds.mask_path(0), np.zeros((12, 10), np.uint8))  # GT of the old size would (rightly) be an error
    ws = data.prepare_windows(CubDataset(root, "all"), 32, 1.3, progress=False)
    assert ws.windows.shape[-2:] == (32, 32)
    cfg = C.make_config(Task1Config, "smoke")
    method = task1.IndependencePriorTask1(cfg, torch.device("cpu"))
    masks = task1.full_masks(method.provider, ws, torch.device("cpu"))
    assert masks[0].shape == (12, 10) and masks[0][:3].max() == 0, "zero outside the box"


# ----------------------------------------------------------------------------- atomic outputs
def test_atomic_dir_replaces_on_success_and_keeps_old_on_error(tmp_path):
    target = tmp_path / "masks"
    target.mkdir()
    (target / "old.png").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.png").write_text("new")
            raise RuntimeError("crash half-way")
    assert sorted(p.name for p in target.iterdir()) == ["old.png"], "a failed write leaves the old folder alone"
    with atomic_dir(target) as tmp:
        (tmp / "new.png").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.png"], "no mix of old and new files"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"], "no temp folders left behind"


def test_prepare_out_dir_creates_and_checks(tmp_path):
    assert prepare_out_dir(tmp_path / "a" / "b").is_dir()
    assert not list((tmp_path / "a" / "b").iterdir()), "the write probe is removed"


# ----------------------------------------------------------------------------- NaN and collapse
class _Toy:
    """A one-parameter 'method' whose logged statistics we script."""

    def __init__(self, stats):
        self.net = torch.nn.Linear(2, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.stats = stats

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}

    def train_step(self, batch, step):
        loss = self.net(torch.ones(1, 2)).pow(2).sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {k: torch.tensor(float(v(step))) for k, v in self.stats.items()}


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    toy = _Toy({"loss/D": lambda s: float("nan") if s >= 6 else 1.0})
    trainer = Trainer(toy, tmp_path, {"x": 1}, log_every=2, ckpt_every=2, progress=False)
    with pytest.raises(TrainingError, match=r"non-finite loss/D at step 8.*last good checkpoint"):
        trainer.fit(lambda s: None, 20)
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 6


def test_task1_collapse_rules_on_hand_made_logs():
    cfg = C.make_config(Task1Config, "cpu", collapse_patience=100)
    log = lambda key, values: [{"step": 25 * (i + 1), key: v} for i, v in enumerate(values)]  # noqa: E731
    assert task1.collapse_reason(cfg, log("mask/area_of_box", [0.4] * 8)) is None
    assert "< 0.1" in task1.collapse_reason(cfg, log("mask/area_of_box", [0.4] * 4 + [0.05] * 4))
    assert "> 0.9" in task1.collapse_reason(cfg, log("mask/area_of_box", [0.4] * 4 + [0.95] * 4))
    assert task1.collapse_reason(cfg, log("mask/area_of_box", [0.4] * 5 + [0.05] * 3)) is None, "shorter than patience"
    assert "D wins" in task1.collapse_reason(cfg, log("loss/D", [1.9] * 4 + [0.01] * 4))


def test_restart_after_collapse_uses_a_new_seed_and_is_logged(tmp_path):
    seeds = []

    def make(seed):
        seeds.append(seed)  # attempt 0 collapses (area 0), attempt 1 is healthy
        return _Toy({"mask/area": (lambda s: 0.0) if seed == 7 else (lambda s: 0.5)})

    reason = lambda h: "empty" if h and all(r["mask/area"] < 0.1 for r in h[-2:]) else None  # noqa: E731
    kw = dict(seed=7, collapse_reason=reason, check_every=4, check_until=8, max_restarts=2, log_every=2, ckpt_every=4,
              progress=False)
    method, events = fit_with_restarts(make, tmp_path, {"x": 1}, lambda s: None, 12, **kw)
    assert seeds == [7, 1007] and [e["seed"] for e in events] == [7] and events[0]["step"] == 4
    assert json.loads((tmp_path / RESTARTS).read_text()) == events
    assert (tmp_path / "collapsed" / "attempt0" / CHECKPOINT).is_file()
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["step"] == 12 and state["config"]["attempt"] == 1
    seeds.clear()  # resuming the finished run: straight to attempt 1, nothing retrained
    _, again = fit_with_restarts(make, tmp_path, {"x": 1}, lambda s: None, 12, **kw)
    assert seeds == [1007] and again == events


def test_task1_gives_up_after_max_restarts(tmp_path, clean_cub):
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{clean_cub}", collapse_low=0.99, collapse_high=1.0,
                        max_restarts=1, refine="none", sample_every=0)
    with pytest.raises(TrainingError, match="collapsed in all 2 attempts"):
        task1.run_task1(cfg, tmp_path, progress=False)
    events = json.loads((tmp_path / RESTARTS).read_text())
    assert [e["seed"] for e in events] == [0, 1000] and all("mask area < 0.99" in e["reason"] for e in events)
    assert not (tmp_path / "metrics.json").exists()


# ----------------------------------------------------------------------------- SIGKILL resume and determinism
KILLABLE = """
import sys, time, torch
torch.set_num_threads(1)
from indprior import task1
from indprior.core import config as C
from indprior.task1 import Task1Config
step = task1.IndependencePriorTask1.train_step
def slow(self, batch, i):  # slow enough to be killed mid-run
    time.sleep(0.1)
    return step(self, batch, i)
task1.IndependencePriorTask1.train_step = slow
cfg = C.make_config(Task1Config, "smoke", dataset="cub:" + sys.argv[1], steps=40, ckpt_every=5, sample_every=0)
task1.run_task1(cfg, sys.argv[2], progress=False)
"""


def _cfg(root):
    return C.make_config(Task1Config, "smoke", dataset=f"cub:{root}", steps=40, ckpt_every=5, sample_every=0)


def _without_times(m):
    return {k: v for k, v in m.items() if k not in ("seconds", "train_seconds", "self_train_seconds")}


def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tmp_path, clean_cub, one_thread):
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(clean_cub), str(killed)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (killed / CHECKPOINT).is_file() and load_checkpoint(killed / CHECKPOINT)["step"] >= 15:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = load_checkpoint(killed / CHECKPOINT)["step"]
    assert 15 <= at_kill < 40 and not (killed / "metrics.json").exists()
    before = max(r["time"] for r in read_log(killed) if r["step"] <= at_kill)  # >= 0.1 s per step (the sleep)

    resumed = task1.run_task1(_cfg(clean_cub), killed, progress=False)  # resume=True is the default
    straight = task1.run_task1(_cfg(clean_cub), tmp_path / "straight", progress=False)
    assert _without_times(resumed) == _without_times(straight)
    a, b = load_checkpoint(killed / CHECKPOINT), load_checkpoint(tmp_path / "straight" / CHECKPOINT)
    for name in a["modules"]:
        for key, tensor in a["modules"][name].items():
            assert torch.equal(tensor, b["modules"][name][key]), f"{name}.{key} differs after resume"
    steps = [r["step"] for r in read_log(killed) if "loss/D" in r]
    assert steps == sorted(set(steps)), "the log has no duplicate rows from before the kill"
    assert resumed["train_seconds"] >= before >= 0.1 * 15, "train_seconds counts the training before the kill too"


def test_loop_seconds_sums_the_logs_of_resumed_calls_and_collapsed_attempts(tmp_path):
    assert loop_seconds(tmp_path) == 0.0
    (tmp_path / "train_log.jsonl").write_text('{"step": 1, "time": 1.0}\n{"step": 2, "time": 5.0}\n')
    (tmp_path / "collapsed" / "attempt0").mkdir(parents=True)
    (tmp_path / "collapsed" / "attempt0" / "train_log.jsonl").write_text('{"step": 4, "time": 3.0}\n')
    assert loop_seconds(tmp_path) == 8.0


def test_same_seed_same_metrics_and_masks(tmp_path, clean_cub, one_thread):
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{clean_cub}", steps=30)
    a = task1.run_task1(cfg, tmp_path / "a", progress=False)
    b = task1.run_task1(cfg, tmp_path / "b", progress=False)
    assert _without_times(a) == _without_times(b)
    for sub in ("masks", "masks_refined", "masks_self_trained", "masks_self_trained_refined"):
        for p in (tmp_path / "a" / sub).rglob("*.png"):
            assert p.read_bytes() == (tmp_path / "b" / sub / p.relative_to(tmp_path / "a" / sub)).read_bytes(), p
    c = task1.run_task1(C.make_config(Task1Config, "smoke", dataset=f"cub:{clean_cub}", steps=30, seed=1), tmp_path / "c",
                        progress=False)
    assert _without_times(c) != _without_times(a), "another seed is another run"


def test_hoc_same_seed_same_label_map(tmp_path, one_thread):
    from skimage.data import coins
    img = np.stack([coins()[:120, :160]] * 3, -1)
    cfg = C.make_config(hoc.HOCConfig, "smoke", instance_size=40.0)
    hoc.run_hoc(cfg, img, tmp_path / "a", progress=False)
    hoc.run_hoc(cfg, img, tmp_path / "b", progress=False)
    assert np.array_equal(load_label_map(tmp_path / "a" / "instances.png"), load_label_map(tmp_path / "b" / "instances.png"))


def test_a_run_started_on_a_busy_cpu_warns_and_says_so_in_its_metrics(monkeypatch, tmp_path, cub):
    from indprior.core import runtime
    busy = runtime.busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(runtime.torch, "get_num_threads", lambda: 2)
    cpu = torch.device("cpu")
    for load, warned in ((0.2, False), (1.0, True), (1.9, True), (None, False)):
        monkeypatch.setattr(runtime, "busy_cores", lambda load=load: load)
        if warned:
            with pytest.warns(RuntimeWarning, match=rf"{load:.1f} of 2 cores in use.*OMP_NUM_THREADS=1"):
                assert runtime.warn_if_cpu_busy(cpu)
        else:
            assert runtime.warn_if_cpu_busy(cpu) is None
    monkeypatch.setattr(runtime, "busy_cores", lambda: 1.9)
    assert runtime.warn_if_cpu_busy(torch.device("cuda")) is None  # a GPU run does not wait on the CPU's threads
    monkeypatch.setattr(runtime.torch, "get_num_threads", lambda: 1)
    assert runtime.warn_if_cpu_busy(cpu) is None  # one thread waits on nobody
    monkeypatch.setattr(runtime.torch, "get_num_threads", lambda: 2)
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{cub}", steps=2, self_train_steps=0, refine="none")
    with pytest.warns(RuntimeWarning, match="CPU is already busy"):
        metrics = task1.run_task1(cfg, tmp_path / "run", progress=False)
    assert "1.9 of 2 cores" in metrics["cpu_busy_at_start"]
    assert "1.9 of 2" in json.loads((tmp_path / "run" / "metrics.json").read_text())["cpu_busy_at_start"]
    image, _ = data.make_synthetic_hoc(seed=0, size=(96, 96), n_instances=(5, 10))
    with pytest.warns(RuntimeWarning, match="CPU is already busy"):
        m = hoc.run_hoc(C.make_config(hoc.HOCConfig, "smoke"), image, tmp_path / "hoc", progress=False)
    assert "1.9 of 2 cores" in m["cpu_busy_at_start"]
