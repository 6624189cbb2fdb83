"""`python -m indprior train` (and `python -m indprior.train`): every task runs from the command line; bad
arguments are clear errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from indprior.core import config as C
from indprior.data import make_synthetic_cub
from indprior.train import main


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_synthetic_cub(tmp_path_factory.mktemp("cub") / "CUB", n_images=10, n_test=4, image_size=80, seed=4)


def test_task1_and_redo_from_the_command_line(root, tmp_path, capsys, one_thread):
    m = main(["--task", "task1", "--profile", "smoke", "--dataset", f"cub:{root}", "--out", str(tmp_path / "t1"),
              "--set", "steps=6", "--set", 'refine="none"', "--no-progress"])
    assert m["steps"] == 6 and json.loads((tmp_path / "t1" / "metrics.json").read_text())["n_images"] == 4
    assert '"iou_mean"' in capsys.readouterr().out
    r = main(["--task", "redo", "--profile", "smoke", "--dataset", f"cub:{root}", "--out", str(tmp_path / "redo"),
              "--no-progress"])
    assert r["method"] == "redo"


def test_hoc_from_the_command_line(tmp_path, one_thread):
    from skimage.data import coins
    Image.fromarray(np.stack([coins()[:128, :128]] * 3, -1)).save(tmp_path / "photo.png")
    m = main(["--task", "hoc", "--profile", "smoke", "--image", str(tmp_path / "photo.png"), "--out", str(tmp_path / "h"),
              "--set", "instance_size=40", "--no-progress"])
    assert m["task"] == "hoc" and m["image"].endswith("photo.png") and (tmp_path / "h" / "instances.png").is_file()


def test_bad_arguments_are_clear(tmp_path, capsys):
    with pytest.raises(C.ConfigError, match="no field 'speed'"):
        main(["--task", "task1", "--profile", "smoke", "--out", str(tmp_path), "--set", "speed=3"])
    with pytest.raises(SystemExit):
        main(["--task", "task1", "--out", str(tmp_path), "--set", "steps"])
    assert "expected FIELD=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--task", "segment-everything", "--out", str(tmp_path)])


def test_python_m_indprior_is_the_command_line(root, tmp_path):
    """`python -m indprior train ...` in a fresh process (the README's command) writes a finished run."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "indprior", "train", "--task", "task1", "--profile", "smoke", "--dataset", f"cub:{root}",
           "--out", str(out), "--set", "steps=4", "--set", "self_train_steps=0", "--set", 'refine="none"', "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["steps"] == 4 == json.loads((out / "metrics.json").read_text())["steps"]
    bad = subprocess.run([sys.executable, "-m", "indprior", "fly"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'fly'" in bad.stderr
    # a bad setting or a missing data set: one line naming it, exit status 2, no traceback (both entry points)
    for module, args in (("indprior", ["train", "--set", "steps=-1"]), ("indprior.train", ["--dataset", "cub:/nowhere"])):
        bad = subprocess.run([sys.executable, "-m", module, *args, "--task", "task1", "--out", str(tmp_path / "bad")],
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
        assert ("steps=-1" if module == "indprior" else "/nowhere") in bad.stderr
