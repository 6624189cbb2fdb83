"""Task 1's self-training stage: window targets, pseudo-labels, the student learns, run_task1's outputs."""
import json

import numpy as np
import pytest
import torch

from indprior.core import config as C
from indprior.data import CubDataset, make_synthetic_cub
from indprior.data.windows import prepare_windows
from indprior.models import SegmentingProvider
from indprior.task1 import Task1Config, full_masks, run_task1
from indprior.task1.method import background_bank
from indprior.task1.selftrain import augment, paste_onto, pseudo_labels, self_train, window_target

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_synthetic_cub(tmp_path_factory.mktemp("cub") / "CUB", n_images=24, n_test=6, image_size=96, seed=3)


@pytest.fixture(scope="module")
def gt_windows(root):
    """(train split, its 32 px windows, their GT cut to the windows as targets n 1 32 32): a student's data."""
    ds = CubDataset(root, "train")
    ws = prepare_windows(ds, 32, 1.3, progress=False)
    targets = torch.stack([torch.from_numpy(window_target(g, r, 32)) for g, r in zip(ws.gt, ws.rects)])[:, None]
    return ds, ws, targets


def window_iou(net, ws, targets) -> float:
    """IoU, pooled over all windows, of a net's thresholded masks against the targets."""
    with torch.no_grad():
        m = net(ws.windows.float() / 127.5 - 1, ws.boxes.float())[1] > 0.5
    t = targets > 0.5
    return float((m & t).sum() / (m | t).sum())


def test_window_target_cuts_and_resizes_like_the_window():
    full = np.zeros((40, 60), bool)
    full[10:20, 30:50] = True  # the right half of the window below
    t = window_target(full, (10, 10, 40, 10), 8)
    assert t.shape == (8, 8) and t.dtype == np.float32
    assert np.allclose(t[:, :4], 0) and np.allclose(t[:, 4:], 1)
    with pytest.raises(ValueError, match="does not lie inside"):
        window_target(full, (50, 0, 20, 10), 8)


def test_pseudo_labels_are_soft_window_masks_inside_the_box(root):
    ds = CubDataset(root, "train")
    ws = prepare_windows(ds, 32, 1.3, progress=False)
    torch.manual_seed(0)
    probs = full_masks(SegmentingProvider(8, 2), ws, torch.device("cpu"))
    targets = pseudo_labels(probs, ds, ws.rects, ws.image_boxes, 32)
    assert targets.shape == (len(ds), 1, 32, 32) and targets.dtype == torch.float32
    assert 0 <= targets.min() and targets.max() <= 1
    assert targets[ws.boxes == 0].max() < 0.5, "GrabCut's masks are empty outside the box"
    with pytest.raises(ValueError, match="expected one of each"):
        pseudo_labels(probs, ds, ws.rects[:3], ws.image_boxes, 32)


def test_augment_moves_window_box_and_target_alike():
    """The window's red channel is drawn as the target: after one random pose both must still agree."""
    target = torch.zeros(6, 1, 32, 32)
    target[:, :, 8:20, 10:26] = 1
    box = torch.zeros_like(target)
    box[:, :, 4:28, 4:28] = 1
    x = torch.cat([target * 2 - 1, torch.zeros(6, 2, 32, 32)], 1)
    xa, ba, ta = augment(x, box, target, torch.Generator().manual_seed(0), color=False)
    assert xa.shape == x.shape and ba.shape == ta.shape == target.shape
    assert set(ba.unique().tolist()) <= {0.0, 1.0} and 0 <= ta.min() and ta.max() <= 1
    inner = (slice(None), slice(0, 1), slice(6, 26), slice(6, 26))  # away from the border (reflected vs zero padding)
    assert torch.allclose((xa[inner] + 1) / 2, ta[inner], atol=1e-5)
    assert not torch.allclose(ta, target), "the pose changed something"
    again = augment(x, box, target, torch.Generator().manual_seed(0), color=False)
    assert all(torch.equal(a, b) for a, b in zip((xa, ba, ta), again)), "same generator state, same augmentation"
    xc = augment(x, box, target, torch.Generator().manual_seed(0))[0]
    assert not torch.allclose(xc, xa), "colour jitter changes the window"


def test_paste_onto_puts_the_labelled_object_on_a_background_patch():
    x = torch.full((8, 3, 16, 16), 0.5)
    target = torch.zeros(8, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    bg = torch.full((3, 3, 16, 16), -1.0)
    bg[:, :, :, :8] = -0.5  # left half differs from the right, so a mirrored patch can be told apart
    out = paste_onto(x, target, bg, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, 4:12, 4:12], x[:, :, 4:12, 4:12]), "the object stays where its label is"
    assert set(out[:, :, 0, :8].unique().tolist()) <= {-1.0, -0.5} and (out[:, :, 0] != 0.5).all(), "outside: the patch"
    assert {out[i, 0, 0, 0].item() for i in range(8)} == {-1.0, -0.5}, "patches are mirrored about half the time"
    assert torch.equal(paste_onto(x, target, bg, 0.0, torch.Generator().manual_seed(0)), x), "chance 0: unchanged"
    soft = paste_onto(x, torch.full_like(target, 0.25), bg.to(torch.uint8).add(100), 1.0, torch.Generator())
    assert soft.shape == x.shape and (soft < 0.5).all(), "a soft label blends; uint8 patches are scaled to [-1, 1]"


@pytest.mark.parametrize("bf16", [False, True])
def test_student_learns_its_targets_and_leaves_the_teacher_alone(gt_windows, bf16):
    """Trained on the GT windows as targets, the student's masks must match them far better than the teacher's,
    in fp32 and under bf16 autocast (what an AMX CPU or a GPU uses)."""
    _, ws, targets = gt_windows
    torch.manual_seed(0)
    teacher = SegmentingProvider(8, 2)
    before = [p.detach().clone() for p in teacher.parameters()]
    student = self_train(teacher, ws.windows, ws.boxes, targets, steps=150, lr=3e-3, batch_size=8, bf16=bf16)
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    learnt, untrained = window_iou(student, ws, targets), window_iou(teacher, ws, targets)
    assert learnt > 0.7 and learnt > untrained + 0.2, (learnt, untrained)
    with pytest.raises(ValueError, match="equal counts"):
        self_train(teacher, ws.windows, ws.boxes[:2], targets, steps=1)
    with pytest.raises(ValueError, match="steps >= 0"):
        self_train(teacher, ws.windows, ws.boxes, targets, steps=-1)
    with pytest.raises(ValueError, match="paste=0.5 needs background patches"):
        self_train(teacher, ws.windows, ws.boxes, targets, steps=1, paste=0.5)


def test_student_with_pasted_windows_learns_and_without_them_is_unchanged(gt_windows):
    """paste=0 is the student as it was (no random numbers drawn for it); with paste the student still learns
    its targets, and it is another student (its windows showed other backgrounds)."""
    ds, ws, targets = gt_windows
    bank = background_bank(ds, 32, 2, np.random.default_rng(0), progress=False)  # as run_task1 makes it
    assert len(bank) > 0
    torch.manual_seed(0)
    teacher = SegmentingProvider(8, 2)
    kw = dict(steps=150, lr=3e-3, batch_size=8)
    plain = self_train(teacher, ws.windows, ws.boxes, targets, **kw)
    same = self_train(teacher, ws.windows, ws.boxes, targets, backgrounds=bank, paste=0.0, **kw)
    pasted = self_train(teacher, ws.windows, ws.boxes, targets, backgrounds=bank, paste=0.5, **kw)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), same.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(plain.parameters(), pasted.parameters()))
    learnt, untrained = window_iou(pasted, ws, targets), window_iou(teacher, ws, targets)
    assert learnt > untrained + 0.2, (learnt, untrained)
    with pytest.raises(ValueError, match="shaped like the windows"):
        self_train(teacher, ws.windows, ws.boxes, targets, steps=1, backgrounds=bank[:, :, :16], paste=0.5)


def test_run_task1_reports_the_self_trained_rows_and_resumes_with_other_stage_settings(root, tmp_path):
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{root}", steps=4)
    m = run_task1(cfg, tmp_path, progress=False)
    for key in ("self_trained", "self_trained_grabcut"):
        assert {"acc", "iou_mean", "iou_pooled"} <= set(m[key]) and 0 <= m[key]["iou_mean"] <= 1
    assert len(list((tmp_path / "masks_self_trained").rglob("*.png"))) == m["n_images"] == 6
    assert (tmp_path / "self_trained.pt").is_file()
    again = run_task1(C.make_config(Task1Config, "smoke", dataset=f"cub:{root}", steps=4, self_train_steps=0,
                                    refine="none"), tmp_path, progress=False)  # resumes: nothing retrained
    assert "self_trained" not in again and "refined_grabcut" not in again
    assert sorted(p.name for p in tmp_path.glob("*masks*")) == ["masks"], "outputs of stages now off are removed"
    assert not (tmp_path / "self_trained.pt").exists()
    assert again["iou_mean"] == m["iou_mean"]
    assert json.loads((tmp_path / "metrics.json").read_text()) == again


def test_each_round_of_self_training_learns_from_the_last_rounds_student(root, tmp_path, monkeypatch):
    """self_train_rounds=3: round 1 labels come from the GAN's provider, round k+1's from round k's student (a
    different net each time), and the student saved is the last round's."""
    import indprior.task1.run as task1_run
    teachers, students, views = [], [], []
    real_train = task1_run.self_train

    def spy_full_masks(net, ws, device, n_views=1):
        teachers.append(net)
        views.append(n_views)
        return full_masks(net, ws, device, n_views)

    def spy_train(init, *args, **kwargs):
        students.append(real_train(init, *args, **kwargs))
        assert init is teachers[-1], "each round starts from the net that made its labels"
        return students[-1]
    monkeypatch.setattr(task1_run, "full_masks", spy_full_masks)
    monkeypatch.setattr(task1_run, "self_train", spy_train)
    cfg = C.make_config(Task1Config, "smoke", dataset=f"cub:{root}", steps=4, self_train_rounds=3, refine="none")
    run_task1(cfg, tmp_path, progress=False)
    from indprior.task1.infer import load_run
    gan = load_run(tmp_path)[1].ema.module
    first_three = teachers[:3]  # later calls of full_masks segment the test split
    assert len(students) == 3 and first_three[1:] == students[:2]
    assert views and set(views) == {cfg.views} == {10}  # pseudo-labels and rows: flips x zooms (Task1Config.views)
    assert all(a is not b for a, b in zip(first_three, first_three[1:]))
    assert torch.equal(next(first_three[0].parameters()), next(gan.parameters()))  # round 1: the GAN's provider
    saved = torch.load(tmp_path / "self_trained.pt", weights_only=True)
    assert saved["rounds"] == 3
    assert all(torch.equal(v, students[-1].state_dict()[k]) for k, v in saved["state"].items())
    with pytest.raises(C.ConfigError, match="self_train_rounds"):
        C.make_config(Task1Config, "smoke", self_train_rounds=0)
