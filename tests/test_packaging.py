"Packaging: every third-party module the package imports is a requirement of its own, not a passenger of another's."
import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[1]


def imported_top_level_modules() -> set[str]:
    names = set()
    for path in (ROOT/"simsiam_collapse").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import): names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0: names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"simsiam_collapse", "__future__"}


def declared() -> set[str]:
    cfg = configparser.ConfigParser(); cfg.read(ROOT/"settings.ini")
    reqs = cfg["DEFAULT"]["requirements"].split()
    return {re.split(r"[<>=!~\[]", r)[0].lower().replace("_", "-") for r in reqs}


def test_every_imported_third_party_module_is_declared():
    dists = packages_distributions()
    missing = {m: dists.get(m, ["?"]) for m in imported_top_level_modules()
               if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & declared()}
    assert not missing, f"imported but not in settings.ini's requirements (module: distributions): {missing}"
