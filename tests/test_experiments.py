"The experiment notebooks under papermill at smoke scale, and `reproduce` end to end."
import json
import os
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from browser import images_loaded

from simsiam_collapse.claims import VERDICTS
from simsiam_collapse.cli import READS_EVERY_RUN, experiment_notebooks, reproduce
from simsiam_collapse.experiments import Experiment
from simsiam_collapse.report import experiment_order
from simsiam_collapse.scales import SCALES

PAPER = Path(__file__).resolve().parent.parent/"nbs"/"paper"
NOTEBOOKS = {p.stem.split("_")[0]: p for p in sorted(PAPER.glob("e*_*.ipynb"))}
FAST = ("e2", "e3", "e6", "e11")  # in `make test`; the others are marked slow


def test_there_is_one_notebook_per_experiment():
    # E1-E9: the paper's figures and tables; beyond the paper, E10: which label-free measure predicts accuracy, E11: the
    # phase diagram
    assert sorted(NOTEBOOKS, key=lambda k: int(k[1:])) == [f"e{i}" for i in range(1, 12)]
    assert (PAPER/".notest").exists()  # nbdev_test leaves them to papermill


@pytest.mark.parametrize("exp_id", sorted(NOTEBOOKS))
def test_exactly_one_parameters_cell_with_the_common_parameters(exp_id):
    nb = nbformat.read(NOTEBOOKS[exp_id], as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("scale", "dataset", "data_root", "device", "seeds", "jobs", "threads", "out_dir"):
        assert f"\n{name}: " in "\n" + tagged[0].source, name  # declared with a type, so check_parameters can check it
    after = nb.cells[nb.cells.index(tagged[0]) + 1]
    assert "check_parameters(globals())" in after.source  # the first thing after the parameters
    assert nb.metadata.kernelspec.name == "simsiam-collapse"  # the kernel `make` registers
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # sources are kept clean


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    "One output folder for the module, so later notebooks reuse earlier runs, as in `reproduce`."
    return tmp_path_factory.mktemp("smoke")


def _execute(exp_id, out, **params):
    target = out/f"{NOTEBOOKS[exp_id].stem}.ipynb"
    params = {**SCALES["smoke"].plan.get(exp_id, {}), **params}  # the plan `reproduce` passes at this scale
    pm.execute_notebook(str(NOTEBOOKS[exp_id]), str(target), parameters=dict(scale="smoke", out_dir=str(out), **params),
                        cwd=str(out), progress_bar=False)
    return out/exp_id


# every experiment notebook with a claim, the fast ones first, as `reproduce` orders the rest (those that read every run
# of the store last); E10, which bears on no claim, has its own test below. A new notebook joins by its file name.
IN_ORDER = [*FAST, *sorted((e for e in NOTEBOOKS if e not in FAST and e != "e10"),
                           key=lambda e: (e in READS_EVERY_RUN, experiment_order(e)))]


@pytest.mark.parametrize("exp_id", [pytest.param(e, marks=[] if e in FAST else [pytest.mark.slow]) for e in IN_ORDER])
def test_notebook_runs_at_smoke_scale_and_writes_its_outputs(exp_id, smoke_dir):
    folder = _execute(exp_id, smoke_dir)
    names = {p.name for p in folder.iterdir()}
    assert {"claims.json", "summary.md", "experiment.json"} <= names
    claims = json.loads((folder/"claims.json").read_text())["claims"]
    assert claims and all(c["verdict"] in VERDICTS for c in claims)
    assert all(c["checks"] and all(k["what"] for k in c["checks"]) for c in claims)
    executed = nbformat.read(str(smoke_dir/f"{NOTEBOOKS[exp_id].stem}.ipynb"), as_version=4)
    shown = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert shown, "figures appear in the notebook, not only on disk"
    pngs = {p.stem for p in folder.glob("*.png")}
    assert pngs and pngs == {p.stem for p in folder.glob("*.pdf")}  # every figure as PNG and PDF
    if exp_id != "e4":
        assert {p.stem for p in folder.glob("*.csv")} == {p.stem for p in folder.glob("*.md")} - {"summary"}


@pytest.mark.slow
def test_e10_measures_every_run_of_the_store(smoke_dir):
    "E10 (beyond the paper, no claim) reads every finished run the other notebooks left and measures each."
    for exp_id in ("e2", "e6"): _execute(exp_id, smoke_dir)  # runs to read (the smoke store may be fresh)
    folder = _execute("e10", smoke_dir)
    models = (folder/"e10_models.csv").read_text().splitlines()
    finished = [p for p in (smoke_dir/"runs").iterdir() if (p/"eval.json").exists()]
    assert len(models) - 1 == len(finished) >= 4
    table = (folder/"e10_measures.csv").read_text()
    for measure in ("AUC", "RankMe", "alpha-ReQ", "LiDAR", "NESum", "effective rank"):
        assert measure in table
    assert (folder/"e10_measures.png").exists() and (folder/"e10_measures.pdf").exists()
    assert not (folder/"claims.json").exists()  # it bears on no headline claim


def test_e11_trains_the_ladder_and_judges_the_claims_on_it(smoke_dir):
    folder = _execute("e11", smoke_dir)
    plan, scale = SCALES["smoke"].plan["e11"], SCALES["smoke"]
    runs = (folder/"e11_runs.csv").read_text().splitlines()
    assert len(runs) - 1 == len(plan["conditions"]) * len(scale.doses) * len(scale.seeds)
    critical = (folder/"e11_critical_doses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in critical[1:]] == plan["conditions"]
    claims = {c["claim"] for c in json.loads((folder/"claims.json").read_text())["claims"]}
    assert claims == {1, 3, 4, 6}  # BYOL against SimSiam, single pass against multiple; claims 3-4 on every run
    # the one-dose experiments do not read the ladder's runs
    e4 = Experiment("e4", "smoke", out_dir=smoke_dir, progress=False)
    assert all(c.weight_decay not in scale.doses for c, _ in e4.finished())


def test_e11_trains_a_hybrids_single_pass_twin_when_the_diagram_leaves_it_out(tmp_path):
    _execute("e11", tmp_path, conditions=["ResNet-18 hybrid 40 %"], doses=[0.01], seeds=[0])
    runs = sorted(p.name.split("-")[3] for p in (tmp_path/"runs").iterdir())
    assert runs == ["hybrid1", "single_pass"]  # smoke's 2 epochs: the switch at 0.4 x 2, epoch 1
    assert len((tmp_path/"e11"/"e11_runs.csv").read_text().splitlines()) == 2  # the diagram holds the hybrid alone


def test_e11_at_a_scale_without_a_ladder_trains_nothing_and_says_so(tmp_path):
    assert not SCALES["mini-mnist"].doses
    pm.execute_notebook(str(NOTEBOOKS["e11"]), str(tmp_path/"e11.ipynb"), cwd=str(tmp_path), progress_bar=False,
                        parameters=dict(scale="mini-mnist", out_dir=str(tmp_path)))
    assert "No ladder of weight decays at the mini-mnist scale" in (tmp_path/"e11"/"summary.md").read_text()
    assert not (tmp_path/"runs").exists() or not any((tmp_path/"runs").iterdir())
    assert not (tmp_path/"e11"/"claims.json").exists()


def test_an_injected_parameter_changes_the_result(smoke_dir, tmp_path):
    _execute("e2", tmp_path, seeds=[7], architectures=["resnet18"], fractions=[0.1, 1.0])
    runs = sorted(p.name for p in (tmp_path/"runs").iterdir())
    assert runs and all("-s7-" in r for r in runs)
    rows = (tmp_path/"e2"/"e2_dataset_size.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["resnet18", "0.1"], ["resnet18", "1.0"]]


def test_a_wrong_parameter_fails_fast_and_a_string_list_is_read(tmp_path):
    with pytest.raises(
        pm.PapermillExecutionError, match="Unknown parameter.s. architecture. This notebook's parameters"
    ):
        _execute("e2", tmp_path, architecture=["resnet18"])
    with pytest.raises(pm.PapermillExecutionError, match="Parameter seeds=3 is not valid"):
        _execute("e2", tmp_path, seeds=3)
    with pytest.raises(pm.PapermillExecutionError, match="Parameter fractions=.0.0, 1.0. is not valid"):
        _execute("e2", tmp_path, fractions=[0.0, 1.0])
    # E10's values, each stopped before any model is read (-5 measured 9,995 images; 1 view crashed in torch.stack)
    for bad, message in (dict(probe_images=-5), "probe_images=-5 is not valid: at least 2"), \
            (dict(lidar_views=1), "lidar_views=1 is not valid: an even number"), \
            (dict(lidar_images=3000), "lidar_images=3000 is not valid: LiDAR augments some of the probe images"):
        with pytest.raises(pm.PapermillExecutionError, match=message):
            _execute("e10", tmp_path, **bad)
    with pytest.raises(pm.PapermillExecutionError, match="Parameter doses=.0.0. is not valid: weight decays above 0"):
        _execute("e11", tmp_path, doses=[0.0])
    with pytest.raises(pm.PapermillExecutionError, match="Unknown diagram condition 'ResNet-101'. Valid: 'ResNet-18'"):
        _execute("e11", tmp_path, conditions=["ResNet-101"])
    # as -p passes lists: strings
    _execute("e2", tmp_path, seeds="[5]", architectures="['resnet18']", fractions=[0.5, 1.0])
    assert all("-s5-" in p.name for p in (tmp_path/"runs").iterdir())


@pytest.fixture(scope="module")
def partly_broken(tmp_path_factory):
    "A smoke reproduction of E2, E3 and a deliberately broken E5: (notebook folder, output folder, results)."
    tmp = tmp_path_factory.mktemp("partly_broken")
    nbs = tmp/"nbs"; nbs.mkdir()
    for e in ("e2", "e3"): (nbs/NOTEBOOKS[e].name).write_bytes(NOTEBOOKS[e].read_bytes())
    broken = nbformat.read(NOTEBOOKS["e5"], as_version=4)
    broken.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('deliberately broken for the test')"))
    nbformat.write(broken, nbs/NOTEBOOKS["e5"].name)
    cwd = os.getcwd()
    os.chdir(tmp)  # a relative --out, as `make reproduce` passes it: papermill runs notebooks from inside it
    try: results = reproduce("smoke", out="out", notebooks=nbs)
    finally: os.chdir(cwd)
    return nbs, tmp/"out", results


def test_reproduce_reports_a_failure_and_finishes_the_rest(partly_broken):
    nbs, out, results = partly_broken
    status = {r["experiment"].split("_")[0]: r["status"] for r in results}
    assert status == {"e2": "done", "e3": "done", "e5": "failed"}
    report = (out/"REPORT.md").read_text()
    for name in ("e2_dataset_size", "e3_collapse", "e5_architectures", "deliberately broken"): assert name in report
    assert "## Headline claims" in report and (out/"index.html").exists()
    # progress beside the store; no sockets left
    assert (out/"runs.progress.json").exists() and not list(out.glob("kernel-*"))
    # a second call trains nothing new and skips the finished notebooks
    stamps = {p: p.stat().st_mtime for p in (out/"runs").glob("*/status.json")}
    again = reproduce("smoke", out=out, notebooks=nbs)
    assert [r.get("skipped", False) for r in again if r["status"] == "done"] == [True, True]
    assert stamps == {p: p.stat().st_mtime for p in (out/"runs").glob("*/status.json")}
    with pytest.raises(ValueError, match="scale 'smoke'"):
        reproduce("mini", out=out, notebooks=nbs)


def test_the_report_opens_in_a_browser_with_every_figure(partly_broken):
    "index.html as a reader's browser shows it (headless Chromium; skipped without it): every figure loads."
    _, out, _ = partly_broken
    loaded = images_loaded(out/"index.html")
    assert any(src.startswith("e2/") for src in loaded) and any(src.startswith("e3/") for src in loaded), loaded
    assert all(loaded.values()), f"images that did not load: {[src for src, ok in loaded.items() if not ok]}"


@pytest.mark.slow
def test_reproduce_smoke_end_to_end(tmp_path):
    results = reproduce("smoke", out=tmp_path)
    assert all(r["status"] == "done" for r in results), [r["error"] for r in results if r["status"] != "done"]
    report = (tmp_path/"REPORT.md").read_text()
    for nb in experiment_notebooks(): assert nb.stem in report
    claims = report.split("## Headline claims")[1].split("\n## ")[0]
    rows = [line for line in claims.splitlines() for k in range(1, 7) if line.startswith(f"| {k} | ")]
    assert len(rows) == 6 and all("| **" in r for r in rows)  # a verdict for each headline claim
    assert "| on the phase diagram (E11) | at one dose (E1-E10) |" in report
    assert report.index("## E11") < report.index("## E1:")  # the diagram's figure first
