"""Which processes belong to which lease: the process trees that holders started for them.

A holder (``bitshare run`` on this host) names the processes it started for a lease;
everything descending from them is the lease's, including processes that were
reparented after their parent exited (they are remembered once seen, and forgotten
when they end). Processes are held as psutil handles, which notice a reused pid.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import psutil


class ClaimRefused(Exception):
    """A holder named a process that it may not claim; the message says why."""


@dataclass
class _Tree:
    uid: int | None
    roots: dict[int, psutil.Process] = field(default_factory=dict)
    seen: dict[int, psutil.Process] = field(default_factory=dict)


class ProcessTracker:
    def __init__(self) -> None:
        self._trees: dict[str, _Tree] = {}

    def claim(self, lease_id: str, pids: list[int], uid: int) -> None:
        """Record ``pids`` as the roots of the lease's processes; the caller ``uid`` must own them
        (root may name any), so no one can point the daemon at someone else's processes."""
        tree = self._trees.setdefault(lease_id, _Tree(uid))
        for pid in pids:
            if pid in tree.roots:
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
            if self.lease_of(pid) not in (None, lease_id):
                raise ClaimRefused(f"process {pid} already belongs to another lease")
            tree.roots[pid] = process

    def forget(self, lease_id: str) -> None:
        self._trees.pop(lease_id, None)

    def has(self, lease_id: str) -> bool:
        """Its holder has named processes for the lease (some may have ended since)."""
        return lease_id in self._trees

    def processes(self, lease_id: str) -> list[psutil.Process]:
        """The lease's live processes now: its roots, their descendants, and any seen before."""
        tree = self._trees.get(lease_id)
        if tree is None:
            return []
        found: dict[int, psutil.Process] = {}
        for pid, root in list(tree.roots.items()):
            if not root.is_running():
                del tree.roots[pid]
                continue
            found[pid] = root
            with contextlib.suppress(psutil.Error):
                for child in root.children(recursive=True):
                    found.setdefault(child.pid, child)
        for pid, process in list(tree.seen.items()):
            if pid not in found and process.is_running():
                found[pid] = process
        tree.seen = {pid: p for pid, p in found.items() if pid not in tree.roots}
        return list(found.values())

    def owners(self) -> dict[int, str]:
        """pid -> lease id for every process of every tracked lease."""
        mapping: dict[int, str] = {}
        for lease_id in list(self._trees):
            for process in self.processes(lease_id):
                mapping.setdefault(process.pid, lease_id)
        return mapping

    def lease_of(self, pid: int) -> str | None:
        for lease_id, tree in self._trees.items():
            if pid in tree.roots or pid in tree.seen:
                return lease_id
        return None

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


def process_label(pid: int) -> tuple[str, str]:
    """(command name, user) of a process, for reports; empty when it cannot be read."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return process.name(), process.username()
    except (psutil.Error, KeyError):
        return "", ""
