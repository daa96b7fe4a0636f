"""The text CLI and console both show for leases: ages, states, sizes, use (pure: no UI)."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bitshare.present.ages import age_seconds, since
from bitshare.present.leases import asked, command_line, gpus, measured, partition, state_name, used
from bitshare.protocol.v1 import bitshare_pb2 as pb

NOW = 1_800_000_000.0


def stamp(seconds_ago: float) -> Timestamp:
    at = Timestamp()
    at.FromNanoseconds(int((NOW - seconds_ago) * 1e9))
    return at


@pytest.mark.parametrize(
    ("seconds_ago", "text"), [(0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (7199, "120m"), (7200, "2.0h")]
)
def test_an_age_is_seconds_then_minutes_then_hours(seconds_ago: float, text: str) -> None:
    assert since(stamp(seconds_ago), NOW) == text


def test_an_unset_time_has_no_age_and_a_future_one_is_now() -> None:
    assert since(Timestamp(), NOW) == "-"
    assert since(stamp(-30), NOW) == "0s"


@pytest.mark.parametrize("seconds_ago", [0, 45, 600, 9000])
def test_an_age_read_back_is_the_seconds_it_was_written_from(seconds_ago: float) -> None:
    text = since(stamp(seconds_ago), NOW)
    assert age_seconds(text) == pytest.approx(seconds_ago, rel=0.05, abs=1)


@pytest.mark.parametrize("text", ["-", "5", "2d", "m", "1.5 h", "4 GiB"])
def test_text_that_is_not_an_age_reads_as_none(text: str) -> None:
    assert age_seconds(text) is None


def test_state_names_are_the_enum_in_lower_case() -> None:
    assert state_name(pb.LEASE_STATE_ACTIVE) == "active"
    assert state_name(pb.LEASE_STATE_TIMED_OUT) == "timed_out"


def lease(**fields: object) -> pb.Lease:
    return pb.Lease(id="abc", **fields)  # type: ignore[arg-type]


def test_what_was_asked_is_a_fraction_or_mib() -> None:
    assert asked(pb.LeaseSpec(fraction=0.25)) == "p=0.25"
    assert asked(pb.LeaseSpec(memory_mib=4096)) == "m=4096"


def test_a_partition_is_what_was_granted_else_what_was_asked() -> None:
    granted = lease(
        allocations=[pb.Allocation(gpu_index=1, memory_mib=4096), pb.Allocation(gpu_index=0, memory_mib=512)]
    )
    assert partition(granted) == "512 MiB / 4 GiB"
    assert partition(lease(spec=pb.LeaseSpec(fraction=0.5))) == "p=0.5"
    assert partition(lease(spec=pb.LeaseSpec(memory_mib=8192))) == "8 GiB"


def test_gpus_are_the_indices_granted_else_how_many_were_asked() -> None:
    assert gpus(lease(allocations=[pb.Allocation(gpu_index=0), pb.Allocation(gpu_index=2)])) == "0,2"
    assert gpus(lease(spec=pb.LeaseSpec(gpu_count=3))) == "3×"


def test_use_is_shown_only_once_measured() -> None:
    unmeasured = lease(usage=pb.LeaseUsage(used_mib=100))
    assert not measured(unmeasured) and used(unmeasured) == "-"
    sampled = lease(usage=pb.LeaseUsage(used_mib=2048, sampled_at=stamp(1)))
    assert measured(sampled) and used(sampled) == "2 GiB"


def test_a_command_is_one_line_of_at_most_forty_characters() -> None:
    assert command_line(lease(command="python\n  train.py\t--fast")) == "python train.py --fast"
    assert command_line(lease(command="x" * 100)) == "x" * 40
