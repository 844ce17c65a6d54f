"The `simsiam-collapse` command through `main`: reproduce's options and exit status, user errors."
import dataclasses
import json
import os
from pathlib import Path

import nbformat
import pytest
import torch
from test_experiments import NOTEBOOKS

from simsiam_collapse import cli
from simsiam_collapse import train as train_module
from simsiam_collapse.cli import experiment_notebooks, main
from simsiam_collapse.config import TrainConfig


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
        main(["reproduce", "--scale", "smoke", "--only", "e2, e5", "--out", str(out), "--jobs", "1", "--threads", "2"])
    assert "failed: e5_architectures" in str(e.value.code)  # a non-zero exit naming the notebook
    env = json.loads((out/"environment.json").read_text())  # the data root as resolved, not the argument's None
    assert env["data_root"] not in (None, "None") and env["cpu"]["cores"] >= 1 and env["threads"] == 2
    injected = [c for c in nbformat.read(out/"e2_dataset_size.ipynb", as_version=4).cells
                if "injected-parameters" in c.metadata.get("tags", [])]
    assert "threads = 2" in injected[0].source  # --threads reaches the notebook, which trains its runs on them
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


@pytest.mark.parametrize("option", ["--jobs", "--threads"])
def test_a_count_below_one_is_refused_naming_it(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as e: main(["reproduce", "--scale", "smoke", option, "0", "--out", str(tmp_path)])
    message = f"{option[2:]}=0 is not valid: a positive integer (leave it out for the default)."
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_reproduce_passes_every_option_on_and_fails_naming_the_failed_notebooks(tmp_path, capsys, monkeypatch):
    calls = []
    def fake(scale, only, **options):
        calls.append((scale, only, options))
        return [dict(experiment="e2_dataset_size", status="done"), dict(experiment="e5_architectures", status=status),
                dict(experiment="e11_phase_diagram", status=status)]
    monkeypatch.setattr(cli, "reproduce", fake)
    status = "done"
    assert main(["reproduce"]) is None and "3 of 3 experiment notebooks done; report: reproduction/REPORT.md" in \
        capsys.readouterr().out
    defaults = dict(data_root=None, out="reproduction", device="auto", force=False, jobs=None, wait=False, threads=None)
    assert calls.pop() == ("mini", None, defaults)
    status, out = "failed", str(tmp_path/"out")
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--scale", "smoke", "--only", "e2, e11,", "--data-root", "data", "--out", out, "--device",
              "cpu", "--jobs", "2", "--threads", "3", "--force", "--wait"])
    assert e.value.code == f"failed: e5_architectures, e11_phase_diagram (see {out}/REPORT.md)"
    assert f"1 of 3 experiment notebooks done; report: {out}/REPORT.md" in capsys.readouterr().out
    assert calls.pop() == ("smoke", ["e2", "e11"], dict(data_root="data", out=out, device="cpu", force=True, jobs=2,
                                                         wait=True, threads=3))


def test_a_second_reproduce_on_the_same_out_is_refused(tmp_path, capsys):
    from simsiam_collapse.runs import directory_lock
    with directory_lock(tmp_path/"out", what="reproduce"):
        with pytest.raises(SystemExit) as e: main(["reproduce", "--scale", "smoke", "--out", str(tmp_path/"out")])
    assert e.value.code == 2 and "in use by another reproduce process" in capsys.readouterr().err


def test_reproduce_with_wait_queues_behind_the_holder_of_out(tmp_path):
    import threading
    import time

    from simsiam_collapse.runs import directory_lock
    held, release = threading.Event(), threading.Event()
    def hold():
        with directory_lock(tmp_path/"out", what="reproduce"):
            held.set()
            release.wait(60)
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(60)
    try:
        threading.Timer(1.0, release.set).start()
        start = time.monotonic()
        assert cli.reproduce("smoke", out=tmp_path/"out", notebooks=tmp_path/"none", wait=True) == []
        assert time.monotonic() - start >= 0.9 and (tmp_path/"out"/"REPORT.md").exists()  # once the holder let go
    finally:
        release.set()
        holder.join()


def test_data_command_describes_both_splits(capsys):
    "`simsiam-collapse data NAME` loads both splits and prints what they hold: 1,797 digits split 80/20."
    assert main(["data", "digits"]) in (None, 0)
    lines = capsys.readouterr().out.splitlines()
    assert [("split='train'" in lines[0], "n=1437" in lines[0]), ("split='test'" in lines[1], "n=360" in lines[1])] == [
        (True, True)
    ] * 2


TINY_TRAIN = ["train", "--dataset", "digits", "--width", "4", "--epochs", "1", "--batch-size", "128",
              "--proj-hidden-dim", "16", "--proj-dim", "16", "--pred-hidden-dim", "8", "--probe-size", "200",
              "--train-images", "256"]


def test_train_passes_every_option_on_and_closes_its_writer(tmp_path, capsys, monkeypatch):
    from simsiam_collapse.basics import write_json
    from simsiam_collapse.config import run_name
    from simsiam_collapse.runs import RunFolder
    calls, closed = [], []
    class Writer:
        def __init__(self, run_dir): self.run_dir = run_dir
        def close(self): closed.append(True)
    def fake_train(cfg, run_dir, **options):
        calls.append((cfg, run_dir, options))
        if options["log_every"] == 13: raise RuntimeError("stopped")
    monkeypatch.setattr(cli, "tensorboard_writer", Writer)
    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.setattr(cli, "_summary", lambda run_dir: "")
    monkeypatch.chdir(tmp_path)
    main([*TINY_TRAIN, "--seed", "3", "--no-channels-last"])
    cfg, run_dir, options = calls.pop()
    named = TrainConfig(dataset="digits", width=4, epochs=1, batch_size=128, proj_hidden_dim=16, proj_dim=16,
                        pred_hidden_dim=8, probe_size=200, train_images=256, seed=3, channels_last=False)
    assert cfg == named and run_dir == Path("runs")/run_name(named)  # the store's naming, in the folder it runs in
    assert options == dict(resume=False, wait=False, writer=None, log_every=50, keep_optimizer=False)
    (tmp_path/"r").mkdir(); write_json(RunFolder(tmp_path/"r").config, named.to_dict())  # a run to resume
    with pytest.raises(RuntimeError, match="stopped"):  # the writer is closed also when training stops with an error
        main([*TINY_TRAIN, "--seed", "3", "--no-channels-last", "--run-dir", str(tmp_path/"r"), "--resume", "--wait",
              "--keep-optimizer", "--tensorboard", "--log-every", "13"])
    cfg, run_dir, options = calls.pop()
    assert cfg == named and run_dir == tmp_path/"r" and options.pop("writer").run_dir == run_dir and closed == [True]
    assert options == dict(resume=True, wait=True, log_every=13, keep_optimizer=True)


def test_an_unknown_device_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e: main([*TINY_TRAIN, "--device", "tpu", "--run-dir", str(tmp_path/"run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "device='tpu' is not valid: auto, cpu, cuda, cuda:N or mps" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path/"run").exists()


def test_resume_on_a_folder_without_a_run_refuses_instead_of_starting_afresh(tmp_path, capsys):
    with pytest.raises(SystemExit) as e: main([*TINY_TRAIN, "--resume", "--run-dir", str(tmp_path/"typo")])
    assert e.value.code == 2 and "holds no run (no config.json there)" in capsys.readouterr().err
    assert not (tmp_path/"typo").exists()


def test_resume_without_a_run_dir_and_nothing_to_resume_refuses(tmp_path, capsys, monkeypatch):
    # it trained a new run from scratch and exited 0 without a word
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e: main([*TINY_TRAIN, "--resume"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "holds no run (no config.json there) (without --run-dir" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path/"runs").exists()


def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume(tmp_path, capsys, monkeypatch):
    from simsiam_collapse.train import train
    stops = [True]
    def ctrl_c_in_epoch_2(epoch, step, model):
        if epoch == 1 and stops: stops.pop(); raise KeyboardInterrupt
    monkeypatch.setattr(train_module, "train", lambda cfg, run_dir, resume=False, **kw: train(
        cfg, run_dir, resume=resume, progress=False, on_step=ctrl_c_in_epoch_2))
    run = tmp_path/"run"
    with pytest.raises(SystemExit) as e: main([*TINY_TRAIN[:6], "2", *TINY_TRAIN[7:], "--run-dir", str(run)])
    err = capsys.readouterr().err
    assert e.value.code == 130 and f"keeps its last finished epoch (1): continue with the same command and --resume " \
        f"--run-dir {run}" in err and "Traceback" not in err
    assert main([*TINY_TRAIN[:6], "2", *TINY_TRAIN[7:], "--run-dir", str(run), "--resume"]) in (None, 0)


@pytest.mark.parametrize("code,said", [(28, "no space left on the device holding"), (30, "on a read-only file system")])
def test_the_machine_state_is_one_line_naming_the_path_and_exit_1(code, said, tmp_path, capsys, monkeypatch):
    def fail(*a, **kw): raise OSError(code, "machine", str(tmp_path/"run"/"checkpoints"/"epoch_0001.pt"))
    monkeypatch.setattr(train_module, "train", fail)
    with pytest.raises(SystemExit) as e: main([*TINY_TRAIN, "--run-dir", str(tmp_path/"run")])
    err = capsys.readouterr().err
    assert e.value.code == 1 and said in err and "epoch_0001.pt" in err and len(err.strip().splitlines()) == 1


def test_reproduce_on_a_read_only_folder_says_so(tmp_path, capsys, monkeypatch):
    import contextlib
    @contextlib.contextmanager
    def read_only(folder, wait=False, what="run"): raise OSError(30, "Read-only file system", str(folder/".lock"))
    monkeypatch.setattr(cli, "directory_lock", read_only)
    with pytest.raises(SystemExit) as e: main(["reproduce", "--scale", "smoke", "--out", str(tmp_path/"ro")])
    assert e.value.code == 1 and "ro/.lock is on a read-only file system" in capsys.readouterr().err


@pytest.mark.parametrize("argv,guess", [
    (["train", "--widht", "4"], "did you mean --width?"),
    (["reproduce", "--scale", "mimi"], "did you mean mini?"),
    (["train", "--backbone", "resnet19"], "did you mean resnet18?"),
    (["trian"], "did you mean train?"),
])
def test_a_mistyped_option_or_choice_is_one_line_with_a_guess(argv, guess, capsys):
    with pytest.raises(SystemExit) as e: main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and guess in err and "--help lists the options" in err and len(err.splitlines()) == 1


def test_a_file_as_run_dir_says_so(tmp_path, capsys):
    (tmp_path/"notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as e: main([*TINY_TRAIN, "--run-dir", str(tmp_path/"notes.txt")])
    assert e.value.code == 2 and "notes.txt is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path/"notes.txt").read_text() == "mine"


def test_reproduce_help_says_each_default_once_and_lists_the_experiments(capsys):
    with pytest.raises(SystemExit): main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    said = ("(default: mini)", "(default: reproduction)", "(default: auto)", "default: $SIMSIAM_COLLAPSE_DATA",
            "(default: chosen", "(default: the scale's)")
    assert text.count("default:") == sum(text.count(s) for s in said)
    assert "found: e1, e2, e3, e4, e5, e6, e7, e8, e9" in text


def test_reproduce_reads_the_notebooks_of_the_folder_it_runs_in(tmp_path, monkeypatch):
    (tmp_path/"nbs"/"paper").mkdir(parents=True)
    (tmp_path/"nbs"/"paper"/"e2_dataset_size.ipynb").write_bytes(NOTEBOOKS["e2"].read_bytes())
    monkeypatch.chdir(tmp_path)
    assert cli.experiments_dir() == tmp_path/"nbs"/"paper"
    monkeypatch.chdir(tmp_path/"nbs")  # no notebooks here: the installed checkout's
    assert cli.experiments_dir() == NOTEBOOKS["e2"].parent.resolve()


def test_a_run_says_what_it_does_as_it_starts_and_leaves_no_lock(tmp_path, capsys):
    from simsiam_collapse.config import TrainConfig
    assert main([*TINY_TRAIN, "--run-dir", str(tmp_path/"run")]) in (None, 0)
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    key = TrainConfig.load(tmp_path/"run"/"config.json").key()
    assert first.startswith(f"training {tmp_path/'run'}: simsiam resnet18 (width 4)")
    assert f"config {key}; cpu, fp32" in first
    assert "data digits from" in first and not (tmp_path/"run"/".lock").exists()
    ckpt = tmp_path/"run"/"checkpoints"/"epoch_0001.pt"  # the newest only, by default, and its size said
    assert [p.name for p in ckpt.parent.iterdir()] == [ckpt.name]
    assert f"(1 checkpoint, {ckpt.stat().st_size / 2 ** 20:.1f} MB;" in out


def test_missing_data_is_hinted_with_the_command_line_flags_and_download_is_one(tmp_path, capsys, monkeypatch):
    from simsiam_collapse.datasets import DOWNLOAD_ENV
    monkeypatch.delenv(DOWNLOAD_ENV, raising=False)
    argv = [*TINY_TRAIN, "--dataset", "cifar100", "--data-root", str(tmp_path/"empty"), "--run-dir", str(tmp_path/"r")]
    with pytest.raises(SystemExit) as e: main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--data-root FOLDER" in err and "--download" in err
    seen = []
    monkeypatch.setattr(train_module, "train", lambda cfg, run_dir, **kw: seen.append(os.environ.get(DOWNLOAD_ENV)))
    monkeypatch.setattr(cli, "_summary", lambda run_dir: "")
    main([*argv, "--download"])
    assert seen == ["1"]  # the loader, here or in a worker process, may download


def test_version_and_the_train_examples_parse(capsys):
    import simsiam_collapse
    from simsiam_collapse.cli import TRAIN_EXAMPLES, build_parser
    with pytest.raises(SystemExit) as e: main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith(f"simsiam-collapse {simsiam_collapse.__version__}")
    lines = TRAIN_EXAMPLES.replace("\\\n", " ").splitlines()
    examples = [line.split("#")[0].split()[1:] for line in lines if line.strip().startswith("simsiam-collapse train")]
    examples = [words for words in examples if "..." not in words]
    assert len(examples) >= 2
    for words in examples:  # each example is a valid command: its options exist and its configuration validates
        args = build_parser().parse_args(words)
        TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}).validate()


def test_a_finished_run_keeps_no_optimiser_state_unless_asked(tmp_path):
    # a width-4 digits run wrote 17 MB, half of it SGD's momentum buffers that nothing reads once the run is done
    for keep, run in ((False, tmp_path/"lean"), (True, tmp_path/"kept")):
        main([*TINY_TRAIN, "--run-dir", str(run), *(["--keep-optimizer"] if keep else [])])
    lean, kept = (torch.load(next((r/"checkpoints").iterdir()), weights_only=False) for r in (tmp_path/"lean",
                                                                                         tmp_path/"kept"))
    assert "optimizer" not in lean and "optimizer" in kept
    assert all(torch.equal(lean["model"][k], kept["model"][k]) for k in lean["model"])  # the same training
    assert main([*TINY_TRAIN, "--run-dir", str(tmp_path/"lean"), "--resume"]) in (None, 0)  # finished: nothing to do
