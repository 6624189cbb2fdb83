"""tools/refresh_notebooks.py: what it strips from a stored notebook."""
import importlib.util
from pathlib import Path

import nbformat

_spec = importlib.util.spec_from_file_location("refresh_notebooks",
                                               Path(__file__).resolve().parent.parent / "tools" / "refresh_notebooks.py")
refresh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refresh)


def test_consecutive_stream_outputs_are_merged_and_others_kept_in_order():
    out = nbformat.v4.new_output
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [out("stream", name="stdout", text="a\n"), out("stream", name="stdout", text=["b\n", "c\n"]),
                    out("stream", name="stderr", text="warn\n"), out("stream", name="stdout", text="d\n"),
                    out("display_data", data={"text/plain": "fig"}), out("stream", name="stdout", text="e\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    got = refresh.strip_noise(nb).cells[0].outputs
    assert [(o.output_type, o.get("name"), o.get("text")) for o in got] == [
        ("stream", "stdout", "a\nb\nc\n"), ("stream", "stderr", "warn\n"), ("stream", "stdout", "d\n"),
        ("display_data", None, None), ("stream", "stdout", "e\n")]
    assert nb.cells[0].execution_count == 1


def test_seed_runs_copies_the_kept_runs_of_the_notebooks_not_refreshed(tmp_path):
    keep, runs = tmp_path / "keep", tmp_path / "scratch" / "runs"
    for name in ("02_training", "03_hoc_one_shot", "04_mask_visualization"):
        (keep / name).mkdir(parents=True)
        (keep / name / "metrics.json").write_text(name)
    (keep / "stray.txt").write_text("not a run")
    got = refresh.seed_runs(keep, runs, [Path("notebooks/04_mask_visualization.ipynb")])
    assert got == ["02_training", "03_hoc_one_shot"]
    assert (runs / "02_training" / "metrics.json").read_text() == "02_training"
    assert not (runs / "04_mask_visualization").exists()  # the refreshed notebook starts clean
    assert not (runs / "stray.txt").exists()
    assert refresh.seed_runs(tmp_path / "nothing_kept", tmp_path / "other", []) == []
    assert (tmp_path / "other").is_dir()


def test_reuse_runs_without_keep_runs_is_refused(capsys):
    import pytest
    with pytest.raises(SystemExit) as err:
        refresh.main(["--reuse-runs"])
    assert err.value.code == 2
    assert "--reuse-runs needs --keep-runs" in capsys.readouterr().err
