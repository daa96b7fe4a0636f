"""Which processes belong to which lease: the process trees that holders started for them.

A holder (``bitshare run`` on this host) names the processes it started for a lease;
a Slurm job's lease is anchored to the job's step daemons (slurm_steps.py), which are
not the lease's themselves. Everything descending from roots and anchors is the lease's,
including processes that were reparented after their parent exited (they are remembered
once seen, and forgotten when they end). A process under two named roots (a ``bitshare run`` inside another)
belongs to the nearer one. Processes are held as psutil handles, which notice a reused
pid, and a root that ended is never taken back under the same pid.

Thread-safe: the daemon claims on its event loop and scans /proc in a worker thread;
the lock is held only while the tracker's own tables change, never during a scan.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psutil

from ...errors import Denied


class ClaimRefused(Denied):
    """A holder named a process that it may not claim; the message says why."""


@dataclass
class _Tree:
    roots: dict[int, psutil.Process] = field(default_factory=dict)
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    retired: set[int] = field(default_factory=set)  # roots that ended: their pids may be reused
    anchors: dict[int, psutil.Process] = field(default_factory=dict)  # parents of the lease's processes


class ProcessTracker:
    def __init__(self) -> None:
        self._trees: dict[str, _Tree] = {}
        self._lock = threading.Lock()

    def claim(self, lease_id: str, pids: list[int], uid: int) -> None:
        """Record ``pids`` as roots of the lease's processes, all or none. The caller ``uid`` must
        own them (root may name any), so no one can point the daemon at others' processes."""
        with self._lock:
            tree = self._trees.get(lease_id)
            known = set(tree.roots) | tree.retired if tree is not None else set()
            other_roots = {pid for other, t in self._trees.items() if other != lease_id for pid in t.roots}
        found: dict[int, psutil.Process] = {}
        for pid in dict.fromkeys(pids):
            if pid in known:
                continue
            try:
                process = psutil.Process(pid)
                owner = process.uids().real
            except psutil.NoSuchProcess:
                continue  # already ended: nothing to measure or end
            except psutil.Error as exc:
                raise ClaimRefused(f"cannot inspect process {pid}: {exc}") from None
            if uid not in (0, owner):
                raise ClaimRefused(f"process {pid} is not the caller's")
            if pid in other_roots:
                raise ClaimRefused(f"process {pid} was named for another lease")
            found[pid] = process
        with self._lock:
            self._trees.setdefault(lease_id, _Tree()).roots.update(found)

    def anchor(self, lease_id: str, processes: list[psutil.Process]) -> None:
        """Make ``processes`` (found by the daemon, trusted) the lease's anchors from now on."""
        with self._lock:
            self._trees.setdefault(lease_id, _Tree()).anchors = {p.pid: p for p in processes}

    def forget(self, lease_id: str) -> None:
        with self._lock:
            self._trees.pop(lease_id, None)

    def has(self, lease_id: str) -> bool:
        """Its holder has named processes for the lease (some may have ended since)."""
        with self._lock:
            return lease_id in self._trees

    def processes(self, lease_id: str) -> list[psutil.Process]:
        """The lease's live processes now (a scan of /proc: call it off the event loop)."""
        return [p for p, owner in self._scan().values() if owner == lease_id]

    def owners(self) -> dict[int, str]:
        """pid -> lease id for every live process of every tracked lease (a scan of /proc)."""
        return {pid: owner for pid, (_, owner) in self._scan().items()}

    def signal(self, lease_id: str, sig: int) -> tuple[int, list[str]]:
        """Send ``sig`` to every live process of the lease: (how many got it, why others did not)."""
        sent = 0
        problems: list[str] = []
        for process in self.processes(lease_id):
            try:
                process.send_signal(sig)
                sent += 1
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied:
                problems.append(f"not allowed to signal process {process.pid} (bitshared needs CAP_KILL)")
        return sent, problems

    def _scan(self) -> dict[int, tuple[psutil.Process, str]]:
        """Every tracked live process and the lease of its nearest named root."""
        with self._lock:
            trees = {lease: (dict(t.roots), dict(t.seen)) for lease, t in self._trees.items()}
            anchors = {pid: (p, lease) for lease, t in self._trees.items() for pid, p in t.anchors.items()}
        root_of: dict[int, str] = {}
        alive_roots: dict[int, psutil.Process] = {}
        ended: dict[str, set[int]] = {}
        for lease, (roots, _) in trees.items():
            for pid, root in roots.items():
                if root.is_running():
                    root_of[pid] = lease
                    alive_roots[pid] = root
                else:
                    ended.setdefault(lease, set()).add(pid)
        found: dict[int, tuple[psutil.Process, str]] = {}
        for pid, root in alive_roots.items():
            found[pid] = (root, root_of[pid])
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                continue
            for child in children:
                if child.pid not in root_of:
                    found.setdefault(child.pid, (child, _nearest_root(child, root_of) or root_of[pid]))
        for anchor, lease in anchors.values():
            try:
                children = anchor.children(recursive=True) if anchor.is_running() else []
            except psutil.Error:
                continue
            for child in children:
                if child.pid not in root_of and child.pid not in anchors:
                    found.setdefault(child.pid, (child, _nearest_root(child, root_of) or lease))
        for lease, (_, seen) in trees.items():
            for pid, process in seen.items():
                if pid not in found and process.is_running():
                    found[pid] = (process, lease)
        with self._lock:
            for lease, tree in self._trees.items():
                for pid in ended.get(lease, ()):
                    tree.roots.pop(pid, None)
                    tree.retired.add(pid)
                tree.seen = {pid: p for pid, (p, owner) in found.items() if owner == lease and pid not in tree.roots}
        return found


def _nearest_root(process: psutil.Process, root_of: dict[int, str]) -> str | None:
    try:
        for parent in process.parents():
            if parent.pid in root_of:
                return root_of[parent.pid]
    except psutil.Error:
        pass
    return None


def process_label(pid: int) -> tuple[str, str]:
    """(command name, user) of a process, for reports; empty when it cannot be read."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return process.name(), process.username()
    except (psutil.Error, KeyError):
        return "", ""
