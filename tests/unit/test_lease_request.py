"""LeaseRequest.to_pb: a value the wire cannot carry is the caller's mistake, named in one line."""

from __future__ import annotations

import pytest

from bitshare.client.connection import LeaseRequest
from bitshare.errors import EXIT_USAGE, UsageError


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"gpu_count": -1}, "LeaseRequest.gpu_count must be between 0 and 4294967295, got -1"),
        ({"gpu_count": 2**32}, "LeaseRequest.gpu_count must be between 0 and 4294967295, got 4294967296"),
        ({"compute_pct": -5}, "LeaseRequest.compute_pct must be between 0 and 4294967295, got -5"),
        ({"priority": 2**31}, "LeaseRequest.priority must be between -2147483648 and 2147483647, got 2147483648"),
        (
            {"memory_mib": -1, "fraction": None},
            "LeaseRequest.memory_mib must be between 0 and 18446744073709551615, got -1",
        ),
        ({"min_memory_mib": 2**64}, "LeaseRequest.min_memory_mib must be between 0 and 18446744073709551615"),
        ({"indices": (0, -3)}, "LeaseRequest.indices must be between 0 and 4294967295, got -3"),
    ],
)
def test_an_out_of_range_number_is_a_usage_error_naming_the_field(fields: dict, expected: str) -> None:
    with pytest.raises(UsageError) as raised:
        LeaseRequest(**{"fraction": 0.5, **fields}).to_pb()
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)
    assert raised.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"priority": "3"}, "LeaseRequest.priority"),
        ({"gpu_count": 1.5}, "LeaseRequest.gpu_count"),
        ({"command": None}, "LeaseRequest.command"),
        ({"name": "\ud800"}, "LeaseRequest.name"),  # a lone surrogate: not UTF-8
        ({"wait": "no"}, "LeaseRequest.wait"),
        ({"wait_timeout_s": "soon"}, "LeaseRequest.wait_timeout_s"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_usage_error_naming_the_field(fields: dict, named: str) -> None:
    with pytest.raises(UsageError, match=f"^{named}: ") as raised:
        LeaseRequest(**{"fraction": 0.5, **fields}).to_pb()
    assert "\n" not in str(raised.value)


def test_both_sizes_at_once_are_refused() -> None:
    with pytest.raises(UsageError, match="fraction or memory_mib, not both"):
        LeaseRequest(fraction=0.5, memory_mib=1024).to_pb()


def test_every_field_in_range_reaches_the_message() -> None:
    request = LeaseRequest(
        memory_mib=2**64 - 1,
        gpu_count=2**32 - 1,
        compute_pct=100,
        name="A100",
        min_memory_mib=1024,
        indices=(0, 2**32 - 1),
        priority=-(2**31),
        wait=False,
        wait_timeout_s=1.5,
        ttl_s=60.0,
        command="x" * 5000,
        request_id="r1",
    )
    message = request.to_pb()
    spec = message.spec
    assert (spec.memory_mib, spec.gpu_count, spec.compute_pct, spec.priority) == (2**64 - 1, 2**32 - 1, 100, -(2**31))
    assert (spec.filter.name, spec.filter.min_memory_mib, list(spec.filter.indices)) == ("A100", 1024, [0, 2**32 - 1])
    assert (spec.wait, spec.wait_timeout_s, spec.ttl_s) == (False, 1.5, 60.0)
    assert message.request_id == "r1" and message.command == "x" * 4096 and message.client_host
    assert spec.WhichOneof("size") == "memory_mib"
    assert LeaseRequest(fraction=0.25).to_pb().spec.fraction == 0.25
