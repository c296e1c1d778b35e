"""The stored nbval notebooks must be executions of the current notebook sources.

`make nbval` replays tests/notebooks/*.ipynb; if a notebooks/*.py changed without
`make nbval-update`, the regression test would silently check stale code.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.py"))


def _code_cells(notebook) -> list[str]:
    return [c.source.strip() for c in notebook.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def test_every_notebook_has_a_stored_execution():
    stored = {p.stem for p in (ROOT / "tests" / "notebooks").glob("*.ipynb")}
    assert {p.stem for p in SOURCES} <= stored, "run `make nbval-update`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_stored_notebook_matches_source(source):
    stored = nbformat.read(ROOT / "tests" / "notebooks" / f"{source.stem}.ipynb", as_version=4)
    assert _code_cells(jupytext.read(source)) == _code_cells(stored), f"{source.name} changed: run `make nbval-update`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_has_parameters_cell_and_kernel(source):
    notebook = jupytext.read(source)
    assert notebook.metadata.get("kernelspec", {}).get("name"), "set a kernel: jupytext --set-kernel python3"
    tags = [c.metadata.get("tags", []) for c in notebook.cells if c.cell_type == "code"]
    assert ["parameters"] in tags[:1], "the first code cell must be tagged 'parameters'"
