"""The walkthrough notebooks execute from top to bottom (nbclient) without errors."""
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["predict_collapse_before_training.ipynb", "reproduce_a_figure.ipynb"])
def test_notebook_executes(name, tmp_path):
    nb = nbformat.read(os.path.join(HERE, name), as_version=4)
    stored = [c for c in nb.cells if c.cell_type == "code"]
    assert stored and all(c.outputs for c in stored), "notebooks are committed executed"
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("name", ["predict_collapse_before_training.ipynb", "reproduce_a_figure.ipynb"])
def test_stored_outputs_are_clean(name):
    """The committed outputs carry no warnings, no stderr and no path of the machine that ran them."""
    nb = nbformat.read(os.path.join(HERE, name), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    text = " ".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "Warning" not in text and "/work/" not in text and "/home/" not in text and "/root/" not in text
