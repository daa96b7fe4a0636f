#!/usr/bin/env bash
# GPU checks for a host with an NVIDIA GPU: the NVML backend and CuPy under real leases.
# Usage (from the repository root): bash tests/gpu/run.sh   [results go to $OUT, default ./gpu-results]
set -uo pipefail
OUT="${OUT:-$PWD/gpu-results}"
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
python3 - <<'PY' | tee "$OUT/versions.txt"
import grpc, google.protobuf, sys
print("python", sys.version.split()[0], "grpcio", grpc.__version__, "protobuf", google.protobuf.__version__)
try:
    import cupy; print("cupy", cupy.__version__)
except ImportError as exc:
    print("cupy missing:", exc)
PY
python3 -m pytest -m gpu tests/gpu -v -p no:cacheprovider --junitxml="$OUT/gpu-junit.xml" 2>&1 | tee "$OUT/gpu-pytest.txt"
exit "${PIPESTATUS[0]}"
