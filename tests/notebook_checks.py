"""Run a library notebook's checks against the exported package instead of the notebook's own definitions.

nbdev_test executes a notebook top to bottom, so its checks test the code defined in the notebook. Mutation testing
changes the package on disk (`mutmut`), so the same checks must run with every `#| export` cell replaced by the
module it exported to: that is what `run_notebook_checks` does."""
import importlib
import json
import os
from pathlib import Path

NBS = Path(__file__).resolve().parent.parent / "nbs"
SKIP_FLAGS = ("#| notest", "#| slow", "#| eval: false")  # nbdev_test's tst_flags, and cells never run


def _directives(source: str) -> list[str]:
    "The `#|` lines at the top of a cell."
    out = []
    for line in source.splitlines():
        if not line.startswith("#|"): break
        out.append(line.strip())
    return out


def notebook_module(notebook: Path) -> str:
    "The package module a notebook exports to (its `#| default_exp`)."
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        for d in _directives("".join(cell["source"])):
            if d.startswith("#| default_exp "): return "simsiam_collapse." + d.split()[-1]
    raise ValueError(f"{notebook} has no `#| default_exp` cell: it exports nothing, so it has no package to test.")


def check_cells(notebook: Path) -> list[str]:
    "The sources of the code cells nbdev_test would run, minus the `#| export` cells (the package stands in for them)."
    cells = []
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        if cell["cell_type"] != "code": continue
        source = "".join(cell["source"])
        flags = _directives(source)
        if any(d.startswith(("#| export", "#| default_exp")) for d in flags): continue
        if any(d.startswith(SKIP_FLAGS) for d in flags): continue
        cells.append(source)
    return cells


def run_notebook_checks(notebook) -> None:
    "Execute the checks of `notebook` (a path, or a name under nbs/) in a namespace holding its module's every name."
    notebook = Path(notebook) if Path(notebook).exists() else NBS / notebook
    module = importlib.import_module(notebook_module(notebook))
    namespace = {k: v for k, v in vars(module).items() if not k.startswith("__")}
    namespace["__name__"] = "__main__"
    cwd = os.getcwd()
    os.chdir(notebook.parent)  # as nbdev_test runs it: relative paths are the notebook's
    try:
        import matplotlib
        matplotlib.use("Agg")
        for i, source in enumerate(check_cells(notebook)):
            exec(compile(source, f"{notebook.name} check cell {i}", "exec"), namespace)
    finally:
        os.chdir(cwd)
        import matplotlib.pyplot as plt
        plt.close("all")
