"""The Colab notebooks are stored clean: valid nbformat v4, no outputs, a `parameters` cell.

Executing them (small, KERAS_CAPS_NB_QUICK=1) is `make test`'s `pytest --nbmake colab` step;
this test only keeps what is committed free of outputs and ready for that run.
"""

import glob
import json
import os

import nbformat
import pytest

COLAB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "colab")
NOTEBOOKS = sorted(glob.glob(os.path.join(COLAB, "*.ipynb")))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {COLAB}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_valid_v4(path):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    assert raw.get("nbformat") == 4, f"{path}: nbformat {raw.get('nbformat')}, expected 4"
    nb = nbformat.reads(json.dumps(raw), as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.cells, f"{path} has no cells"
    assert nb.cells[0].cell_type == "markdown", f"{path}: the first cell should be the title"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    dirty = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")
                                         is not None)
    ]
    assert not dirty, (
        f"{os.path.basename(path)}: code cells {dirty} have outputs or execution counts; "
        "store notebooks stripped (e.g. `jupyter nbconvert --clear-output --inplace`)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_has_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    tagged = [
        cell for cell in nb.cells
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    assert len(tagged) == 1, (
        f"{os.path.basename(path)}: expected one code cell tagged 'parameters', found "
        f"{len(tagged)}"
    )
