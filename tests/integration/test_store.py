"""The SQLite store on its own: group commit, reload, and history retention."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bitshare.daemon.ledger import Lease, LeaseSpec, LeaseState, Size
from bitshare.daemon.store import EventRecord, Store


def _lease(lease_id: str, state: LeaseState, ended_at: float | None) -> Lease:
    return Lease(
        lease_id,
        "user:t",
        LeaseSpec(Size(fraction=0.5)),
        state,
        seq=hash(lease_id) % 1000,
        created_at=0.0,
        priority=0,
        allocations={0: 100} if state is LeaseState.ACTIVE else {},
        ended_at=ended_at,
    )


def test_concurrent_commits_share_transactions_and_reload(tmp_path: Path) -> None:
    async def write() -> int:
        store = Store(tmp_path)
        store.start()
        leases = [_lease(f"l{i}", LeaseState.ACTIVE, None) for i in range(200)]
        now = time.time()
        await asyncio.gather(*(store.commit([lease], [EventRecord(now, "granted", lease.id, "")]) for lease in leases))
        commits = store.commits
        store.close()
        return commits

    commits = asyncio.run(write())
    assert 1 <= commits < 200  # group commit: fewer transactions than changes
    store = Store(tmp_path)
    assert sorted(lease.id for lease in store.load_leases()) == sorted(f"l{i}" for i in range(200))
    assert len(store.load_events(1000)) == 200
    store.close()


def test_history_past_retention_is_deleted_and_live_leases_kept(tmp_path: Path) -> None:
    now = time.time()

    async def write() -> None:
        store = Store(tmp_path, history_s=3600)
        store.start()
        await store.commit(
            [
                _lease("old", LeaseState.RELEASED, now - 7200),
                _lease("recent", LeaseState.RELEASED, now - 60),
                _lease("live", LeaseState.ACTIVE, None),
            ],
            [EventRecord(now - 7200, "released", "old", ""), EventRecord(now, "granted", "live", "")],
        )
        store.close()

    asyncio.run(write())
    store = Store(tmp_path)
    assert sorted(lease.id for lease in store.load_leases()) == ["live", "recent"]
    assert [e.lease_id for e in store.load_events(10)] == ["live"]
    store.close()


def test_a_store_of_the_first_schema_is_migrated_and_keeps_its_events(tmp_path: Path) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "state.db")
    old.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE events (id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL,
                             lease_id TEXT NOT NULL, detail TEXT NOT NULL);
        INSERT INTO events (at, kind, lease_id, detail) VALUES (1.0, 'granted', 'abc', 'GPU 0: 100 MiB');
        """
    )
    old.commit()
    old.close()
    store = Store(tmp_path)
    try:
        assert store.load_events(10) == [EventRecord(1.0, "granted", "abc", "GPU 0: 100 MiB", "")]
        version = store._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        assert version == "2"
    finally:
        store.close()
