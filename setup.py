"Package set-up: every setting lives in settings.ini (edit there, not here)."
import shlex
from configparser import ConfigParser

import setuptools

config = ConfigParser(delimiters=["="])
config.read("settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

for key in "lib_name version description author author_email min_python license git_url".split():
    assert key in cfg, f"settings.ini is missing the setting {key!r}"

experiments = shlex.split(cfg.get("experiments_requirements", ""))
lightning = shlex.split(cfg.get("lightning_requirements", ""))

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license="MIT License",
    url=cfg["git_url"],
    keywords=cfg.get("keywords", ""),
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=setuptools.find_packages(include=[cfg["lib_name"], cfg["lib_name"] + ".*"]),
    include_package_data=True,
    package_data={cfg["lib_name"]: ["reference/*.csv", "reference/*.md"]},
    install_requires=shlex.split(cfg.get("requirements", "")),
    extras_require={"experiments": experiments, "lightning": lightning,
                    # make test and make reproduce: everything, with the tools that check it
                    "dev": experiments + lightning + shlex.split(cfg.get("dev_requirements", "")),
                    "tensorboard": ["tensorboard>=2.10"],
                    # mutation testing (`make mutation`), not part of CI; tests/mutmut_run.py replaces two of
                    # mutmut 3.8's internal functions
                    "mutation": ["mutmut>=3.8.1,<3.9"],
                    # the tests against the oldest versions the ranges allow (`make test-oldest`): uv resolves to
                    # the lowest versions, which pip cannot
                    "oldest": ["uv>=0.5"]},
    python_requires=">=" + cfg["min_python"],
    zip_safe=False,
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d'],
    },
)
