"""Would compressing remote array bytes pay? Ratio and speed of the codecs Python has here, on typical arrays.

For each array (random float32 normal; resnet18 float32 weights from torchvision's state dict,
if torch is installed; int64 labels and indices; a mostly-zero float32 array; float16) and each
codec (``zlib`` level 1; ``lz4.frame`` if importable, also after a byte shuffle, which groups each
element's bytes as blosc does), it measures the compressed size and the compress and decompress
time (best of ``--repeats``, one thread, in CHUNK pieces as a bulk transfer would send them),
then the time to move the array at 100 Mbit/s, 1 Gbit/s and 10 Gbit/s compressed against
uncompressed, in two models:

- **sum**: compress, then send, then decompress, one after the other (time = c + wire + d): what
  a transfer gets when one thread does each end's work in turn;
- **max**: the three overlap chunk by chunk (time = max(c, wire, d)): the best a pipelined
  sender and receiver could get, each end's codec on a core of its own.

A case *pays* at a line rate when compressing makes the transfer at least 1.25x faster in the
sum model (so it still pays on a busy machine); *pipelined only* when only the max model gets
there. Results go to ``benchmarks/results/compression_bench.json``.

    .venv/bin/python benchmarks/compression_bench.py
    .venv/bin/python benchmarks/compression_bench.py --mib 8 --repeats 2     # quicker
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tables import finished_at, machine, print_table, write_results

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "compression_bench.json"
MIB = 1024 * 1024
CHUNK = 4 * MIB  # as bitshare's bulk transfers cut arrays on the stream
LINES_BIT_S = {"100 Mbit/s": 100e6, "1 Gbit/s": 1e9, "10 Gbit/s": 10e9}
PAYS = 1.25  # speed-up a case needs, in the sum model, to count as paying

Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


def shuffle(data: np.ndarray) -> np.ndarray:
    """Each element's bytes grouped by position (all first bytes, then all second bytes...)."""
    return np.ascontiguousarray(data.view(np.uint8).reshape(-1, data.dtype.itemsize).T)


def codecs() -> dict[str, Codec]:
    found: dict[str, Codec] = {"zlib-1": (lambda b: zlib.compress(b, 1), zlib.decompress)}
    try:
        import lz4.frame
    except ImportError:
        return found
    found["lz4"] = (lz4.frame.compress, lz4.frame.decompress)
    return found


def arrays(mib: int) -> dict[str, np.ndarray]:
    """The typical arrays, about ``mib`` MiB each (resnet18's weights are what they are)."""
    rng = np.random.default_rng(0)
    count = mib * MIB // 4
    sparse = np.zeros(count, np.float32)
    hits = rng.choice(count, count // 20, replace=False)  # 5% non-zero
    sparse[hits] = rng.standard_normal(hits.size, dtype=np.float32)
    cases = {
        "float32 normal": rng.standard_normal(count, dtype=np.float32),
        "float16 normal": rng.standard_normal(2 * count, dtype=np.float32).astype(np.float16),
        "int64 labels (0..999)": rng.integers(0, 1000, count // 2, dtype=np.int64),
        "int64 indices (sorted)": np.sort(rng.choice(8 * count, count // 2, replace=False)).astype(np.int64),
        "float32 95% zeros": sparse,
    }
    weights = resnet18_weights()
    if weights is not None:
        cases["float32 resnet18 weights"] = weights
    return cases


def resnet18_weights() -> np.ndarray | None:
    """resnet18's float32 state dict (torchvision's initialisation: no download) in one array."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    tensors = [t.reshape(-1).numpy() for t in state.values() if t.dtype == torch.float32]
    return np.concatenate(tensors)


def measure(data: np.ndarray, codec: Codec, shuffled: bool, repeats: int) -> dict[str, float]:
    """Compressed bytes and best compress/decompress seconds of ``data``, CHUNK at a time."""
    compress, decompress = codec
    raw = memoryview(data.reshape(-1).view(np.uint8))
    best_c = best_d = float("inf")
    size = 0
    for _ in range(repeats):
        started = time.perf_counter()
        source = memoryview(shuffle(data.reshape(-1)).reshape(-1)) if shuffled else raw
        packed = [compress(source[at : at + CHUNK]) for at in range(0, len(source), CHUNK)]
        best_c = min(best_c, time.perf_counter() - started)
        started = time.perf_counter()
        out = b"".join(decompress(piece) for piece in packed)
        if shuffled:  # back to element order
            out = np.frombuffer(out, np.uint8).reshape(data.dtype.itemsize, -1).T.copy()
        best_d = min(best_d, time.perf_counter() - started)
        size = sum(len(piece) for piece in packed)
    assert bytes(memoryview(out).cast("B")) == bytes(raw), "the codec did not give the bytes back"
    return {"compressed_bytes": size, "compress_s": best_c, "decompress_s": best_d}


def rates(nbytes: int, figures: dict[str, float]) -> dict[str, dict[str, float]]:
    """Speed-up of the compressed transfer over the uncompressed one, per line rate and model."""
    out = {}
    for line, bits in LINES_BIT_S.items():
        plain = nbytes * 8 / bits
        wire = figures["compressed_bytes"] * 8 / bits
        c, d = figures["compress_s"], figures["decompress_s"]
        out[line] = {"sum": plain / (c + wire + d), "max": plain / max(c, wire, d)}
    return out


def verdict(speedups: dict[str, dict[str, float]]) -> str:
    paying = [line for line, s in speedups.items() if s["sum"] >= PAYS]
    if paying:
        return "pays at " + ", ".join(paying)
    piped = [line for line, s in speedups.items() if s["max"] >= PAYS]
    return "pipelined only: " + ", ".join(piped) if piped else "never"


def summary(results: list[dict[str, Any]], line: str) -> str:
    """The arrays that compressing pays for at ``line``, each with its best codec."""
    best: dict[str, dict[str, Any]] = {}
    for result in results:
        kept = best.get(result["array"])
        if kept is None or result["speedup"][line]["sum"] > kept["speedup"][line]["sum"]:
            best[result["array"]] = result
    paying = [r for r in best.values() if r["speedup"][line]["sum"] >= PAYS]
    return ", ".join(f"{r['array']} ({r['codec']}, {r['speedup'][line]['sum']:.2f}x)" for r in paying) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=32, help="size of each generated array [default 32]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.mib < 1 or args.repeats < 1:
        parser.error("--mib and --repeats must be at least 1")
    found = codecs()
    variants = [(name, codec, False) for name, codec in found.items()]
    if "lz4" in found:
        variants.append(("lz4+shuffle", found["lz4"], True))
    rows, results = [], []
    for case, data in arrays(args.mib).items():
        for name, codec, shuffled in variants:
            figures = measure(data, codec, shuffled, args.repeats)
            speedups = rates(data.nbytes, figures)
            mb = data.nbytes / 1e6
            result = {
                "array": case,
                "dtype": str(data.dtype),
                "bytes": data.nbytes,
                "codec": name,
                **figures,
                "ratio": data.nbytes / figures["compressed_bytes"],
                "compress_mb_s": mb / figures["compress_s"],
                "decompress_mb_s": mb / figures["decompress_s"],
                "speedup": speedups,
                "verdict": verdict(speedups),
            }
            results.append(result)
            rows.append(
                [
                    case,
                    f"{mb:.1f}",
                    name,
                    f"{result['ratio']:.2f}",
                    f"{result['compress_mb_s']:,.0f}",
                    f"{result['decompress_mb_s']:,.0f}",
                    *(f"{s['sum']:.2f} / {s['max']:.2f}" for s in speedups.values()),
                    result["verdict"],
                ]
            )
    print(f"compression of array bytes, one thread, {CHUNK // MIB} MiB pieces; speed-up over uncompressed: sum / max")
    lines = list(LINES_BIT_S)
    print_table(["array", "MB", "codec", "ratio", "comp MB/s", "decomp MB/s", *lines, "verdict"], rows)
    for line in LINES_BIT_S:
        print(f"pays at {line} (sum model, best codec): {summary(results, line)}")
    if "lz4" not in found:
        print("(lz4 is not installed: only zlib measured)")
    write_results(
        args.out,
        {
            "benchmark": "compression_bench",
            "machine": machine(),
            "codecs": {name: codec_version(name) for name, _, _ in variants},
            "chunk_bytes": CHUNK,
            "array_mib": args.mib,
            "repeats": args.repeats,
            "models": {"sum": "compress + wire + decompress", "max": "max(compress, wire, decompress)"},
            "pays_at_speedup": PAYS,
            "results": results,
            "finished_at": finished_at(),
        },
    )
    return 0


def codec_version(name: str) -> str:
    if name.startswith("lz4"):
        import lz4

        return f"lz4 {lz4.__version__} (lz4.frame, level 0)"
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION}, level 1"


if __name__ == "__main__":
    raise SystemExit(main())
