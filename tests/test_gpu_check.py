"`make gpu-check` (benchmarks/gpu_check.py) in its CI-sized form on the CPU: a slow test."
import json
import os
import sys

import pytest


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_in_its_quick_form(tmp_path, monkeypatch):
    "make gpu-check, CI-sized on the CPU, so that the minutes of a lent GPU are never spent on a typo (3 min)."
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import gpu_check
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path/"summary.json").read_text())
    assert [summary[k]["returncode"] for k in ("cuda_tests", "smoke_reproduce")] == [0, 0]
    assert "| a / b | a / c |" in (tmp_path/"throughput_batch32.md").read_text()
    assert {"resnet18", "resnet50"} <= set(json.loads((tmp_path/"epoch_times.json").read_text()))
    assert (tmp_path/"smoke_REPORT.md").exists() and (tmp_path/"environment.json").exists()
