"""The library notebooks' checks, run against the exported package (`notebook_checks`): the runner of mutation testing.

`make test` leaves the notebooks' checks out here (nbdev_test runs them on the notebooks); `make mutation` runs them."""
import os

import pytest
from notebook_checks import NBS, notebook_module, run_notebook_checks

LIBRARY_NOTEBOOKS = sorted(p.name for p in NBS.glob("[0-9][0-9]_*.ipynb"))


# The rules are where the claims' statistics meet an experiment's rows, and their checks take a second: they judge the
# claims' mutants too, as they did when both were one module.
ALSO_JUDGES = {"16_rules.ipynb": ("simsiam_collapse.claims",)}


def judges_current_mutant(notebook) -> bool:
    """Under mutmut (`MUTANT_UNDER_TEST` names the mutant), a notebook's checks judge only its own module's mutants
    (and those `ALSO_JUDGES` names): a metric mutant is judged by the metric's checks and the tests of tests/, not by
    minutes of training checks."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if mutant in ("", "stats", "fail"): return True  # not mutating, or mutmut's set-up runs
    modules = (notebook_module(NBS / notebook), *ALSO_JUDGES.get(notebook, ()))
    return any(mutant.startswith(m + ".") for m in modules)


@pytest.mark.package_checks
@pytest.mark.parametrize("notebook", LIBRARY_NOTEBOOKS)
def test_notebook_checks_pass_on_the_package(notebook):
    if not judges_current_mutant(notebook): pytest.skip(f"{notebook} judges only its own module's mutants")
    run_notebook_checks(notebook)


def test_a_notebook_without_export_is_named():
    with pytest.raises(ValueError, match="index.ipynb has no `#| default_exp` cell"):
        notebook_module(NBS / "index.ipynb")


def test_a_notebook_judges_only_its_own_modules_mutants(monkeypatch):
    monkeypatch.setenv("MUTANT_UNDER_TEST", "simsiam_collapse.collapse.x_rankme__mutmut_3")
    assert judges_current_mutant("06_collapse.ipynb") and not judges_current_mutant("14_train.ipynb")
    monkeypatch.setenv("MUTANT_UNDER_TEST", "simsiam_collapse.claims.x_beyond_noise__mutmut_3")
    assert judges_current_mutant("15_claims.ipynb") and judges_current_mutant("16_rules.ipynb")
    assert not judges_current_mutant("21_experiments.ipynb")
    monkeypatch.setenv("MUTANT_UNDER_TEST", "stats")
    assert judges_current_mutant("14_train.ipynb")
