"""The streaming spectrum (SpectrumAccumulator) against the full-matrix SVD, as the paper's code computes it.

The paper's code (test_collapse.py) holds all N x d features and calls torch.svd on the centred matrix in
float32. Ours streams batches into a d x d float64 scatter matrix. For each (N, d) both run in a fresh
process on the same seeded features (ReLU of Gaussian features with a decaying spectrum, generated batch by
batch), and the table gives time, peak memory (the process's maximum resident size, less what the process
held before the features were made) and the largest relative difference of the singular values, against
float64 full SVD where that fits in memory (else against the paper's float32 SVD, whose own rounding is
about 1e-5).

    .venv/bin/python benchmarks/spectrum.py                       # N = 100k, 500k; d = 512, 2048
    .venv/bin/python benchmarks/spectrum.py --sizes 20000 --dims 512
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

BATCH = 10_000


def features(n, d, start, stop):
    "Rows [start, stop) of the seeded benchmark features (the same rows whatever the batching)."
    import torch
    out = []
    mix = (
        torch.randn(d, d, generator=torch.Generator().manual_seed(d), dtype=torch.float32)
        * torch.logspace(0, -2, d)[:, None]
    )
    for b in range(start // BATCH, -(-stop // BATCH)):
        g = torch.Generator().manual_seed(b)
        x = torch.relu(torch.randn(BATCH, d, generator=g) @ mix)
        out.append(x[max(0, start - b * BATCH):stop - b * BATCH])
    return torch.cat(out)


def worker(kind, n, d, out):
    import torch

    from simsiam_collapse.collapse import SpectrumAccumulator
    features(BATCH, d, 0, 1)  # the mixing matrix and allocator warm-up, before the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if kind == "stream":
        acc = SpectrumAccumulator()
        for s in range(0, n, BATCH): acc.update(features(n, d, s, min(n, s + BATCH)))
        values = acc.singular_values().numpy()
    else:
        dtype = torch.float64 if kind == "full64" else torch.float32
        x = features(n, d, 0, n).to(dtype)
        x -= x.mean(0, keepdim=True)
        # the paper: torch.svd(...).S
        values = (torch.linalg.svdvals(x) if kind == "full64" else torch.svd(x).S).numpy()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    np.save(out, values.astype(np.float64))
    print(json.dumps(dict(seconds=seconds, peak_mib=peak / 1024)))


def run(kind, n, d, folder):
    out = os.path.join(folder, f"{kind}-{n}-{d}.npy")
    res = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(n), str(d), out], capture_output=True, text=True
    )
    if res.returncode != 0: return dict(error=(res.stderr.strip().splitlines() or ["killed"])[-1])
    return dict(json.loads(res.stdout.strip().splitlines()[-1]), values=np.load(out))


def main():
    if sys.argv[1:2] == ["--worker"]:
        return worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000])
    p.add_argument("--dims", type=int, nargs="+", default=[512, 2048])
    p.add_argument(
        "--max-float64-gib", type=float, default=4.0, help="skip the float64 reference above this matrix size"
    )
    args = p.parse_args()
    import torch

    from simsiam_collapse.runs import cpu_line
    print(f"machine: {cpu_line()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(
        "| N | d | paper SVD (float32) s | ours streaming s | paper peak MiB | ours peak MiB | memory ratio | max rel. "
        "diff vs float64 SVD | max rel. diff vs paper |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            for d in args.dims:
                ours, paper = run("stream", n, d, folder), run("full32", n, d, folder)
                ref = (
                    run("full64", n, d, folder)
                    if n * d * 8 / 2**30 <= args.max_float64_gib
                    else dict(error="skipped (memory)")
                )
                def rel(a, b):
                    if "values" not in a or "values" not in b: return "n/a"
                    top = b["values"] > 1e-3 * b["values"][0]  # relative error of the informative values
                    return f"{np.max(np.abs(a['values'][top] - b['values'][top]) / b['values'][top]):.1e}"
                fmt = lambda r, k, f: format(r[k], f) if k in r else r.get("error", "n/a")
                ratio = (
                    f"{paper['peak_mib'] / ours['peak_mib']:.1f}x"
                    if "peak_mib" in paper and "peak_mib" in ours
                    else "n/a"
                )
                print(
                    f"| {n} | {d} | {fmt(paper, 'seconds', '.1f')} | {fmt(ours, 'seconds', '.1f')} | "
                    f"{fmt(paper, 'peak_mib', '.0f')} | "
                    f"{fmt(ours, 'peak_mib', '.0f')} | {ratio} | {rel(ours, ref)} | {rel(ours, paper)} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
