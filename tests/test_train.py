"""Training: the loss goes down, resume is exact, the hybrid starts from its twin, bad configs fail at once, DDP matches
one process."""
import dataclasses
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from simsiam_collapse.collapse import std_of_l2_normalized
from simsiam_collapse.config import TrainConfig
from simsiam_collapse.orderings import Ordering
from simsiam_collapse.runs import TrainingDiverged, checkpoint_path, last_checkpoint, read_metrics
from simsiam_collapse.train import build_model, train

# fp32 pinned: tests compare trainings (resumed against whole, two ranks against one process), and only fp32 gives
# the same arithmetic on every CPU; bf16 has its own test below
TINY = dict(
    dataset="digits",
    precision="fp32",
    width=8,
    proj_hidden_dim=64,
    proj_dim=64,
    pred_hidden_dim=16,
    batch_size=128,
    probe_size=300,
    eval_every=0,
)
TINY_FAKE = dict(TINY, dataset="fake")


@pytest.mark.parametrize("method,epochs", [("simsiam", 3), ("byol", 3), ("mocov3", 3)])
def test_loss_decreases(method, epochs, tmp_path):
    cfg = TrainConfig(method=method, epochs=epochs, **TINY)
    if method == "byol": cfg.base_lr, cfg.warmup_epochs = 0.3, 0  # LARS on 33 steps: no warm-up to speak of
    if method == "mocov3":  # at T=1 InfoNCE moves too little in 33 steps to rise above epoch-to-epoch noise
        cfg.optimizer, cfg.base_lr, cfg.warmup_epochs, cfg.temperature = "sgd", 0.5, 0, 0.2
    metrics = read_metrics(train(cfg, tmp_path/method, progress=False))
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == epochs and losses[-1] < losses[0], losses


def _weights(run_dir, epoch):
    return torch.load(checkpoint_path(run_dir, epoch), weights_only=False)


def _drop_log(run_dir, epoch):
    "Rewrite a checkpoint without the log it carries, as versions before the log was carried wrote it."
    state = _weights(run_dir, epoch)
    del state["metrics"]
    torch.save(state, checkpoint_path(run_dir, epoch))


def _image_folder(root, images_per_split: dict, classes, size):
    "An ImageFolder of random RGB PNGs: root/split/class/i.png, `size` pixels square."
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in images_per_split.items():
        for c in classes:
            (root/split/c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root/split/c/f"{i}.png")


def test_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path):
    cfg = TrainConfig(epochs=3, **TINY)
    train(cfg, tmp_path/"whole", progress=False)

    def kill(epoch, step, model):
        if epoch == 1 and step == 4: raise KeyboardInterrupt  # mid-run, mid-epoch
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path/"killed", progress=False, on_step=kill)
    assert last_checkpoint(tmp_path/"killed") == 1
    with pytest.raises(FileExistsError, match="resume=True"):
        train(cfg, tmp_path/"killed", progress=False)
    train(cfg, tmp_path/"killed", resume=True, progress=False)
    a, b = _weights(tmp_path/"whole", 3), _weights(tmp_path/"killed", 3)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [m["loss"] for m in read_metrics(tmp_path / "whole")[1:]] == [
        m["loss"] for m in read_metrics(tmp_path / "killed")[1:]
    ]


@pytest.mark.parametrize("method", ["byol", "mocov3"])
def test_resume_is_exact_for_momentum_methods(method, tmp_path):
    "LARS state, the EMA target and the per-step warm-up survive a kill bit for bit, as SimSiam's state does."
    cfg = TrainConfig(method=method, epochs=3, warmup_epochs=1, **TINY)
    train(cfg, tmp_path/"whole", progress=False, keep_optimizer=True)  # the last checkpoint keeps LARS's state
    def kill(epoch, step, model):
        if epoch == 1 and step == 3: raise KeyboardInterrupt  # inside the first epoch after the warm-up
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path/"killed", progress=False, on_step=kill)
    train(cfg, tmp_path/"killed", resume=True, progress=False, keep_optimizer=True)
    a, b = _weights(tmp_path/"whole", 3), _weights(tmp_path/"killed", 3)
    assert any(k.startswith("target_") for k in a["model"])  # the EMA target is part of the checkpoint
    for k in a["model"]: assert torch.equal(a["model"][k], b["model"][k]), k
    for (ka, va), (kb, vb) in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].items()):
        assert all(torch.equal(va[n], vb[n]) for n in va), ka  # LARS momentum buffers
    assert [m.get("lr") for m in read_metrics(tmp_path / "whole")] == [
        m.get("lr") for m in read_metrics(tmp_path / "killed")
    ]



def test_a_run_killed_before_its_first_checkpoint_starts_again_without_resume(tmp_path):
    "Nothing to lose: a run folder without a checkpoint is trained afresh, and its log starts again at epoch 0."
    def kill(epoch, step, model):
        if step == 2: raise KeyboardInterrupt
    cfg = TrainConfig(epochs=1, **TINY)
    with pytest.raises(KeyboardInterrupt): train(cfg, tmp_path/"run", progress=False, on_step=kill)
    assert (tmp_path/"run"/"config.json").exists() and last_checkpoint(tmp_path/"run") == 0
    train(cfg, tmp_path/"run", progress=False)
    assert [m["epoch"] for m in read_metrics(tmp_path/"run")] == [0, 1]

def test_resume_refuses_another_config(tmp_path):
    train(TrainConfig(epochs=1, **TINY), tmp_path/"run", progress=False)
    with pytest.raises(ValueError, match=r"another configuration \(\{'seed': \(0, 5\)\}\)"):  # saved, asked
        train(TrainConfig(epochs=1, seed=5, **TINY), tmp_path/"run", resume=True, progress=False)


def test_hybrid_starts_from_the_single_pass_checkpoint(tmp_path):
    single = TrainConfig(epochs=4, ordering="single_pass", checkpoint_every=1, **TINY)
    train(single, tmp_path/"single", progress=False)
    hybrid = TrainConfig(epochs=4, ordering="hybrid", switch_epoch=2, init_from=str(tmp_path/"single"),
                         checkpoint_every=1, **TINY)
    train(hybrid, tmp_path/"hybrid", progress=False)
    copied = _weights(tmp_path/"hybrid", 2)
    assert copied["copied_from"].endswith("epoch_0002.pt")
    for k, v in _weights(tmp_path/"single", 2)["model"].items():
        assert torch.equal(copied["model"][k], v)
    # the same hybrid trained from scratch reaches the same weights: init_from only saves the shared epochs
    train(TrainConfig(epochs=4, ordering="hybrid", switch_epoch=2, **TINY), tmp_path/"scratch", progress=False)
    for k, v in _weights(tmp_path/"scratch", 4)["model"].items():
        assert torch.equal(_weights(tmp_path/"hybrid", 4)["model"][k], v), k
    phases = [m["phase"] for m in read_metrics(tmp_path/"hybrid") if "phase" in m]
    assert phases == ["single_pass", "single_pass", "multiple_pass", "multiple_pass"]
    with pytest.raises(ValueError, match="not the single-pass twin"):
        train(
            TrainConfig(
                epochs=4, ordering="hybrid", switch_epoch=2, seed=1, init_from=str(tmp_path / "single"), **TINY
            ),
            tmp_path / "wrong",
            progress=False,
        )



def test_a_hybrid_needs_its_twins_checkpoint_at_the_switch_epoch(tmp_path):
    train(TrainConfig(epochs=3, ordering="single_pass", checkpoint_every=0, **TINY), tmp_path/"single", progress=False)
    hybrid = TrainConfig(epochs=3, ordering="hybrid", switch_epoch=2, init_from=str(tmp_path/"single"), **TINY)
    with pytest.raises(FileNotFoundError, match=r"epoch_0002.pt is missing: the single-pass run has not reached "
                       r"epoch 2, or did not keep it \(checkpoint_every=0\); train the twin with checkpoint_every "
                       r"dividing 2"):
        train(hybrid, tmp_path/"hybrid", progress=False)


def test_a_hybrid_takes_its_twins_log_from_the_checkpoint(tmp_path):
    "The checkpoint carries the log: a line the twin's metrics.jsonl lost is not lost to the hybrid."
    twin = train(TrainConfig(epochs=3, ordering="single_pass", checkpoint_every=1, **TINY), tmp_path/"single",
                 progress=False)
    log = twin/"metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("".join(line + "\n" for line in lines if json.loads(line)["epoch"] != 1))
    hybrid = TrainConfig(epochs=3, ordering="hybrid", switch_epoch=2, init_from=str(twin), checkpoint_every=1, **TINY)
    run = train(hybrid, tmp_path/"hybrid", progress=False)
    shared = [json.loads(line) for line in lines[:3]]  # epochs 0 to 2
    assert read_metrics(run)[:3] == shared and _weights(run, 2)["metrics"] == shared
    # a checkpoint without its log (written by an older version): the twin's log up to the switch epoch
    log.write_text("".join(line + "\n" for line in lines))
    _drop_log(twin, 2)
    run = train(hybrid, tmp_path/"older", progress=False)
    assert read_metrics(run)[:3] == shared and _weights(run, 2)["metrics"] == shared
    assert [m["epoch"] for m in read_metrics(run)] == [0, 1, 2, 3]

@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(method="simclr"), "method='simclr' is not valid"),
        (dict(ordering="subset", fraction=1.5), r"fraction must be a number in \(0, 1\], got 1.5"),
        (dict(ordering="hybrid", switch_epoch=9, epochs=4), "switch_epoch must be an integer between 0 and epochs=4"),
        (
            dict(ordering="single_pass", epochs=20),
            "a chunk .20 chunks. holds 71 of the 1437 images, fewer than a batch of 128",
        ),
        (dict(epochs=2.0), "epochs=2.0 is not valid: an integer"),
        (dict(eval_every=-1), "eval_every=-1 is not valid"),
        (dict(image_size=0), "image_size=0 is not valid"),
        (dict(momentum=-0.9), "momentum=-0.9 is not valid"),
        (dict(weight_decay=-1e-4), "weight_decay=-0.0001 is not valid"),
        (dict(ema_momentum=1.5), "ema_momentum=1.5 is not valid"),
        (dict(temperature=0.0), "temperature=0.0 is not valid"),
        (dict(probe_size=0), "probe_size=0 is not valid"),
        (dict(batch_size="128"), "batch_size='128' is not valid: an integer"),
        (dict(dataset="imagenet"), "dataset='imagenet' is not valid"),
        (dict(precision="fp8"), "precision='fp8' is not valid"),
    ],
)
def test_bad_config_fails_before_anything_is_written(bad, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        train(TrainConfig(**{**TINY, **bad}), tmp_path/"run", progress=False)
    assert not (tmp_path/"run").exists()


def test_run_directory_records_everything(tmp_path):
    cfg = TrainConfig(epochs=2, ordering="cumulative", checkpoint_every=1, **TINY)
    run = train(cfg, tmp_path/"run", progress=False)
    assert TrainConfig.from_dict(json.loads((run/"config.json").read_text())) == cfg.resolved()
    env = json.loads((run/"environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["world_size"] == 1
    # the arithmetic: which precision, and the CPU whose kernels computed it
    assert env["precision"] == "fp32 (asked)" and set(env["cpu"]) == {"model", "cores", "isa"}, env
    assert env["cpu"]["cores"] == os.cpu_count() and env["cpu"]["model"], env["cpu"]
    data = json.loads((run/"data.json").read_text())
    assert (data["train"]["split"], data["train"]["n"], data["test"]["split"], data["test"]["n"]) == \
        ("train", 1437, "test", 360)
    assert data["probe"] == dict(train=300, test=300)  # the monitoring probe's images of each split
    perm = np.load(run/"permutation.npy")
    assert np.array_equal(perm, Ordering("cumulative", 1437, 2, 128, 0).permutation())
    assert sorted(p.name for p in (run/"checkpoints").iterdir()) == ["epoch_0001.pt", "epoch_0002.pt"]
    assert json.loads((run/"status.json").read_text())["state"] == "done"
    assert "auc" in read_metrics(run)[0] and "auc" in read_metrics(run)[-1]  # at initialisation and at the end


def test_bf16_asked_on_a_cpu_trains_in_bf16_and_tracks_fp32(tmp_path):
    """The bf16 path (autocast around the forward, fp32 log values) on any CPU, emulated where the CPU lacks native
    bf16: two steps, so it stays cheap there. bf16 is engaged (the weights differ from fp32's), recorded, and the loss
    follows fp32's to bf16's precision."""
    base = dict(TINY, train_images=256, batch_size=128, epochs=1)
    runs = {p: train(TrainConfig(**{**base, "precision": p}), tmp_path/p, progress=False) for p in ("fp32", "bf16")}
    env = {p: json.loads((r/"environment.json").read_text())["precision"] for p, r in runs.items()}
    assert env == {"fp32": "fp32 (asked)", "bf16": "bf16 autocast (asked)"}, env
    loss = {p: read_metrics(r)[-1]["loss"] for p, r in runs.items()}
    assert np.isfinite(loss["bf16"]) and abs(loss["bf16"] - loss["fp32"]) < 0.02 * abs(loss["fp32"]) + 1e-3, loss
    w = {p: _weights(r, 1)["model"]["backbone.stem.0.weight"] for p, r in runs.items()}
    assert not torch.equal(w["fp32"], w["bf16"])


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(epoch, step, model):
        if epoch == 1 and step == 0:
            with torch.no_grad(): model.backbone.stem[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"Loss became nan at epoch 2, step 2.*epoch_0001.pt.*lower base_lr"):
        train(TrainConfig(epochs=3, **TINY), tmp_path/"run", progress=False, on_step=poison)
    assert last_checkpoint(tmp_path/"run") == 1
    good = _weights(tmp_path/"run", 1)["model"]
    assert all(torch.isfinite(v).all() for v in good.values() if v.is_floating_point())
    def poison_at_once(epoch, step, model):
        if step == 0:
            with torch.no_grad(): model.backbone.stem[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step 2 .* last good checkpoint is none; lower base_lr"):
        train(TrainConfig(epochs=3, **TINY), tmp_path/"first", progress=False, on_step=poison_at_once)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _ddp_worker(rank, world, port, cfg, run_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    torch.backends.cudnn.allow_tf32 = False
    def keep_weights(epoch, step, model):  # every rank's weights after its last step
        torch.save(
            {k: v.detach().clone() for k, v in model.state_dict().items()}, Path(run_dir).parent / f"rank{rank}.pt"
        )
    train(cfg, run_dir, progress=False, on_step=keep_weights)
    torch.distributed.destroy_process_group()


def _two_ranks_in_one_process(cfg, sync_bn=False):
    """What two ranks compute, in one process: each half of every global batch forwarded alone (batch norm per rank),
    the two losses averaged; with `sync_bn`, the whole global batch forwarded at once (batch norm over both halves).
    Returns the weights and each epoch's mean loss and z_std over the steps and ranks."""
    from simsiam_collapse.train import TrainingData, build_model, build_optimizer, set_learning_rate
    torch.set_num_threads(1)
    cfg = cfg.resolved()
    data = TrainingData.load(cfg)
    model = build_model(cfg, data.train.channels)
    optimizer = build_optimizer(cfg, model)
    logged = []
    for epoch in range(cfg.epochs):
        totals = []
        set_learning_rate(cfg, optimizer, epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        for idx in data.order.batches(epoch):
            images = data.train.images[torch.from_numpy(idx)]
            params = [v.sample(cfg.batch_size, *images.shape[-2:], generator=gen) for v in data.augment.views]
            half = cfg.batch_size // (1 if sync_bn else 2)
            losses = []
            for r in range(cfg.batch_size // half):
                views = [v.apply(images[r * half:(r + 1) * half], {k: t[r * half:(r + 1) * half] for k, t in p.items()})
                         for v, p in zip(data.augment.views, params)]
                out = model(*views)
                losses.append(out.loss); totals.append((out.loss.item(), std_of_l2_normalized(out.z1.float())))
            optimizer.zero_grad(); (sum(losses) / len(losses)).backward(); optimizer.step()
        logged.append(np.mean(totals, axis=0).tolist())
    return model.state_dict(), logged


def test_two_processes_average_gradients_and_train_on_their_own_halves(tmp_path):
    """gloo on CPU: both ranks hold the same weights after training, equal to one process that averages the two halves'
    gradients."""
    cfg = TrainConfig(**TINY_FAKE, epochs=1, channels_last=False, device="cpu")
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), cfg, tmp_path/"ddp"), nprocs=2, join=True)
    ranks = [torch.load(tmp_path/f"rank{r}.pt") for r in (0, 1)]
    reference, reference_log = _two_ranks_in_one_process(cfg)
    assert json.loads((tmp_path/"ddp"/"environment.json").read_text())["world_size"] == 2
    # the log shows the mean over the ranks
    logged = [[m["loss"], m["z_std"]] for m in read_metrics(tmp_path/"ddp") if "loss" in m]
    assert np.allclose(logged, reference_log, rtol=1e-4), (logged, reference_log)
    for name, w in ranks[0].items():
        # batch-norm buffers follow rank 0 alone (DDP broadcasts them)
        if not w.is_floating_point() or "running" in name: continue
        assert torch.equal(w, ranks[1][name]), name  # the ranks agree exactly
        assert torch.allclose(w, reference[name], atol=1e-5, rtol=1e-4), (name, (w - reference[name]).abs().max())
    untrained = build_model(cfg.resolved(), 3).state_dict()
    # training moved the weights
    assert not torch.allclose(ranks[0]["backbone.stem.0.weight"], untrained["backbone.stem.0.weight"])


def test_the_target_network_moves_as_in_the_authors_loop(tmp_path):
    """The authors' MoCo-v3/BYOL loop moves the target with this step's momentum m(g) (g the global step, a cosine over
    all steps) just before it computes the targets, from the online weights of that moment; ours moves it right after
    the optimiser step, with m(g + 1). Both give every forward the same target: checked against a transcription of the
    authors' loop over two epochs of three steps."""
    from simsiam_collapse.methods import momentum_schedule
    from simsiam_collapse.train import TrainingData, build_optimizer, set_learning_rate
    cfg = TrainConfig(**{**TINY, "train_images": 384, "channels_last": False}, method="byol", epochs=2, warmup_epochs=0)
    ours = []  # after each step: the target the next forward uses
    train(cfg, tmp_path/"run", progress=False,
          on_step=lambda e, s, model: ours.append([p.detach().clone() for p in model.target_parameters()]))
    cfg = cfg.resolved()
    data = TrainingData.load(cfg)
    model = build_model(cfg, data.train.channels)
    optimizer = build_optimizer(cfg, model)
    steps = data.order.steps_per_epoch
    authors = []  # at each forward from the second on: the target it uses
    for epoch in range(cfg.epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        for step, idx in enumerate(data.order.batches(epoch)):
            g = epoch * steps + step
            set_learning_rate(cfg, optimizer, epoch + step / steps)
            images = data.train.images[torch.from_numpy(idx)]
            views = [v.apply(images, v.sample(cfg.batch_size, *images.shape[-2:], generator=gen))
                     for v in data.augment.views]
            with torch.no_grad():
                model.momentum_update(momentum_schedule(g, cfg.epochs * steps, cfg.ema_momentum, cfg.ema_cosine))
            if g: authors.append([p.detach().clone() for p in model.target_parameters()])
            out = model(*views)
            optimizer.zero_grad(); out.loss.backward(); optimizer.step()
    assert len(authors) == 2 * steps - 1 == len(ours) - 1
    for g, (a, b) in enumerate(zip(authors, ours), 1):
        gap = max((x - y).abs().max().item() for x, y in zip(a, b))
        assert gap < 1e-6, (g, gap)


def test_synchronised_batch_norm_on_cpu_processes_fails_before_anything_is_written(tmp_path):
    cfg = TrainConfig(**TINY_FAKE, epochs=1, device="cpu", sync_bn=True)
    with pytest.raises(Exception, match=r"sync_bn=True is not valid on cpu: torch's SyncBatchNorm runs on GPUs only"):
        torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), cfg, tmp_path/"ddp"), nprocs=2, join=True)
    assert not (tmp_path/"ddp").exists()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="SyncBatchNorm runs on GPUs only: needs two")
def test_two_gpus_with_synchronised_batch_norm_equal_one_process_on_the_global_batch(tmp_path):
    """NCCL, one GPU per rank: the ranks end equal, weights and batch-norm statistics, to one process that forwards the
    whole global batch (in fp32; TF32 off, since the reference runs on the CPU)."""
    cfg = TrainConfig(**TINY_FAKE, epochs=1, channels_last=False, sync_bn=True)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), cfg, tmp_path/"ddp"), nprocs=2, join=True)
    ranks = [torch.load(tmp_path/f"rank{r}.pt", map_location="cpu") for r in (0, 1)]
    (reference, _), (per_rank, _) = _two_ranks_in_one_process(cfg, sync_bn=True), _two_ranks_in_one_process(cfg)
    for name, w in ranks[0].items():
        if not w.is_floating_point(): continue
        assert torch.allclose(w, ranks[1][name], atol=1e-6), name
        assert torch.allclose(w, reference[name], atol=1e-4, rtol=1e-3), (name, (w - reference[name]).abs().max())
    name = "backbone.stem.0.weight"  # and batch norm per rank would have trained other weights (2e-3 apart on the CPU)
    assert not torch.allclose(ranks[0][name], per_rank[name], atol=1e-4, rtol=1e-3)


def test_training_on_a_streamed_image_folder_equals_training_in_memory(tmp_path, monkeypatch):
    """ImageNet-size folders are streamed (DataLoader workers) behind the same interface. On square images stored at the
    training size, streaming and holding the folder in memory give the same batches and views, so the same weights."""
    from simsiam_collapse import datasets
    from simsiam_collapse import train as train_module
    _image_folder(tmp_path/"folder", dict(train=24, val=8), ("a", "b"), 16)
    monkeypatch.setenv("SIMSIAM_COLLAPSE_CACHE", str(tmp_path/"cache"))
    cfg = TrainConfig(
        dataset=f"imagefolder:{tmp_path / 'folder'}",
        width=4,
        proj_dim=16,
        pred_hidden_dim=8,
        epochs=2,
        batch_size=16,
        probe_size=16,
        eval_every=0,
    )
    in_memory = train(cfg, tmp_path/"in_memory", progress=False)
    streamed = lambda name, split="train", data_root=None, download=None: datasets.load_dataset(
        name, split, stream=True, image_size=16
    )
    monkeypatch.setattr(train_module, "load_dataset", streamed)
    run = train(cfg, tmp_path/"streamed", progress=False)
    assert json.loads((run/"data.json").read_text())["train"]["streamed"] is True
    assert not json.loads((in_memory/"data.json").read_text())["train"].get("streamed", False)
    assert [m["epoch"] for m in read_metrics(run)] == [0, 1, 2] and last_checkpoint(run) == 2
    a, b = _weights(in_memory, 2)["model"], _weights(run, 2)["model"]
    for k in a: torch.testing.assert_close(a[k], b[k], msg=k)



def test_a_run_reads_its_data_from_the_data_root_it_names(tmp_path, monkeypatch):
    "`data_root` reaches both splits (not $SIMSIAM_COLLAPSE_DATA's folder), and data.json says which files were read."
    _image_folder(tmp_path/"mine"/"cifar10-jpeg", dict(train=2, test=2), [f"class{c}" for c in range(10)], 32)
    monkeypatch.setenv("SIMSIAM_COLLAPSE_DATA", str(tmp_path/"elsewhere"))
    monkeypatch.setenv("SIMSIAM_COLLAPSE_CACHE", str(tmp_path/"cache"))
    cfg = TrainConfig(dataset="cifar10", data_root=str(tmp_path/"mine"), width=4, proj_dim=16, pred_hidden_dim=8,
                      epochs=1, batch_size=16, probe_size=20, eval_every=0)
    with pytest.warns(UserWarning, match="Only 20 feature vectors"):  # a probe of 20 images, for speed
        data = json.loads((train(cfg, tmp_path/"run", progress=False)/"data.json").read_text())
    for split in ("train", "test"):
        assert data[split]["source"].startswith(str(tmp_path/"mine"/"cifar10-jpeg"/split)), data[split]

# Reliability: one writer per run directory, nothing lost on a kill, damaged files named and healed.

def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path):
    "Two real processes: the second fails at once naming the holder's PID; the first's log has no duplicate line."
    import subprocess
    import sys
    import time
    script = ("import sys; from simsiam_collapse.train import TrainConfig, train; "
              f"train(TrainConfig(epochs=12, **{TINY!r}), sys.argv[1], resume=True, progress=False)")
    first = subprocess.Popen([sys.executable, "-c", script, str(tmp_path/"run")])
    deadline = time.time() + 120
    while not (tmp_path/"run"/"status.json").exists() and time.time() < deadline: time.sleep(0.2)
    second = subprocess.run([sys.executable, "-c", script, str(tmp_path/"run")], capture_output=True, text=True)
    assert first.wait(timeout=300) == 0
    assert second.returncode != 0 and f"PID {first.pid}" in second.stderr, second.stderr[-500:]
    epochs = [m["epoch"] for m in read_metrics(tmp_path/"run")]
    assert epochs == list(range(13))



def test_wait_queues_behind_the_holder_of_the_run_folder(tmp_path):
    "Refused at once while another holds the folder; with `wait=True` (as the run store asks) trained once it is free."
    import threading

    from simsiam_collapse.runs import RunLocked, directory_lock
    held, release = threading.Event(), threading.Event()
    def hold():
        with directory_lock(tmp_path/"run"):
            held.set()
            release.wait(60)
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(60)
    cfg = TrainConfig(epochs=1, **TINY)
    try:
        with pytest.raises(RunLocked, match="in use by another run process"):
            train(cfg, tmp_path/"run", progress=False)
        threading.Timer(1.0, release.set).start()
        train(cfg, tmp_path/"run", progress=False, wait=True)
    finally:
        release.set()
        holder.join()
    assert json.loads((tmp_path/"run"/"status.json").read_text())["state"] == "done"

def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    run = train(TrainConfig(epochs=1, **TINY), tmp_path/"run", progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    train(TrainConfig(epochs=1, **TINY), run, resume=True, progress=False)
    assert "nothing to resume" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert json.loads((run/"status.json").read_text())["state"] == "done"


def test_a_kill_between_checkpoint_and_log_line_loses_no_line(tmp_path):
    "The checkpoint carries the log: a lost, a half-written or a repeated last line heal on resume."
    class Killed(Exception): pass
    def kill_after_epoch_2(epoch, step, model):
        if epoch == 2 and step == 0: raise Killed
    cfg = TrainConfig(epochs=3, **TINY)
    with pytest.raises(Killed): train(cfg, tmp_path/"run", progress=False, on_step=kill_after_epoch_2)
    log = tmp_path/"run"/"metrics.jsonl"
    lines = log.read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
    # line 2 lost, line 1 repeated, a half line
    log.write_text("\n".join(lines[:2]) + "\n" + lines[1] + "\n" + lines[2][:17])
    with pytest.warns(UserWarning, match="line 4 is not valid JSON"):
        assert [m["epoch"] for m in read_metrics(tmp_path/"run")] == [0, 1, 1]
    train(cfg, tmp_path/"run", resume=True, progress=False)
    assert [m["epoch"] for m in read_metrics(tmp_path/"run")] == [0, 1, 2, 3]
    uninterrupted = read_metrics(train(cfg, tmp_path/"straight", progress=False))
    assert [m.get("loss") for m in read_metrics(tmp_path/"run")] == [m.get("loss") for m in uninterrupted]


def test_a_truncated_newest_checkpoint_is_named_and_skipped(tmp_path):
    cfg = TrainConfig(epochs=3, **TINY)
    train(cfg, tmp_path/"straight", progress=False)
    run = train(dataclasses.replace(cfg, epochs=3), tmp_path/"run", progress=False)
    (run/"status.json").write_text(json.dumps(dict(state="running", epochs_done=3, epochs=3)))
    newest = checkpoint_path(run, 3)
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"epoch_0003.pt is unreadable .* renamed to epoch_0003.pt.corrupt"):
        train(cfg, run, resume=True, progress=False)
    assert (run/"checkpoints"/"epoch_0003.pt.corrupt").exists()
    assert torch.equal(_weights(run, 3)["model"]["backbone.stem.0.weight"],
                       # epoch 3 retrained from epoch 2, exactly
                       _weights(tmp_path/"straight", 3)["model"]["backbone.stem.0.weight"])
    assert [m["epoch"] for m in read_metrics(run)] == [0, 1, 2, 3]



def test_a_checkpoint_without_its_log_resumes_from_the_log_file(tmp_path):
    "Checkpoints of older versions carry no log: the resumed run keeps metrics.jsonl's lines up to the checkpoint."
    cfg = TrainConfig(epochs=3, checkpoint_every=1, **TINY)
    straight = read_metrics(train(cfg, tmp_path/"straight", progress=False))
    run = train(cfg, tmp_path/"run", progress=False)
    (run/"status.json").write_text(json.dumps(dict(state="running", epochs_done=3, epochs=3)))
    _drop_log(run, 2)
    newest = checkpoint_path(run, 3)
    newest.write_bytes(newest.read_bytes()[:1000])  # so the run resumes from epoch 2, its log one line ahead
    with pytest.warns(UserWarning, match="epoch_0003.pt is unreadable"):
        train(cfg, run, resume=True, progress=False)
    assert [m.get("loss") for m in read_metrics(run)] == [m.get("loss") for m in straight]


def test_the_status_says_how_far_a_run_is_while_it_trains(tmp_path):
    "status.json at each epoch's first step: running, with the epochs finished; a resumed run from its checkpoint's."
    seen, killed = [], []
    def read_status(epoch, step, model):
        if step == 0: seen.append(json.loads((tmp_path/"run"/"status.json").read_text()))
        if epoch == 2 and not killed:
            killed.append(step)
            raise KeyboardInterrupt
    cfg = TrainConfig(epochs=3, **TINY)
    with pytest.raises(KeyboardInterrupt): train(cfg, tmp_path/"run", progress=False, on_step=read_status)
    train(cfg, tmp_path/"run", resume=True, progress=False, on_step=read_status)
    assert seen == [dict(state="running", epochs_done=done, epochs=3) for done in (0, 1, 2, 2)]
    assert json.loads((tmp_path/"run"/"status.json").read_text()) == dict(state="done", epochs_done=3, epochs=3)

def test_retention_keeps_every_kth_and_the_newest(tmp_path):
    "Retention, what each checkpoint holds, and the measures taken every `eval_every` epochs."
    cfg = TrainConfig(epochs=5, checkpoint_every=2, **dict(TINY, eval_every=2))
    run = train(cfg, tmp_path/"run", progress=False)
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == [
        "epoch_0002.pt",
        "epoch_0004.pt",
        "epoch_0005.pt",
    ]
    assert [m["epoch"] for m in read_metrics(run) if "auc" in m] == [0, 2, 4, 5]  # every 2 epochs, and the last
    last = _weights(run, 5)
    assert "optimizer" in _weights(run, 4) and "optimizer" not in last  # a finished run is never resumed
    assert last["epoch"] == 5 and TrainConfig.from_dict(last["config"]) == cfg.resolved()  # the file says what it is
    kept = train(TrainConfig(epochs=1, **TINY), tmp_path/"kept", progress=False, keep_optimizer=True)
    assert "optimizer" in _weights(kept, 1)  # asked for, to train on from it
    run = train(TrainConfig(epochs=3, checkpoint_every=0, **TINY), tmp_path/"last", progress=False)
    assert [p.name for p in (run/"checkpoints").iterdir()] == ["epoch_0003.pt"]
    assert [m["epoch"] for m in read_metrics(run)] == [0, 1, 2, 3]  # the log keeps every epoch


def test_total_collapse_finishes_and_is_logged(tmp_path):
    """A backbone whose features became constant (as weight decay does at a large dose): the run ends normally, AUC 1
    and RankMe 1."""
    def collapse_at_the_last_step(epoch, step, model):
        if epoch == 1 and step == 10:
            with torch.no_grad():
                for p in model.backbone.parameters(): p.zero_()
    run = train(TrainConfig(epochs=2, **TINY), tmp_path/"run", progress=False, on_step=collapse_at_the_last_step)
    last = read_metrics(run)[-1]
    assert (last["auc"], last["rankme"]) == (1.0, 1.0), last
    assert json.loads((run/"status.json").read_text())["state"] == "done"


def test_a_constant_ema_momentum_reaches_every_step(tmp_path, monkeypatch):
    "ema_cosine=False: every step moves BYOL's target with ema_momentum itself, not the cosine that is the default."
    from simsiam_collapse.methods import BYOL
    momenta, update = [], BYOL.momentum_update
    def recording_update(self, m):
        momenta.append(m)
        return update(self, m)
    monkeypatch.setattr(BYOL, "momentum_update", recording_update)
    cfg = TrainConfig(method="byol", epochs=1, ema_cosine=False, ema_momentum=0.9, train_images=256, **TINY)
    train(cfg, tmp_path/"run", progress=False)
    assert len(momenta) >= 2 and set(momenta) == {0.9}


def test_the_ema_follows_its_schedule_and_the_logged_loss_is_the_epochs_mean(tmp_path, monkeypatch):
    """Every step moves BYOL's target with momentum_schedule(t, all steps) and runs at the learning rate of its
    fractional epoch (BYOL's per-step schedule, warm-up included) in every group, in float32 when asked; an epoch logs
    the mean of its steps' losses and z_std, its time and throughput; a TensorBoard writer gets every log_every-th
    step's loss and rate."""
    from simsiam_collapse.methods import BYOL, momentum_schedule
    from simsiam_collapse.optim import LARS, learning_rate
    momenta, losses, z_stds, lrs, autocast = [], [], [], [], set()
    update, forward, step = BYOL.momentum_update, BYOL.forward, LARS.step
    def recording_update(self, m):
        momenta.append(m)
        return update(self, m)
    def recording_forward(self, x1, x2):
        out = forward(self, x1, x2)
        if self.training: losses.append(out.loss.item()); z_stds.append(std_of_l2_normalized(out.z1.float()))
        autocast.add(torch.ones(1, 1).mm(torch.ones(1, 1)).dtype)  # bf16 under autocast; this way on every torch
        return out
    def recording_step(self):
        lrs.append([(g["base_lr"], g["lr"]) for g in self.param_groups])
        return step(self)
    monkeypatch.setattr(BYOL, "momentum_update", recording_update)
    monkeypatch.setattr(BYOL, "forward", recording_forward)
    monkeypatch.setattr(LARS, "step", recording_step)
    class Scalars:  # what a TensorBoard SummaryWriter is given
        rows = []
        def add_scalar(self, tag, value, step): self.rows.append((tag, value, step))
        def flush(self): pass
    cfg = TrainConfig(method="byol", epochs=2, warmup_epochs=1, **TINY)
    start = time.time()
    train(cfg, tmp_path / "run", progress=False, writer=Scalars(), log_every=3)
    took = time.time() - start
    steps = len(momenta) // 2
    assert steps >= 2 and len(momenta) == 2 * steps == len(losses) == len(lrs)
    expected = [momentum_schedule(t, 2 * steps, cfg.ema_momentum, cfg.ema_cosine) for t in range(1, 2 * steps + 1)]
    assert momenta == pytest.approx(expected)
    for i, groups in enumerate(lrs):
        scheduled = [learning_rate(base, i / steps, cfg.epochs, cfg.warmup_epochs) for base, _ in groups]
        assert [lr for _, lr in groups] == pytest.approx(scheduled), i
    logged = [row for row in read_metrics(tmp_path / "run") if "loss" in row]
    def epoch_means(values): return [np.mean(values[:steps]), np.mean(values[steps:])]
    assert [row["loss"] for row in logged] == pytest.approx(epoch_means(losses), rel=1e-6)
    assert [row["z_std"] for row in logged] == pytest.approx(epoch_means(z_stds), rel=1e-6)
    assert autocast == {torch.float32}
    for row in logged:
        assert 0 < row["seconds"] < took and row["phase"] == cfg.ordering
        assert row["pairs_per_s"] == pytest.approx(steps * cfg.batch_size / row["seconds"])
    logged_steps = range(3, 2 * steps + 1, 3)
    assert [r for r in Scalars.rows if r[0] == "step/loss"] == [("step/loss", losses[s - 1], s) for s in logged_steps]
    assert [r for r in Scalars.rows if r[0] == "step/lr"] == [("step/lr", lrs[s - 1][-1][1], s) for s in logged_steps]


def test_the_lock_file_goes_with_its_holder_and_a_waiter_still_excludes_newcomers(tmp_path):
    """A lock holder removes `.lock` as it leaves; a process that was waiting on the removed file moves to the new one,
    so a third process arriving then is refused rather than let in beside it."""
    import threading

    from simsiam_collapse.runs import RunLocked, directory_lock
    first_in, first_may_leave, second_in, second_may_leave = (threading.Event() for _ in range(4))
    def first():
        with directory_lock(tmp_path):
            first_in.set(); first_may_leave.wait(10)
    def second():
        with directory_lock(tmp_path, wait=True):
            second_in.set(); second_may_leave.wait(10)
    a = threading.Thread(target=first); a.start(); first_in.wait(10)
    b = threading.Thread(target=second); b.start()
    time.sleep(0.3); assert not second_in.is_set()  # queued behind the first
    first_may_leave.set(); second_in.wait(10); a.join(10)
    with pytest.raises(RunLocked, match="in use by another run process"):
        with directory_lock(tmp_path): pass
    second_may_leave.set(); b.join(10)
    assert not (tmp_path/".lock").exists()
    with directory_lock(tmp_path): pass  # free again


def test_a_full_disk_is_said_as_such_whatever_the_writer_raises(tmp_path, monkeypatch):
    """torch's zip writer reports a full disk as a RuntimeError ('unexpected pos'); the run folder's writer turns it
    into OSError(ENOSPC) naming the file, and leaves no temporary file. Another error, on a disk with room, stays
    itself."""
    import errno
    import shutil

    from simsiam_collapse.basics import save_atomically
    def fails(*a, **kw): raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 217600")
    monkeypatch.setattr(torch, "save", fails)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 ** 9, 10 ** 9, 0))
    with pytest.raises(OSError) as e: save_atomically({}, tmp_path/"epoch_0001.pt")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path/"epoch_0001.pt")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 ** 9, 0, 10 ** 9))
    with pytest.raises(RuntimeError, match="unexpected pos"): save_atomically({}, tmp_path/"epoch_0001.pt")
