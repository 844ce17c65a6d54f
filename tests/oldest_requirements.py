"""The package's direct requirements, every range of settings.ini one a line, for `make test-oldest`: uv resolves them
with `--resolution lowest-direct`, which installs each at the oldest version its range allows (and that has a wheel for
the Python in use), so the tests run against the floors the package promises.

    python tests/oldest_requirements.py            # the requirements, one a line
    python tests/oldest_requirements.py --installed  # the version of each that the running Python has
"""
import shlex
import sys
from configparser import ConfigParser
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement

# What `pip install ".[dev]"` installs (setup.py's dev extra): the core, the experiments, lightning and the dev tools.
KEYS = "requirements", "experiments_requirements", "lightning_requirements", "dev_requirements"


def direct_requirements(settings=Path(__file__).parents[1]/"settings.ini") -> list[str]:
    "Every requirement that settings.ini names under `KEYS`, in order."
    config = ConfigParser(delimiters=["="])
    config.read(settings, encoding="utf-8")
    return [r for key in KEYS for r in shlex.split(config["DEFAULT"].get(key, ""))]


def installed(requirements) -> list[str]:
    "`name==version` of each requirement as the running Python has it (`name missing` where it has none)."
    def one(name):
        try: return f"{name}=={version(name)}"
        except PackageNotFoundError: return f"{name} missing"
    return [one(Requirement(r).name) for r in requirements]


if __name__ == "__main__":
    requirements = direct_requirements()
    print("\n".join(installed(requirements) if "--installed" in sys.argv[1:] else requirements))
