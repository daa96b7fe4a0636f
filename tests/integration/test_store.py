"""The SQLite store: group commit, reload, history retention, and state files it must not start from."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bitshare.daemon.ledger import Lease, LeaseSpec, LeaseState, Size
from bitshare.daemon.state.store import EventRecord, Store

from ..support.harness import assert_refused_in_one_line, refused_start


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


# ----- a state file the daemon must not start from ------------------------------------------


def _refused(state_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return refused_start(
        "--simulate", "1x1GiB", "--state-dir", str(state_dir), "--listen", f"unix:{tmp_path / 'run' / 'd.sock'}"
    )


def _a_used_state_file(state_dir: Path) -> bytes:
    """A state file as a daemon leaves it: leases, a drained GPU, events."""

    async def write() -> None:
        store = Store(state_dir)
        store.start()
        leases = [_lease(f"lease{i:03d}", LeaseState.ACTIVE, None) for i in range(300)]
        events = [EventRecord(time.time(), "granted", lease.id, "GPU 0: 100 MiB " + "x" * 200) for lease in leases]
        await store.commit(leases, events, {"GPU-0": True})
        store.close()

    asyncio.run(write())
    return (state_dir / "state.db").read_bytes()


def _make_empty(path: Path) -> None:
    path.write_bytes(b"")


def _make_foreign_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
        conn.commit()


def _make_garbage(path: Path) -> None:
    path.write_bytes(random.Random(4).randbytes(8192))


def _make_newer_schema(path: Path) -> None:
    _a_used_state_file(path.parent)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _make_a_garbage_page(path: Path) -> None:
    data = bytearray(_a_used_state_file(path.parent))
    page = 4096
    assert len(data) > 8 * page
    data[3 * page : 4 * page] = random.Random(7).randbytes(page)
    path.write_bytes(bytes(data))


def _make_an_unreadable_lease_record(path: Path) -> None:
    _a_used_state_file(path.parent)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE leases SET record='{\"id\": \"lease007\"' WHERE id='lease007'")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_make_empty, "is empty"),
        (_make_foreign_sqlite, "holds no bitshare state"),
        (_make_garbage, "is not a bitshare state file"),
        (_make_newer_schema, "written by a newer bitshare (schema 99;"),
        (_make_a_garbage_page, "is damaged"),
        (_make_an_unreadable_lease_record, "is damaged: a lease record cannot be read"),
    ],
    ids=["zero-bytes", "foreign-sqlite", "garbage", "newer-schema", "garbage-page", "unreadable-record"],
)
def test_a_state_file_without_bitshare_state_stops_the_start_in_one_line_and_is_left_alone(
    tmp_path: Path, make, expected: str
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = state_dir / "state.db"
    make(path)
    before = path.read_bytes()
    done = _refused(state_dir, tmp_path)
    assert_refused_in_one_line(done, str(path), expected)
    assert path.read_bytes() == before
    assert not (state_dir / "state.db-wal").exists() and not (state_dir / "state.db-shm").exists()


def test_a_write_ahead_log_without_its_state_file_stops_the_start(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    wal = state_dir / "state.db-wal"
    wal.write_bytes(b"committed changes that were never checkpointed")
    done = _refused(state_dir, tmp_path)
    assert_refused_in_one_line(done, str(wal), "without")
    assert not (state_dir / "state.db").exists()
    assert wal.read_bytes() == b"committed changes that were never checkpointed"


def test_a_state_file_that_is_a_directory_or_a_link_or_not_ours_stops_the_start(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = state_dir / "state.db"
    path.mkdir()
    assert_refused_in_one_line(_refused(state_dir, tmp_path), str(path), "not a regular file")
    path.rmdir()

    elsewhere = tmp_path / "elsewhere.db"
    _a_used_state_file(tmp_path / "other")
    (tmp_path / "other" / "state.db").rename(elsewhere)
    path.symlink_to(elsewhere)
    assert_refused_in_one_line(_refused(state_dir, tmp_path), str(path), "symbolic link")
    path.unlink()

    elsewhere.rename(path)
    os.chown(path, 65534, 65534)  # nobody's: another user could have written any lease into it
    before = path.read_bytes()
    assert_refused_in_one_line(_refused(state_dir, tmp_path), str(path), "owned by uid 65534")
    assert path.read_bytes() == before


def test_a_state_directory_that_is_a_file_stops_the_start_in_one_line(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.write_text("not a directory")
    assert_refused_in_one_line(_refused(state_dir, tmp_path), str(state_dir), "not a directory")
    assert state_dir.read_text() == "not a directory"


def test_a_state_directory_of_another_user_stops_the_start_in_one_line(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    os.chown(state_dir, 65534, 65534)  # its owner could swap in a state file of their own
    assert_refused_in_one_line(_refused(state_dir, tmp_path), str(state_dir), "owned by uid 65534")
    assert list(state_dir.iterdir()) == []


def test_a_missing_state_file_is_a_fresh_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    try:
        assert store.load_leases() == [] and store.load_events(10) == []
    finally:
        store.close()
    assert (tmp_path / "state" / "state.db").stat().st_size > 0
