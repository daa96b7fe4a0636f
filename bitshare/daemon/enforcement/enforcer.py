"""Enforcement, wired into the daemon: measure, map processes to leases, judge, and act.

Every ``sample_interval_s`` the backend measures the GPUs and their processes (off
the event loop), processes are mapped to leases through the trees their holders
started (or, for a Slurm job's lease, the job's step daemons), the watchdog judges, and
its verdicts become lease warnings and revokes. A Slurm job's lease has no holder: while
its job's step daemons run here, each sample is its heartbeat.
When a lease ends for any reason its processes still running get SIGTERM, then
SIGKILL after the grace period; the holder does the same on its side, and the
daemon's signals cover a holder that is frozen or gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field

from ... import log
from ...errors import BitshareError
from ..backends.base import Backend, GpuSample, ProcessSample, Sample
from ..state.manager import LeaseManager
from ..state.model import Change, Lease
from .mps import MpsControl
from .processes import ClaimRefused, ProcessTracker, process_label
from .slurm_steps import step_daemons
from .watchdog import LeaseUse, Verdict, Watchdog, WatchdogPolicy

MPS_CHECK_EVERY_S = 5.0
MPS_SILENT_LIMIT = 3  # checks without an answer before a control daemon is restarted
HOLDER_TURN_S = 1.0  # after a lease ends, its holder ends the processes before the daemon does


@dataclass
class Measured:
    """A lease's use as last measured."""

    at: float
    used_mib: dict[int, int] = field(default_factory=dict)  # per GPU index
    sm_pct: dict[int, int] = field(default_factory=dict)
    processes: list[ProcessSample] = field(default_factory=list)


@dataclass
class _Holder:
    agent: bool = False
    refused: set[int] = field(default_factory=set)  # pids it named that the daemon would not take


class Enforcer:
    def __init__(
        self,
        manager: LeaseManager,
        backend: Backend,
        watchdog: Watchdog,
        sample_interval_s: float,
        mps: dict[int, MpsControl] | None = None,
    ) -> None:
        self.manager = manager
        self.backend = backend
        self.watchdog = watchdog
        self.sample_interval_s = sample_interval_s
        self.mps = mps or {}
        self.mps_up: dict[int, bool] = {index: True for index in self.mps}
        self.tracker = ProcessTracker()
        self._holders: dict[str, _Holder] = {}
        self.measured: dict[str, Measured] = {}
        self.gpu_samples: dict[int, GpuSample] = {}
        self.unleased: list[ProcessSample] = []
        self.labels: dict[int, tuple[str, str]] = {}  # pid -> (command name, user) of measured processes
        self._kills: set[asyncio.Task[None]] = set()
        manager.listeners.append(self._on_changes)

    # ----- what holders report --------------------------------------------------

    def report(self, lease_id: str, uid: int, pids: list[int], agent: bool) -> None:
        """A local holder names its processes; ClaimRefused (once per process) when it may not."""
        holder = self._holders.setdefault(lease_id, _Holder())
        holder.agent = agent
        fresh = [pid for pid in pids if pid not in holder.refused]
        if fresh:
            try:
                self.tracker.claim(lease_id, fresh, uid)
            except ClaimRefused:
                holder.refused.update(fresh)
                raise

    def adopt_worker(self, lease_id: str, pid: int) -> None:
        """A remote lease's worker, started by the daemon itself, is one of the lease's processes."""
        self.tracker.claim(lease_id, [pid], os.getuid())

    # ----- what the API shows ---------------------------------------------------

    def mps_uid(self, uid: int | None, gpu_count: int) -> int | None:
        """The MPS user a new lease's processes will run as, or None when they will not use MPS:
        MPS serves single-GPU leases; a remote caller's processes here are the daemon's workers;
        and a control daemon that is not root can start MPS servers only for its own user."""
        if not self.mps or gpu_count != 1:
            return None
        if uid is None:
            return os.geteuid()  # a remote caller's processes here are the daemon's workers
        return uid if os.geteuid() in (0, uid) else None

    def mps_pipe(self, lease: Lease, gpu_index: int) -> str:
        """The pipe directory a lease's processes use on that GPU, when they run under MPS."""
        control = self.mps.get(gpu_index)
        if control is None or lease.mps_uid is None or not self.mps_up.get(gpu_index):
            return ""
        return str(control.pipe_dir)

    @property
    def watchdog_policy(self) -> WatchdogPolicy:
        return self.watchdog.policy

    def over_limit(self, lease_id: str) -> tuple[float | None, float | None]:
        """Since when the lease's use has been over its partition, and when the watchdog ends it
        for that (None: it is not over, or will not be ended)."""
        return self.watchdog.over_since.get(lease_id), self.watchdog.deadline(lease_id)

    def tier(self, lease: Lease) -> str:
        """The strongest tier protecting the lease: mps, agent, watchdog or none."""
        if lease.mps_uid is not None and lease.allocations and all(self.mps_pipe(lease, i) for i in lease.allocations):
            return "mps"
        holder = self._holders.get(lease.id)
        if holder is not None and holder.agent:
            return "agent"
        if self.watchdog.policy.mode != "off" and self.tracker.has(lease.id):
            return "watchdog"
        return "none"

    # ----- the loop ---------------------------------------------------------------

    async def run(self) -> None:
        """Sample, judge and act until cancelled; MPS control daemons are checked as it goes."""
        loop = asyncio.get_running_loop()
        next_mps_check = loop.time() + MPS_CHECK_EVERY_S
        while True:
            try:
                jobs = {lease.id: lease.slurm_job for lease in self.manager.active() if lease.slurm_job}
                sample, owners, running = await asyncio.to_thread(self._measure, jobs)
                self._keep_jobs_alive(running)
                await self._judge(sample, owners)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed measurement must not stop the daemon; say so and go on
                log.error("enforcement.sample_failed", error=exc)
            if self.mps and loop.time() >= next_mps_check:
                next_mps_check = loop.time() + MPS_CHECK_EVERY_S
                await self._check_mps()
            await asyncio.sleep(self.sample_interval_s)

    def _measure(self, jobs: dict[str, str]) -> tuple[Sample, dict[int, str], list[str]]:
        """Measure; ``jobs`` (lease id -> Slurm job) are anchored to their step daemons first.
        Returns the sample, pid -> lease, and the job leases whose jobs still run here."""
        steps = step_daemons(set(jobs.values()))
        for lease_id, job in jobs.items():
            self.tracker.anchor(lease_id, steps.get(job, []))
        sample = self.backend.sample()
        owners = self.tracker.owners()
        labels = {pid: self.labels.get(pid) or process_label(pid) for pid in {p.pid for p in sample.processes}}
        self.labels = labels
        return sample, owners, [lease_id for lease_id, job in jobs.items() if job in steps]

    def _keep_jobs_alive(self, lease_ids: list[str]) -> None:
        """A running Slurm job is its lease's heartbeat (one ended meanwhile is left alone)."""
        for lease_id in lease_ids:
            with contextlib.suppress(BitshareError):
                if not self.manager.peek(lease_id).state.ended:
                    self.manager.heartbeat(lease_id)

    async def _judge(self, sample: Sample, owners: dict[int, str]) -> None:
        manager = self.manager
        self.gpu_samples = {g.index: g for g in sample.gpus}
        measured: dict[str, Measured] = {}
        use: dict[str, LeaseUse] = {}
        unleased: list[ProcessSample] = []
        for process in sample.processes:
            lease_id = owners.get(process.pid)
            if lease_id is None:
                unleased.append(process)
                continue
            entry = measured.setdefault(lease_id, Measured(sample.at))
            entry.processes.append(process)
            entry.used_mib[process.gpu_index] = entry.used_mib.get(process.gpu_index, 0) + process.used_mib
            entry.sm_pct[process.gpu_index] = min(100, entry.sm_pct.get(process.gpu_index, 0) + process.sm_pct)
            use.setdefault(lease_id, LeaseUse()).add(process.gpu_index, process.used_mib)
        self.measured = measured
        self.unleased = unleased
        for lease_id, entry in measured.items():
            if any(entry.sm_pct.values()):
                manager.note_activity(lease_id, sample.at)
        partitions = {lease.id: lease.allocations for lease in manager.active()}
        for verdict in self.watchdog.judge(sample.at, partitions, use):
            await self._act(verdict)

    async def _act(self, verdict: Verdict) -> None:
        lease = self.manager.peek(verdict.lease_id)
        if lease.state.ended:
            return
        if verdict.kind == "warn":
            await self.manager.warn(lease.id, "over_limit", verdict.detail)
        elif verdict.kind == "clear":
            await self.manager.warn(lease.id, "within_limit", verdict.detail)
        elif verdict.kind == "end":
            await self.manager.revoke(lease.id, f"over its partition: {verdict.detail}")

    # ----- ending processes -------------------------------------------------------

    def _on_changes(self, changes: list[Change]) -> None:
        for change in changes:
            lease = change.lease
            if lease.state.ended and self.tracker.has(lease.id):
                task = asyncio.ensure_future(self._end_processes(lease.id, change.detail))
                self._kills.add(task)
                task.add_done_callback(self._kills.discard)
            if lease.state.ended:
                self._holders.pop(lease.id, None)
                self.measured.pop(lease.id, None)

    async def _end_processes(self, lease_id: str, why: str) -> None:
        """Make sure the ended lease's processes are gone by the end of the grace period.

        The holder is told first and ends them itself; what is left after a short
        holder's turn gets SIGTERM from here, and what is left at the grace period SIGKILL.
        """
        loop = asyncio.get_running_loop()
        grace = self.watchdog.policy.grace_s
        started = loop.time()
        problems: list[str] = []
        try:
            for sig, at in ((signal.SIGTERM, min(HOLDER_TURN_S, grace / 4)), (signal.SIGKILL, grace)):
                while loop.time() < started + at:
                    if not await asyncio.to_thread(self.tracker.processes, lease_id):
                        return
                    await asyncio.sleep(min(0.25, self.sample_interval_s))
                sent, refused = await asyncio.to_thread(self.tracker.signal, lease_id, sig)
                problems += refused
                if sent:
                    log.warning(
                        "enforcement.signal", lease=lease_id, signal=sig.name, processes=sent, detail=f"lease {why}"
                    )
            for problem in dict.fromkeys(problems):
                log.error("enforcement.cannot_signal", lease=lease_id, detail=problem)
        finally:
            if not await asyncio.to_thread(self.tracker.processes, lease_id):
                self.tracker.forget(lease_id)

    # ----- MPS --------------------------------------------------------------------

    async def _check_mps(self) -> None:
        """A control daemon that died is restarted, and an MPS server that vanished while its
        clients were running is reported; the leases running under either are told."""
        for index, control in self.mps.items():
            if await asyncio.to_thread(control.alive):
                servers = await asyncio.to_thread(control.server_pids)
                if servers is None:
                    control.silent += 1
                    log.warning("mps.silent", gpu=index, detail="the MPS control daemon runs but does not answer")
                    if control.silent < MPS_SILENT_LIMIT:
                        continue
                    await asyncio.to_thread(control.stop)  # hung: treated as dead, restarted below
                else:
                    control.silent = 0
                    gone = {pid: uid for pid, uid in control.servers.items() if pid not in servers}
                    control.servers = servers
                    # A server also exits when the last client of its user leaves and another user's
                    # client arrives; only that user's leases with running processes can have lost work.
                    for uid in set(gone.values()):
                        if self._mps_holders(index, uid):
                            log.error("mps.server_exited", gpu=index, uid=uid)
                            await self._tell_mps_holders(index, f"the MPS server of GPU {index} exited", uid)
                    continue
            self.mps_up[index] = False
            log.error("mps.died", gpu=index, detail="the MPS control daemon is gone; restarting it")
            await self._tell_mps_holders(index, f"the MPS control daemon of GPU {index} died")
            try:
                await asyncio.to_thread(control.end_orphan_servers)
                await asyncio.to_thread(control.start)
            except Exception as exc:
                log.error("mps.restart_failed", gpu=index, error=exc)
                continue
            control.restarts += 1
            self.mps_up[index] = True
            log.event("mps.restarted", gpu=index, pid=control.pid)

    def _mps_holders(self, gpu_index: int, uid: int | None = None) -> list[Lease]:
        """Active MPS leases on the GPU (of that user) whose processes run now."""
        return [
            lease
            for lease in self.manager.active()
            if gpu_index in lease.allocations
            and lease.mps_uid is not None
            and uid in (None, lease.mps_uid)
            and self.tracker.has(lease.id)
        ]

    async def _tell_mps_holders(self, gpu_index: int, what: str, uid: int | None = None) -> None:
        for lease in self._mps_holders(gpu_index, uid):
            await self.manager.warn(
                lease.id, "mps_failed", f"{what}; CUDA work of this lease may have failed and must be restarted"
            )

    async def close(self) -> None:
        for task in list(self._kills):
            task.cancel()
        for task in list(self._kills):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for control in self.mps.values():
            await asyncio.to_thread(control.stop)
