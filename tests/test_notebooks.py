"""The notebooks run top to bottom on CPU, and the committed .ipynb files are the stripped pairs of
their jupytext .py sources (edit the .py, then ``jupytext --sync notebooks/*.py``)."""
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9]*.py"))
NAMES = ["01_quickstart", "02_test_time_scaling", "03_bring_your_own_task"]


def test_the_three_notebooks_are_there_in_both_forms():
    assert [p.stem for p in SOURCES] == NAMES
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


@pytest.mark.parametrize("name", NAMES)
def test_committed_ipynb_is_stripped_and_matches_its_source(name):
    paired = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(paired)
    for cell in paired.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}.ipynb has outputs: strip them"
    assert "widgets" not in paired.metadata  # no saved widget state either
    assert _cells(paired) == _cells(jupytext.read(NOTEBOOKS / f"{name}.py")), f"{name}.ipynb is out of sync with {name}.py"
    assert paired.metadata["jupytext"]["formats"] == "ipynb,py:percent"


def _kernel_manager() -> KernelManager:
    """The ``python3`` kernel on *this* interpreter: the spec comes from ipykernel itself when no
    kernelspec is installed, and its argv is pinned to sys.executable (an installed spec says
    ``python``, which may be another interpreter)."""
    manager = KernelManager(kernel_name="python3")
    manager.kernel_spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return manager


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_cpu(name, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the notebooks promise a CPU is enough
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    client = NotebookClient(notebook, km=_kernel_manager(), timeout=300, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = {kind for o in outputs for kind in o.get("data", {})}
    assert "image/png" in kinds
    assert "application/vnd.jupyter.widget-view+json" in kinds  # a ChainViewer was displayed
