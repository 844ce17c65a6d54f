"""The package's shape, kept: one owner per concept, modules a reader can hold in mind, functions that read top to
bottom with their options named, and library notebooks in small cells."""
import ast
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
MODULES = sorted(p for p in (ROOT/"simsiam_collapse").glob("*.py") if p.name != "_modidx.py")
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_POSITIONAL, MAX_MEDIAN_CELL = 450, 60, 7, 11
MAX_CELL_LINES, MIN_CHECKED_SHARE = 60, 0.6


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


def _exported_cells():
    "(notebook, exported cell, the next code cell or None) of every library notebook, markdown skipped."
    for nb in sorted((ROOT/"nbs").glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        for c, nxt in zip(cells, cells[1:] + [None]):
            if "".join(c["source"]).startswith("#| export"): yield nb.name, c, nxt


def _only_imports(source) -> bool:
    return all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.parse(source).body)


def test_library_notebooks_export_in_small_cells():
    sizes = [len(c["source"]) for _, c, _ in _exported_cells()]
    long = [f"{nb}: {len(c['source'])} lines ({c['source'][1].strip()[:40]})" for nb, c, _ in _exported_cells()
            if len(c["source"]) > MAX_CELL_LINES]
    assert not long, f"exported cells over {MAX_CELL_LINES} lines (split them, one concern a cell; @patch): {long}"
    assert statistics.median(sizes) <= MAX_MEDIAN_CELL, statistics.median(sizes)


def test_one_public_definition_per_exported_cell():
    """fastcore's habit: each public function or class in its own cell, with its check under it; private helpers and
    constants sit with the definition that uses them."""
    def public(c): return [n.name for n in ast.parse("".join(c["source"])).body
                           if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]
    crowded = [f"{nb}: {', '.join(names)}" for nb, c, _ in _exported_cells() if len(names := public(c)) > 1]
    assert not crowded, f"exported cells defining more than one public name (one cell each): {crowded}"


def test_most_exported_cells_are_followed_by_their_check():
    """CONTRIBUTING's promise, fastcore's habit: an exported cell is followed (markdown aside) by a code cell that uses
    it, not by the next export. The imports cell has nothing to check and is not counted."""
    cells = [(c, nxt) for _, c, nxt in _exported_cells()
             if not _only_imports("".join(c["source"]).removeprefix("#| export"))]
    checked = sum(nxt is not None and not "".join(nxt["source"]).startswith("#| export")
                  and not _only_imports("".join(nxt["source"]).replace("#| hide", "")) for _, nxt in cells)
    assert checked >= MIN_CHECKED_SHARE * len(cells), f"{checked} of {len(cells)} exported cells followed by a check"


def test_the_command_line_and_the_report_do_not_load_the_training_stack():
    # `simsiam-collapse --help`, `reproduce` and the report read run folders (runs), never the training loop
    code = ("import sys, simsiam_collapse.cli, simsiam_collapse.report; "
            "print(sorted(m for m in sys.modules if m in ('simsiam_collapse.train', 'simsiam_collapse.runner')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_only_the_run_folder_names_the_files_of_a_run():
    """Every file of a run, and the store's folder, is named in runs.py alone: other modules reach them through
    `RunFolder` and `run_store`, so a renamed file is one edit."""
    from simsiam_collapse.runs import ENVIRONMENT, STORE, RunFolder
    folder = RunFolder("run")
    names = {getattr(folder, k).name for k, v in vars(RunFolder).items() if isinstance(v, property)} | {ENVIRONMENT}
    assert {"config.json", "eval.json", "metrics.jsonl", "status.json", "checkpoints"} <= names
    quoted = {f'"{n}"' for n in names | {STORE}} | {f'"{n}/' for n in names} | {f'/{n}"' for n in names}
    found = {f"{p.name}:{i}: {line.strip()}" for p in MODULES if p.name != "runs.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if any(q in line for q in quoted)}
    assert not found, f"run-file names outside runs.py (use RunFolder / run_store): {sorted(found)}"


def _floors() -> dict[str, int]:
    "Each exported module's floor: the number of the library notebook it is exported from."
    floors = {}
    for nb in sorted((ROOT/"nbs").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if (m := re.match(r"#\| default_exp (\w+)", "".join(cell["source"]))): floors[m.group(1)] = int(nb.name[:2])
    package = re.findall(r"^from \.(\w+) import", (ROOT/"simsiam_collapse"/"__init__.py").read_text(), flags=re.M)
    floors["simsiam_collapse"] = max(floors[m] for m in package)  # importing the package imports these
    return floors


def _imported(code: str) -> set[str]:
    "The package's modules that `code` imports (the package itself counts as the modules its __init__ imports)."
    named = re.findall(r"(?:from|import) (?:simsiam_collapse)?\.(\w+)", code)
    whole = re.findall(r"^\s*(?:import simsiam_collapse\s*$|from simsiam_collapse import)", code, flags=re.M)
    return set(named) | ({"simsiam_collapse"} if whole else set())


def test_every_import_runs_down_the_floors_and_the_notebooks_read_in_build_order():
    """A module imports only modules of lower-numbered notebooks, and a notebook (its checks included) only modules of
    notebooks numbered no later than itself: a reader meets each concept before it is used, and the package has no
    import from a lower floor up to a higher one."""
    floors = _floors()
    up = [f"{p.stem} ({floors[p.stem]}) imports {m} ({floors[m]})" for p in MODULES if p.stem in floors
          for m in _imported(p.read_text()) if m in floors and floors[m] >= floors[p.stem] and m != p.stem]
    later = [f"{nb.name} imports {m} ({floors[m]})" for nb in sorted((ROOT/"nbs").glob("[0-9][0-9]_*.ipynb"))
             for cell in json.loads(nb.read_text())["cells"] if cell["cell_type"] == "code"
             for m in _imported("".join(cell["source"])) if m in floors and floors[m] > int(nb.name[:2])]
    assert not up, f"imports from a lower floor up: {sorted(set(up))}"
    assert not later, f"notebooks importing a later notebook's module: {sorted(set(later))}"


def test_each_number_of_the_paper_is_typed_once_in_the_package():
    """The paper's accuracies, parameter counts and published AUCs are typed in paper.py alone, once each: Table 2's
    multiple pass, E1's and E9's numbers are read from Table 1 and Table 2, never typed again."""
    from simsiam_collapse import paper
    numbers = {v for r in paper.TABLE1 for v in (r["paper_params_m"], r["paper_accuracy"])}
    numbers |= {mean for row in paper.PAPER_TABLE2.values() for mean, _ in row.values()}
    numbers |= set(paper.OFFICIAL_AUC.values()) | set(paper.OFFICIAL_AUC_SQUARED.values())
    typed = {}
    for p in MODULES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and type(node.value) is float and node.value in numbers:
                typed.setdefault(node.value, []).append(p.name)
    assert len(numbers) > 30 and set(typed) == numbers, sorted(numbers - set(typed))
    twice = {n: where for n, where in typed.items() if where != ["paper.py"]}
    assert not twice, f"the paper's numbers typed outside paper.py, or twice: {twice}"


def test_every_mutation_target_is_mutated_and_judged_by_its_notebook():
    "`make mutation`'s targets (tests/mutation_score.py) agree with what mutmut is told (setup.cfg), name by name."
    import configparser

    from mutation_score import TARGETS, target_functions
    from notebook_checks import notebook_module
    cfg = configparser.ConfigParser(); cfg.read(ROOT/"setup.cfg")
    mutated = {Path(p).stem for p in cfg["mutmut"]["only_mutate"].split()}
    runner = cfg["mutmut"]["pytest_add_cli_args_test_selection"]
    judged = {notebook_module(nb).rpartition(".")[2] for nb in (ROOT/"nbs").glob("[0-9][0-9]_*.ipynb")
              if f"[{nb.name}]" in runner}
    assert set(TARGETS) == mutated, f"targets not mutated: {set(TARGETS) - mutated}; mutated, no target: " \
                                    f"{mutated - set(TARGETS)}"
    assert set(TARGETS) <= judged, f"targets whose notebook's checks do not judge them: {set(TARGETS) - judged}"
    found = {(module, fn.name if mangled.startswith("x_") else mangled.split("\u01c1")[1] + "." + fn.name)
             for module, mangled, fn in target_functions()}
    missing = [f"{module}.{name}" for module, only in TARGETS.items() for name in only or ()
               if (module, name) not in found]
    assert not missing, f"targets that name no function of their module (renamed?): {missing}"
