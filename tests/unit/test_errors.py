"""One error tree: every bitshare error class derives from BitshareError, with its exit code and
gRPC status (by name: the tree imports only the standard library) declared once, the ledger's
refusals among them, and the daemon's statuses come back to the client as the same errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import grpc
import pytest

import bitshare
from bitshare import errors
from bitshare.protocol.status import error_for_status, status_of
from bitshare.remote.cupy import errors as remote_errors

# Classes that stay outside the tree, and why.
OUTSIDE_THE_TREE = {
    # CuPy's own types, mimicked so that applications catch what they would catch.
    "bitshare.remote.cupy.errors.OutOfMemoryError",
    "bitshare.remote.cupy.errors.CUDARuntimeError",
    "bitshare.remote.cupy.errors.CompileException",
    # A name remote CuPy does not cover: Python's AttributeError, for feature detection.
    "bitshare.remote.cupy.errors.Uncovered",
    "bitshare.simgpu.OutOfMemoryError",
    # The per-lease worker's own, sent to the client as CuPy-shaped errors; the worker imports no gRPC.
    "bitshare.daemon.workers.faults.RemoteFault",
    "bitshare.daemon.workers.data_channel.DataChannelError",
    "bitshare.protocol.wire.WireError",
    # A private signal between two coroutines of the relay.
    "bitshare.daemon.workers.relay._Closed",
    # A parser's ValueError, worded by its caller into the flag's or key's one-line error.
    "bitshare.units.NotAFraction",
}


def defined_exception_classes() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(bitshare.__path__, "bitshare."):
        if ".agent" in info.name or info.name.endswith(("_pb2", "_pb2_grpc", "__main__")):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def test_every_bitshare_error_class_is_in_the_one_tree() -> None:
    classes = defined_exception_classes()
    assert "bitshare.daemon.state.store.UnusableState" in classes  # the walk found the daemon's modules
    exempt = tuple(classes[name] for name in OUTSIDE_THE_TREE if name in classes)
    outside = {
        name
        for name, cls in classes.items()
        if not issubclass(cls, errors.BitshareError)
        if name in OUTSIDE_THE_TREE or not issubclass(cls, exempt)  # a subclass of an exempt class is too
    }
    assert outside == {name for name in OUTSIDE_THE_TREE if name in classes}


def test_each_class_declares_an_exit_code_and_a_grpc_status() -> None:
    for cls in [c for c in defined_exception_classes().values() if issubclass(c, errors.BitshareError)]:
        assert isinstance(cls.exit_code, int), cls
        assert isinstance(cls.status, str) and cls.status in grpc.StatusCode.__members__, cls


def test_no_part_has_a_second_class_of_the_trees() -> None:
    # A class named as one of the tree's is that class or a subclass of it (remote CuPy's LeaseLost),
    # never a second class of the same meaning (as the ledger's own Unsatisfiable was).
    tree = {name: cls for name, cls in vars(errors).items() if inspect.isclass(cls) and issubclass(cls, Exception)}
    for qualified, cls in defined_exception_classes().items():
        name = qualified.rsplit(".", 1)[1]
        assert name not in tree or issubclass(cls, tree[name]), f"{qualified} is not bitshare.errors.{name}"


@pytest.mark.parametrize(
    ("refusal", "client_error", "exit_code"),
    [
        (errors.UsageError, errors.UsageError, errors.EXIT_USAGE),
        (errors.Unsatisfiable, errors.Unsatisfiable, errors.EXIT_USAGE),
        (errors.NoLease, errors.NoLease, errors.EXIT_TEMPFAIL),
        (errors.NotFound, errors.NotFound, errors.EXIT_FAILURE),
        (errors.WrongState, errors.BitshareError, errors.EXIT_FAILURE),
    ],
)
def test_a_ledger_refusal_reaches_the_client_as_the_trees_error(
    refusal: type[errors.BitshareError], client_error: type[errors.BitshareError], exit_code: int
) -> None:
    assert refusal in errors.REFUSALS or issubclass(refusal, errors.REFUSALS)
    status = status_of(refusal("no"))
    assert error_for_status(status) is client_error
    assert client_error("no").exit_code == exit_code


@pytest.mark.parametrize(
    "cls", [errors.UsageError, errors.Unsatisfiable, errors.NotFound, errors.NoLease, errors.Denied, errors.Unreachable]
)
def test_the_two_maps_are_inverse_for_the_clients_errors(cls: type[errors.BitshareError]) -> None:
    assert error_for_status(status_of(cls("x"))) is cls


def test_unknown_statuses_and_foreign_errors_are_plain() -> None:
    assert error_for_status(grpc.StatusCode.INTERNAL) is errors.BitshareError
    assert error_for_status(None) is errors.BitshareError
    assert status_of(KeyError("x")) is grpc.StatusCode.UNKNOWN


def test_a_program_catching_the_trees_lease_lost_catches_remote_cupys() -> None:
    with pytest.raises(errors.LeaseLost):
        raise remote_errors.LeaseLost("revoked")
    with pytest.raises(errors.ArrayLost):
        raise remote_errors.ArrayLost("worker restarted")
    with pytest.raises(RuntimeError):  # what CuPy programs already caught
        raise remote_errors.LeaseLost("revoked")


def test_store_and_config_errors_keep_their_exit_codes_and_statuses() -> None:
    from bitshare.daemon.state.store import StateUnwritable, UnusableState

    assert (errors.ConfigError("x").exit_code, UnusableState("x").exit_code) == (78, 78)
    assert status_of(StateUnwritable("full")) is grpc.StatusCode.UNAVAILABLE
    assert errors.CommandNotFound("nope").exit_code == 127
    assert isinstance(errors.ConfigError("x"), ValueError)  # callers that caught ValueError still do
