"""Do bf16 autocast and fp32 train the same model? Three seeds of a `mini` run in each precision, side by side:
the loss after every epoch, and the final AUC and linear-probe accuracy, mean ± std over seeds, with the
difference of the means against the sum of the two seed stds (the project's "beyond noise" rule).

On a CPU without native bf16 (AVX2 only) bf16 autocast is emulated and several times slower than fp32, which is
why `precision='auto'` picks fp32 there; the comparison of results still holds, it only takes longer.

    .venv/bin/python benchmarks/bf16_equivalence.py                  # ResNet-18, mini, 4 epochs, seeds 0-2
    .venv/bin/python benchmarks/bf16_equivalence.py --epochs 16      # a whole mini run
"""
import argparse
import dataclasses
import os
import tempfile

import numpy as np
import torch

from simsiam_collapse.claims import Estimate
from simsiam_collapse.config import resolve_precision
from simsiam_collapse.experiments import Experiment
from simsiam_collapse.runner import RunStore, evaluate_run, run_all
from simsiam_collapse.runs import cpu_line, read_metrics


def compare(args, out):
    "Train the seeds in both precisions under `out` and print the tables."
    exp = Experiment("bf16", "mini", data_root=args.data_root, out_dir=out, progress=False)
    base = dataclasses.replace(exp.config(backbone="resnet18"), epochs=args.epochs, eval_every=1)
    cfgs = {
        (prec, s): dataclasses.replace(base, precision=prec, seed=s)
        for prec in ("fp32", "bf16")
        for s in range(args.seeds)
    }
    store = RunStore(f"{out}/runs")
    print(f"machine: {cpu_line()}, torch {torch.__version__}; "
          f"auto precision here: {resolve_precision('auto', 'cpu')[1]}")
    print(
        f"ResNet-18, mini settings ({exp.dataset}), {args.epochs} epochs, seeds 0-{args.seeds - 1}, one thread per "
        f"run, {args.jobs} at a time"
    )
    run_all(store, list(cfgs.values()), exp.scale, "cpu", args.data_root, args.jobs, progress=True)
    res = {k: evaluate_run(store.path(c), exp.scale, "cpu", args.data_root) for k, c in cfgs.items()}
    loss = {k: [m["loss"] for m in read_metrics(store.path(c)) if "loss" in m] for k, c in cfgs.items()}
    minutes = {k: sum(m.get("seconds", 0) for m in read_metrics(store.path(c))) / 60 for k, c in cfgs.items()}
    print("\n| epoch | fp32 loss | bf16 loss |\n|---|---|---|")
    for e in range(args.epochs):
        f, b = (Estimate.of([loss[(prec, s)][e] for s in range(args.seeds)]) for prec in ("fp32", "bf16"))
        print(f"| {e + 1} | {f.mean:.4f} ± {f.std:.4f} | {b.mean:.4f} ± {b.std:.4f} |")
    print(
        "\n| measure | fp32 | bf16 | bf16 - fp32 | seed noise (sum of stds) | beyond noise |\n|---|---|---|---|---|---|"
    )
    for key, unit in (("accuracy", " %"), ("auc", ""), ("knn", " %")):
        f, b = (Estimate.of([res[(prec, s)][key] for s in range(args.seeds)]) for prec in ("fp32", "bf16"))
        print(
            f"| {key} | {f.mean:.3f} ± {f.std:.3f} | {b.mean:.3f} ± {b.std:.3f} | {b.mean - f.mean:+.3f} | "
            f"{f.std + b.std:.3f} | "
            f"{'yes' if abs(b.mean - f.mean) > f.std + b.std else 'no'} |"
        )
    t32, t16 = (np.mean([minutes[(prec, s)] for s in range(args.seeds)]) for prec in ("fp32", "bf16"))
    print(f"\ntraining minutes per run: fp32 {t32:.2f}, bf16 {t16:.2f} (bf16 / fp32 time {t16 / t32:.2f})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", type=int, default=3, help="seeds a precision (at least 2: the noise is their std)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--data-root", default=None, help="folder holding CIFAR-10 (default: $SIMSIAM_COLLAPSE_DATA)")
    args = p.parse_args()
    # checked before any training: the verdict compares the precisions' difference with the seeds' spread
    if args.seeds < 2: p.error(f"--seeds must be at least 2 (the seed noise is a standard deviation), got {args.seeds}")
    if args.epochs < 1: p.error(f"--epochs must be at least 1, got {args.epochs}")
    with tempfile.TemporaryDirectory() as out: compare(args, out)  # the runs' checkpoints are not kept


if __name__ == "__main__":
    main()
