#!/usr/bin/env bash
# Type-checks the `cuda` feature on a machine without a GPU or a CUDA toolkit, so the code
# behind `#[cfg(feature = "cuda")]` (ours and candle's) cannot rot unseen.
#
# It installs NVIDIA's compiler from PyPI (the wheels nvidia-cuda-nvcc, -runtime and -cccl:
# nvcc, its headers, no driver, no libraries) into target/cuda-toolkit, then runs
#   cargo clippy --release --features cuda --all-targets -- -D warnings
# in its own target folder (target/cuda-check). That compiles candle's CUDA kernels with nvcc
# for real (candle-kernels' build script) and type-checks every crate; it does not link: a
# binary needs libcuda, cuBLAS, cuRAND and NVRTC, which come with a CUDA installation (see
# docs/cuda.md). Nothing here runs on a GPU.
#
# Cold, it takes about 8 minutes on 2 cores (mostly nvcc on candle's kernels) and downloads
# about 350 MB. Exit status: that of clippy, or 2 when the toolkit cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# cudarc 0.19.10 knows CUDA up to 13.4; nvcc 13.5's kernels build, and the driver API used is
# the 13.4 one (CUDARC_CUDA_VERSION overrides cudarc's detection, which refuses 13.5).
NVCC_VERSION=13.5.37
TOOLKIT=target/cuda-toolkit
PY="${PYTHON:-python3}"

if [[ ! -x "$TOOLKIT/venv/bin/pip" ]]; then
    "$PY" -m venv "$TOOLKIT/venv" || { echo "cannot create a Python venv in $TOOLKIT" >&2; exit 2; }
fi
if ! "$TOOLKIT/venv/bin/pip" install --quiet --disable-pip-version-check \
        "nvidia-cuda-nvcc==$NVCC_VERSION" nvidia-cuda-runtime nvidia-cuda-cccl; then
    echo "pip could not install NVIDIA's compiler (nvidia-cuda-nvcc==$NVCC_VERSION)" >&2
    exit 2
fi
CUDA_HOME="$(cd "$TOOLKIT/venv" && "$PWD/bin/python" -c \
    'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
[[ -x "$CUDA_HOME/bin/nvcc" ]] || { echo "no nvcc under $CUDA_HOME" >&2; exit 2; }
"$CUDA_HOME/bin/nvcc" --version | tail -n 2

# sm_90 (H100); any architecture type-checks the same.
PATH="$CUDA_HOME/bin:$PATH" \
CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" \
CUDARC_CUDA_VERSION=13040 \
CARGO_TARGET_DIR=target/cuda-check \
    cargo clippy --release --features cuda --all-targets -- -D warnings
