"Optional dependencies in the tests: skipped where one is not installed, failed where it is installed but broken."
import importlib

import pytest


def import_or_skip(name: str, reason: str | None = None):
    """`pytest.importorskip`, except that only the package's own absence skips: an installed package that fails to
    import (one of its own dependencies missing, versions that do not fit together) fails rather than hide in a skip."""
    try: return importlib.import_module(name)
    except ModuleNotFoundError as missing:
        if missing.name != name.split(".")[0]: raise
        pytest.skip(reason or f"{name} is not installed", allow_module_level=True)
