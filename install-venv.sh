#!/bin/sh
# The install steps of the provided CUDA container, kept in this one place so
# that the Dockerfile and CI (tests/packaging/test_dockerfile.py) run the same commands:
#
#   sh install-venv.sh VENV CUDA_MAJOR [PIP_OPTION...]
#
# creates the virtual environment VENV and installs into it gpu_act from the
# checkout holding this script, with the extras the container carries: the
# CUDA extra for CUDA_MAJOR (12 or 13; "none" leaves the CUDA wheels out) and
# test, bench and dask. PIP_OPTIONs go to that pip install (CI resolves the
# CUDA extras with --dry-run instead of downloading them).
set -eu

if [ $# -lt 2 ]; then
    echo "usage: sh install-venv.sh VENV CUDA_MAJOR [PIP_OPTION...]   (CUDA_MAJOR: 12, 13 or none)" >&2
    exit 2
fi
venv=$1
case $2 in
    12 | 13) extras="cu$2,test,bench,dask" ;;
    none) extras="test,bench,dask" ;;
    *)
        echo "install-venv.sh: CUDA_MAJOR must be 12, 13 or none, got '$2'" >&2
        exit 2
        ;;
esac

shift 2

python3 -m venv "$venv"
"$venv/bin/python" -m pip install "$@" "$(dirname "$0")[$extras]"
