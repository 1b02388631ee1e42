#!/usr/bin/env bash
# bench/gpu_wheels.sh: download here, into .whl/ (git-ignored), the wheels that the
# GPU machine of the device tool lacks, for its Python (CPython 3.12, manylinux
# x86_64). bench/gpu_check.sh installs them there without a registry; the call
# names the folder in carry: run(..., carry=[".whl"]).
#
# What the GPU machine already has (the device tool's KINDS.md package list):
# pytest, pytest-xdist, pytest-timeout, hypothesis, scipy, matplotlib, mpmath,
# numpy, numba, numba-cuda, cupy-cuda13x, torch, triton, cloudpickle, fsspec,
# toolz, pyyaml, click, packaging. Missing:
#   .whl/           dask, partd, locket: tests/core/test_dask.py (one gpu-marked
#                   test) skips without dask.array
#   .whl/fallback/  numba-cuda: installed there only when gpu_act's CUDA backend
#                   does not load with the numba-cuda it has (version unknown;
#                   gpu_act needs >= 0.30.4, numba-cuda < 0.30.4 does not import
#                   with numba >= 0.66)
# About 3.5 MB in all. Versions: the ones this project's test environment uses;
# override with GPU_WHEELS / GPU_WHEELS_FALLBACK (space-separated NAME==VERSION).
#
# usage: bash bench/gpu_wheels.sh        (re-run after a version change: it starts afresh)

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WHEELS=${GPU_WHEELS:-dask==2026.8.0 partd==1.4.2 locket==1.0.0}
FALLBACK=${GPU_WHEELS_FALLBACK:-numba-cuda==0.30.4}
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=python3
fi

download() { # download DEST NAME==VERSION...
    local dest=$1
    shift
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d "$dest" "$@"
}

rm -rf .whl
mkdir -p .whl/fallback
# shellcheck disable=SC2086 # the lists are space-separated requirement specifiers
download .whl $WHEELS
# shellcheck disable=SC2086
download .whl/fallback $FALLBACK

for f in .whl/*.whl .whl/fallback/*.whl; do
    printf '%8d KiB  %s\n' $(($(wc -c <"$f") / 1024)) "$f"
done
echo "total: $(du -sh .whl | cut -f1) in .whl/ (it travels with carry=[\".whl\"]; the working tree limit is 64 MiB)"
