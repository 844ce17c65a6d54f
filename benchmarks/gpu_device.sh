#!/usr/bin/env bash
# `make gpu-check` on a lent GPU machine that starts bare and has no network (GUIDE.md), run from the root of the
# working tree that travelled there, with the wheels of `make gpu-wheels` carried in .whl/:
#
#   bash benchmarks/gpu_device.sh [gpu_check.py's options]        # OUT: the folder whose files come back
#
# It installs the carried wheels and the package, built from the tree, into the machine's Python (or, where that is
# read-only, into /tmp/site), runs the check into one folder and packs the folder into $OUT/gpu-check.tar.gz, beside
# the log: such a machine sends back a few files, not a tree. The archive is written whatever the check did.
set -uo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
BUDGET=${BUDGET:-480}   # seconds for the check's parts; the machine's limit for one command must leave room above it
work=/tmp/gpu-check
cd "$(dirname "$0")/.."
ls .whl/*.whl > /dev/null || { echo "no wheels in .whl/: run make gpu-wheels here and carry .whl"; exit 2; }

# One pip call for the wheels and the package: a second --target install would not add its command to /tmp/site/bin.
install() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --no-build-isolation "$@" .whl/*.whl .
}
if ! install; then
  echo "the machine's Python is not writable: installing into /tmp/site"
  rm -rf /tmp/site && install --target /tmp/site || exit 2
  export PYTHONPATH=/tmp/site PATH="/tmp/site/bin:$PATH"
fi
python3 -m ipykernel install --user --name simsiam-collapse --display-name "Python (simsiam_collapse)" || exit 2

rm -rf "$work" && mkdir -p "$work"   # a rerun on a warm machine starts clean
timeout $((BUDGET + 60)) python3 benchmarks/gpu_check.py --out "$work" --budget "$BUDGET" "$@" 2>&1 \
  | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
tar czf "$OUT/gpu-check.tar.gz" -C "$work" .
echo "gpu_check.py exited $rc; $(du -h "$OUT/gpu-check.tar.gz" | cut -f1) in gpu-check.tar.gz"
exit "$rc"
