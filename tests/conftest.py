import os
from pathlib import Path

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long checks that `make test` leaves out (run them with `make test-slow`)")
    config.addinivalue_line(
        "markers", "package_checks: the notebooks' checks run on the exported package, for `make mutation` only"
    )
    config.addinivalue_line(
        "markers", "cuda: checks of the GPU path (tests/test_cuda.py): skipped without CUDA, run by `make gpu-check`"
    )


@pytest.fixture
def shared_data():
    "The folder that holds cifar10-jpeg, from $SIMSIAM_COLLAPSE_DATA; the test is skipped when it is absent."
    root = os.environ.get("SIMSIAM_COLLAPSE_DATA")
    if not root or not (Path(root)/"cifar10-jpeg").is_dir():
        pytest.skip("CIFAR-10 not found: set SIMSIAM_COLLAPSE_DATA to a folder holding cifar10-jpeg/")
    return Path(root)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    "A fresh, empty decode cache."
    monkeypatch.setenv("SIMSIAM_COLLAPSE_CACHE", str(tmp_path/"cache"))
    return tmp_path/"cache"
