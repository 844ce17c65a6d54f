"""Wall time of a fixed set of `mini` training runs (train + final evaluation), three ways, in one run:

(i)   one run at a time on all cores (torch's default threads): how `reproduce` trained before `--jobs`;
(ii)  one run at a time on one thread each (`--jobs 1` at the CPU scales, which fix one thread per run);
(iii) `--jobs N` runs side by side, one thread each (`run_all`, the default on the CPU).

It prints the times, the speed-up of (iii) over (i) and (ii), and whether (ii) and (iii) wrote identical
checkpoints and measurements (they must: same seeds, same thread count per run).

    .venv/bin/python benchmarks/parallel_runs.py                     # 4 runs of 10 epochs (ResNet-18, mini)
    .venv/bin/python benchmarks/parallel_runs.py --epochs 40 --jobs 2
"""
import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from simsiam_collapse.experiments import Experiment
from simsiam_collapse.runner import RunStore, run_all
from simsiam_collapse.runs import cpu_line
from simsiam_collapse.scales import SCALES


def configs(epochs, data_root=None):
    with tempfile.TemporaryDirectory() as out:  # the experiment only names the runs here: nothing of it is kept
        exp = Experiment("bench", "mini", data_root=data_root, out_dir=out, progress=False)
        return [
            dataclasses.replace(
                exp.config(backbone="resnet18", ordering=o, seed=s),
                epochs=epochs,
                chunks=None if o == "multiple_pass" else 2,
                eval_every=0,
            )
            for o in ("multiple_pass", "single_pass")
            for s in (0, 1)
        ]


def timed(cfgs, scale, jobs, root, data_root=None):
    t0 = time.perf_counter()
    run_all(RunStore(root), cfgs, scale, "cpu", data_root, jobs=jobs, progress=False)
    return time.perf_counter() - t0


def fingerprint(root):
    "Every run's final weights and measurements, to compare two stores."
    out = {}
    for run in sorted(Path(root).iterdir()):
        ckpt = sorted((run/"checkpoints").glob("epoch_*.pt"))[-1]
        state = torch.load(ckpt, weights_only=False)["model"]
        ev = json.loads((run/"eval.json").read_text())
        out[run.name] = (
            torch.cat([v.flatten().double() for v in state.values() if v.is_floating_point()]),
            ev["accuracy"],
            ev["auc"],
        )
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--data-root", default=None, help="folder holding CIFAR-10 (default: $SIMSIAM_COLLAPSE_DATA)")
    args = p.parse_args()
    if args.epochs < 2: p.error(f"--epochs must be at least 2 (single pass streams two chunks), got {args.epochs}")
    if args.jobs < 1: p.error(f"--jobs must be a positive integer, got {args.jobs}")
    cfgs, scale = configs(args.epochs, args.data_root), SCALES["mini"]
    default_threads = torch.get_num_threads()
    print(
        f"machine: {cpu_line()}, torch {torch.__version__}; "
        f"{len(cfgs)} mini runs of {args.epochs} epochs "
        f"({args.epochs * (scale.train['train_images'] // scale.train['batch_size'])} "
        "steps) + final evaluation"
    )
    with tempfile.TemporaryDirectory() as tmp:
        t_default = timed(cfgs, dataclasses.replace(scale, threads=None), 1, f"{tmp}/i", args.data_root)
        t_serial = timed(cfgs, scale, 1, f"{tmp}/ii", args.data_root)
        t_parallel = timed(cfgs, scale, args.jobs, f"{tmp}/iii", args.data_root)
        a, b = fingerprint(f"{tmp}/ii"), fingerprint(f"{tmp}/iii")
        same = a.keys() == b.keys() and all(torch.equal(a[k][0], b[k][0]) and a[k][1:] == b[k][1:] for k in a)
    print("| way | wall s | speed-up of (iii) |")
    print("|---|---|---|")
    print(f"| (i) one at a time, {default_threads} threads | {t_default:.0f} | {t_default / t_parallel:.2f} |")
    print(f"| (ii) one at a time, 1 thread | {t_serial:.0f} | {t_serial / t_parallel:.2f} |")
    print(f"| (iii) --jobs {args.jobs}, 1 thread each | {t_parallel:.0f} | 1.00 |")
    print(f"(ii) and (iii) identical (weights, accuracy, AUC of every run): {same}")


if __name__ == "__main__":
    main()
