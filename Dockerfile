# syntax=docker/dockerfile:1
# The provided CUDA container: gpu_act with its CPU, CUDA (Numba) and CuPy
# paths, the test suite and the benchmark, run as a non-root user.
#
#   docker build -t gpu-act:cu12 .                             # CUDA 12
#   docker build --build-arg CUDA_MAJOR=13 -t gpu-act:cu13 .   # CUDA 13
#   docker run --rm --gpus all gpu-act:cu12                    # gpu-act bench
#   docker run --rm --gpus all gpu-act:cu12 pytest -n auto     # the test suite
#
# CUDA_MAJOR (12, the default, or 13) picks the base image and the matching
# extra, gpu_act[cu12] or gpu_act[cu13]; CUDA_12 / CUDA_13 pick the base image's
# release, e.g. --build-arg CUDA_12=12.6.3 for a driver older than 12.9. The
# install steps live in install-venv.sh, which CI runs too.
ARG CUDA_MAJOR=12
ARG CUDA_12=12.9.1
ARG CUDA_13=13.0.2

FROM nvidia/cuda:${CUDA_12}-runtime-ubuntu24.04 AS cuda-12
FROM nvidia/cuda:${CUDA_13}-runtime-ubuntu24.04 AS cuda-13

# a stage above, not an image: hadolint's "tag the image" rule does not apply
# hadolint ignore=DL3006
FROM cuda-${CUDA_MAJOR}
ARG CUDA_MAJOR

# Ubuntu's Python (3.12) with venv; no compiler: Numba and NVRTC compile at run
# time. Unpinned: Ubuntu's archive keeps only the current version of each package.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# the user (gpuact, uid 10001) owns the environment and the checkout
RUN useradd --uid 10001 --user-group --create-home --shell /bin/bash gpuact \
    && install -d -o gpuact -g gpuact /opt/venv /src
USER 10001:10001
WORKDIR /src
# Numba's compiled-kernel cache goes where any user may write (docker run --user)
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache

COPY --chown=10001:10001 . .
RUN sh install-venv.sh /opt/venv "$CUDA_MAJOR"
ENV PATH=/opt/venv/bin:$PATH

CMD ["gpu-act", "bench"]
