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
