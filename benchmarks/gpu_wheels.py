"""`make gpu-wheels`: the Python packages `make gpu-check` needs that a bare GPU machine without a network lacks, as
wheels in one folder (default `.whl/`, ignored by git) to carry there with the working tree.

What is needed is derived, not listed: the package's core and `experiments` requirements (settings.ini) with everything
they pull in, resolved by pip for the GPU machine's Python and platform, less the packages that machine already has
(`gpu_machine_packages.txt` beside this file: the target's own package list) and less the two the check never runs
(JupyterLab, for editing the notebooks, and jupyter-server-mathjax, for the docs site). The package itself is not
carried: `gpu_device.sh` builds it there from the working tree, so the code that runs is the code that travelled.

    .venv/bin/python benchmarks/gpu_wheels.py                        # for Python 3.12 (the GPU machine's), into .whl/
    .venv/bin/python benchmarks/gpu_wheels.py --python-version 3.11  # for a rehearsal on a CPU machine (GUIDE.md)
"""
import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64",
             "manylinux_2_5_x86_64", "manylinux1_x86_64"]  # pip matches each tag exactly: every glibc a wheel may name
NOT_RUN_BY_THE_CHECK = {"jupyterlab", "jupyter-server-mathjax"}


def canonical(name: str) -> str:
    "A distribution's name as pip compares them (PEP 503): `Jupyter_Client` and `jupyter-client` are one."
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution(wheel: Path) -> str:
    "The canonical name of the distribution a wheel file holds (its name up to the first dash)."
    return canonical(wheel.name.split("-")[0])


def needed_requirements(have: set[str]) -> list[str]:
    "settings.ini's core and experiments requirements that the target machine lacks and the check uses."
    config = ConfigParser(delimiters=["="])
    config.read(ROOT/"settings.ini", encoding="utf-8")
    reqs = [r for key in ("requirements", "experiments_requirements") for r in shlex.split(config["DEFAULT"][key])]
    return [r for r in reqs if canonical(re.split(r"[<>=!~\[; ]", r)[0]) not in have | NOT_RUN_BY_THE_CHECK]


def read_have(path: Path) -> set[str]:
    "The package names of a list (whitespace-separated; `#` starts a comment; `name==version` lines are fine too)."
    words = [w for line in path.read_text().splitlines() for w in line.split("#")[0].split()]
    return {canonical(re.split(r"[<>=!~ ]", w)[0]) for w in words}


def download(requirements, python_version, dest: Path) -> list[Path]:
    "pip's resolution of `requirements` for CPython `python_version` on x86-64 Linux, as wheels into `dest`."
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--implementation", "cp",
                    "--python-version", python_version, *platforms, "-d", str(dest), *requirements], check=True)
    return sorted(dest.glob("*.whl"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python-version", default="3.12", help="the target's Python, major.minor (default: 3.12)")
    p.add_argument("--have", type=Path, default=ROOT/"benchmarks"/"gpu_machine_packages.txt",
                   help="the packages the target already has (default: gpu_machine_packages.txt)")
    p.add_argument("--dest", type=Path, default=ROOT/".whl", help="the folder of wheels, emptied first (default .whl)")
    args = p.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", args.python_version):
        p.error(f"--python-version {args.python_version!r}: give major.minor, such as 3.12")
    have = read_have(args.have)
    with tempfile.TemporaryDirectory() as tmp:
        resolved = download(needed_requirements(have), args.python_version, Path(tmp))
        wheels = [w for w in resolved if distribution(w) not in have]
        shutil.rmtree(args.dest, ignore_errors=True); args.dest.mkdir(parents=True)
        wheels = [Path(shutil.copy(w, args.dest)) for w in wheels]
    # what the check takes from the machine instead: the rehearsal (gpu_rehearsal.sh) installs these and no more
    relied_on = sorted({distribution(w) for w in resolved} & have)
    (args.dest/"relied-on.txt").write_text("\n".join(relied_on) + "\n")
    size = sum(w.stat().st_size for w in wheels) / 2 ** 20
    print(f"{len(wheels)} wheels for CPython {args.python_version}, {size:.1f} MiB, in {args.dest}:")
    print(" ".join(distribution(w) for w in wheels))
    print(f"relied on from the machine ({args.dest/'relied-on.txt'}):", " ".join(relied_on))


if __name__ == "__main__":
    main()
