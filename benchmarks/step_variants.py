"""Image pairs per second of our SimSiam training step in its variants, side by side in one run: fp32, bf16 autocast,
and torch.compile (fp32), at the widths and crop sizes the scales use (width 8 at 16 px: mini; 16 and 64 at 32 px:
CIFAR-10 at larger widths).

The variants alternate (fp32, bf16, compiled, fp32, bf16, ...) so drift hits all alike; the table gives medians and the
ratios to fp32. torch.compile's one-off compile time is reported apart and amortised over a whole `mini` run (its step
count read from the scale). The lines "cpu" and "auto precision" name the CPU it ran on and what `precision='auto'`
picks there.

.venv/bin/python benchmarks/step_variants.py                      # CPU, every configuration .venv/bin/python
benchmarks/step_variants.py --device cuda --batch-size 256"""
import argparse
import statistics
import time

import torch

from simsiam_collapse.basics import default_device
from simsiam_collapse.config import resolve_precision
from simsiam_collapse.methods import SimSiam
from simsiam_collapse.models import build_backbone
from simsiam_collapse.runs import cpu_line
from simsiam_collapse.scales import SCALES

CONFIGS = [(8, 16), (16, 32), (64, 32)]  # (width, crop size in px)
_MINI = SCALES["mini"].train
MINI_STEPS = _MINI["epochs"] * (_MINI["train_images"] // _MINI["batch_size"])  # training steps of one mini run


def make_step(width, size, batch, device, bf16, compiled):
    torch.manual_seed(0)
    model = SimSiam(
        build_backbone("resnet18", stem="cifar", width=width), proj_hidden_dim=256, proj_dim=256, pred_hidden_dim=64
    )
    model = model.to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    forward = torch.compile(model) if compiled else model
    g = torch.Generator().manual_seed(0)
    x1, x2 = (
        torch.randn(batch, 3, size, size, generator=g).to(device).contiguous(memory_format=torch.channels_last)
        for _ in range(2)
    )

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = forward(x1, x2).loss
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()

    def run(n):
        t0 = time.perf_counter()
        for _ in range(n): step()
        if device.type == "cuda": torch.cuda.synchronize()
        return time.perf_counter() - t0
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it needs a C compiler)")
    widths = [w for w, _ in CONFIGS]
    p.add_argument("--widths", type=int, nargs="+", default=widths, choices=widths,
                   help="the configurations to time, by width (8 at 16 px, 16 and 64 at 32 px; default: all)")
    args = p.parse_args()
    device = default_device(args.device)
    bf16_auto, why = resolve_precision("auto", device)
    print(
        f"machine: {cpu_line()}, torch {torch.__version__}, "
        f"device {device}"
        f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, threads "
        f"{torch.get_num_threads()}, "
        f"batch {args.batch_size}, {args.steps} steps x {args.repeats} runs"
    )
    print(f"auto precision: {why}")
    print(
        "| width | crop px | fp32 pairs/s | bf16 pairs/s | bf16 / fp32 | compiled pairs/s | compiled / fp32 | compile "
        f"s | compiled / fp32 over a mini run ({MINI_STEPS} steps) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for width, size in (c for c in CONFIGS if c[0] in args.widths):
        variants = dict(fp32=make_step(width, size, args.batch_size, device, False, False),
                        bf16=make_step(width, size, args.batch_size, device, True, False))
        compile_s = None
        if not args.no_compile:
            variants["compiled"] = make_step(width, size, args.batch_size, device, False, True)
            compile_s = variants["compiled"](1)  # the first call compiles (forward and backward)
        for r in variants.values(): r(1)  # warm-up
        rates = {k: [] for k in variants}
        for _ in range(args.repeats):
            for k, r in variants.items(): rates[k].append(args.steps * args.batch_size / r(args.steps))
        m = {k: statistics.median(v) for k, v in rates.items()}
        comp = ("n/a",) * 4
        if "compiled" in m:
            step_fp32, step_comp = args.batch_size / m["fp32"], args.batch_size / m["compiled"]
            amortised = (MINI_STEPS * step_fp32) / (MINI_STEPS * step_comp + compile_s)
            comp = (f"{m['compiled']:.0f}", f"{m['compiled'] / m['fp32']:.2f}", f"{compile_s:.0f}", f"{amortised:.2f}")
        print(
            f"| {width} | {size} | {m['fp32']:.0f} | {m['bf16']:.0f} | {m['bf16'] / m['fp32']:.2f} | "
            + " | ".join(comp)
            + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()
