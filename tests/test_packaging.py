"""Packaging: every third-party module the package imports is a requirement of its own, not a passenger of another's,
and no code needs a Python newer than the package says it runs on."""
import ast
import configparser
import re
import subprocess
import sys
from importlib.metadata import distributions, packages_distributions
from pathlib import Path

from optional import import_or_skip

ROOT = Path(__file__).parents[1]


def imported_top_level_modules() -> set[str]:
    names = set()
    for path in (ROOT/"simsiam_collapse").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import): names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0: names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"simsiam_collapse", "__future__"}


def settings() -> configparser.SectionProxy:
    "settings.ini's settings (the package's metadata and requirements)."
    cfg = configparser.ConfigParser(); cfg.read(ROOT/"settings.ini")
    return cfg["DEFAULT"]


def declared(keys=("requirements", "experiments_requirements", "lightning_requirements")) -> set[str]:
    "The distributions settings.ini requires under `keys` (the core, and the extras setup.py builds from them)."
    reqs = [r for k in keys for r in settings()[k].split()]
    return {re.split(r"[<>=!~\[]", r)[0].lower().replace("_", "-") for r in reqs}


def module_distributions() -> dict[str, list[str]]:
    """{top-level module: the distributions that install it}: `packages_distributions`, which before Python 3.11 reads
    only top_level.txt (scikit-learn's wheels have none: `sklearn` came out unowned on 3.10), completed from each
    distribution's list of files, as 3.11 does."""
    found = {m: list(d) for m, d in packages_distributions().items()}
    for dist in distributions():
        if dist.read_text("top_level.txt"): continue  # read above
        name, files = dist.metadata["Name"], dist.files or ()
        for top in {f.parts[0] if len(f.parts) > 1 else f.stem for f in files if len(f.parts) > 1 or f.suffix == ".py"}:
            if top.isidentifier() and name not in found.setdefault(top, []): found[top].append(name)
    return found


def test_module_distributions_name_the_owner_of_each_module():
    # sklearn: scikit-learn's wheels carry no top_level.txt; _pytest: a module named unlike its distribution
    expected, dists = {"sklearn": "scikit-learn", "numpy": "numpy", "_pytest": "pytest"}, module_distributions()
    assert {m: d in dists.get(m, []) for m, d in expected.items()} == dict.fromkeys(expected, True), \
        {m: dists.get(m) for m in expected}


def test_every_imported_third_party_module_is_declared():
    dists = module_distributions()
    missing = {m: dists.get(m, ["?"]) for m in imported_top_level_modules()
               if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & declared()}
    assert not missing, f"imported but not in settings.ini's requirements (module: distributions): {missing}"


CORE_CHECK = """
import importlib.abc, sys
import numpy, torch, tqdm  # the core's three requirements, with whatever they bring
ALLOWED = {m.split(".")[0] for m in sys.modules} | {"simsiam_collapse"} | set(sys.stdlib_module_names)
class Refuse(importlib.abc.MetaPathFinder):  # from here on, any other third-party import fails
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in ALLOWED and not name.startswith("_"):
            raise ModuleNotFoundError(f"{name} is not part of the core install", name=name)
sys.meta_path.insert(0, Refuse())
import simsiam_collapse as sc
import torch
features = torch.randn(300, 16)
print(sc.collapse_auc(sc.singular_values(features)) > 0, sorted(sc.label_free_measures(features))[:2])
monitor = sc.CollapseMonitor(features, every=1, log=None)
print(monitor.step(torch.nn.Linear(16, 8))["feature_dim"], len(list(sc.Ordering("single_pass", n=64, epochs=2,
      batch_size=16, seed=0).batches(0))))
from simsiam_collapse.evaluate import extract_features  # on your own tensors: the core
print(tuple(extract_features(torch.nn.Linear(16, 8), features, progress=False).shape))
"""


def test_the_core_api_imports_and_runs_with_torch_numpy_and_tqdm_alone():
    """What the core install gives (no extra): the metric, the measures, the monitor, extract_features, the orderings.
    (tests/test_readme.py installs it as the README says, in a fresh virtual environment: a slow test.)"""
    out = subprocess.run([sys.executable, "-c", CORE_CHECK], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "['alpha_req',", "'auc']", "8", "4", "(300,", "8)"]  # 64 / 16: 4 steps
    assert declared(("requirements",)) == {"torch", "numpy", "tqdm"}


def notebooks_as_scripts(folder: Path) -> Path:
    "Every notebook's code cells as one script under `folder` (shell and magic lines left out: they are not Python)."
    import json
    for notebook in (ROOT/"nbs").rglob("*.ipynb"):
        cells = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
        lines = [line for cell in cells for line in cell.splitlines() if not line.lstrip().startswith(("%", "!"))]
        (folder/f"{notebook.parent.name}_{notebook.stem}.py").write_text("\n".join(lines) + "\n")
    return folder


def test_no_code_needs_a_python_newer_than_min_python(tmp_path):
    """settings.ini promises min_python, which the Python running the tests may be newer than: vermin finds the oldest
    Python each file runs on, from its syntax and the standard-library names it uses (ruff's target-version, which must
    be the same Python, checks the syntax alone: `import tomllib` passes it and fails on 3.10)."""
    import_or_skip("vermin")
    oldest = settings()["min_python"]
    ruff = re.search(r'^target-version\s*=\s*"py(\d)(\d+)"', (ROOT/"ruff.toml").read_text(), re.M)
    assert ruff and ".".join(ruff.groups()) == oldest, f"ruff.toml's target-version is not min_python {oldest}"
    code = [ROOT/"simsiam_collapse", ROOT/"tests", ROOT/"benchmarks", notebooks_as_scripts(tmp_path)]
    vermin = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]
    args = [f"--target={oldest}-", "--violations", "--no-tips", "--eval-annotations", *map(str, code)]
    out = subprocess.run([*vermin, *args], capture_output=True, text=True)
    assert out.returncode == 0, f"needs a Python newer than {oldest}:\n{out.stdout[-3000:]}{out.stderr[-1000:]}"
