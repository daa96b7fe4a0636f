"""The daemon's durable state: SQLite in WAL mode, written by one thread with group commit.

Every change is committed (fsync'd, ``synchronous=FULL``) before the caller's
``await`` returns, so a reply sent after it never names a state that a crash can
lose. Changes that arrive while a commit is running share the next transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ... import log
from ...errors import EXIT_CONFIG, StoreError
from ..ledger import Lease, LeaseState
from .records import lease_from_json, lease_to_json

SCHEMA_VERSION = 2  # 2: events record who acted (actor)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    owner TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ended_at REAL,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leases_live ON leases(state) WHERE state IN ('queued', 'active');
CREATE TABLE IF NOT EXISTS gpus (uuid TEXT PRIMARY KEY, drained INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    actor TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class EventRecord:
    at: float
    kind: str
    lease_id: str
    detail: str
    actor: str = ""  # who did it: "user:alice", "token:ops"; "bitshared" for the daemon itself


class UnusableState(StoreError):
    """The state directory or file is not one bitshared may start from (a damaged, foreign or
    misplaced file: an admin's matter, exit 78). Nothing in it was changed."""

    exit_code = EXIT_CONFIG


class StateUnwritable(StoreError):
    """The daemon refuses changes: its state store could not be written (a full disk, a read-only
    state directory), so nothing more is granted until a write succeeds again."""


CHECKPOINT_EVERY_S = 1.0


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


ENDED_ROWS_LOADED = 1000  # ended leases loaded at start, for lookups and retried requests


def _read_leases(conn: sqlite3.Connection, path: Path, ended_limit: int) -> list[Lease]:
    live = conn.execute("SELECT record FROM leases WHERE state IN ('queued', 'active')").fetchall()
    ended = conn.execute(
        "SELECT record FROM leases WHERE state NOT IN ('queued', 'active') ORDER BY seq DESC LIMIT ?",
        (ended_limit,),
    ).fetchall()
    leases = []
    for (record,) in live + ended[::-1]:
        try:
            leases.append(lease_from_json(record))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UnusableState(f"{path} is damaged: a lease record cannot be read ({exc!r})") from None
    return leases


def trusted_owner(uid: int) -> bool:
    """Whether a file owned by ``uid`` may be trusted: this process's user's, or root's."""
    return uid in (os.geteuid(), 0)


def _check_own_regular_file(path: Path) -> bool:
    """Whether ``path`` exists (False: it does not); UnusableState if it is not a regular file
    of this daemon's user (a link or a file of another user could put anything in the state)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"cannot use {path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UnusableState(f"{path} is a symbolic link: the state must be a regular file in the state directory")
    if not stat.S_ISREG(info.st_mode):
        raise UnusableState(f"{path} is not a regular file")
    if not trusted_owner(info.st_uid):
        raise UnusableState(f"{path} is owned by uid {info.st_uid}, not by this daemon's user (uid {os.geteuid()})")
    return True


def check_state_file(path: Path) -> bool:
    """Whether ``path`` holds bitshare state to open; False when there is none (a fresh start).

    Anything else a file there could be (empty, garbage, another program's database, a newer
    schema, damaged pages) raises UnusableState, read-only: the file is left as it was, for
    the admin to restore or move away. A fresh start is a missing file, never an unusable one.
    """
    wal = path.with_name(path.name + "-wal")
    for companion in (wal, path.with_name(path.name + "-shm")):
        _check_own_regular_file(companion)
    if not _check_own_regular_file(path):
        if wal.exists() and wal.stat().st_size > 0:
            # Committed changes not yet copied into the state file: starting afresh beside them
            # would lose them, or worse, replay them into a new file.
            raise UnusableState(
                f"{wal} exists without {path.name}: it may hold the state; move it away to start afresh"
            )
        return False
    if path.stat().st_size == 0:
        raise UnusableState(f"{path} is empty: it holds no bitshare state (a fresh start is a missing file)")
    damaged = "restore it from a backup, or move it away to start afresh"
    # Without a write-ahead log the file is all there is: read it as immutable, which creates no
    # -wal and -shm files beside it. With one, read both (the log may hold the latest changes).
    mode = "mode=ro" if wal.exists() else "immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?{mode}", uri=True)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                raise UnusableState(f"{path} holds no bitshare state (it is another program's SQLite database)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or not str(row[0]).isdigit():
                raise UnusableState(f"{path} is damaged: it records no schema version; {damaged}")
            if int(row[0]) > SCHEMA_VERSION:
                raise UnusableState(
                    f"{path} was written by a newer bitshare (schema {row[0]}; this one knows {SCHEMA_VERSION})"
                )
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(1)")]
            if problems == ["ok"] and "leases" in tables:
                _read_leases(conn, path, ENDED_ROWS_LOADED)  # each record the daemon will load must decode
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise UnusableState(f"{path} is not a bitshare state file (not an SQLite database)") from None
        raise UnusableState(f"{path} is damaged ({' '.join(str(exc).split())}); {damaged}") from None
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the state file {path}: {exc}") from None
    if problems != ["ok"]:
        problem = " ".join(problems[0].split())  # SQLite's report spans lines; the refusal is one
        raise UnusableState(f"{path} is damaged ({problem}); {damaged}")
    return True


class Store:
    """Opens ``state.db`` in the state directory, or creates it where there is none."""

    def __init__(self, state_dir: Path, history_s: float = 30 * 86400.0) -> None:
        self.history_s = history_s  # ended leases and events older than this are deleted
        self._pruned_at = 0.0
        self.path = state_dir / "state.db"
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise StoreError(f"cannot open state store in {state_dir}: {exc.strerror}") from None
        check_state_file(self.path)
        try:
            self._conn = _connect(self.path)
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) < SCHEMA_VERSION:
                self._migrate(int(row[0]))
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open state store in {state_dir}: {exc}") from None
        self._pending: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._stopping = threading.Event()
        self.commits = 0  # transactions written, for telemetry and benchmarks

    def _migrate(self, version: int) -> None:
        """Bring a store written by an older bitshare up to SCHEMA_VERSION, in one transaction."""
        with self._conn:
            if version < 2:
                self._conn.execute("ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT ''")
            self._conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    # ----- reads: each with a connection of its own, never the writer thread's -------------

    def load_leases(self, ended_limit: int = ENDED_ROWS_LOADED) -> list[Lease]:
        """Live leases, and the most recent ended ones (for lookups and retries)."""
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            return _read_leases(conn, self.path, ended_limit)

    def load_drained(self) -> set[str]:
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            return {r[0] for r in conn.execute("SELECT uuid FROM gpus WHERE drained=1")}

    def load_events(self, limit: int, lease_id: str = "") -> list[EventRecord]:
        """Read with a connection of its own, so it never waits on the writer thread."""
        conn = sqlite3.connect(self.path)
        try:
            if lease_id:
                rows = conn.execute(
                    "SELECT at, kind, lease_id, detail, actor FROM events WHERE lease_id=? ORDER BY id DESC LIMIT ?",
                    (lease_id, limit),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT at, kind, lease_id, detail, actor FROM events ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
        finally:
            conn.close()
        return [EventRecord(*row) for row in reversed(rows)]

    # ----- writes ----------------------------------------------------------------

    def start(self) -> None:
        # Checkpoints move WAL pages into the database; done by a thread of their own (PASSIVE:
        # never blocking the writer) so that no commit waits behind one.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._writer = threading.Thread(target=self._write_loop, name="bitshare-store", daemon=True)
        self._writer.start()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="bitshare-checkpoint", daemon=True)
        self._checkpointer.start()

    def commit(
        self,
        leases: list[Lease],
        events: list[EventRecord],
        drained: dict[str, bool] | None = None,
    ) -> asyncio.Future[None]:
        """Queue changes for the next transaction; the future completes once it is on disk."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        rows = [
            (lease.id, lease.state.value, lease.owner, lease.seq, lease.ended_at, lease_to_json(lease))
            for lease in leases
        ]
        self._pending.put((loop, future, rows, events, drained or {}))
        return future

    def close(self) -> None:
        self._stopping.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
            self._checkpointer = None
        if self._writer is not None:
            self._pending.put(None)
            self._writer.join(timeout=10)
            self._writer = None
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()

    def _checkpoint_loop(self) -> None:
        conn = _connect(self.path)
        try:
            while not self._stopping.wait(CHECKPOINT_EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    log.warning("store.checkpoint_failed", error=exc)
        finally:
            conn.close()

    def _write_loop(self) -> None:
        while True:
            batch = [self._pending.get()]
            while True:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            items = [b for b in batch if b is not None]
            if items:
                self._write(items)
            if stop:
                return

    def _prune_now_and_then(self) -> None:
        """Delete history past the retention period, at most once an hour (after a commit)."""
        now = time.time()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        cutoff = now - self.history_s
        try:
            self._conn.execute("DELETE FROM leases WHERE state NOT IN ('queued', 'active') AND ended_at < ?", (cutoff,))
            self._conn.execute("DELETE FROM events WHERE at < ?", (cutoff,))
        except sqlite3.Error as exc:
            log.warning("store.prune_failed", error=exc)

    def _write(self, items: list) -> None:
        error: BaseException | None = None
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for _, _, rows, events, drained in items:
                if rows:
                    self._conn.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)", rows)
                if events:
                    self._conn.executemany(
                        "INSERT INTO events (at, kind, lease_id, detail, actor) VALUES (?, ?, ?, ?, ?)",
                        [(e.at, e.kind, e.lease_id, e.detail, e.actor) for e in events],
                    )
                for uuid, is_drained in drained.items():
                    self._conn.execute("INSERT OR REPLACE INTO gpus VALUES (?, ?)", (uuid, int(is_drained)))
            self._conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            error = StoreError(f"state store write failed: {exc}")
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        # One wake-up of the event loop per transaction, not one per waiting caller.
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for loop, future, *_ in items:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            loop.call_soon_threadsafe(_settle, futures, error)
        if error is None:
            self._prune_now_and_then()


PRUNE_EVERY_S = 3600.0


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


__all__ = ["EventRecord", "LeaseState", "StateUnwritable", "Store", "StoreError", "UnusableState"]
