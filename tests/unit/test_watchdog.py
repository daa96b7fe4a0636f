"""The watchdog's policy: warn at once, end after the grace period, clear when back within."""

from __future__ import annotations

import pytest

from bitshare.daemon.enforcement.watchdog import LeaseUse, Watchdog, WatchdogPolicy

T0 = 1000.0


def use(**per_gpu: int) -> LeaseUse:
    measured = LeaseUse()
    for key, mib in per_gpu.items():
        measured.add(int(key.removeprefix("gpu")), mib)
    return measured


def verdicts(watchdog: Watchdog, now: float, used: int, partition: int = 1000) -> list[tuple[str, str]]:
    return [(v.kind, v.lease_id) for v in watchdog.judge(now, {"L": {0: partition}}, {"L": use(gpu0=used)})]


def test_within_the_partition_nothing_happens() -> None:
    watchdog = Watchdog(WatchdogPolicy(grace_s=5))
    assert verdicts(watchdog, T0, 1000) == []
    assert watchdog.deadline("L") is None


def test_over_is_warned_at_once_and_ended_after_the_grace_period() -> None:
    watchdog = Watchdog(WatchdogPolicy(grace_s=5))
    [warn] = watchdog.judge(T0, {"L": {0: 1000}}, {"L": use(gpu0=1200)})
    assert warn.kind == "warn"
    assert warn.detail == (
        "uses 1200 MiB on GPU 0, over its 1000 MiB partition; it will be ended in 5s unless it frees memory"
    )
    assert watchdog.deadline("L") == T0 + 5
    assert verdicts(watchdog, T0 + 4.9, 1200) == []
    assert verdicts(watchdog, T0 + 5, 1200) == [("end", "L")]
    assert verdicts(watchdog, T0 + 6, 1200) == []  # ended once


def test_back_within_clears_and_a_new_excess_starts_a_new_grace_period() -> None:
    watchdog = Watchdog(WatchdogPolicy(grace_s=5))
    assert verdicts(watchdog, T0, 1200) == [("warn", "L")]
    assert verdicts(watchdog, T0 + 3, 900) == [("clear", "L")]
    assert verdicts(watchdog, T0 + 4, 1200) == [("warn", "L")]
    assert verdicts(watchdog, T0 + 8, 1200) == []
    assert verdicts(watchdog, T0 + 9, 1200) == [("end", "L")]


def test_a_shrunk_partition_is_judged_against_its_new_size() -> None:
    watchdog = Watchdog(WatchdogPolicy(grace_s=5))
    assert verdicts(watchdog, T0, 800, partition=1000) == []
    assert verdicts(watchdog, T0 + 1, 800, partition=500) == [("warn", "L")]
    assert verdicts(watchdog, T0 + 6, 800, partition=500) == [("end", "L")]


def test_warn_mode_never_ends() -> None:
    watchdog = Watchdog(WatchdogPolicy(mode="warn", grace_s=1))
    assert verdicts(watchdog, T0, 1200) == [("warn", "L")]
    assert verdicts(watchdog, T0 + 100, 1200) == []
    assert watchdog.deadline("L") is None


def test_off_mode_says_nothing() -> None:
    watchdog = Watchdog(WatchdogPolicy(mode="off"))
    assert verdicts(watchdog, T0, 5000) == []


def test_each_process_may_hold_its_context_past_the_partition() -> None:
    watchdog = Watchdog(WatchdogPolicy(grace_s=5, context_mib=300))
    two_processes = LeaseUse()
    two_processes.add(0, 800)
    two_processes.add(0, 750)  # 1550 MiB: within 1000 + 2 x 300
    assert watchdog.judge(T0, {"L": {0: 1000}}, {"L": two_processes}) == []
    two_processes.add(0, 100)  # a third process: 1650 MiB, within 1000 + 3 x 300
    assert watchdog.judge(T0, {"L": {0: 1000}}, {"L": two_processes}) == []
    assert [v.kind for v in watchdog.judge(T0, {"L": {0: 1000}}, {"L": use(gpu0=1301)})] == ["warn"]  # > 1000 + 300


def test_the_worst_gpu_of_a_multi_gpu_lease_is_reported() -> None:
    watchdog = Watchdog(WatchdogPolicy(grace_s=5))
    [warn] = watchdog.judge(T0, {"L": {0: 1000, 1: 1000}}, {"L": use(gpu0=1100, gpu1=1400)})
    assert "1400 MiB on GPU 1" in warn.detail


def test_ended_leases_are_forgotten() -> None:
    watchdog = Watchdog(WatchdogPolicy(grace_s=5))
    assert verdicts(watchdog, T0, 1200) == [("warn", "L")]
    assert watchdog.judge(T0 + 1, {}, {}) == []
    assert "L" not in watchdog.over_since


@pytest.mark.parametrize(("mode", "grace"), [("kill", 1.0), ("enforce", -1.0)])
def test_bad_policies_are_refused(mode: str, grace: float) -> None:
    with pytest.raises(ValueError):
        WatchdogPolicy(mode=mode, grace_s=grace)
