"""The run store: experiments share runs, unfinished runs resume, hybrids start from their twin, evaluations are cached
honestly."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from simsiam_collapse import runner
from simsiam_collapse import train as train_module
from simsiam_collapse.collapse import SpectrumAccumulator, collapse_measures
from simsiam_collapse.config import TrainConfig, run_name
from simsiam_collapse.datasets import load_dataset
from simsiam_collapse.evaluate import (
    KNN_TEMPERATURE,
    extract_features,
    knn_accuracy,
    knn_k,
    linear_probe,
    linear_probe_on_features,
)
from simsiam_collapse.experiments import Experiment
from simsiam_collapse.runner import RunStore, evaluate_run
from simsiam_collapse.runs import last_checkpoint, read_metrics, run_status
from simsiam_collapse.scales import SCALES


@pytest.fixture
def counted(monkeypatch):
    "Count the training runs and optimiser steps `train` performs in this process."
    calls = dict(runs=0, steps=0)
    real = train_module.train
    def counting_train(cfg, run_dir, resume=False, progress=True, on_step=None, wait=False):
        calls["runs"] += 1
        def step(epoch, s, model):
            calls["steps"] += 1
            if on_step: on_step(epoch, s, model)
        return real(cfg, run_dir, resume=resume, progress=progress, on_step=step, wait=wait)
    monkeypatch.setattr(runner, "train", counting_train)
    return calls


def test_a_second_experiment_reuses_the_first_ones_runs(tmp_path, counted):
    plan = [dict(backbone="resnet18", ordering="subset", fraction=f, seed=0) for f in (0.1, 1.0)]
    first = Experiment("e2", "smoke", out_dir=tmp_path, progress=False, jobs=1).run_many(plan)
    assert counted["runs"] == 2
    second = Experiment("e3", "smoke", out_dir=tmp_path, progress=False, jobs=1).run_many(plan)
    assert counted["runs"] == 2  # nothing trained again
    assert [r["run"] for r in first] == [r["run"] for r in second] and [r["accuracy"] for r in first] == [
        r["accuracy"] for r in second
    ]


def test_an_unfinished_run_is_resumed_not_restarted(tmp_path, counted):
    exp = Experiment("e6", "smoke", out_dir=tmp_path, progress=False, jobs=1)
    cfg = exp.config(backbone="resnet18", seed=0)
    class Killed(Exception): pass
    def kill(epoch, step, model):
        if epoch == 1: raise Killed
    with pytest.raises(Killed):
        train_module.train(cfg, exp.store.path(cfg), progress=False, on_step=kill)
    assert last_checkpoint(exp.store.path(cfg)) == 1 and run_status(exp.store.path(cfg)) == "running"
    exp.run(backbone="resnet18", seed=0)
    steps_per_epoch = 1437 // cfg.batch_size
    assert counted["steps"] == steps_per_epoch  # only the second epoch was trained
    assert [m["epoch"] for m in read_metrics(exp.store.path(cfg))] == [0, 1, 2]


def test_a_hybrid_trains_its_single_pass_twin_first_and_starts_from_it(tmp_path, counted):
    store = RunStore(tmp_path/"runs")
    exp = Experiment("e6", "smoke", out_dir=tmp_path, progress=False, jobs=1)
    hybrid = exp.config(backbone="resnet18", ordering="hybrid", switch_epoch=1, seed=0)
    run = store.get(hybrid, progress=False)
    twin = store.path(TrainConfig(**{**hybrid.to_dict(), "ordering": "single_pass", "switch_epoch": None}))
    assert counted["runs"] == 2 and run_status(twin) == "done"
    assert read_metrics(run)[:2] == read_metrics(twin)[:2]  # the hybrid's first epoch is the twin's, line for line
    assert [m["phase"] for m in read_metrics(run)[1:]] == ["single_pass", "multiple_pass"]
    assert read_metrics(run)[2]["loss"] != read_metrics(twin)[2]["loss"]  # then it goes its own way


def test_the_evaluation_cache_follows_its_inputs(tmp_path, monkeypatch):
    exp = Experiment("e6", "smoke", out_dir=tmp_path, progress=False, jobs=1)
    run = exp.store.get(exp.config(backbone="resnet18", seed=0), progress=False)
    probes = []
    real = runner.linear_probe_on_features
    monkeypatch.setattr(
        runner, "linear_probe_on_features", lambda *a, **k: probes.append(k.get("epochs")) or real(*a, **k)
    )
    scale = SCALES["smoke"]
    first = evaluate_run(run, scale, "cpu")
    assert evaluate_run(run, scale, "cpu") == first and len(probes) == 1  # cached
    longer = type(scale)(**{**scale.__dict__, "probe_epochs": scale.probe_epochs + 1})
    evaluate_run(run, longer, "cpu")
    assert probes == [scale.probe_epochs, scale.probe_epochs + 1]  # another probe protocol: measured again
    monkeypatch.setattr(runner, "EVAL_VERSION", runner.EVAL_VERSION + 1)
    evaluate_run(run, longer, "cpu")
    assert len(probes) == 3  # the measuring code changed: measured again
    assert json.loads((run/"eval.json").read_text())["settings"]["version"] == runner.EVAL_VERSION


def test_the_run_folders_of_a_finished_reproduction_keep_their_names():
    """A refactoring must not orphan stored runs: the 56 run folders of a finished `mini` reproduction (SimSiam at
    weight decay 2e-3; every method, network, ordering and seed it trains) are found again under the same names."""
    rows = json.loads((Path(__file__).parent/"data"/"mini_run_names.json").read_text())
    assert len(rows) == 56
    for row in rows:
        assert run_name(TrainConfig.from_dict(row["config"])) == row["name"], row["name"]


def test_a_subset_run_is_renamed_only_where_its_subset_grew():
    "Subsets round up as the authors' code does: a key moves where ceil(N f) differs from the old round(N f), only."
    base = dict(dataset="digits", ordering="subset", epochs=2, batch_size=64, seed=0)
    grew = TrainConfig(**base, fraction=0.2)  # 1,437 digits: 287.4 images, 287 before and 288 now
    same = TrainConfig(**base, fraction=0.1)  # 143.7: 144 either way
    assert grew._subset_size_moved() and not same._subset_size_moved()
    assert not TrainConfig(**dict(base, dataset="cifar10"), train_images=8192, fraction=0.0625)._subset_size_moved()


def test_runs_side_by_side_train_and_measure_what_runs_one_after_the_other_do(tmp_path, capsys):
    """`run_all` with two worker processes: every run trained once and measured, hybrids after the single-pass runs
    they continue, and the same weights and measures as one process (one torch thread a run at the CPU scales)."""
    exp = Experiment("e6", "smoke", out_dir=tmp_path, progress=False, jobs=1)
    cfgs = [exp.config(backbone="resnet18", ordering="hybrid", switch_epoch=1, seed=0),
            exp.config(backbone="resnet18", ordering="single_pass", seed=0), exp.config(backbone="resnet18", seed=1)]
    scale = SCALES["smoke"]
    stores = {jobs: RunStore(tmp_path/f"jobs{jobs}") for jobs in (1, 2)}
    for jobs, store in stores.items():
        capsys.readouterr()
        paths = runner.run_all(store, cfgs, scale, device="cpu", jobs=jobs, progress=False)
        assert paths == [store.path(c) for c in cfgs]
        lines = capsys.readouterr().out.splitlines()
        assert [line.split(" (")[0] for line in lines][-1] == f"[3/3] {store.path(cfgs[0]).name}"  # the hybrid last
        assert len(lines) == 3 and all(run_status(p) == "done" for p in paths)
        assert ["min left" in line for line in lines] == [True, True, False]  # the time left, from the work done
    one, two = ([runner.evaluate_run(p, scale, "cpu") for _, p in store.finished()] for store in stores.values())
    assert one == two and len(one) == 3
    checkpoints = [sorted(store.root.glob("*/checkpoints/*.pt")) for store in stores.values()]
    assert [p.relative_to(tmp_path/"jobs1") for p in checkpoints[0]] == \
        [p.relative_to(tmp_path/"jobs2") for p in checkpoints[1]] and checkpoints[0]
    for a, b in zip(*checkpoints):
        wa, wb = (torch.load(p, weights_only=False)["model"] for p in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), a.name


def test_the_final_evaluation_measures_the_runs_backbone_on_the_scales_images(tmp_path, monkeypatch):
    """`evaluate_run` measures the run's last checkpoint: the spectrum, kNN and the probe on the training images the
    scale measures (a subset drawn with `EVAL_SUBSET_SEED`, the same for every run) with their own labels, against the
    test set, at the run's crop size, from the data root given (else the run's); the loss is the last one logged."""
    exp = Experiment("e6", "smoke", out_dir=tmp_path, data_root=str(tmp_path/"runs' data"), progress=False, jobs=1)
    run = exp.store.get(exp.config(backbone="resnet18", seed=0, image_size=12, epochs=3), progress=False)
    scale = dataclasses.replace(SCALES["smoke"], eval_train_size=500, probe_epochs=3)
    roots = []
    monkeypatch.setattr(runner, "load_dataset", lambda name, split, data_root: roots.append((split, data_root))
                        or load_dataset(name, split))
    result = evaluate_run(run, scale, "cpu", data_root="given")
    assert roots == [("train", "given"), ("test", "given")]
    backbone, cfg = runner.load_backbone(run)
    train, test = (load_dataset(cfg.dataset, split) for split in ("train", "test"))
    idx = np.sort(np.random.default_rng(runner.EVAL_SUBSET_SEED).permutation(len(train))[:500])
    spectrum = SpectrumAccumulator()
    ftr = extract_features(backbone, train, indices=idx, accumulator=spectrum, image_size=cfg.image_size,
                           progress=False)
    fte = extract_features(backbone, test, image_size=cfg.image_size, progress=False)
    measures = collapse_measures(spectrum)
    assert (result["train_images_measured"], result["knn_k"]) == (500, knn_k(500))
    assert (result["auc"], result["rankme"], result["feature_dim"]) == (
        measures["auc"], measures["rankme"], measures["feature_dim"])
    assert np.array_equal(np.load(run/"spectrum.npy"), measures["spectrum"].numpy())
    assert result["knn"] == knn_accuracy(ftr, train.labels[idx], fte, test.labels, k=knn_k(500),
                                         temperature=KNN_TEMPERATURE)
    probe = linear_probe_on_features(ftr, train.labels[idx], fte, test.labels, epochs=scale.probe_epochs,
                                     device="cpu", progress=False)
    assert (result["accuracy"], result["best_accuracy"], result["probe_protocol"]) == (
        probe.final_accuracy, probe.best_accuracy, probe.protocol)
    assert result["loss"] == read_metrics(run)[-1]["loss"]
    whole = evaluate_run(run, dataclasses.replace(scale, eval_train_size=None, probe_epochs=1), "cpu")
    assert whole["train_images_measured"] == len(train)  # no subset: every training image
    assert roots[2:] == [("train", str(tmp_path/"runs' data")), ("test", str(tmp_path/"runs' data"))]
    # the paper's probe (augmented, LARC) where the scale asks for it; its head is drawn from torch's generator, after
    # the model's: seeded alike, the same probe
    paper = dataclasses.replace(scale, probe="paper", probe_epochs=1, probe_batch_size=128)
    torch.manual_seed(0)
    measured = evaluate_run(run, paper, "cpu")
    torch.manual_seed(0)
    backbone, _ = runner.load_backbone(run)
    probe = linear_probe(backbone, train, test, epochs=1, batch_size=128, device="cpu", image_size=12, progress=False)
    assert (measured["accuracy"], measured["probe_protocol"]) == (probe.final_accuracy, "paper (augmented)")
