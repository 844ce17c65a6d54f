"""`make gpu-check`: the GPU path proven in the minutes a GPU is lent, by one prepared command.

The parts run in the order of what they prove, each timed, each written into the output folder as it finishes (a run
cut off still leaves what it measured; `summary.json` is rewritten after every part):

1. environment: the card, driver and memory (nvidia-smi), torch, CUDA and cuDNN versions, the CPU;
2. the CUDA tests (`pytest -m cuda tests/test_cuda.py`): bf16 against fp32, the augmentation on the device, resident
   images, the monitor and the accumulator, SyncBN, a run under torchrun;
3. `simsiam-collapse reproduce --scale smoke` on the device, end to end (its REPORT.md is copied);
4. throughput at the `gpu` scale (`train_throughput.py`, width 64, 32 px, batch 256 and 512: ours, the paper's per-image
   pipeline and the bare step, with the ratios) and bf16 against fp32 (`step_variants.py`);
5. one timed epoch of the `gpu` scale for ResNet-18 and ResNet-50 (50,000 CIFAR-10 images, or fake ones of that shape),
   and the time of a 100-epoch run of each projected from it;
6. a profile of ResNet-18's training step at that scale: the operators by time, the augmentation and the model step;
7. if the time left allows: the whole `mini` reproduction on the device, runs side by side, its verdicts.

    .venv/bin/python benchmarks/gpu_check.py --out results/gpu-check/h100-2026-12-05   # on a GPU, under 8 minutes
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick                       # the same, CI-sized, on a CPU
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the command beside this Python, or on PATH where the package was installed elsewhere (pip --target, gpu_device.sh)
CLI = shutil.which("simsiam-collapse", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))


def shell(command, log, args, cap=None, env=None) -> dict:
    """Run `command`, its output into `log` as it comes, for at most `cap` seconds and never past the check's deadline
    (a part that hangs leaves the time of the parts after it); its exit status and seconds."""
    t0 = time.monotonic()
    timeout = min(cap or float("inf"), max(1.0, args.deadline - t0))
    with open(log, "w") as f:  # a session of its own: a part stopped takes its kernels and workers with it
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        try: rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait(); rc = "timed out"
    return dict(returncode=rc, seconds=round(time.monotonic() - t0, 1), log=log.name)


def environment(out, args) -> dict:
    import torch

    from simsiam_collapse.runs import cpu_info
    env = dict(torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), cpu=cpu_info(),
               device=args.device, python=sys.version.split()[0])
    if torch.cuda.is_available():
        env["card"] = torch.cuda.get_device_name(0)
        env["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1)
    if shutil.which("nvidia-smi"):
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                            "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    (out/"environment.json").write_text(json.dumps(env, indent=1))
    return env


def cuda_tests(out, args) -> dict:
    return shell([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py", "--junitxml",
                  str(out/"cuda_tests.xml")], out/"cuda_tests.txt", args, 300,
                 dict(SIMSIAM_COLLAPSE_TEST_DEVICE=args.device))


def smoke_reproduce(out, args) -> dict:
    only = ["--only", "e2"] if args.quick else []
    r = shell([CLI, "reproduce", "--scale", "smoke", "--device", args.device, "--out",
               str(out/"smoke"), *only], out/"smoke_reproduce.txt", args, 600)
    if (out/"smoke"/"REPORT.md").exists(): shutil.copy(out/"smoke"/"REPORT.md", out/"smoke_REPORT.md")
    shutil.rmtree(out/"smoke"/"runs", ignore_errors=True)  # checkpoints: not worth carrying back
    return r


def throughput(out, args) -> dict:
    size = ["--widths", "8", "--steps", "2", "--repeats", "1"] if args.quick else ["--widths", "64", "--steps", "20",
                                                                                   "--repeats", "3"]
    parts = {}
    for batch in ([32] if args.quick else [256, 512]):
        parts[f"pipelines_batch{batch}"] = shell(
            [sys.executable, "benchmarks/train_throughput.py", "--device", args.device, "--batch-size", str(batch),
             *size], out/f"throughput_batch{batch}.md", args, 300)
    parts["bf16_fp32"] = shell([sys.executable, "benchmarks/step_variants.py", "--device", args.device, "--no-compile",
                                "--batch-size", "32" if args.quick else "256",
                                # quick: the narrowest alone (torch 2.1, bf16 without bf16 units: 35x fp32 at width 16)
                                *(["--steps", "2", "--repeats", "1", "--widths", "8"] if args.quick else [])],
                               out/"bf16_fp32.md", args, 300)
    return parts


# The GPU speed targets of the project (one H100): an epoch of SimSiam ResNet-18 on CIFAR-10 (50,000 pairs, 32 px,
# batch 512, bf16) under 6 s, our pipeline at >= 90 % of the bare step and at >= 3x the paper's per-image pipeline.
EPOCH_IMAGES, EPOCH_SECONDS, OF_BARE_STEP, OVER_PAPER_PIPELINE = 50_000, 6.0, 0.90, 3.0


def speed_targets(out, args) -> dict:
    """The targets read off the throughput table of the largest batch (width 64): met or missed, and by how much."""
    batch = 32 if args.quick else 512
    rows = [line for line in (out/f"throughput_batch{batch}.md").read_text().splitlines() if line.startswith("| ")]
    width, a, b, c = (float(x) for x in rows[-1].strip("| ").split(" | ")[:4])  # header first, widest width last
    targets = {  # name: (what, measured, shown, met)
        "epoch_seconds": (f"a ResNet-18 epoch ({EPOCH_IMAGES:,} pairs) under {EPOCH_SECONDS:.0f} s",
                          round(EPOCH_IMAGES / a, 2), f"{EPOCH_IMAGES / a:.2f} s", EPOCH_IMAGES / a < EPOCH_SECONDS),
        "of_bare_step": (f"ours at >= {OF_BARE_STEP:.0%} of the bare step", round(a / c, 2), f"{a / c:.0%}",
                         a / c >= OF_BARE_STEP),
        "over_paper_pipeline": (f"ours at >= {OVER_PAPER_PIPELINE:.0f}x the paper's per-image pipeline",
                                round(a / b, 2), f"{a / b:.2f}x", a / b >= OVER_PAPER_PIPELINE)}
    lines = [f"GPU speed targets, from throughput_batch{batch}.md (width {width:.0f}, batch {batch}, {args.device})",
             "", "| target | measured | met |", "|---|---|---|",
             *(f"| {what} | {shown} | {'yes' if met else 'no'} |" for what, _, shown, met in targets.values())]
    (out/"speed_targets.md").write_text("\n".join(lines) + "\n")
    return {name: dict(measured=measured, met=met) for name, (_, measured, _, met) in targets.items()}


def epoch_times(out, args) -> dict:
    """The training steps of one epoch of the `gpu` scale per network (50,000 images at batch 256: 195 steps, the
    augmentation on the device included; CIFAR-10 when it is there, else images of its shape), and a 100-epoch run
    projected from it (the per-epoch monitoring comes on top)."""
    import torch
    sys.path.insert(0, str(ROOT/"benchmarks"))
    from train_throughput import ours

    from simsiam_collapse.datasets import DataNotFoundError, load_dataset
    from simsiam_collapse.scales import SCALES
    device, gpu = torch.device(args.device), SCALES["gpu"].train
    try: ds, data = load_dataset("cifar10", "train"), "cifar10"
    except DataNotFoundError:
        ds, data = load_dataset("fake", num_samples=50_000, image_size=32), "fake, CIFAR-10's shape"
    width, batch = (8, 32) if args.quick else (gpu["width"], gpu["batch_size"])
    steps = 4 if args.quick else len(ds) // batch
    rows = dict(data=data, width=width, batch=batch, steps=steps)
    for backbone in ("resnet18", "resnet50"):
        run = ours(ds, width, batch, steps, device, backbone)
        run(2)  # warm-up: the allocator, cuDNN's choice of kernels
        seconds = run(steps)
        rows[backbone] = dict(epoch_seconds=round(seconds, 2), pairs_per_second=round(steps * batch / seconds),
                              projected_100_epoch_run_minutes=round(100 * seconds / 60, 1))
    (out/"epoch_times.json").write_text(json.dumps(rows, indent=1))
    return rows


def profile(out, args) -> dict:
    """Where the time of one training step goes at the `gpu` scale (ResNet-18, width 64, batch 512; bf16 on CUDA):
    torch.profiler over a few steps after a warm-up, the operators by total time, the augmentation and the model step
    among them. Should a speed target be missed, this says why without waiting for another GPU."""
    import torch
    from torch.autograd.profiler_util import FunctionEventAvg
    from torch.profiler import ProfilerActivity
    sys.path.insert(0, str(ROOT/"benchmarks"))
    from train_throughput import ours

    from simsiam_collapse.datasets import load_dataset
    device = torch.device(args.device)
    width, batch, steps = (8, 32, 2) if args.quick else (64, 512, 10)
    run = ours(load_dataset("fake", num_samples=4 * batch, image_size=32), width, batch, steps, device)
    run(3)  # warm-up: the allocator, cuDNN's choice of kernels
    on_gpu = device.type == "cuda"
    with torch.profiler.profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * on_gpu) as prof:
        seconds = run(steps)
    # torch 2.4 renamed the CUDA columns to device ones
    key = ("device_time_total" if hasattr(FunctionEventAvg, "device_time_total") else "cuda_time_total") if on_gpu \
        else "cpu_time_total"
    title = f"ResNet-18 width {width}, batch {batch}, {steps} steps ({seconds:.2f} s under the profiler), {device}"
    (out/"profile_step.txt").write_text(f"{title}\n{prof.key_averages().table(sort_by=key, row_limit=30)}\n")
    return dict(width=width, batch=batch, steps=steps, sorted_by=key, log="profile_step.txt")


def mini_reproduce(out, args) -> dict:
    from simsiam_collapse.datasets import DataNotFoundError, load_dataset
    try: load_dataset("cifar10", "test")
    except DataNotFoundError: return "skipped: CIFAR-10 not found on this machine (set SIMSIAM_COLLAPSE_DATA)"
    r = shell([CLI, "reproduce", "--scale", "mini", "--device", args.device, "--jobs", "4",
               "--out", str(out/"mini")], out/"mini_reproduce.txt", args)
    for name in ("REPORT.md", "runs.csv"):
        if (out/"mini"/name).exists(): shutil.copy(out/"mini"/name, out/f"mini_{name}")
    shutil.rmtree(out/"mini"/"runs", ignore_errors=True)
    return r


PARTS = [("environment", environment, 5), ("cuda_tests", cuda_tests, 60), ("smoke_reproduce", smoke_reproduce, 120),
         ("throughput", throughput, 90), ("speed_targets", speed_targets, 0),
         ("epoch_times", epoch_times, 90), ("profile", profile, 30), ("mini_reproduce", mini_reproduce, 400)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="CI-sized: tiny settings, no mini reproduction")
    p.add_argument("--budget", type=float, default=480, help="seconds for the whole check (a part that would need "
                   "more than is left, by its estimate, is skipped)")
    p.add_argument("--out", default=None, help="default: results/gpu-check/<card or device>-<date>")
    args = p.parse_args(argv)
    if CLI is None: p.error(f"no simsiam-collapse beside {sys.executable} or on PATH: install the package first")
    import torch
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else args.device
    out = Path(args.out or ROOT/"results"/"gpu-check"/f"{card.split()[-1].lower()}-{datetime.date.today()}")
    out.mkdir(parents=True, exist_ok=True)
    args.deadline, summary = time.monotonic() + args.budget, {}
    for name, part, estimate in PARTS:
        if args.quick and name == "mini_reproduce": continue
        left = args.deadline - time.monotonic()
        if left < estimate:
            summary[name] = f"skipped: {left:.0f} s left, the part needs about {estimate} s"; continue
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        t0 = time.monotonic()
        try: summary[name] = part(out, args)
        except Exception as e: summary[name] = f"failed: {type(e).__name__}: {e}"
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {time.monotonic() - t0:.0f} s: {summary[name]}", flush=True)
        (out/"summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"results in {out}")
    return 0 if all(not str(v).startswith("failed") for v in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
