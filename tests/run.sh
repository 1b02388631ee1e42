#!/usr/bin/env bash
# The test command: set up a virtual environment from the project's own files
# and run the whole suite (the README's second command; .ci/run calls it).
# The cu12 extra brings NVVM, so every CUDA kernel is compiled to PTX even
# without a GPU; gpu-marked tests skip when no device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# numba-cuda-mlir beside numba-cuda (they coexist; numba-cuda stays the default):
# tests/toolchain/test_mlir_ptx.py compiles every kernel to PTX under it, without a GPU,
# in processes of its own, and fails under CI if it is missing (Python >= 3.11).
# One pip run resolves everything.
extras="test,cu12"
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    extras="$extras,mlir-cu12"
fi
.venv/bin/python -m pip install -q -e ".[$extras]"
# The CUDA simulator replaces numba.cuda for a whole process: its own run, in
# one process beside the main run's two workers, filling the cores while the
# main run waits (on the package index, on subprocesses, on its slowest
# tests); its report follows the main run's.
sim_log=$(mktemp)
trap 'rm -f "$sim_log"' EXIT
NUMBA_ENABLE_CUDASIM=1 .venv/bin/python -m pytest -p no:cacheprovider tests/simulator > "$sim_log" 2>&1 &
sim=$!
main_rc=0
.venv/bin/python -m pytest -n 2 -p no:cacheprovider --ignore=tests/simulator "$@" || main_rc=$?
sim_rc=0
wait "$sim" || sim_rc=$?
echo "---- the CUDA simulator run (tests/simulator) ----"
cat "$sim_log"
exit $(( main_rc != 0 ? main_rc : sim_rc ))
