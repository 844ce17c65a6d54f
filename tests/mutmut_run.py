"""`mutmut`, taught to mutate functions under the decorators our code uses (`make mutation` runs mutmut through this).

mutmut 3 leaves out every function under a decorator other than `staticmethod` or `classmethod`: a decorator runs when
the function is defined, and copying an arbitrary one for the trampoline could have side effects. Four decorators in our
modules are safe to copy and would otherwise hide code that matters: `@patch` (our notebooks build a class one method a
cell; `simsiam_collapse.basics.patch` only sets an attribute of the class its first parameter names: the orderings'
core, `permutation`, `chunk`, `pool`, `epoch_indices`, `batches`, is written so), `@property`, `@torch.no_grad()` and
`@contextlib.contextmanager` (it only wraps the generator the trampoline returns: the monitor's `untouched`, which
restores a model's modes and the RNG states, is written so). A function whose decorators are all among these is mutated
like any other: the trampoline keeps its decorators (so `@patch` adds it to the class, and `basics.patch` unwraps it to
find the class), the original and mutant copies keep none (the trampoline calls them as plain functions, inside whatever
the decorators set up). Other decorated functions stay left out, as mutmut decides.

It also brings mutmut's plain copies of the modules it does not mutate up to date before a run (mutmut copies them
once), so a fix in one of them reaches the mutants' package.

Usage: `python tests/mutmut_run.py run [NAMES...]`, any `mutmut` command line."""
import configparser
import filecmp
import shutil
import sys
from pathlib import Path

import libcst as cst
import libcst.matchers as m
from mutmut.mutation import file_mutation

# the decorators a mutated function may carry: `@patch`, `@property`, `@torch.no_grad()`, `@contextlib.contextmanager`
SAFE = m.Decorator(decorator=m.Name("patch") | m.Name("property")
                   | m.Call(func=m.Attribute(value=m.Name("torch"), attr=m.Name("no_grad")), args=[])
                   | m.Attribute(value=m.Name("contextlib"), attr=m.Name("contextmanager")))
# the two mutmut internals replaced below are those of mutmut 3.8.1: setup.py's `mutation` extra pins 3.8
if not (hasattr(file_mutation, "MutationVisitor") and hasattr(file_mutation, "function_trampoline_arrangement")):
    from importlib.metadata import version
    raise SystemExit(f"tests/mutmut_run.py replaces two functions of mutmut 3.8, which mutmut {version('mutmut')} does "
                     "not have: install the `mutation` extra (make mutation installs it).")
_skip_node_and_children = file_mutation.MutationVisitor._skip_node_and_children
_function_trampoline_arrangement = file_mutation.function_trampoline_arrangement


def safely_decorated(node) -> bool:
    "A function definition with decorators, each of them one of `SAFE`."
    if not (isinstance(node, cst.FunctionDef) and node.decorators): return False
    return all(m.matches(d, SAFE) for d in node.decorators)


def skip_node_and_children(self, node) -> bool:
    "mutmut's rule, except that a function under `SAFE` decorators is mutated unless a pragma leaves it out."
    skip = _skip_node_and_children(self, node)
    if skip and safely_decorated(node) and node.name.value not in self.ignored_functions: return False
    return skip


def function_trampoline_arrangement(function, mutants, class_name):
    "mutmut's trampoline arrangement, with the `SAFE` decorators taken off the original's and the mutants' copies."
    declarations, methods, assignments, names = _function_trampoline_arrangement(function, mutants, class_name)
    if safely_decorated(function): methods = [methods[0], *(f.with_changes(decorators=[]) for f in methods[1:])]
    return declarations, methods, assignments, names


def teach_mutmut():
    "Replace the two mutmut functions above (mutants are made in forked processes, which inherit the change)."
    file_mutation.MutationVisitor._skip_node_and_children = skip_node_and_children
    file_mutation.function_trampoline_arrangement = function_trampoline_arrangement


def refresh_plain_copies(root=".") -> list[str]:
    """Copy again each file of the package that mutmut does not mutate and that differs from mutmut's copy of it: mutmut
    copies them once (it skips files already in `mutants/`), so a later fix in one, say `basics`, would stay out of the
    mutants' package and every check that needs the fix would fail on every mutant. Returns the files copied."""
    root, cfg = Path(root), configparser.ConfigParser()
    cfg.read(root/"setup.cfg")
    mutated = {root/f for f in cfg["mutmut"]["only_mutate"].split()}
    copied = []
    for package in cfg["mutmut"]["source_paths"].split():
        for source in sorted((root/package).rglob("*")):
            copy = root/"mutants"/source.relative_to(root)
            if "__pycache__" in source.parts or not source.is_file() or source in mutated: continue
            if copy.exists() and not filecmp.cmp(source, copy, shallow=False):
                shutil.copy2(source, copy)
                copied.append(str(source.relative_to(root)))
    return copied


if __name__ == "__main__":
    teach_mutmut()
    for f in refresh_plain_copies(): print(f"mutmut_run.py: {f} changed since mutmut copied it: copied again")
    from mutmut.__main__ import cli
    sys.argv[0] = "mutmut"
    sys.exit(cli())
