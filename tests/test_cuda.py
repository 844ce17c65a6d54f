"""The GPU path: bf16 autocast, the augmentation on the device, images resident on it, the monitor and the spectrum
accumulator there, SyncBN, and a run under torchrun. Marked `cuda`: they run on the device that
$SIMSIAM_COLLAPSE_TEST_DEVICE names (default cuda) and skip where it is absent, so `make test` skips them on a CPU-only
machine; `benchmarks/gpu_check.py` runs them on a GPU, and its `--device cpu --quick` form runs them on the CPU (each
CUDA-only step skips alone there)."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from simsiam_collapse.augment import TwoViewAugment
from simsiam_collapse.collapse import SpectrumAccumulator, collapse_measures
from simsiam_collapse.config import TrainConfig
from simsiam_collapse.datasets import load_dataset
from simsiam_collapse.methods import SimSiam
from simsiam_collapse.models import build_backbone
from simsiam_collapse.monitor import CollapseMonitor
from simsiam_collapse.runs import read_metrics, run_status
from simsiam_collapse.train import train

DEVICE = torch.device(os.environ.get("SIMSIAM_COLLAPSE_TEST_DEVICE", "cuda"))
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(),
                                                   reason="no CUDA device (set SIMSIAM_COLLAPSE_TEST_DEVICE=cpu)")]
needs_cuda = pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA only")
TINY = dict(dataset="digits", width=8, proj_hidden_dim=64, proj_dim=64, pred_hidden_dim=16, epochs=2, batch_size=128,
            probe_size=200, train_images=512, device=str(DEVICE))


def simsiam_step(bf16, seed=0):
    "The loss and the backbone's gradients of one SimSiam step on a fixed batch, in bf16 autocast or fp32."
    torch.manual_seed(seed)
    model = SimSiam(build_backbone("resnet18", stem="cifar", width=16), proj_hidden_dim=128, proj_dim=128,
                    pred_hidden_dim=32).to(DEVICE)
    g = torch.Generator().manual_seed(seed)
    x1, x2 = (torch.randn(64, 3, 32, 32, generator=g).to(DEVICE) for _ in range(2))
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(x1, x2).loss
    loss.backward()
    grads = torch.cat([p.grad.float().flatten() for p in model.backbone.parameters() if p.grad is not None])
    return loss.item(), grads


def test_a_bf16_autocast_step_matches_fp32():
    """bf16 keeps 8 bits of mantissa: the loss within 2 % of fp32's and the backbone's gradient within a cosine of 0.95
    (0.974 measured with bf16 on a Zen 4 CPU; a broken autocast, e.g. a loss computed in bf16 throughout, falls far
    below)."""
    (l32, g32), (l16, g16) = simsiam_step(False), simsiam_step(True)
    assert abs(l16 - l32) <= 0.02 * abs(l32) + 1e-3, (l16, l32)
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.95


def test_the_device_augmentation_matches_the_cpu_one_in_distribution():
    "The same recipe on the device and on the CPU: other random draws, the same statistics of the views."
    ds = load_dataset("digits")
    augment = TwoViewAugment.for_dataset(ds, "simsiam")
    images = ds.images[:1024]
    on_device = torch.cat(augment(images.to(DEVICE), torch.Generator(device=DEVICE).manual_seed(0))).float().cpu()
    on_cpu = torch.cat(augment(images, torch.Generator().manual_seed(1))).float()
    assert on_device.shape == on_cpu.shape
    assert abs(on_device.mean() - on_cpu.mean()) < 0.05 and abs(on_device.std() / on_cpu.std() - 1) < 0.05


def test_the_spectrum_accumulator_and_the_monitor_agree_with_the_cpu():
    x = torch.randn(2000, 32, dtype=torch.float64) @ torch.randn(32, 32, dtype=torch.float64)
    there, here = SpectrumAccumulator(), SpectrumAccumulator()
    for batch in x.split(300): there.update(batch.to(DEVICE)); here.update(batch)
    assert torch.allclose(there.singular_values(), here.singular_values(), rtol=1e-8, atol=1e-8)
    net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.BatchNorm1d(64), torch.nn.ReLU())
    held_out = torch.randn(512, 32)
    cpu = CollapseMonitor(held_out, log=None).measure(net)
    device = CollapseMonitor(held_out, log=None).measure(net.to(DEVICE))  # the monitor moves inputs to the model
    assert abs(cpu["auc"] - device["auc"]) < 1e-4 and abs(cpu["rankme"] - device["rankme"]) < 1e-2
    with torch.no_grad(): features = net.cpu().eval()(held_out)  # the monitor measures in eval mode
    assert abs(collapse_measures(features)["auc"] - cpu["auc"]) < 1e-5


@needs_cuda
def test_a_measurement_leaves_the_cuda_generator_where_it_was():
    "As on the CPU (08_monitor): a feature function that draws on the GPU, as an augmentation would, shifts no draw."
    net = torch.nn.Linear(8, 4).to(DEVICE)
    noisy = lambda m, x: m(x + torch.randn_like(x))  # noqa: E731
    torch.cuda.manual_seed_all(0); expected = torch.rand(3, device=DEVICE)
    torch.cuda.manual_seed_all(0)
    CollapseMonitor(torch.randn(64, 8), log=None, features=noisy).measure(net)
    assert torch.equal(torch.rand(3, device=DEVICE), expected)


@needs_cuda
def test_measuring_a_cpu_model_starts_no_cuda_context():
    "On a GPU machine, measuring a model on the CPU leaves CUDA uninitialised (a context takes memory on the GPU)."
    code = ("import torch; from simsiam_collapse.monitor import CollapseMonitor; "
            "CollapseMonitor(torch.randn(64, 8), log=None).measure(torch.nn.Linear(8, 4)); "
            "print(torch.cuda.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_a_run_trains_with_its_images_resident_on_the_device(tmp_path):
    run = train(TrainConfig(**TINY), tmp_path/"run", progress=False)
    assert run_status(run) == "done"
    last = read_metrics(run)[-1]
    assert all(torch.isfinite(torch.tensor(last[k])) for k in ("loss", "auc", "knn"))


@needs_cuda
def test_sync_bn_converts_and_steps():
    "SyncBatchNorm in a one-process group on the GPU (NCCL): the conversion and a training step."
    import torch.distributed as dist
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1"); os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(SimSiam(build_backbone("resnet18", width=8))).to(DEVICE)
        assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
        x = torch.randn(32, 3, 32, 32, device=DEVICE)
        model(x, x.flip(-1)).loss.backward()
    finally:
        dist.destroy_process_group()


def test_a_run_under_torchrun(tmp_path):
    "The command as a multi-GPU user starts it, on one process: torchrun --no-python simsiam-collapse train."
    # beside this Python, or on PATH where the package was installed elsewhere (pip --target on a GPU machine)
    cli = shutil.which("simsiam-collapse", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    assert cli, f"no simsiam-collapse beside {sys.executable} or on PATH: the package is not installed"
    args = ["--dataset", "digits", "--width", "8", "--epochs", "1", "--batch-size", "128", "--train-images", "512",
            "--proj-hidden-dim", "32", "--proj-dim", "32", "--pred-hidden-dim", "8", "--probe-size", "200",
            "--device", str(DEVICE), "--run-dir", str(tmp_path/"run")]
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--no-python", cli,
                          "train", *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert run_status(tmp_path/"run") == "done"

