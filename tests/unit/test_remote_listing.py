"""The worker's list of functions and the client's reading of it: derived from the library, never
evaluated, with signatures that read as the library's own."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from bitshare.daemon.workers.surface import Surface
from bitshare.protocol import catalog
from bitshare.remote.cupy import errors
from bitshare.remote.cupy.listing import Default, Listing


@pytest.fixture(scope="module")
def surface() -> Surface:
    return Surface(gpu=False)


def test_the_surface_is_numpys_own_less_what_is_denied(surface: Surface) -> None:
    top = surface.module("")
    for name in ("unique_all", "cumulative_sum", "vecdot", "astype", "polyfit", "add", "isdtype"):
        assert name in top
    for name in ("loadtxt", "save", "fromfile", "seterr", "vectorize", "frompyfunc", "memmap", "ndarray", "linalg"):
        assert name not in top, name
    assert "matrix_norm" in surface.module("linalg")
    assert surface.resolve("linalg.matrix_norm") is np.linalg.matrix_norm
    assert surface.resolve("random.default_rng") is None  # (a Generator is not an array)
    assert surface.module("lib.npyio") == {}  # only the catalog's modules
    assert surface.resolve("_core.multiarray") is None


@pytest.mark.parametrize("prefix", ["", "linalg", "fft", "random"])
def test_every_signature_reads_back_as_numpys(surface: Surface, prefix: str) -> None:
    listing = Listing(prefix, surface.describe(prefix))
    compared = 0
    for name, function in surface.module(prefix).items():
        qualified = f"{prefix}.{name}" if prefix else name
        try:
            expected = inspect.signature(function)
        except (TypeError, ValueError):
            assert listing.signature(qualified) is None or isinstance(function, np.ufunc)
            continue
        if any(len(repr(p.default)) > 80 for p in expected.parameters.values()):
            continue  # (a long repr is cut)
        assert str(listing.signature(qualified)) == str(expected), qualified
        compared += 1
    assert compared > {"": 250, "linalg": 20, "fft": 12, "random": 30}[prefix]


def test_a_default_that_is_no_literal_is_shown_not_evaluated() -> None:
    text = json.dumps(
        {"functions": {"f": {"kind": "function", "params": [["a", 0], ["b", 1, {"repr": "__import__('os')"}]]}}}
    )
    signature = Listing("", text).signature("f")
    assert signature is not None
    default = signature.parameters["b"].default
    assert isinstance(default, Default) and repr(default) == "__import__('os')"


@pytest.mark.parametrize(
    "functions",
    [
        {"linalg.norm": {"kind": "function"}},  # another module's
        {"load": {"kind": "function"}},  # denied, whatever the worker says
        {"_private": {"kind": "function"}},
        {"a b": {"kind": "function"}},
        {"f": {"kind": "class"}},
        {"f": "function"},
    ],
)
def test_entries_that_do_not_fit_are_left_out(functions: dict) -> None:
    assert Listing("", json.dumps({"functions": functions})).entries == {}


def test_parameters_that_do_not_fit_give_no_signature_rather_than_a_wrong_one() -> None:
    functions = {
        "bad_kind": {"kind": "function", "params": [["a", 9]]},
        "bad_name": {"kind": "function", "params": [["1a", 0]]},
        "bad_order": {"kind": "function", "params": [["a", 1, {"value": 1}], ["b", 1]]},
        "good": {"kind": "ufunc", "nin": 1, "nout": 1, "params": [["x", 0], ["out", 1, {"value": None}]]},
    }
    listing = Listing("", json.dumps({"functions": functions}))
    assert listing.signature("bad_kind") is None
    assert listing.signature("bad_name") is None
    assert listing.signature("bad_order") is None
    assert str(listing.signature("good")) == "(x, /, out=None)"
    assert listing.names() == ["bad_kind", "bad_name", "bad_order", "good"]


@pytest.mark.parametrize("text", ["not json", "[]", '{"functions": []}', '{"other": {}}'])
def test_a_listing_that_is_not_one_is_a_protocol_error(text: str) -> None:
    with pytest.raises(errors.ProtocolError):
        Listing("", text)


@pytest.mark.parametrize(
    ("qualified", "denied"),
    [
        ("sum", False),
        ("percentile", False),
        ("loadtxt", True),
        ("savez_compressed", True),
        ("random.get_state", True),
        ("random.normal", False),
        ("cupyx.scipy.ndimage.zoom", False),
        ("from_dlpack", True),
        ("_mul", True),
    ],
)
def test_what_is_denied(qualified: str, denied: bool) -> None:
    assert catalog.denied(qualified) is denied
