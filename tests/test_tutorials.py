"The tutorials run as a reader runs them (papermill, the project's kernel), small: every cell, the monitor's assertion."
from pathlib import Path

import pytest
from optional import import_or_skip

TUTORIALS = sorted((Path(__file__).parents[1]/"nbs"/"tutorials").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("notebook", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_the_tutorial_runs_small(notebook, tmp_path):
    papermill = import_or_skip("papermill")
    import_or_skip("lightning")
    papermill.execute_notebook(str(notebook), str(tmp_path/notebook.name), cwd=str(notebook.parent),
                               parameters=dict(images=512, steps=40, every=10), progress_bar=False)


def test_the_tutorials_are_kept_executed():
    "A reader opens a tutorial and sees its outputs: each is committed executed, every code cell with its count."
    import nbformat
    assert TUTORIALS
    for notebook in TUTORIALS:
        nb = nbformat.read(notebook, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{notebook.name}: execute it and commit it with its outputs"
        assert any(o.get("output_type") == "display_data" for c in code for o in c.outputs), "no figure"
