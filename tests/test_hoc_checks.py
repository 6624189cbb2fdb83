"""The size check: a finished run's instances against the photo's own reading (lone objects, inscribed discs)."""
import cv2
import numpy as np
import pytest

from indprior.data import COINS_GT, coins, load_label_map
from indprior.data.suite import make_hoc
from indprior.hoc import checks, photo_stats
from indprior.hoc.checks import cut_in_two, joined_in_pairs


def test_disc_fill_tells_one_round_object_from_two_joined():
    one = np.zeros((80, 200), np.uint8)
    cv2.circle(one, (40, 40), 20, 1, -1)
    ellipse = np.zeros_like(one)
    cv2.ellipse(ellipse, (120, 40), (40, 20), 0, 0, 360, 1, -1)
    two = np.zeros_like(one)
    cv2.circle(two, (40, 40), 20, 1, -1)
    cv2.circle(two, (76, 40), 20, 1, -1)  # overlapping by a tenth of a diameter
    assert 0.95 < checks.disc_fill(one)[0] < 1.1
    assert checks.disc_fill(ellipse)[0] == pytest.approx(2.0, rel=0.12)  # a / b
    assert checks.disc_fill(two)[0] > 1.8
    assert len(checks.disc_fill(np.pad(np.ones((2, 2), np.uint8), 2))) == 0  # specks are left out


@pytest.mark.parametrize("kind,seed", [("nuclei", 5), ("dark_on_light", 2)])
def test_instances_of_the_lone_objects_size_pass_and_pieces_or_pairs_do_not(kind, seed):
    img, gt = make_hoc(kind, seed)
    stats = photo_stats(img)
    right = checks.size_check(gt, stats, elongated=False)
    assert right["verdict"] == "ok" and right["lone_objects"] >= checks.LONE_MIN
    assert 0.7 < right["area_vs_lone"] < 1.3
    cut = checks.size_check(cut_in_two(gt), stats, elongated=False)
    assert cut["verdict"] == "pieces" and cut["area_vs_lone"] < checks.PIECES
    note = checks.size_note(cut, 9.0)
    assert "cut into pieces" in note and "too small" in note and f"instance_size={cut['lone_diameter']:.0f}" in note
    joined = checks.size_check(joined_in_pairs(gt), stats, elongated=False)
    assert joined["verdict"] == "merged" and joined["area_vs_lone"] > checks.MERGED
    assert "several objects each" in checks.size_note(joined, 30.0)
    assert checks.size_note(right, 15.0) is None


@pytest.mark.parametrize("kind,seed", [("discs", 161), ("fruit", 177), ("sizes", 1)])
def test_heaps_without_lone_objects_are_checked_by_their_instances_shape(kind, seed):
    """Heaps of touching objects have few lone objects or none: there, instances of two objects each, and halves of
    objects, are told from whole ones by their area for the largest disc inside them (not which of the two)."""
    img, gt = make_hoc(kind, seed)
    stats = photo_stats(img)
    right = checks.size_check(gt, stats, elongated=False)
    assert right["verdict"] == "ok" and right["area_vs_lone"] is None
    assert right["fill"] < checks.FILLED * right["fill_expected"]
    for wrong in (joined_in_pairs(gt), cut_in_two(gt)):
        check = checks.size_check(wrong, stats, elongated=False)
        assert check["verdict"] == "misshapen" and check["fill"] > checks.FILLED * check["fill_expected"]
        note = checks.size_note(check, 60.0)
        assert "not shaped like single objects" in note and "pass instance_size, the typical" in note


def test_rods_and_coins_pass_as_they_are():
    img, gt = make_hoc("rods", 181)
    rods = checks.size_check(gt, photo_stats(img), elongated=True)
    assert rods["verdict"] == "ok" and rods["fill"] is None  # rods are long for their width: no fill check
    assert checks.size_check(cut_in_two(gt), photo_stats(img), elongated=True)["verdict"] == "pieces"
    assert checks.size_check(load_label_map(COINS_GT), photo_stats(coins()), elongated=False)["verdict"] == "ok"
