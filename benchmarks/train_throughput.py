"""Image pairs per second of one SimSiam training step, three ways, same model, batch and machine.

(a) ours: uint8 images in memory, the batched two-view augmentation on the training device,
    channels_last, bf16 autocast on CUDA;
(b) the paper's pipeline: per-image PIL/torchvision transforms in a DataLoader with workers, NCHW, fp32;
(c) the ceiling: the bare model step (forward, backward, optimiser) on one fixed, pre-augmented batch,
    with (a)'s memory format and precision.

Runs alternate (a, b, c, a, b, c, ...) so drift hits all three alike; the table gives medians and
the ratios a/b and a/c.

    .venv/bin/python benchmarks/train_throughput.py                 # CIFAR ResNet-18 at width 16 and 64
    .venv/bin/python benchmarks/train_throughput.py --device cuda --batch-size 256 --widths 64
"""
import argparse
import os
import statistics
import time

import torch

from simsiam_collapse.augment import ReferenceTwoViews, TwoViewAugment
from simsiam_collapse.basics import default_device
from simsiam_collapse.datasets import DataNotFoundError, load_dataset
from simsiam_collapse.methods import SimSiam
from simsiam_collapse.models import build_backbone
from simsiam_collapse.runs import cpu_line
from simsiam_collapse.train import channels_last_is_safe


def make_model(width, device, channels_last, backbone="resnet18"):
    """The model, its optimiser and the memory format its inputs take: channels-last when asked, except where the
    training loop would not use it either (torch's CPU kernels break on narrow networks: `channels_last_is_safe`)."""
    torch.manual_seed(0)
    model = SimSiam(build_backbone(backbone, stem="cifar", width=width)).to(device)
    fmt = torch.channels_last if channels_last and channels_last_is_safe(model, device) else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    return model, opt, fmt


def step(model, opt, x1, x2, amp):
    with torch.autocast(x1.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = model(x1, x2).loss
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return loss


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


def ours(ds, width, batch, steps, device, backbone="resnet18"):
    amp = device.type == "cuda"
    model, opt, fmt = make_model(width, device, True, backbone)
    images = ds.images.to(device)  # uint8, in memory
    augment = TwoViewAugment.for_dataset(ds, "simsiam")
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(ds), generator=gen)
    def run(n):
        t0 = time.perf_counter()
        for i in range(n):
            idx = order[(i * batch) % (len(ds) - batch):][:batch].to(device)
            with torch.profiler.record_function("augment"):  # the two parts, named for gpu_check.py's profile
                x1, x2 = (v.contiguous(memory_format=fmt) for v in augment(images[idx], gen))
            with torch.profiler.record_function("model step"):
                step(model, opt, x1, x2, amp)
        sync(device)
        return time.perf_counter() - t0
    return run


def reference(ds, width, batch, steps, device, workers):
    model, opt, _ = make_model(width, device, False)
    loader = torch.utils.data.DataLoader(
        ReferenceTwoViews(ds, "simsiam"),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    def run(n):
        # The workers start and deliver a first batch before the clock starts, prefetch while the model steps, and
        # are shut down afterwards, so they take no CPU from the other pipelines' runs.
        it = iter(loader)
        batches = [next(it)]
        t0 = time.perf_counter()
        for i in range(n):
            x1, x2, _ = batches[0] if i == 0 else next(it)
            step(model, opt, x1.to(device, non_blocking=True), x2.to(device, non_blocking=True), False)
        sync(device)
        seconds = time.perf_counter() - t0
        del it
        return seconds
    return run


def bare(ds, width, batch, steps, device):
    amp = device.type == "cuda"
    model, opt, fmt = make_model(width, device, True)
    x1, x2 = TwoViewAugment.for_dataset(ds, "simsiam")(ds.images[:batch].to(device), torch.Generator().manual_seed(0))
    x1, x2 = x1.contiguous(memory_format=fmt), x2.contiguous(memory_format=fmt)
    def run(n):
        t0 = time.perf_counter()
        for _ in range(n): step(model, opt, x1, x2, amp)
        sync(device)
        return time.perf_counter() - t0
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[16, 64])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=8, help="timed steps per run")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs of each pipeline")
    p.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), help="DataLoader workers of the reference"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    device = default_device(args.device)
    try: ds = load_dataset("cifar10", "train", data_root=args.data_root)
    except DataNotFoundError:
        print("CIFAR-10 not found: timing on fake 32x32 images instead (same shapes)")
        ds = load_dataset("fake", num_samples=10000, image_size=32)
    print(
        f"machine: {cpu_line()}, torch {torch.__version__}, "
        f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
        f"threads {torch.get_num_threads()}, batch {args.batch_size}, {args.steps} steps x {args.repeats} runs, data "
        f"{ds.name}"
    )
    print("| width | (a) ours pairs/s | (b) paper pipeline pairs/s | (c) bare step pairs/s | a / b | a / c |")
    print("|---|---|---|---|---|---|")
    for width in args.widths:
        runs = dict(a=ours(ds, width, args.batch_size, args.steps, device),
                    b=reference(ds, width, args.batch_size, args.steps, device, args.workers),
                    c=bare(ds, width, args.batch_size, args.steps, device))
        for r in runs.values(): r(2)  # warm-up (allocator, cudnn)
        rates = {k: [] for k in runs}
        for _ in range(args.repeats):
            for k, r in runs.items(): rates[k].append(args.steps * args.batch_size / r(args.steps))
        m = {k: statistics.median(v) for k, v in rates.items()}
        print(
            f"| {width} | {m['a']:.0f} | {m['b']:.0f} | {m['c']:.0f} | {m['a'] / m['b']:.2f} | {m['a'] / m['c']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
