#!/usr/bin/env bash
# The GPU checks of bitshare, for a host with an NVIDIA GPU: the gpu-marked tests (NVML backend,
# MPS, the in-process agent with CuPy and PyTorch, the watchdog, live resize and revoke), then
# the seed experiment (`bitshare bench seed`, with its bare time-slicing and bare MPS baselines)
# and the remote benchmarks (CuPy, then PyTorch: resnet50 at batch 32 in fp16 through the remote
# over loopback against local CUDA), and remote CuPy over TLS on loopback (the bulk port, pieces
# overlapping the device copy). About 13 minutes; a short table comes last.
# Usage (from the repository root): bash tests/gpu/run.sh [tests|bench]   [results go to $OUT, default
# ./gpu-results]. With a part named, only that part runs (each fits in under 10 minutes); the table
# at the end reads whatever results $OUT holds, so run both parts into one $OUT.
set -uo pipefail
PART="${1:-all}"
tests_rc=0
seed_rc=0
OUT="${OUT:-$PWD/gpu-results}"
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version,compute_mode --format=csv | tee "$OUT/nvidia-smi.csv"
python3 - <<'PY' | tee "$OUT/versions.txt"
import sys
import google.protobuf, grpc
print("python", sys.version.split()[0], "grpcio", grpc.__version__, "protobuf", google.protobuf.__version__)
for name in ("cupy", "torch", "torchvision"):
    try:
        print(name, __import__(name).__version__)
    except ImportError as exc:
        print(name, "missing:", exc)
PY
if [ "$PART" != bench ]; then
timeout 300 python3 -m pytest -m gpu tests/gpu -v -p no:cacheprovider --junitxml="$OUT/gpu-junit.xml" 2>&1 \
    | tee "$OUT/gpu-pytest.txt"
tests_rc=${PIPESTATUS[0]}
fi
if [ "$PART" != tests ]; then
# `bitshare bench seed` through a real bitshared (NVML, MPS on): four torchvision workloads under
# 25% leases, heavy and light load (the paper's experiment), then the same at once without
# bitshare: bare time-slicing (no MPS) and bare MPS (an MPS control daemon of its own).
SEED_DIR=$(mktemp -d)
python3 -m bitshare.daemon --listen "unix:$SEED_DIR/bitshared.sock" --state-dir "$SEED_DIR/state" \
    --backend nvml --mps on --log-level warning > "$OUT/bench-seed-daemon.log" 2>&1 &
seed_daemon=$!
for _ in $(seq 100); do [ -S "$SEED_DIR/bitshared.sock" ] && break; sleep 0.1; done
timeout 300 python3 -m bitshare --server "unix:$SEED_DIR/bitshared.sock" bench seed --duration 5 \
    --baseline time-slicing --baseline mps --out "$OUT/bench-seed" 2>&1 | tee "$OUT/bench-seed.txt"
seed_rc=${PIPESTATUS[0]}
kill "$seed_daemon"; wait "$seed_daemon" 2>/dev/null
timeout 60 python3 benchmarks/remote_bench.py --backend nvml --repeats 3 --out "$OUT/remote_bench.json" 2>&1 \
    | tee "$OUT/remote_bench.txt"
timeout 90 python3 benchmarks/remote_bench.py --tcp --backend nvml --repeats 3 --delay-ms 0 \
    --out "$OUT/remote_bench_tcp.json" 2>&1 | tee "$OUT/remote_bench_tcp.txt"
timeout 120 python3 benchmarks/remote_bench.py --torch --backend nvml --rounds 5 --out "$OUT/remote_bench_torch.json" \
    2>&1 | tee "$OUT/remote_bench_torch.txt"
fi
python3 - "$OUT" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
rows = []
try:
    suite = ET.parse(out / "gpu-junit.xml").getroot().find("testsuite")
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    passed = int(suite.get("tests", 0)) - failed - skipped
    rows.append(("gpu tests", f"{passed} passed, {failed} failed, {skipped} skipped"))
except (OSError, ET.ParseError, AttributeError) as exc:
    rows.append(("gpu tests", f"no result ({exc})"))
def ratio_sum(comparison):
    value = comparison["throughput_ratio_sum"]
    return f"{value:.2f}" if isinstance(value, (int, float)) else str(value)
try:
    seed = json.loads((out / "bench-seed" / "seed.json").read_text())
    rows.append(("card", f"{seed['device']}, {seed['memory_mib']} MiB"))
    for load, result in seed["loads"].items():
        bitshare = result["comparison"]["throughput_ratio_sum"]
        rows.append((f"bench seed {load}: ratio sum, bitshare", ratio_sum(result["comparison"])))
        for name, baseline in result.get("baselines", {}).items():
            if "error" in baseline:
                why = " ".join(baseline["error"].split())[:80]
                rows.append((f"bench seed {load}: ratio sum, bare {name}", f"failed: {why}"))
                continue
            bare = baseline["comparison"]["throughput_ratio_sum"]
            rows.append((f"bench seed {load}: ratio sum, bare {name}", ratio_sum(baseline["comparison"])))
            if isinstance(bitshare, (int, float)) and isinstance(bare, (int, float)) and bare:
                rows.append((f"bench seed {load}: bitshare / bare {name}", f"{bitshare / bare:.3f}"))
except (OSError, ValueError, KeyError, TypeError) as exc:
    rows.append(("bench seed", f"no result ({exc})"))
try:
    remote = json.loads((out / "remote_bench.json").read_text())["figures"]
    rows.append(("remote upload / download", f"{remote['upload_gib_s']:.2f} / {remote['download_gib_s']:.2f} GiB/s"))
    rows.append(("remote compute vs local CuPy", f"{remote['compute_vs_local']:.3f}x"))
except (OSError, ValueError, KeyError, TypeError) as exc:
    rows.append(("remote benchmark", f"no result ({exc})"))
try:
    tcp = json.loads((out / "remote_bench_tcp.json").read_text())["figures"]
    rows.append(("remote over TLS: upload / download vs TLS socket",
                 f"{tcp['upload_vs_tls_socket']:.2f} / {tcp['download_vs_tls_socket']:.2f} (>= 0.8)"))
except (OSError, ValueError, KeyError, TypeError) as exc:
    rows.append(("remote over TLS", f"no result ({exc})"))
try:
    torch_remote = json.loads((out / "remote_bench_torch.json").read_text())["figures"]
    rows.append(("remote torch resnet50 bs32 fp16 vs local", f"{torch_remote['inference_vs_local']:.3f} (>= 0.9)"))
    rows.append(("remote torch forward, client time", f"{torch_remote['forward_client_ms']:.1f} ms"))
except (OSError, ValueError, KeyError, TypeError) as exc:
    rows.append(("remote torch benchmark", f"no result ({exc})"))
width = max(len(k) for k, _ in rows)
print()
for key, value in rows:
    print(f"{key:<{width}}  {value}")
PY
[ "$tests_rc" -eq 0 ] && [ "$seed_rc" -eq 0 ]
