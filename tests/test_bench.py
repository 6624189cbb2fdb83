"""`make bench`'s script: a quick, restricted run writes the documented JSON (seconds, not minutes)."""
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


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
