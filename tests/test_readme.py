"The README's package example runs as written, on the small `digits` set and the CPU."
import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1]/"README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, f"expected one python block in README.md, found {len(blocks)}"
    return blocks[0]


def test_readme_package_example_runs():
    code = readme_example()
    # the example names CIFAR-10 and a GPU; the test runs the same lines on digits and the CPU
    for old, new in (('load_dataset("cifar10", "train")', 'load_dataset("digits", "train")'), (".cuda()", ""),
                     ("n=50_000", "n=len(train)"), ("epochs=100", "epochs=3"), ("range(100)", "range(3)")):
        assert old in code, f"README example no longer contains {old!r}: update this test with it"
        code = code.replace(old, new)
    from simsiam_collapse.models import build_backbone
    env = {"backbone": build_backbone("resnet18", width=4, stem="cifar", in_channels=1), "print": lambda *a: None}
    exec(compile(code, "README.md", "exec"), env)
    assert env["acc"].n == len(env["train"]) == len(env["features"])
    assert env["view1"].shape == env["view2"].shape and len(env["view1"]) == 256
    assert [r["step"] for r in env["monitor"].history] == [100, 200, 300]  # the monitor measured on schedule


def readme_install_lines() -> list[str]:
    "The pip commands of the README's install block (```bash ... ```), comments dropped."
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    return [line.split("#")[0].strip() for b in blocks for line in b.splitlines()
            if line.strip().startswith("pip install")]


def test_the_install_lines_quote_their_extras_and_name_no_missing_release():
    lines = readme_install_lines()
    assert len(lines) >= 2
    for line in lines:  # zsh expands an unquoted [experiments] and fails: "no matches found"
        for word in re.findall(r'"[^"]*"|\S+', line):
            assert "[" not in word or word.startswith('"'), f"unquoted extra in {line!r}"
    assert "pip install simsiam_collapse" not in README.read_text()  # no release on PyPI to install from


@pytest.mark.slow
def test_the_readme_core_install_runs_in_a_fresh_venv(tmp_path):
    """The README's core install line, pointed at this checkout (no network here), in a new virtual environment; then
    what the core promises: the monitor and extract_features on a tensor, without the experiments' packages."""
    import subprocess
    import sys
    venv = tmp_path/"venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    core = readme_install_lines()[0]
    url = re.search(r'"simsiam_collapse @ (\S+)"', core)[1]
    command = core.replace(url, Path(README).parent.resolve().as_uri()).split(" ", 2)[2].strip('"')
    pip = subprocess.run([venv/"bin/python", "-m", "pip", "install", "-q", command], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    check = ("import simsiam_collapse as sc, torch, importlib.util as u\n"
             "from simsiam_collapse.evaluate import extract_features\n"
             "f = torch.randn(200, 8); net = torch.nn.Linear(8, 4)\n"
             "print(sc.CollapseMonitor(f, every=1, log=None).step(net)['feature_dim'], "
             "tuple(extract_features(net, f, progress=False).shape), "
             "[u.find_spec(m) is None for m in ('papermill', 'matplotlib', 'sklearn')])")
    out = subprocess.run([venv/"bin/python", "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "4 (200, 4) [True, True, True]"
