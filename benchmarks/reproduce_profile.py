"""Where a reproduction's time went, read from what it wrote (no rerun): per notebook, its wall time; per training
run, the optimiser steps (the log's `seconds`), the monitoring between epochs, and the final evaluation (probe,
spectrum, kNN), from the run's own files and their times.

    .venv/bin/python benchmarks/reproduce_profile.py reproduction        # the output folder of `reproduce`

Run times are wall times of processes that ran side by side (`--jobs`), so their sum exceeds the wall time of the
notebook: the table gives both, and the share of each part in the runs' total.
"""
import argparse
import json
from pathlib import Path


def run_times(run: Path) -> dict | None:
    "Seconds of one run's steps, monitoring and final evaluation, from its log and the times its files were written."
    status, config, evaluation = run/"status.json", run/"config.json", run/"eval.json"
    if not (status.exists() and config.exists()) or json.loads(status.read_text()).get("state") != "done": return None
    log = [json.loads(line) for line in (run/"metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = sum(m.get("seconds", 0) for m in log)
    training = status.stat().st_mtime - config.stat().st_mtime  # from the run's first file to its last epoch
    if training < steps: return None  # a resumed run: its files do not span its training
    return dict(steps=steps, monitoring=training - steps,
                evaluation=evaluation.stat().st_mtime - status.stat().st_mtime if evaluation.exists() else 0.0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="the folder `reproduce --out` wrote")
    out = p.parse_args().out
    state = json.loads((out/"reproduce.json").read_text()) if (out/"reproduce.json").exists() else {"notebooks": {}}
    print("| notebook | status | wall minutes |\n|---|---|---|")
    for name, r in state["notebooks"].items(): print(f"| {name} | {r['status']} | {r['seconds'] / 60:.1f} |")
    total_wall = sum(r["seconds"] for r in state["notebooks"].values())
    print(f"| all | | {total_wall / 60:.1f} |")
    runs = {r.name: t for r in sorted((out/"runs").iterdir()) if r.is_dir() and (t := run_times(r))}
    parts = {k: sum(t[k] for t in runs.values()) for k in ("steps", "monitoring", "evaluation")}
    total = sum(parts.values())
    print(
        f"\n{len(runs)} finished runs with intact timing (resumed runs left out); their summed run time: "
        f"{total / 3600:.2f} h"
    )
    print("| part | hours | share |\n|---|---|---|")
    for k, v in parts.items(): print(f"| {k} | {v / 3600:.2f} | {v / total:.0%} |")
    if total_wall:
        print(
            f"\nrun time / notebook wall time: {total / total_wall:.2f} (runs side by side; the rest is notebook "
            "start-up, "
            "figures and tables)"
        )


if __name__ == "__main__":
    main()
