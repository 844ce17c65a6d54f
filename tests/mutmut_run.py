"""`mutmut`, taught to mutate the methods that `@patch` adds to a class (`make mutation` runs mutmut through this).

mutmut 3 leaves out every function under a decorator other than `staticmethod` or `classmethod`: a decorator runs when
the function is defined, and copying an arbitrary one for the trampoline could have side effects. Our notebooks build
classes one method a cell with `@patch` (`simsiam_collapse.basics.patch`), so the orderings' core (`permutation`,
`chunk`, `pool`, `epoch_indices`, `batches`, ...) would never be mutated. `@patch` is safe to copy: it only sets an
attribute of the class its first parameter names. So here a module-level function whose outermost decorator is a bare
`@patch` is mutated like any other: the trampoline keeps every decorator (it is what `@patch` adds to the class, and
`basics.patch` unwraps it to find the class), and the original and mutant copies keep all but `@patch` (so they are
not added to the class themselves). Other decorated functions stay left out, as mutmut decides.

Usage: `python tests/mutmut_run.py run [NAMES...]`, any `mutmut` command line."""
import sys

import libcst as cst
import libcst.matchers as m
from mutmut.mutation import file_mutation

PATCH = m.Decorator(decorator=m.Name("patch"))
# the two mutmut internals replaced below are those of mutmut 3.8.1: setup.py's `mutation` extra pins 3.8
if not (hasattr(file_mutation, "MutationVisitor") and hasattr(file_mutation, "function_trampoline_arrangement")):
    from importlib.metadata import version
    raise SystemExit(f"tests/mutmut_run.py replaces two functions of mutmut 3.8, which mutmut {version('mutmut')} does "
                     "not have: install the `mutation` extra (make mutation installs it).")
_skip_node_and_children = file_mutation.MutationVisitor._skip_node_and_children
_function_trampoline_arrangement = file_mutation.function_trampoline_arrangement


def is_patched(node) -> bool:
    "A module-level function definition whose outermost decorator is a bare `@patch`."
    return isinstance(node, cst.FunctionDef) and bool(node.decorators) and m.matches(node.decorators[0], PATCH)


def skip_node_and_children(self, node) -> bool:
    "mutmut's rule, except that a `@patch` function is mutated unless a pragma leaves it out."
    skip = _skip_node_and_children(self, node)
    if skip and is_patched(node) and node.name.value not in self.ignored_functions: return False
    return skip


def function_trampoline_arrangement(function, mutants, class_name):
    "mutmut's trampoline arrangement, with `@patch` taken off the original's and the mutants' copies."
    declarations, methods, assignments, names = _function_trampoline_arrangement(function, mutants, class_name)
    if class_name is None and is_patched(function):
        methods = [methods[0], *(f.with_changes(decorators=f.decorators[1:]) for f in methods[1:])]
    return declarations, methods, assignments, names


def teach_mutmut():
    "Replace the two mutmut functions above (mutants are made in forked processes, which inherit the change)."
    file_mutation.MutationVisitor._skip_node_and_children = skip_node_and_children
    file_mutation.function_trampoline_arrangement = function_trampoline_arrangement


if __name__ == "__main__":
    teach_mutmut()
    from mutmut.__main__ import cli
    sys.argv[0] = "mutmut"
    sys.exit(cli())
