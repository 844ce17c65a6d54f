"""The mutmut launcher of `make mutation` (`tests/mutmut_run.py`): functions under `@patch`, `@property`,
`@torch.no_grad()` and `@contextlib.contextmanager` are mutated, and each mutant is what the class's users call."""
import sys
import types

import pytest
from optional import import_or_skip

import_or_skip("mutmut", "mutmut is installed by `make mutation` (the `mutation` extra)")
import mutmut_run  # noqa: E402
from mutmut.mutation import file_mutation  # noqa: E402

SOURCE = '''
import contextlib
import functools
import torch
from simsiam_collapse.basics import patch

class Box:
    def __init__(self, n): self.n = n

    @property
    def tripled(self):
        return self.n * 3

@patch
@torch.no_grad()
def doubled(self: Box):
    return self.n * 2, torch.is_grad_enabled()

@contextlib.contextmanager
def lent(box: Box):
    box.n += 1
    try: yield box.n * 4
    finally: box.n -= 1

@functools.cache
def cached(n):
    return n + 1
'''


def inside_and_after(module, box):
    "What `lent` gives inside its block, and the box's count after it."
    with module.lent(box) as inside: pass
    return inside, box.n


CALLS = {"doubled": lambda module, box: box.doubled(), "tripled": lambda module, box: box.tripled,
         "lent": inside_and_after}
UNMUTATED = {"doubled": (6, False), "tripled": 9, "lent": (16, 3)}


@pytest.fixture
def taught(monkeypatch):
    "mutmut with the launcher's two replacements, undone after the test."
    monkeypatch.setattr(file_mutation.MutationVisitor, "_skip_node_and_children", mutmut_run.skip_node_and_children)
    monkeypatch.setattr(file_mutation, "function_trampoline_arrangement", mutmut_run.function_trampoline_arrangement)


def load(code, name, monkeypatch):
    "Execute `code` as the module `name` (the trampoline compares a mutant's module with the function's)."
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(code, f"{name}.py", "exec"), module.__dict__)
    return module


def mutants_of(names, function):
    return [n for n in names if n.startswith(f"x_{function}__mutmut_") or n.startswith(f"xǁBoxǁ{function}__mutmut_")]


def test_mutmut_alone_leaves_decorated_functions_out():
    names = file_mutation.mutate_file_contents("boxes.py", SOURCE).mutant_names
    assert not any(mutants_of(names, f) for f in UNMUTATED)


@pytest.mark.parametrize("function", list(UNMUTATED))
def test_a_function_under_safe_decorators_is_mutated_and_each_mutant_reaches_the_class(function, taught, monkeypatch):
    mutated = file_mutation.mutate_file_contents("boxes.py", SOURCE)
    mutants = mutants_of(mutated.mutant_names, function)
    assert mutants and not mutants_of(mutated.mutant_names, "cached")  # another decorator: still left out
    module = load(mutated.code, "boxes", monkeypatch)
    assert not hasattr(module.Box, "x_doubled__mutmut_orig")  # the copies are not added to the class by @patch
    monkeypatch.setenv("MUTANT_UNDER_TEST", "")
    assert CALLS[function](module, module.Box(3)) == UNMUTATED[function]  # decorators act: property, no_grad, a block
    for name in mutants:
        monkeypatch.setenv("MUTANT_UNDER_TEST", f"boxes.{name}")
        try: assert CALLS[function](module, module.Box(3)) != UNMUTATED[function], name
        except TypeError: pass  # a mutant that breaks the call is caught too


def test_a_pragma_still_leaves_a_decorated_function_out(taught):
    source = SOURCE.replace("def doubled(self: Box):", "def doubled(self: Box):  # pragma: no mutate block")
    assert source != SOURCE
    assert not mutants_of(file_mutation.mutate_file_contents("boxes.py", source).mutant_names, "doubled")


def test_the_modules_mutmut_does_not_mutate_are_copied_again_when_they_change(tmp_path):
    "A changed plain module is copied again; a mutated module's copy (its mutants) and an unchanged one are left alone."
    (tmp_path/"setup.cfg").write_text("[mutmut]\nsource_paths = pkg/\nonly_mutate =\n    pkg/target.py\n")
    for folder in (tmp_path/"pkg", tmp_path/"mutants"/"pkg"):
        folder.mkdir(parents=True)
        for name in ("target.py", "plain.py", "same.py", "__pycache__/plain.pyc"):
            (folder/name).parent.mkdir(exist_ok=True)
            (folder/name).write_text("x = 1\n")
    (tmp_path/"pkg"/"__pycache__"/"plain.pyc").write_text("compiled")  # Python's cache, not the package's code
    (tmp_path/"pkg"/"plain.py").write_text("x = 2\n")
    (tmp_path/"mutants"/"pkg"/"target.py").write_text("x = 1  # its mutants\n")
    assert mutmut_run.refresh_plain_copies(tmp_path) == ["pkg/plain.py"]
    assert (tmp_path/"mutants"/"pkg"/"plain.py").read_text() == "x = 2\n"
    assert (tmp_path/"mutants"/"pkg"/"target.py").read_text() == "x = 1  # its mutants\n"
    assert mutmut_run.refresh_plain_copies(tmp_path) == []  # up to date now
