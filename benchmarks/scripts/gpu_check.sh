#!/usr/bin/env bash
# The device check of the CuPy backend, prepared to run in one go (about 6 minutes on an H200):
# versions, the `gpu`-marked tests, then benchmarks/scripts/gpu_sweep.py. Every step has its own
# time limit and writes its log under OUTDIR, so a cut run still leaves what it measured.
#
#   bash benchmarks/scripts/gpu_check.sh [OUTDIR]      # from the repository root, on a GPU machine
#
# Needs NumPy, SciPy, Numba, CuPy, filelock and pytest importable (the package is used from the
# checkout through PYTHONPATH, so nothing is installed).
set -uo pipefail
out="${1:-gpu-check}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$(mktemp -d)}"
{ nvidia-smi -L; python3 -c "import numpy, numba, cupy, scipy; print('numpy', numpy.__version__, 'numba',
numba.__version__, 'cupy', cupy.__version__, 'scipy', scipy.__version__)"; } 2>&1 | tee "$out/versions.txt"
timeout 240 python3 -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider -rs --durations=0 \
    -W ignore::DeprecationWarning 2>&1 | tee "$out/tests.log"
timeout 240 python3 benchmarks/scripts/gpu_sweep.py --steps 200 --json "$out/gpu_sweep.json" 2>&1 \
    | tee "$out/bench.log"
