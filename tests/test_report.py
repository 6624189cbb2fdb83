"""make report: the results page is built from the runs' metrics.json and the HOC suite files, nothing typed."""
import json

from indprior.report import collect, suite_summary, write_report


def _write(path, metrics):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))


def _task1(seed, iou, profile="cpu"):
    return {"task": "foreground", "method": "independence_prior", "dataset": "birds:1", "profile": profile,
            "seed": seed, "iou_mean": iou, "whole_box_iou_mean": 0.48, "grabcut_box": {"iou_mean": 0.80},
            "self_trained": {"iou_mean": iou + 0.05}, "seconds": 300.0,
            "provenance": {"commit": "abc1234", "command": "python -m indprior train --task task1", "hardware": "2 cores"}}


def test_report_summarises_seeds_skips_smoke_runs_and_counts_failed_suite_runs(tmp_path):
    runs = tmp_path / "runs"
    _write(runs / "t1_s0", _task1(0, 0.70))
    _write(runs / "t1_s1", _task1(1, 0.60) | {"colour_cue_box": {"iou_mean": 0.83}})  # a run since session 27
    _write(runs / "nbval" / "02", _task1(0, 0.11, profile="smoke"))
    (runs / "broken").mkdir()
    (runs / "broken" / "metrics.json").write_text("{not json")
    assert [d.name for d, _ in collect(runs)] == ["t1_s0", "t1_s1"]

    suite = tmp_path / "suite.jsonl"
    rows = [{"kind": "coins", "f1": 0.9, "ap50": 0.9, "ap": 0.6, "count_error": 1, "status": "ok", "ws_f1": 0.7,
             "seconds": 100, "rss_mb": 500, "commit": "fe12345", "warnings": ["the instances are not shaped like ..."]},
            {"kind": "coins", "f1": None, "status": "failed", "count_error": 24, "seconds": 50, "rss_mb": 400}]
    suite.write_text("\n".join(json.dumps(r) for r in rows))
    again = tmp_path / "again.jsonl"  # the same runs segmented again by later code (hoc_suite.py --resegment)
    again.write_text(json.dumps({**rows[0], "segmented_at": "ab98765", "segmented_with": ["views=4"]}))
    refit = tmp_path / "refit.jsonl"  # ... and with the factory and segmenter run again (hoc_suite.py --refit)
    refit.write_text(json.dumps({**rows[0], "refit_at": "cd45678", "refit_with": ["ghost_peak=0.1"]}) + "\n"
                     + json.dumps(rows[0]))
    scale = tmp_path / "scale.jsonl"
    scale.write_text("\n".join(json.dumps({"kind": "rods", "diameter_ratio": d, "width_ratio": 1.0, "fg_iou": f,
                                           "seconds": 5.0, **used}) for d, f, used in (  # rows before session 41
        (0.9, 0.95, {"size_ratio": 0.8}), (1.0, 0.97, {"size_ratio": 1.3}), (0.5, 0.30, {}))))  # had no size used
    page = write_report(runs, [suite, again, refit], tmp_path / "docs" / "results.md", cache_dir=tmp_path / "cache",
                        scale_files=[scale]).read_text()

    assert "0.650 / 0.600" in page  # GAN: mean / worst over the two seeds
    assert "0.700 / 0.650" in page  # self-trained
    assert "| 0.800 | 0.830 | 0.650 / 0.600 |" in page  # GrabCut from the box, the cue alone (the one run with it), GAN
    assert "0.11" not in page  # the smoke run is not a result
    assert "abc1234" in page and "2 cores" in page
    line = next(ln for ln in page.splitlines() if ln.startswith("| coins |"))
    # a failed run counts as F1 0: mean 0.45, worst 0.0, one failed, one that finished with a warning
    assert line.split(" | ")[1:4] == ["2", "0.450", "0.000"] and line.split(" | ")[7:9] == ["1", "1"], line
    assert suite_summary(rows).splitlines()[0].startswith("| kind |")
    assert "Runs made at commit fe12345.\n" in page  # which code the suite rows come from
    assert "Runs made at commit fe12345. Segmented again (no training) at commit ab98765 (views=4)." in page
    assert ("Runs made at commit fe12345. 1 of the runs: GAN kept, labelled-data factory and segmenter run again at "
            "commit cd45678 (ghost_peak=0.1).") in page
    # the size table: median ratio 0.90, the worst is the one furthest from 1 (0.50); foreground IoU worst 0.30
    assert "| rods | 3 | 0.90 (0.50) | 1.00 (1.00) | 1.05 (1.30) | 0.95 (0.30) | 5.0 |" in page
