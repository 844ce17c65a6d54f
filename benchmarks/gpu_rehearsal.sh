#!/usr/bin/env bash
# `make gpu-rehearsal`: gpu_device.sh run here as a lent GPU machine would run it, on the CPU (`--device cpu --quick`),
# so that its minutes are not spent on a missing wheel or a typo. What the machine would get is imitated:
#   - a copy of the working tree as the device tool sends it (tracked files, and untracked ones git does not ignore),
#     with the wheels of gpu_wheels.py (for this Python) in .whl/;
#   - a virtual environment ($REHEARSAL_VENV, kept for the next rehearsal) holding only torch, torchvision, pytest, the
#     build tools and what the check takes from the machine (.whl/relied-on.txt): nothing the wheels must bring;
#   - no data, no HOME of ours, nothing on PATH but that environment and the system's; pip's install without an index.
# READ_ONLY=1 mounts that environment read-only (root, Linux), as on a machine whose Python cannot be written: then
# gpu_device.sh installs into /tmp/site. What gpu_device.sh sends back lands in $REHEARSAL/out.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
REHEARSAL_VENV=${REHEARSAL_VENV:-.venv/gpu-rehearsal}
REHEARSAL=$(mktemp -d /tmp/gpu-rehearsal.XXXX)
mkdir -p "$REHEARSAL/tree" "$REHEARSAL/home" "$REHEARSAL/out"

git ls-files -co --exclude-standard | tar cf - -T - | tar xf - -C "$REHEARSAL/tree"
version=$($PYTHON -c 'import sys; print("%d.%d" % sys.version_info[:2])')
$PYTHON benchmarks/gpu_wheels.py --python-version "$version" --dest "$REHEARSAL/tree/.whl"

if [ ! -x "$REHEARSAL_VENV/bin/python3" ]; then
  $PYTHON -m venv "$REHEARSAL_VENV"
  "$REHEARSAL_VENV/bin/pip" install -q torch torchvision pytest setuptools wheel -r "$REHEARSAL/tree/.whl/relied-on.txt"
fi
venv=$(cd "$REHEARSAL_VENV" && pwd)
# a second rehearsal starts from the machine's state: the check's own packages out again
"$venv/bin/python3" -m pip uninstall -q -y simsiam_collapse $(ls "$REHEARSAL/tree/.whl" | sed -n 's/-.*\.whl$//p') \
  2> /dev/null || true

run="cd $REHEARSAL/tree && bash benchmarks/gpu_device.sh --device cpu --quick"
[ "${READ_ONLY:-0}" = 1 ] && run="mount --bind $venv $venv && mount -o remount,bind,ro $venv && $run"
env -i PATH="$venv/bin:/usr/local/bin:/usr/bin:/bin" HOME="$REHEARSAL/home" OUT="$REHEARSAL/out" \
  $([ "${READ_ONLY:-0}" = 1 ] && echo unshare -m) bash -c "$run"
echo "the rehearsal passed; what the machine would send back: $(ls "$REHEARSAL/out" | tr '\n' ' ')(in $REHEARSAL/out)"
