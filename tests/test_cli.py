"The `simsiam-collapse` command through `main`: reproduce's options and exit status, user errors."
import json

import nbformat
import pytest
from test_experiments import NOTEBOOKS

from simsiam_collapse import cli
from simsiam_collapse.cli import experiment_notebooks, main


@pytest.fixture
def two_notebooks(tmp_path, monkeypatch):
    "A folder with E2 and a broken E5, where `reproduce` looks for the experiment notebooks."
    nbs = tmp_path/"nbs"; nbs.mkdir()
    (nbs/NOTEBOOKS["e2"].name).write_bytes(NOTEBOOKS["e2"].read_bytes())
    broken = nbformat.read(NOTEBOOKS["e5"], as_version=4)
    broken.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('deliberately broken')"))
    nbformat.write(broken, nbs/NOTEBOOKS["e5"].name)
    monkeypatch.setattr(cli, "experiments_dir", lambda: nbs)
    return nbs


def test_only_takes_ids_with_spaces_and_rejects_unknown_ones(two_notebooks, capsys):
    assert [p.stem for p in experiment_notebooks(two_notebooks, ["e5", "e2"])] == [
        "e2_dataset_size",
        "e5_architectures",
    ]
    with pytest.raises(SystemExit) as e: main(["reproduce", "--scale", "smoke", "--only", "e2, e7", "--out", "unused"])
    assert e.value.code == 2 and "Unknown experiment(s) e7. Valid: e2, e5" in capsys.readouterr().err


def test_a_failing_notebook_makes_the_command_fail_and_force_reruns(two_notebooks, tmp_path, capsys):
    out = tmp_path/"out"
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--scale", "smoke", "--only", "e2, e5", "--out", str(out), "--jobs", "1"])
    assert "failed: e5_architectures" in str(e.value.code)  # a non-zero exit naming the notebook
    state = json.loads((out/"reproduce.json").read_text())["notebooks"]
    assert state["e2_dataset_size"]["status"] == "done" and state["e5_architectures"]["status"] == "failed"
    with pytest.raises(SystemExit): main(["reproduce", "--scale", "smoke", "--only", "e5", "--out", str(out)])
    assert "e2_dataset_size.html" in (out/"REPORT.md").read_text()  # a rerun of one notebook keeps the others' report
    first = (out/"e2_dataset_size.ipynb").stat().st_mtime_ns
    with pytest.raises(SystemExit): main(["reproduce", "--scale", "smoke", "--only", "e2,e5", "--out", str(out)])
    assert (out/"e2_dataset_size.ipynb").stat().st_mtime_ns == first  # finished: skipped
    with pytest.raises(SystemExit):
        main(["reproduce", "--scale", "smoke", "--only", "e2,e5", "--out", str(out), "--force"])
    assert (out/"e2_dataset_size.ipynb").stat().st_mtime_ns != first  # --force runs it again


def test_a_second_reproduce_on_the_same_out_is_refused(tmp_path, capsys):
    from simsiam_collapse.train import directory_lock
    with directory_lock(tmp_path/"out", what="reproduce"):
        with pytest.raises(SystemExit) as e: main(["reproduce", "--scale", "smoke", "--out", str(tmp_path/"out")])
    assert e.value.code == 2 and "in use by another reproduce process" in capsys.readouterr().err


def test_data_command_describes_both_splits(capsys):
    "`simsiam-collapse data NAME` loads both splits and prints what they hold: 1,797 digits split 80/20."
    assert main(["data", "digits"]) in (None, 0)
    lines = capsys.readouterr().out.splitlines()
    assert [("split='train'" in lines[0], "n=1437" in lines[0]), ("split='test'" in lines[1], "n=360" in lines[1])] == [
        (True, True)
    ] * 2
