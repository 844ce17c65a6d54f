"""The package's shape, kept: one owner per concept, modules a reader can hold in mind, functions that read top to
bottom with their options named, and library notebooks in small cells."""
import ast
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
MODULES = sorted(p for p in (ROOT/"simsiam_collapse").glob("*.py") if p.name != "_modidx.py")
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_POSITIONAL, MAX_MEDIAN_CELL = 450, 60, 7, 15


def functions():
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)): yield path.name, node


def test_no_module_is_longer_than_a_reader_holds():
    long = {p.name: n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}; split by concept"


def test_no_function_is_long_or_takes_many_positional_parameters():
    long = [f"{m}:{f.name} ({f.end_lineno - f.lineno + 1})" for m, f in functions()
            if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    many = [f"{m}:{f.name} ({len(f.args.posonlyargs) + len(f.args.args)})" for m, f in functions()
            if len(f.args.posonlyargs) + len(f.args.args) > MAX_POSITIONAL]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
    assert not many, f"over {MAX_POSITIONAL} positional parameters (make the options keyword-only after *): {many}"


def test_library_notebooks_export_in_small_cells():
    sizes = [len(c["source"]) for nb in sorted((ROOT/"nbs").glob("[0-9][0-9]_*.ipynb"))
             for c in json.loads(nb.read_text())["cells"]
             if c["cell_type"] == "code" and "".join(c["source"]).startswith("#| export")]
    assert statistics.median(sizes) <= MAX_MEDIAN_CELL, statistics.median(sizes)


def test_the_command_line_and_the_report_do_not_load_the_training_stack():
    # `simsiam-collapse --help`, `reproduce` and the report read run folders (runs), never the training loop
    code = ("import sys, simsiam_collapse.cli, simsiam_collapse.report; "
            "print(sorted(m for m in sys.modules if m in ('simsiam_collapse.train', 'simsiam_collapse.runner')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
