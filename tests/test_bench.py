"""`make bench`'s script: a quick, restricted run writes the documented JSON (seconds, not minutes)."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def bench_module(name: str):
    """A script of bench/ imported as a module; bench/ is on sys.path only while it is imported (removed by value:
    hoc_suite puts its own lib first on import)."""
    folder = str(BENCH.parent)
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)


def test_quick_restricted_bench_writes_results_json(tmp_path):
    out = tmp_path / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "provider-infer,grabcut-infer@160",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result) == {"hardware", "settings", "results", "ratios", "seconds"}
    assert {"summary", "cpu", "torch_threads", "gpu", "torch", "device"} <= set(result["hardware"])
    assert result["settings"]["quick"] is True and result["settings"]["profile"] == "cpu"
    assert [r["job"] for r in result["results"]] == ["provider-infer@128", "grabcut-infer@160"]
    for r in result["results"]:
        assert {"what", "size", "batch", "repeats", "seconds_median", "images_per_s", "peak_rss_mib", "peak_cuda_mib"} <= set(r)
        assert r["images_per_s"] > 0 and r["peak_rss_mib"] > 0 and r["peak_cuda_mib"] is None
    assert "images_per_s" in proc.stdout and "provider-infer@128" in proc.stdout


def test_training_jobs_give_a_prior_over_redo_ratio(tmp_path):
    out = tmp_path / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "prior-train@64,redo-train@64", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    rates = {r["job"]: r["images_per_s"] for r in result["results"]}
    assert result["ratios"] == {"prior-train@64 / redo-train@64": round(rates["prior-train@64"] / rates["redo-train@64"], 2)}
    assert "prior-train@64 / redo-train@64" in proc.stdout


def test_unknown_job_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "nope", "--out", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "matches no job" in proc.stderr and not (tmp_path / "r.json").exists()


def test_train_batch_option_sets_the_batch_and_rejects_nonsense(tmp_path):
    out = tmp_path / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--profile", "smoke", "--train-batch", "3", "--only",
                           "prior-train@64,hoc-gan-train@48", "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["settings"]["train_batch"] == 3 and result["results"][0]["batch"] == 3
    hoc = result["results"][1]  # the HOC GAN keeps its profile's batch (smoke: 4)
    assert hoc["job"] == "hoc-gan-train@48" and hoc["batch"] == 4 and hoc["images_per_s"] > 0
    bad = subprocess.run([sys.executable, str(BENCH), "--train-batch", "0", "--out", str(tmp_path / "b.json")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--train-batch 0" in bad.stderr


def test_time_to_iou_runs_task1_end_to_end_on_the_given_dataset(tmp_path):
    """--quick runs the smoke profile: every stage runs, and the row carries each stage's IoU."""
    from indprior.data import make_synthetic_cub
    root = make_synthetic_cub(tmp_path / "CUB", n_images=16, n_test=4, image_size=64, seed=1)
    out = tmp_path / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "time-to-iou", "--dataset", f"cub:{root}",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    (row,) = result["results"]
    assert result["settings"]["dataset"] == row["dataset"] == f"cub:{root}" and row["profile"] == "smoke"
    for key in ("final_gan_iou", "final_refined_grabcut_iou", "final_self_trained_iou", "final_self_trained_grabcut_iou",
                "best_iou"):
        assert 0 <= row[key] <= 1, key
    assert row["seconds_end_to_end"] > 0
    assert row["pipeline_iou_0.8_in_seconds"] in (None, row["seconds_end_to_end"])
    assert "final_self_trained_grabcut_iou" in proc.stdout


SWEEP = BENCH.parent / "sweep.py"


def test_sweep_runs_a_grid_and_summarises_it(tmp_path):
    from indprior.data import make_synthetic_cub
    root = make_synthetic_cub(tmp_path / "cub", n_images=8, n_test=4, image_size=64)
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"datasets": [f"cub:{root}"], "configs": {
        "a": {"profile": "smoke", "set": {"steps": 4}},
        "b": {"profile": "smoke", "set": {"steps": 4, "d_box": True, "lr_g": 1e-4}}}}))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SWEEP), str(grid), "--out", str(tmp_path / "sw"), "--workers", "2"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads((tmp_path / "sw" / "summary.json").read_text())["runs"]
    assert [(r["config"], r["status"]) for r in runs] == [("a", "done"), ("b", "done")], runs
    for r in runs:
        assert 0 <= r["metrics"]["iou_mean"] <= 1 and r["curve"] and r["curve"][-1][0] == 4
    import torch
    saved = torch.load(next((tmp_path / "sw").glob("b__*/checkpoint.pt")), weights_only=False)
    assert saved["config"]["d_box"] is True and saved["config"]["lr_g"] == 1e-4, "--set values reach the config"
    assert "config" in proc.stdout and "a " in proc.stdout


def test_sweep_past_its_deadline_starts_nothing_and_bad_grids_are_named(tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"datasets": ["synthetic"], "configs": {"a": {"profile": "smoke"}}}))
    proc = subprocess.run([sys.executable, str(SWEEP), str(grid), "--out", str(tmp_path / "sw"), "--deadline", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in json.loads((tmp_path / "sw" / "summary.json").read_text())["runs"]] == ["not started"]
    for text, expected in [("{not json", "cannot read it as JSON"), ('{"configs": {}}', "expected {'datasets'"),
                           ('{"datasets": ["synthetic"], "configs": {"a": {"steps": 3}}}', "config 'a' must be")]:
        grid.write_text(text)
        bad = subprocess.run([sys.executable, str(SWEEP), str(grid), "--out", str(tmp_path / "x")],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and str(grid) in bad.stderr and expected in bad.stderr, bad.stderr


def test_hoc_suite_runs_a_kind_summarizes_and_resumes(tmp_path):
    """bench/hoc_suite.py: one smoke run of one kind becomes a JSON line and a per-kind table; a second call
    finds it done and runs nothing."""
    script = Path(__file__).resolve().parent.parent / "bench" / "hoc_suite.py"
    out = tmp_path / "suite.jsonl"
    cmd = [sys.executable, str(script), "--profile", "smoke", "--kinds", "dark_on_light", "--image-seeds", "3",
           "--train-seeds", "0", "--jobs", "1", "--out", str(out), "--runs", str(tmp_path / "runs")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["kind"] == "dark_on_light" and rows[0]["status"] in ("ok", "failed")
    assert rows[0]["count_gt"] > 0 and rows[0]["ws_f1"] is not None and rows[0]["rss_mb"] > 0
    metrics = json.loads((tmp_path / "runs" / "dark_on_light3_t0" / "metrics.json").read_text())
    assert Path(metrics["image"]).name == "dark_on_light3.png" and Path(metrics["image"]).is_file()
    table = out.with_suffix(".md").read_text()
    assert table.startswith("| kind | runs | F1 mean | F1 worst") and "| dark_on_light | 1 |" in table
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and len(out.read_text().splitlines()) == 1, "a finished run is not run again"
    # --resegment: the saved run segmented again with one view gives the row's scores; a row its folder did not
    # make (another F1) is skipped
    re_cmd = [sys.executable, str(script), "--resegment", str(out), "--out", str(tmp_path / "re.jsonl"), "--runs",
              str(tmp_path / "runs"), "--set", "views=1"]
    done = subprocess.run(re_cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    again_rows = [json.loads(x) for x in (tmp_path / "re.jsonl").read_text().splitlines()]
    if rows[0]["status"] == "ok":
        assert len(again_rows) == 1 and again_rows[0]["segmented_with"] == ["views=1"]
        assert (again_rows[0]["f1"], again_rows[0]["count_pred"]) == (rows[0]["f1"], rows[0]["count_pred"])
    else:
        assert again_rows == []
    # --refit: the factory and segmenter run again (GAN kept) into another folder; with the run's own settings
    # the scores come back the same, and the saved run is left as it was
    seg_file = tmp_path / "runs" / "dark_on_light3_t0" / "segmenter.pt"
    before = seg_file.read_bytes() if seg_file.is_file() else None
    fit_cmd = [sys.executable, str(script), "--refit", str(out), "--into", str(tmp_path / "refit"), "--out",
               str(tmp_path / "fit.jsonl"), "--runs", str(tmp_path / "runs"), "--jobs", "1"]
    done = subprocess.run(fit_cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    fit = [json.loads(x) for x in (tmp_path / "fit.jsonl").read_text().splitlines()]
    if rows[0]["status"] == "ok":
        assert fit[0]["status"] == "ok" and fit[0]["was_f1"] == rows[0]["f1"] and fit[0]["refit_at"]
        assert (fit[0]["f1"], fit[0]["count_pred"]) == (rows[0]["f1"], rows[0]["count_pred"])
        assert (tmp_path / "refit" / "dark_on_light3_t0" / "segmenter.pt").is_file()
        # a refitted run can be segmented again from its own rows: its folder was made at the refit's commit, not
        # at the training's (here both are this tree's, so the training's is made to differ, as it would)
        (tmp_path / "fit_later.jsonl").write_text(json.dumps({**fit[0], "commit": "0000000"}) + "\n")
        done = subprocess.run([sys.executable, str(script), "--resegment", str(tmp_path / "fit_later.jsonl"), "--out",
                               str(tmp_path / "re_fit.jsonl"), "--runs", str(tmp_path / "refit")],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0 and "skipped" not in done.stdout, done.stdout + done.stderr
        re_fit = [json.loads(x) for x in (tmp_path / "re_fit.jsonl").read_text().splitlines()]
        assert len(re_fit) == 1 and re_fit[0]["f1"] == fit[0]["f1"]
    else:
        assert fit[0]["status"] == "skipped"
    assert (seg_file.read_bytes() if seg_file.is_file() else None) == before
    out.write_text(json.dumps({**rows[0], "status": "ok", "f1": -1.0}) + "\n")
    done = subprocess.run(re_cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "skipped dark_on_light3_t0" in done.stdout
    assert (tmp_path / "re.jsonl").read_text() == ""


def test_hoc_suite_plan_runs_coins_once_per_training_seed():
    """Coins is one real photo: one run per training seed, not one per image seed (and not none)."""
    runs = bench_module("hoc_suite").plan("nuclei,coins", "10,11", "0,1,2")
    assert [r for r in runs if r[0] == "coins"] == [("coins", 10, 0), ("coins", 10, 1), ("coins", 10, 2)]
    assert len([r for r in runs if r[0] == "nuclei"]) == 6
    assert [r[2] for r in runs[:3]] == [0, 0, 0], "every kind gets training seed 0 first"


def test_hoc_suite_runs_measure_this_checkouts_library(tmp_path, monkeypatch):
    """Run from a clone, bench/hoc_suite.py measures that clone's lib, not the first `indprior` the environment
    offers (PYTHONPATH, or a shared .venv installed from another checkout): session 29's first before-runs from a
    clone ran the main checkout's newer library."""
    fake = tmp_path / "elsewhere" / "indprior"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    suite = bench_module("hoc_suite")
    result, err = suite._one_thread("import json, indprior; print('RESULT ' + json.dumps({'file': indprior.__file__}))")
    assert result is not None, err
    assert Path(result["file"]).resolve().parent.parent == suite.LIB.resolve()
