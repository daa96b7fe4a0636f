"""gRPC is first imported with its own log lines off (log.quiet_grpc) in every bitshare process,
whichever of bitshare's modules that process imports first."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

# Import one module in a fresh interpreter; say what GRPC_VERBOSITY was as gRPC's core (cygrpc,
# which reads it) was first imported, and whether it is still set afterwards (the commands bitshare
# runs get the user's environment).
FIRST_IMPORT_OF_GRPC = textwrap.dedent(
    """
    import importlib, os, sys

    class Watch:
        verbosity = "not-imported"

        def find_spec(self, name, path=None, target=None):
            if name == "grpc._cython.cygrpc" and Watch.verbosity == "not-imported":
                Watch.verbosity = os.environ.get("GRPC_VERBOSITY", "unset")
            return None

    sys.meta_path.insert(0, Watch())
    importlib.import_module(sys.argv[1])
    print(Watch.verbosity, "GRPC_VERBOSITY" in os.environ)
    """
)

# What each kind of bitshare process imports first: the CLI, the daemon, the console, remote CuPy
# in a user's program, a bench workload.
ENTRY_MODULES = ("bitshare.cli.app", "bitshare.daemon.main", "bitshare.tui.main", "bitshare.remote.cupy")


def modules_importing_grpc() -> set[str]:
    """Every bitshare module with an import of gRPC (or of a package built on it) of its own."""
    found = set()
    for path in (ROOT / "bitshare").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(name.split(".")[0] in ("grpc", "grpc_health", "grpc_reflection") for name in names):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found.add(module.removesuffix(".__init__"))
    return found - {"bitshare.log"}  # the one that quiets it


def test_the_scan_finds_the_modules_that_import_grpc() -> None:
    assert {"bitshare.client.connection", "bitshare.daemon.server"} <= modules_importing_grpc()


@pytest.mark.parametrize("module", sorted({*ENTRY_MODULES, *modules_importing_grpc()}))
def test_grpc_is_first_imported_with_its_log_lines_off(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GRPC_VERBOSITY", "GRPC_TRACE")}
    done = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT_OF_GRPC, module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    verbosity, still_set = done.stdout.split()[-2:]
    assert verbosity == "NONE", f"{module}: gRPC was first imported with GRPC_VERBOSITY {verbosity}"
    assert still_set == "False", f"{module} leaves GRPC_VERBOSITY set"


@pytest.mark.parametrize("module", ["bitshare.errors", "bitshare.daemon.ledger", "bitshare.daemon.workers.worker"])
def test_what_needs_no_grpc_does_not_load_it(module: str) -> None:
    # The error tree and the ledger are standard library only; a lease's GPU worker speaks no gRPC.
    done = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT_OF_GRPC, module], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2] == "not-imported", f"{module} loads gRPC"
