"""Large transfers to and from a real GPU go in pieces through pinned buffers, overlapping the
data socket and the device copy: every byte lands in place, for CuPy arrays and torch tensors,
over the Unix data socket and the bulk TCP port."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from ..support.harness import Daemon, free_port, make_token, run_cli

pytestmark = pytest.mark.gpu

CUPY_PROGRAM = """
import numpy as np, cupy as cp
from bitshare.remote import session
host = np.random.default_rng(1).standard_normal((2049, 2561)).astype(np.float32)  # 20 MiB and a bit
x = cp.asarray(host)
back = cp.asnumpy(x)
doubled = cp.asnumpy(x * 2)
transposed = cp.asnumpy(x.T)  # not C-contiguous on the GPU: made so before it is sent
print(session.current().bulk_path, np.array_equal(back, host), np.array_equal(doubled, host * 2),
      np.array_equal(transposed, host.T))
"""

TORCH_PROGRAM = """
import torch
from bitshare.remote import session
host = torch.randn(6 * 1024 * 1024 + 3, generator=torch.Generator().manual_seed(2))  # 24 MiB + 12 B
x = host.to("cuda")
back = x.cpu()
half = (x * 3).half().cpu()
print(session.current().bulk_path, torch.equal(back, host), torch.equal(half, (host * 3).half()))
"""


@pytest.fixture
def nvml_daemon(make_daemon: Callable[..., Daemon], tmp_path) -> tuple[Daemon, str, str]:
    tokens = tmp_path / "tokens"
    tokens.touch()
    token = make_token(tokens, "gpu", "client")
    port = free_port()
    daemon = make_daemon(
        "--backend", "nvml", "--mps", "off", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(tokens)
    )  # fmt: skip
    return daemon, f"127.0.0.1:{port}", token


@pytest.mark.parametrize("program", [CUPY_PROGRAM, TORCH_PROGRAM], ids=["cupy", "torch"])
@pytest.mark.parametrize("over", ["unix", "tcp"])
def test_large_transfers_in_pieces_keep_every_byte(nvml_daemon, program: str, over: str) -> None:
    if program is TORCH_PROGRAM:
        pytest.importorskip("torch")
    daemon, tcp, token = nvml_daemon
    env = dict(daemon.env, BITSHARE_TOKEN=token) if over == "tcp" else daemon.env
    server = tcp if over == "tcp" else daemon.server
    done = run_cli(
        daemon, "run", "--remote", "-m", "2048", "--", sys.executable, "-c", program, server=server, env=env,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    words = done.stdout.split()
    assert words[0] == over and set(words[1:]) == {"True"}, done.stdout + done.stderr
