"""`make gpu-check` (benchmarks/gpu_check.py) in its CI-sized form on the CPU, a slow test; and what `make gpu-wheels`
carries to a GPU machine without a network (benchmarks/gpu_wheels.py)."""
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import gpu_check  # noqa: E402
import gpu_wheels  # noqa: E402


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_in_its_quick_form(tmp_path, monkeypatch):
    "make gpu-check, CI-sized on the CPU, so that the minutes of a lent GPU are never spent on a typo (3 min)."
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path/"summary.json").read_text())
    assert [summary[k]["returncode"] for k in ("cuda_tests", "smoke_reproduce")] == [0, 0]
    assert "| a / b | a / c |" in (tmp_path/"throughput_batch32.md").read_text()
    assert {"resnet18", "resnet50"} <= set(json.loads((tmp_path/"epoch_times.json").read_text()))
    assert (tmp_path/"smoke_REPORT.md").exists() and (tmp_path/"environment.json").exists()
    assert "model step" in (tmp_path/"profile_step.txt").read_text()  # the step's two parts are named in the profile
    assert summary["speed_targets"].keys() == {"epoch_seconds", "of_bare_step", "over_paper_pipeline"}


def test_the_wheels_carried_are_the_requirements_the_gpu_machine_lacks(tmp_path):
    "What travels: the core and experiments requirements less what the machine has and the two the check never runs."
    (tmp_path/"have.txt").write_text("# a comment\nTorch numpy==2.5.2  Jupyter_Client\n")
    have = gpu_wheels.read_have(tmp_path/"have.txt")
    assert have == {"torch", "numpy", "jupyter-client"}
    needed = gpu_wheels.needed_requirements(have)
    assert "papermill>=2.4" in needed and "tqdm>=4.60" in needed and "torchvision>=0.16" in needed
    left_out = ("torch>", "numpy", "jupyter_client", "jupyterlab", "jupyter-server")
    assert not [r for r in needed if r.startswith(left_out)]
    machine = gpu_wheels.read_have(gpu_wheels.ROOT/"benchmarks"/"gpu_machine_packages.txt")
    assert {"torch", "torchvision", "numpy", "scipy", "matplotlib", "pytest"} <= machine  # not carried: they are there
    assert "papermill>=2.4" in gpu_wheels.needed_requirements(machine)


def test_gpu_wheels_refuses_a_python_version_it_cannot_pass_to_pip(capsys):
    with pytest.raises(SystemExit): gpu_wheels.main(["--python-version", "312"])
    assert "--python-version '312': give major.minor, such as 3.12" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_part_that_runs_past_the_deadline_is_stopped_with_its_children(tmp_path):
    "A hung part (a kernel that never answers, say) must leave the check's time to the parts after it."
    child = tmp_path/"child"
    args = SimpleNamespace(deadline=time.monotonic() + 1)
    result = gpu_check.shell(["bash", "-c", f"sleep 60 & echo $! > {child}; wait"], tmp_path/"log", args, cap=300)
    assert result["returncode"] == "timed out" and result["seconds"] < 10
    stat = Path(f"/proc/{child.read_text().strip()}/stat")
    time.sleep(0.2)
    assert not stat.exists() or stat.read_text().split()[2] == "Z"  # gone, or dead and not yet reaped
    quick = gpu_check.shell(["true"], tmp_path/"log", SimpleNamespace(deadline=time.monotonic() + 60), cap=300)
    assert quick["returncode"] == 0


def test_the_speed_targets_are_read_off_the_widest_row_of_the_throughput_table(tmp_path):
    (tmp_path/"throughput_batch512.md").write_text(
        "machine: ...\n"
        "| width | (a) ours pairs/s | (b) paper pipeline pairs/s | (c) bare step pairs/s | a / b | a / c |\n"
        "|---|---|---|---|---|---|\n| 16 | 1 | 1 | 1 | 1.00 | 1.00 |\n| 64 | 10000 | 4000 | 10500 | 2.50 | 0.95 |\n")
    got = gpu_check.speed_targets(tmp_path, SimpleNamespace(quick=False, device="cuda"))
    assert got == {"epoch_seconds": dict(measured=5.0, met=True), "of_bare_step": dict(measured=0.95, met=True),
                   "over_paper_pipeline": dict(measured=2.5, met=False)}  # 50,000 / 10,000 s; 10,000 / 10,500; / 4,000
    assert "| ours at >= 3x the paper's per-image pipeline | 2.50x | no |" in (tmp_path/"speed_targets.md").read_text()
