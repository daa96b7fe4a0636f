"""The ledger's MPS rule: one Unix user's MPS clients per GPU at a time."""

from __future__ import annotations

from bitshare.daemon.ledger import Gpu, LeaseSpec, LeaseState, Ledger, Policy, Size

T0 = 1000.0


def mps_gpu(index: int, mps: bool = True) -> Gpu:
    return Gpu(index=index, uuid=f"GPU-{index}", name="Test GPU", total_mib=1000, mps=mps)


def quarter() -> LeaseSpec:
    return LeaseSpec(size=Size(fraction=0.25))


def test_another_users_lease_goes_to_another_gpu() -> None:
    ledger = Ledger([mps_gpu(0), mps_gpu(1)], Policy())
    alice = ledger.submit("a", "user:alice", quarter(), T0, mps_uid=1001)
    bob = ledger.submit("b", "user:bob", quarter(), T0, mps_uid=1002)
    assert alice.allocations.keys() != bob.allocations.keys()
    again = ledger.submit("a2", "user:alice", quarter(), T0, mps_uid=1001)
    assert again.allocations.keys() == alice.allocations.keys()  # the same user shares its GPU
    ledger.check_invariants()


def test_another_users_lease_waits_while_the_only_gpu_serves_someone_else() -> None:
    ledger = Ledger([mps_gpu(0)], Policy())
    ledger.submit("a", "user:alice", quarter(), T0, mps_uid=1001)
    bob = ledger.submit("b", "user:bob", quarter(), T0, mps_uid=1002)
    assert bob.state is LeaseState.QUEUED  # there is room, but MPS would make bob hang in CUDA start-up
    ledger.release("a", T0 + 1)
    assert ledger.get("b").state is LeaseState.ACTIVE
    ledger.check_invariants()


def test_leases_that_do_not_use_mps_share_any_gpu() -> None:
    ledger = Ledger([mps_gpu(0)], Policy())
    ledger.submit("a", "user:alice", quarter(), T0, mps_uid=1001)
    remote = ledger.submit("r", "token:ci", quarter(), T0)  # its processes run on another host
    assert remote.state is LeaseState.ACTIVE
    ledger.check_invariants()


def test_gpus_without_mps_do_not_separate_users() -> None:
    ledger = Ledger([mps_gpu(0, mps=False)], Policy())
    ledger.submit("a", "user:alice", quarter(), T0, mps_uid=1001)
    assert ledger.submit("b", "user:bob", quarter(), T0, mps_uid=1002).state is LeaseState.ACTIVE
    ledger.check_invariants()


def test_restore_onto_mps_keeps_the_oldest_users_leases() -> None:
    before = Ledger([mps_gpu(0, mps=False)], Policy())
    before.submit("a", "user:alice", quarter(), T0, mps_uid=1001)
    before.submit("b", "user:bob", quarter(), T0 + 1, mps_uid=1002)
    before.submit("a2", "user:alice", quarter(), T0 + 2, mps_uid=1001)
    stored = [lease.copy() for lease in before.live()]

    after = Ledger([mps_gpu(0)], Policy())  # restarted with MPS on
    after.restore(stored, T0 + 10)
    assert after.get("a").state is LeaseState.ACTIVE
    assert after.get("a2").state is LeaseState.ACTIVE
    assert after.get("b").state is LeaseState.REVOKED
    assert after.get("b").end_reason == "GPU 0 now runs MPS for another user"
    after.check_invariants()
