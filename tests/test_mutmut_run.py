"The mutmut launcher of `make mutation` (`tests/mutmut_run.py`): methods added with `@patch` are mutated and judged."
import sys
import types

import pytest
from optional import import_or_skip

import_or_skip("mutmut", "mutmut is installed by `make mutation` (the `mutation` extra)")
import mutmut_run  # noqa: E402
from mutmut.mutation import file_mutation  # noqa: E402

SOURCE = '''
import functools
from simsiam_collapse.basics import patch

class Box:
    def __init__(self, n): self.n = n

@patch
def doubled(self: Box):
    return self.n * 2

@functools.cache
def cached(n):
    return n + 1
'''


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


def test_mutmut_alone_leaves_patched_methods_out():
    names = file_mutation.mutate_file_contents("boxes.py", SOURCE).mutant_names
    assert not any("doubled" in n for n in names)


def test_a_patched_method_is_mutated_and_each_mutant_reaches_the_class(taught, monkeypatch):
    mutated = file_mutation.mutate_file_contents("boxes.py", SOURCE)
    doubled = [n for n in mutated.mutant_names if n.startswith("x_doubled__mutmut_")]
    assert doubled and not any("cached" in n for n in mutated.mutant_names)  # another decorator: still left out
    module = load(mutated.code, "boxes", monkeypatch)
    assert module.x_doubled__mutmut_orig(module.Box(3)) == 6  # the copies are plain functions, not added to Box
    assert not hasattr(module.Box, "x_doubled__mutmut_orig")
    monkeypatch.setenv("MUTANT_UNDER_TEST", "")
    assert module.Box(3).doubled() == 6
    results = set()
    for name in doubled:
        monkeypatch.setenv("MUTANT_UNDER_TEST", f"boxes.{name}")
        try: results.add(module.Box(3).doubled())
        except TypeError: results.add("TypeError")
    assert 6 not in results  # every mutant of `self.n * 2` changes what Box(3).doubled() gives


def test_a_pragma_still_leaves_a_patched_method_out(taught):
    source = SOURCE.replace("def doubled(self: Box):", "def doubled(self: Box):  # pragma: no mutate block")
    assert source != SOURCE
    assert not any("doubled" in n for n in file_mutation.mutate_file_contents("boxes.py", source).mutant_names)
