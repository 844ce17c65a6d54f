"The README's package example runs as written, on the small `digits` set and the CPU."
import re
from pathlib import Path

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
