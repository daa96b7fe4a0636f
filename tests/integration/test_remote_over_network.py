"""Remote programs run by a client in one network namespace against a bitshared in another, over
an emulated link (tests/support/netlab.py: 1 Gbit/s, 1 ms each way) with TLS on the veth
addresses: their results match NumPy / CPU PyTorch, and array bytes take the bulk port (or, with
only the gRPC port reachable, the stream, said once). Needs root; skips elsewhere."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ..support.netlab import Site, bitshared_site, emulated_link, skip_reason

CUPY_PROGRAM = r"""
import json
import cupy, numpy
from bitshare.remote import session
rng = numpy.random.default_rng(3)
a, b = rng.random((300, 200)), rng.random((200, 50))
x = cupy.asarray(a)  # 480 kB: above the size that goes inline
y = cupy.tanh(x @ cupy.asarray(b)) * 2 + cupy.sin(x[:, :50])
print(json.dumps({"y": cupy.asnumpy(y).tolist(), "sum": float(x.sum()), "bulk": session.current().bulk_path}))
"""

TORCH_PROGRAM = r"""
import json
import torch
from bitshare.remote import session
torch.manual_seed(5)
w, v = torch.randn(256, 128), torch.randn(64, 256)
out = torch.relu(v.cuda() @ w.cuda()).softmax(dim=1).cpu()
print(json.dumps({"out": out.tolist(), "bulk": session.current().bulk_path}))
"""


@pytest.fixture(scope="module", autouse=True)
def _needs_the_lab() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def site(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    relay_bulk = getattr(request, "param", True)
    with (
        emulated_link(rate="1gbit", delay_ms=1.0) as link,
        bitshared_site(tmp_path, link, ["--simulate", "1x16GiB"], relay_bulk=relay_bulk) as site,
    ):
        yield site


def run(site: Site, program: str) -> tuple[dict, str]:
    done = site.run_remote([sys.executable, "-c", program], timeout=90)
    assert done.returncode == 0, f"{done.stderr}\nthe daemon's log ends:\n{site.log()[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def cupy_expected() -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(3)
    a, b = rng.random((300, 200)), rng.random((200, 50))
    return np.tanh(a @ b) * 2 + np.sin(a[:, :50]), float(a.sum())


def test_a_cupy_program_over_the_link_moves_its_arrays_on_the_tls_bulk_port(site: Site) -> None:
    got, stderr = run(site, CUPY_PROGRAM)
    y, total = cupy_expected()
    np.testing.assert_allclose(np.array(got["y"]), y, rtol=1e-12)
    assert got["sum"] == pytest.approx(total, rel=1e-12)
    assert got["bulk"] == "tls"
    assert "bulk data port" not in stderr


def test_a_pytorch_program_over_the_link_matches_cpu(site: Site) -> None:
    torch = pytest.importorskip("torch")
    got, _ = run(site, TORCH_PROGRAM)
    torch.manual_seed(5)
    w, v = torch.randn(256, 128), torch.randn(64, 256)
    np.testing.assert_allclose(np.array(got["out"]), torch.relu(v @ w).softmax(dim=1).numpy(), rtol=1e-5, atol=1e-7)
    assert got["bulk"] == "tls"


@pytest.mark.parametrize("site", [False], indirect=True)
def test_with_the_bulk_port_unreachable_the_arrays_go_on_the_stream(site: Site) -> None:
    got, stderr = run(site, CUPY_PROGRAM)
    y, _ = cupy_expected()
    np.testing.assert_allclose(np.array(got["y"]), y, rtol=1e-12)
    assert got["bulk"] == "stream"
    said = [line for line in stderr.splitlines() if "bulk data port" in line]
    assert len(said) == 1, stderr
    assert said[0].startswith(f"bitshare: the bulk data port {site.server.rpartition(':')[0]}:"), said
    assert "array data goes on the session's stream" in said[0]
