"""Providers, layout, composition, critic, losses and config: shapes, exact cases, gradients."""
import math

import pytest
import torch

from indprior.core import config as C
from indprior.losses import EMA, area_penalty, binarisation_penalty, d_hinge, diff_augment, g_hinge
from indprior.models import (
    Discriminator,
    GenerativeProvider,
    Layout,
    SegmentingProvider,
    UNet,
    compose,
    pose_to_theta,
    warp,
)
from indprior.task1 import Task1Config
from indprior.task1.config import TASK1_PROFILES

torch.manual_seed(0)


def test_segmenting_provider_shapes_and_box_constraint():
    p = SegmentingProvider(base=8, levels=2)
    win = torch.rand(3, 3, 32, 32) * 2 - 1
    box = torch.zeros(3, 1, 32, 32)
    box[:, :, 8:24, 4:20] = 1
    a, m = p(win, box)
    assert a.shape == (3, 3, 32, 32) and m.shape == (3, 1, 32, 32)
    assert torch.equal(a, win)
    assert (m[box == 0] == 0).all(), "mask must be zero outside the box by construction"
    assert ((m >= 0) & (m <= 1)).all()


def _red_disc_on_blue_and_green():
    """A 32 px window: a blue frame (the margin) and green strips inside the box, a red disc in the middle."""
    win = torch.zeros(1, 3, 32, 32)
    win[:, 2] = 0.8  # blue everywhere ...
    box = torch.zeros(1, 1, 32, 32)
    box[..., 6:26, 6:26] = 1
    win[:, :, 6:26, 6:10] = torch.tensor([-1.0, 0.8, -1.0])[:, None, None]  # ... green strips in the box, left
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    disc = ((yy - 16) ** 2 + (xx - 17) ** 2 <= 36)
    win[0, :, disc] = torch.tensor([0.9, -0.9, -0.9])[:, None]
    return win, box, disc


def test_colour_cue_marks_colours_found_only_inside_the_box():
    from indprior.models import colour_cue
    win, box, disc = _red_disc_on_blue_and_green()
    cue = colour_cue(win, box)[0, 0]
    assert cue.shape == (32, 32) and ((cue >= 0) & (cue <= 1)).all()
    assert (cue[box[0, 0] == 0] == 0).all(), "no cue outside the box"
    assert cue[disc].min() > 0.95, "red occurs only inside the box"
    assert cue[6:26, 6:10].min() > 0.95, "so does the green"
    blue_in_box = (box[0, 0] == 1) & ~disc
    blue_in_box[6:26, 6:10] = False
    assert cue[blue_in_box].max() < 0.5, "blue fills the margin: inside the box it reads as background"
    assert torch.equal(colour_cue(win.flip(-1), box.flip(-1)), colour_cue(win, box).flip(-1)), "no position in it"


def test_provider_with_the_cue_starts_from_the_cues_log_odds():
    win, box, disc = _red_disc_on_blue_and_green()
    p = SegmentingProvider(8, 2, cue=8)
    assert p.net.down[0][0].in_channels == 5 and SegmentingProvider(8, 2).net.down[0][0].in_channels == 4
    for param in p.net.parameters():  # a net that outputs 0: the mask is the (clamped) cue itself
        torch.nn.init.zeros_(param)
    a, m = p(win, box)
    assert torch.equal(a, win) and (m[box == 0] == 0).all()
    from indprior.models import colour_cue
    want = colour_cue(win, box).clamp(0.02, 0.98) * box
    assert torch.allclose(m, want, atol=1e-5)
    assert m[0, 0][disc].min() > 0.95
    assert SegmentingProvider(8, 2, cue=0)(win, box)[1].shape == m.shape  # the paper's provider: window + box only


def test_the_colour_cue_alone_thresholds_the_cue():
    from indprior.task1.infer import ColourCueAlone
    win, box, disc = _red_disc_on_blue_and_green()
    m = ColourCueAlone()(win, box)[1][0, 0]
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert m[disc].all() and m.sum() == disc.sum() + 20 * 4, "the red disc and the green strips, nothing blue"


def test_unet_rejects_indivisible_size():
    with pytest.raises(ValueError, match="divisible"):
        UNet(3, 1, base=4, levels=3)(torch.zeros(1, 3, 20, 20))


def test_generative_provider_shapes_and_ranges():
    g = GenerativeProvider(z_dim=8, size=24, base=16, n_up=3)
    a, m = g(torch.randn(5, 8))
    assert a.shape == (5, 3, 24, 24) and m.shape == (5, 1, 24, 24)
    assert a.abs().max() <= 1 and m.min() >= 0 and m.max() <= 1


def test_layout_poses_stay_in_prior_ranges():
    lay = Layout(4, scale=(0.6, 1.4), rotation_deg=30, translation=0.2)
    for p in lay.mlp.parameters():  # make the MLP output large on purpose
        torch.nn.init.normal_(p, std=10.0)
    pose = lay(torch.randn(64, 4) * 10)
    assert pose["scale"].min() >= 0.6 - 1e-6 and pose["scale"].max() <= 1.4 + 1e-6
    assert pose["rotation"].abs().max() <= math.radians(30) + 1e-6
    assert pose["tx"].abs().max() <= 0.2 + 1e-6 and pose["ty"].abs().max() <= 0.2 + 1e-6
    assert set(pose["flip"].unique().tolist()) <= {-1.0, 1.0}


def test_identity_pose_warp_is_identity():
    a, m = torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16)
    ident = {"scale": torch.ones(2), "rotation": torch.zeros(2), "tx": torch.zeros(2), "ty": torch.zeros(2),
             "flip": torch.ones(2)}
    A, M = warp(a, m, pose_to_theta(ident), (16, 16))
    assert torch.allclose(A, a, atol=1e-5) and torch.allclose(M, m, atol=1e-5)


def test_half_size_instance_is_placed_at_translation():
    # an all-ones 8x8 instance at scale 1 on a 32x32 canvas (frac 8/32) moved to the right half
    pose = {"scale": torch.ones(1), "rotation": torch.zeros(1), "tx": torch.tensor([0.5]), "ty": torch.zeros(1),
            "flip": torch.ones(1)}
    _, M = warp(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8), pose_to_theta(pose, 8 / 32), (32, 32))
    ys, xs = torch.nonzero(M[0, 0] > 0.5, as_tuple=True)
    assert abs(xs.float().mean().item() - 23.5) < 0.6 and abs(ys.float().mean().item() - 15.5) < 0.6
    assert abs((M > 0.5).sum().item() - 64) <= 8


def test_composition_with_zero_and_one_masks():
    bg, a1, a2 = torch.full((1, 3, 4, 4), -1.0), torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 1.0)
    zero, one = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    img, vis = compose(bg, [(a1, zero)])
    assert torch.equal(img, bg) and vis.abs().sum() == 0
    img, vis = compose(bg, [(a1, one), (a2, one)])
    assert torch.equal(img, a2), "the last layer is on top"
    assert vis.shape == (1, 2, 1, 4, 4) and vis[:, 0].sum() == 0 and torch.equal(vis[:, 1], one)


def test_visible_masks_partition_the_covered_pixels():
    bg = torch.zeros(2, 3, 8, 8)
    layers = [(torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)) for _ in range(3)]
    img, vis = compose(bg, layers)
    covered = 1 - torch.prod(torch.stack([1 - m for _, m in layers]), 0)
    assert torch.allclose(vis.sum(1), covered, atol=1e-6)
    # with a zero background, the composite is the visible-mask-weighted sum of the instances
    assert torch.allclose(img, sum(v * a for v, (a, _) in zip(vis.unbind(1), layers)), atol=1e-6)


def test_gradients_reach_the_provider_through_layout_and_composition():
    p, lay, D = SegmentingProvider(8, 2), Layout(4), Discriminator(32, 8)
    win, box = torch.rand(2, 3, 32, 32) * 2 - 1, torch.ones(2, 1, 32, 32)
    a, m = p(win, box)
    A, M = warp(a, m, pose_to_theta(lay(torch.randn(2, 4))), (32, 32))
    fake, _ = compose(torch.zeros_like(win), [(A, M)])
    loss = g_hinge(D(diff_augment(fake, "color,translation,cutout"))) + area_penalty(m) + binarisation_penalty(m)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [q.grad for q in p.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in lay.parameters())


def test_discriminator_any_size_and_hinge_values():
    for s in (32, 48, 64):
        assert Discriminator(s, 8)(torch.zeros(3, 3, s, s)).shape == (3,)
    assert d_hinge(torch.tensor([1.0, 2.0]), torch.tensor([-1.0, -3.0])).item() == 0.0
    assert d_hinge(torch.tensor([0.0]), torch.tensor([0.0])).item() == 2.0
    assert g_hinge(torch.tensor([1.0, 3.0])).item() == -2.0


def test_area_and_binarisation_penalties_on_known_masks():
    m = torch.zeros(2, 1, 4, 4)
    m[0, 0, :2] = 1  # area 0.5
    assert area_penalty(m).item() == pytest.approx(0.25)
    assert area_penalty(m, norm=torch.tensor([0.5, 0.5])).item() == pytest.approx(0.5)
    assert area_penalty(m, eta=0.3).item() == pytest.approx(0.1)  # relu(0.5 - 0.3) / 2
    # a floor: the empty mask pays relu(0.2 - 0), the half mask nothing below the floor
    assert area_penalty(m, eta=0.3, floor=0.2).item() == pytest.approx((0.2 + 0.2) / 2)
    assert area_penalty(m, eta=0.6, floor=0.2).item() == pytest.approx(0.2 / 2)
    assert binarisation_penalty(m).item() == 0.0
    assert binarisation_penalty(torch.full((1, 1, 2, 2), 0.5)).item() == 0.5


def test_diff_augment_keeps_shape_and_rejects_unknown_policy():
    x = torch.rand(4, 3, 16, 16)
    assert diff_augment(x, "").equal(x)
    assert diff_augment(x, "translation,cutout,color").shape == x.shape
    with pytest.raises(ValueError, match="rotation"):
        diff_augment(x, "rotation")


def test_ema_moves_towards_the_model():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, decay=0.5)
    before = ema.module.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    assert torch.allclose(ema.module.weight, before + 0.5)


def test_config_profiles_and_errors():
    cfg = C.make_config(Task1Config, "smoke", seed=3)
    assert cfg.profile == "smoke" and cfg.seed == 3 and cfg.steps == TASK1_PROFILES["smoke"]["steps"]
    assert C.make_config(Task1Config, "paper").image_size == 128
    with pytest.raises(C.ConfigError, match="profile='fast'"):
        C.make_config(Task1Config, "fast")
    with pytest.raises(C.ConfigError, match="no field 'stepz'"):
        C.make_config(Task1Config, "cpu", stepz=3)
    assert C.from_dict(Task1Config, C.to_dict(cfg)) == cfg
    saved = C.to_dict(C.make_config(Task1Config, "cpu"))
    assert C.from_dict(Task1Config, saved).views == 10
    assert C.from_dict(Task1Config, saved).self_train_paste == 1.0
    assert C.from_dict(Task1Config, saved).colour_cue == 8
    del saved["views"], saved["self_train_paste"], saved["colour_cue"]  # a run saved before these existed ran
    old = C.from_dict(Task1Config, saved)  # without them, and loads so
    assert old.views == 1 and old.self_train_paste == 0.0 and old.colour_cue == 0
    with pytest.raises(C.ConfigError, match="self_train_paste=1.5"):
        C.make_config(Task1Config, "cpu", self_train_paste=1.5)
    with pytest.raises(C.ConfigError, match="colour_cue=1"):
        C.make_config(Task1Config, "cpu", colour_cue=1)


def test_flatten_head_critic_is_size_bound():
    from indprior.models import Discriminator
    d = Discriminator(32, 8, head="flatten")
    assert d(torch.rand(3, 3, 32, 32)).shape == (3,)
    with pytest.raises(ValueError, match="built for 32 px"):
        d(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="head='avg'"):
        Discriminator(32, 8, head="avg")


def test_edge_aware_smoothness_prefers_masks_on_colour_edges():
    from indprior.losses import edge_aware_smoothness
    img = torch.zeros(2, 3, 16, 16)
    img[..., 8:] = 1  # a vertical colour edge at x = 8
    on, off = torch.zeros(2, 1, 16, 16), torch.zeros(2, 1, 16, 16)
    on[..., 8:], off[..., 5:] = 1, 1
    assert edge_aware_smoothness(on, img) < 1e-6 < edge_aware_smoothness(off, img)
    assert edge_aware_smoothness(torch.ones(2, 1, 16, 16), img) == 0, "a constant mask has no edge"
    soft = off.clone().requires_grad_(True)
    edge_aware_smoothness(soft, img).backward()
    assert soft.grad.abs().sum() > 0


def test_box_projection_is_zero_for_a_mask_spanning_the_box_and_one_for_an_empty_mask():
    from indprior.losses import box_projection
    box = torch.zeros(2, 1, 10, 10)
    box[..., 2:8, 1:9] = 1
    cross = torch.zeros_like(box)  # a plus sign touching all four box sides: spans it, though far from filling it
    cross[..., 4:6, 1:9] = 1
    cross[..., 2:8, 4:6] = 1
    assert box_projection(box, box) < 1e-6 and box_projection(cross, box) < 1e-6
    assert box_projection(torch.zeros_like(box), box) == pytest.approx(1.0)
    half = torch.zeros_like(box)  # the left half of the box: full height, half the width
    half[..., 2:8, 1:5] = 1
    assert box_projection(half, box) == pytest.approx((1 - 2 * 4 / (4 + 8)) / 2, abs=1e-6)
    m = torch.full_like(box, 0.5, requires_grad=True)
    box_projection(m * box, box).backward()
    assert m.grad.abs().sum() > 0
