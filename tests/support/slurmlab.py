"""A real Slurm cluster on localhost, made by the test itself: munged, slurmctld and one slurmd
(node ``localhost``) with plain files standing in for GPUs, each GPU offered as ``gres/gpu`` and
as ``gres/shard``.

    with slurm_lab(prolog=path) as lab:
        job = lab.sbatch("#!/bin/sh\\nhostname\\n", "--gres=shard:4")
        lab.wait_job(job, {"COMPLETED"}, timeout=20)
        print(lab.output(job))

Everything lives in its own directory under /tmp (mode 0755, so the job user can reach its
files), on free ports, with its own munge socket and key: labs never meet each other or a site's
Slurm. When the block ends, also when it raised, its jobs are cancelled, its daemons stopped,
every process it left (slurmstepd, job processes) ended and the directory removed; a later lab
also removes one whose test run was killed before it could. Every daemon and command runs with
``SLURM_CONF`` and ``BITSHARE_SLURMLAB`` (the lab's directory) set and in the lab's directory:
that, and slurmstepd's sockets in the lab's spool, is how its leftovers are told apart from any
other Slurm's processes. It needs root and Debian's slurm-wlm 22.05 and munge; ``skip_reason()``
says why it cannot run here.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from .harness import free_port, wait_for

NODE = "localhost"
LAB_PREFIX = "bs-slurmlab-"
PARTITION = "main"
MARK = "BITSHARE_SLURMLAB"  # in the environment of every process of a lab: its directory
DAEMONS = ("munged", "slurmctld", "slurmd")
# With accounting: a private MariaDB and slurmdbd, so that sacct answers.
ACCOUNTING = ("mariadbd", "slurmdbd")
ACCOUNTING_TOOLS = ("mariadb-install-db", "sacct", "sacctmgr")
COMMANDS = ("sbatch", "scontrol", "sinfo", "squeue", "scancel")
COMMAND_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 20.0
# Finished jobs stay visible to scontrol this long, so a test can still read how they ended.
MIN_JOB_AGE_S = 600
LOG_TAIL = 3000
# A requeued job waits the credential's lifetime (+1 s) before it may start again: 120 s by default.
CRED_EXPIRE_S = 5
_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
_ACTIVE = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING"}
# Pending jobs are looked at every 2 s (not 60 s), so one that became eligible runs soon.
FAST_SCHEDULING = ("sched_interval=2",)

# Fields of `scontrol show job|node -o` whose values are free text and may hold spaces, even
# " word=value": inside one, only a key Slurm itself prints (below) starts the next field.
_FREE_TEXT = {"AdminComment", "Comment", "SystemComment", "Reason", "JobName", "Command", "WorkDir"}
_KNOWN_KEYS = frozenset(
    """
    JobId ArrayJobId ArrayTaskId JobName UserId GroupId MCS_label Priority Nice Account QOS JobState
    Reason Dependency Requeue Restarts BatchFlag Reboot ExitCode DerivedExitCode RunTime TimeLimit
    TimeMin SubmitTime EligibleTime AccrueTime StartTime EndTime Deadline SuspendTime
    SecsPreSuspend LastSchedEval Scheduler Partition AllocNode:Sid ReqNodeList ExcNodeList NodeList
    BatchHost NumNodes NumCPUs NumTasks CPUs/Task ReqB:S:C:T TRES Socks/Node NtasksPerN:B:S:C
    CoreSpec MinCPUsNode MinMemoryNode MinMemoryCPU MinTmpDiskNode Features DelayBoot OverSubscribe
    Contiguous Licenses Network Command WorkDir AdminComment Comment SystemComment StdErr StdIn
    StdOut Power TresPerNode TresPerJob TresPerTask CpusPerTres MemPerTres TresBind TresFreq
    NodeName Arch CoresPerSocket CPUAlloc CPUEfctv CPUTot CPULoad AvailableFeatures ActiveFeatures
    Gres GresDrain GresUsed NodeAddr NodeHostName Version OS RealMemory AllocMem FreeMem Sockets
    Boards State ThreadsPerCore TmpDisk Weight Owner MCS_label Partitions BootTime SlurmdStartTime
    LastBusyTime CfgTRES AllocTRES CapWatts CurrentWatts AveWatts ExtSensorsJoules ExtSensorsWatts
    ExtSensorsTemp ResumeAfterTime ReservationName Mem/Node Mem/CPU Nodes CPU_IDs Mem GRES JOB_GRES
    """.split()  # noqa: SIM905 (a list of words reads better than a hundred quoted strings)
)
_KEY = re.compile(r"(?:^| )([A-Za-z][A-Za-z0-9_:/.]*)=")


def skip_reason() -> str | None:
    """Why a Slurm lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "a Slurm lab needs root (its daemons run as root; jobs run as a local user)"
    for name in (*DAEMONS, *COMMANDS, "useradd", "runuser"):
        if shutil.which(name) is None and not os.path.exists(f"/usr/sbin/{name}"):
            return f"a Slurm lab needs {name} (apt-get install slurmctld slurmd slurm-client munge)"
    return None


def accounting_skip_reason() -> str | None:
    """Why a lab cannot keep accounting (slurmdbd on MariaDB) here, or None when it can."""
    for name in (*ACCOUNTING, *ACCOUNTING_TOOLS):
        if shutil.which(name) is None and not os.path.exists(f"/usr/sbin/{name}"):
            return f"accounting in a Slurm lab needs {name} (apt-get install slurmdbd mariadb-server)"
    return skip_reason()


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def job_user(name: str = "bsjob") -> tuple[str, int, int]:
    """A normal local user to run jobs as, made (with a home) if it does not exist: name, uid, gid."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        done = subprocess.run(
            [_binary("useradd"), "-m", name], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise RuntimeError(f"useradd -m {name} failed: {done.stderr.strip()}") from None
        entry = pwd.getpwnam(name)
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def parse_record(line: str) -> dict[str, str]:
    """The ``Key=Value`` fields of one line of ``scontrol show ... -o``; values may hold spaces."""
    fields: dict[str, str] = {}
    kept: list[re.Match[str]] = []
    for match in _KEY.finditer(line):
        # Inside a free-text value, an unknown " word=" is part of that text, not a new field.
        if kept and kept[-1].group(1) in _FREE_TEXT and match.group(1) not in _KNOWN_KEYS:
            continue
        kept.append(match)
    for index, match in enumerate(kept):
        end = kept[index + 1].start() if index + 1 < len(kept) else len(line)
        fields[match.group(1)] = line[match.end() : end].rstrip()  # Slurm pads some values
    return fields


class SlurmError(RuntimeError):
    """A Slurm command or daemon of the lab failed; the message holds what it said."""


class SlurmLab:
    """A running lab: its directory, environment, and the Slurm commands a test needs."""

    def __init__(
        self,
        root: Path,
        *,
        prolog: Path | str | None,
        task_prolog: Path | str | None,
        epilog: Path | str | None,
        gpus: int,
        shards_per_gpu: int,
        cpus: int,
        scheduler_parameters: str,
        extra_conf: str,
        accounting: bool = False,
    ) -> None:
        self.dir = root
        self.accounting = accounting
        self.db_port, self.dbd_port = (free_port(), free_port()) if accounting else (0, 0)
        self.jobs_dir = root / "jobs"
        self.conf = root / "slurm.conf"
        self.gres_conf = root / "gres.conf"
        self.munge_socket = root / "run" / "munge.sock"
        self.spool_dir = root / "spool"
        self.gpus, self.shards_per_gpu, self.cpus = gpus, shards_per_gpu, cpus
        self.ctld_port, self.slurmd_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "SBATCH_", "SQUEUE_", "SINFO_"))}
        env.update({"SLURM_CONF": str(self.conf), MARK: str(root)})
        self.env = env
        self._procs: dict[str, subprocess.Popen] = {}
        self._serial = 0
        self._write_files(prolog, task_prolog, epilog, scheduler_parameters, extra_conf)

    # ----- files -------------------------------------------------------------------------------

    def _write_files(
        self,
        prolog: Path | str | None,
        task_prolog: Path | str | None,
        epilog: Path | str | None,
        scheduler_parameters: str,
        extra_conf: str,
    ) -> None:
        for sub in ("run", "log", "state", "spool", f"spool/{NODE}"):
            (self.dir / sub).mkdir(mode=0o755)
        self.jobs_dir.mkdir()
        self.jobs_dir.chmod(0o1777)  # jobs run as another user and write their output here
        key = self.dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for index in range(self.gpus):
            (self.dir / f"gpu{index}").write_text("")  # slurmd only checks that the file exists
        self.gres_conf.write_text(
            "".join(
                f"Name=gpu File={self.dir}/gpu{i}\nName=shard Count={self.shards_per_gpu} File={self.dir}/gpu{i}\n"
                for i in range(self.gpus)
            )
        )
        log, run = self.dir / "log", self.dir / "run"
        lines = [
            "ClusterName=lab",
            f"SlurmctldHost={NODE}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket},cred_expire={CRED_EXPIRE_S}",
            "CredType=cred/munge",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            f"StateSaveLocation={self.dir}/state",
            f"SlurmdSpoolDir={self.spool_dir}/%n",
            f"SlurmctldPidFile={run}/slurmctld.pid",
            f"SlurmdPidFile={run}/slurmd.pid",
            f"SlurmctldLogFile={log}/slurmctld.log",
            f"SlurmdLogFile={log}/slurmd.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            *self._accounting_lines(),
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "GresTypes=gpu,shard",
            "MpiDefault=none",
            "ReturnToService=2",
            "MailProg=/bin/true",
            f"MinJobAge={MIN_JOB_AGE_S}",
            # Every job gets an "extern" step (a slurmstepd for the job's whole life).
            "PrologFlags=Contain",
            "SlurmdParameters=config_overrides",  # the node may claim more CPUs than the host has
            "KillWait=2",  # a cancelled job's processes get SIGKILL 2 s after SIGTERM (not 30 s)
        ]
        # The caller's parameters first: Slurm takes the first of a name given twice.
        lines.append("SchedulerParameters=" + ",".join(filter(None, [scheduler_parameters, *FAST_SCHEDULING])))
        for key_name, path in (("Prolog", prolog), ("TaskProlog", task_prolog), ("Epilog", epilog)):
            if path is not None:
                lines.append(f"{key_name}={Path(path).resolve()}")
        gres = f" Gres=gpu:{self.gpus},shard:{self.gpus * self.shards_per_gpu}" if self.gpus else ""
        lines += [
            f"NodeName={NODE} NodeHostname={NODE} CPUs={self.cpus}{gres} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        ]
        if extra_conf:
            lines.append(extra_conf.strip())
        self.conf.write_text("\n".join(lines) + "\n")
        self.conf.chmod(0o644)
        if self.accounting:
            dbd = self.dir / "slurmdbd.conf"  # slurmdbd reads it beside SLURM_CONF, and only if 0600
            dbd.write_text(
                "\n".join(
                    [
                        "AuthType=auth/munge",
                        f"AuthInfo=socket={self.munge_socket}",
                        f"DbdHost={NODE}",
                        f"DbdPort={self.dbd_port}",
                        "SlurmUser=root",
                        f"LogFile={log}/slurmdbd.log",
                        f"PidFile={run}/slurmdbd.pid",
                        "StorageType=accounting_storage/mysql",
                        "StorageHost=127.0.0.1",
                        f"StoragePort={self.db_port}",
                        "StorageUser=root",
                        "StorageLoc=slurm_acct_db",
                    ]
                )
                + "\n"
            )
            dbd.chmod(0o600)
        # Who owns the lab: a later lab ends this one if its owner died without closing it.
        me = psutil.Process()
        (self.dir / "owner").write_text(f"{me.pid} {me.create_time()}\n")

    def _accounting_lines(self) -> list[str]:
        if not self.accounting:
            return ["AccountingStorageType=accounting_storage/none"]
        return [
            "AccountingStorageType=accounting_storage/slurmdbd",
            f"AccountingStorageHost={NODE}",
            f"AccountingStoragePort={self.dbd_port}",
            # How slurmctld and sacct reach slurmdbd: this names their munge socket.
            f"AccountingStoragePass={self.munge_socket}",
        ]

    # ----- daemons -----------------------------------------------------------------------------

    def _argv(self, name: str) -> list[str]:
        run, log = self.dir / "run", self.dir / "log"
        if name == "munged":
            return [
                _binary("munged"),
                "--foreground",
                "--force",  # a key and socket under /tmp: munged's ownership checks would refuse them
                f"--socket={self.munge_socket}",
                f"--key-file={self.dir}/munge.key",
                f"--pid-file={run}/munged.pid",
                f"--log-file={log}/munged.log",
                f"--seed-file={self.dir}/state/munge.seed",
            ]
        if name == "mariadbd":
            return [
                _binary("mariadbd"),
                "--no-defaults",
                f"--datadir={self.dir}/db",
                f"--socket={run}/mariadb.sock",
                f"--port={self.db_port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--user=root",
                f"--pid-file={run}/mariadbd.pid",
                f"--log-error={log}/mariadbd.log",
            ]
        if name == "slurmdbd":
            return [_binary("slurmdbd"), "-D"]
        if name == "slurmctld":
            return [_binary("slurmctld"), "-D", "-i", "-f", str(self.conf)]
        return [_binary("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)]

    def _spawn(self, name: str) -> None:
        with open(self.dir / "log" / f"{name}.out", "ab") as out:  # the daemon keeps its own copy
            self._procs[name] = subprocess.Popen(
                self._argv(name),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
                cwd=self.dir,
                start_new_session=True,  # a ^C in the test's terminal is not theirs
            )

    def _start(self, name: str, ready: Callable[[], object], what: str) -> None:
        self._spawn(name)
        proc = self._procs[name]
        try:
            wait_for(lambda: proc.poll() is not None or ready(), START_TIMEOUT_S, what)
        except AssertionError as exc:
            raise SlurmError(f"{exc}\n{self.logs()}") from None
        if proc.poll() is not None:
            raise SlurmError(f"{name} exited {proc.returncode} at start\n{self.logs()}")

    def _stop(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)

    def pid(self, name: str) -> int | None:
        """The pid of one of the lab's daemons while it runs (munged, slurmctld, slurmd)."""
        proc = self._procs.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    def _ctld_up(self) -> bool:
        done = self._run("scontrol", "ping", check=False, timeout=5)
        return done.returncode == 0 and "is UP" in done.stdout

    def _slurmd_answers(self) -> bool:
        return self._run("scontrol", "show", "slurmd", check=False, timeout=5).returncode == 0

    def _log_text(self, name: str) -> str:
        path = self.dir / "log" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        """Start munged, slurmctld and slurmd, and wait until the node is idle."""
        self._start("munged", self.munge_socket.exists, "munged to make its socket")
        if self.accounting:
            self._start_accounting()
        self._start("slurmctld", self._ctld_up, "slurmctld to answer")
        self._start("slurmd", lambda: self.node_state() == "IDLE", "the node to be idle")

    def _start_accounting(self) -> None:
        """A private MariaDB, slurmdbd on it, and the lab's cluster registered there."""
        done = subprocess.run(
            [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.dir}/db", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=self.env, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise SlurmError(f"mariadb-install-db failed: {(done.stderr or done.stdout)[-LOG_TAIL:]}")
        self._start("mariadbd", (self.dir / "run" / "mariadb.sock").exists, "MariaDB to listen")
        self._start("slurmdbd", lambda: "started" in self._log_text("slurmdbd"), "slurmdbd to start")
        self._run("sacctmgr", "-i", "add", "cluster", "lab")

    def sacct(self, job_id: int, *fields: str) -> list[dict[str, str]]:
        """What accounting holds of a job: one row per job and step, the ``fields`` asked."""
        done = self._run("sacct", "-n", "-P", "-j", str(job_id), f"--format={','.join(fields)}")
        return [dict(zip(fields, line.split("|"), strict=True)) for line in done.stdout.splitlines() if line]

    def restart_slurmctld(self) -> None:
        """Stop slurmctld and start it again (it recovers its state); returns once it answers."""
        self._stop("slurmctld")
        self._start("slurmctld", self._ctld_up, "slurmctld to answer after its restart")

    def restart_slurmd(self) -> None:
        """Stop slurmd and start it again; returns once the new one has started and answers.
        Running jobs go on: their slurmstepd processes do not depend on slurmd."""
        seen = len(self._log_text("slurmd"))
        self._stop("slurmd")
        self._start(
            "slurmd",
            lambda: "slurmd started on" in self._log_text("slurmd")[seen:] and self._slurmd_answers(),
            "slurmd to answer after its restart",
        )

    # ----- commands ----------------------------------------------------------------------------

    def _run(
        self, *argv: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_S, user: str | None = None, **kw
    ) -> subprocess.CompletedProcess:
        command = list(argv) if user in (None, "root") else [_binary("runuser"), "-u", user, "--", *argv]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=self.env, check=False, **kw
            )
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{' '.join(argv)} did not answer in {timeout:g}s\n{self.logs()}") from None
        if check and done.returncode != 0:
            raise SlurmError(f"{' '.join(argv)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
        return done

    def scontrol(self, *args: str) -> str:
        """Run ``scontrol args`` as root and return what it printed; fails with its error."""
        return self._run("scontrol", *args).stdout

    def sbatch(self, script: str, *args: str, user: str = "bsjob") -> int:
        """Submit ``script`` (its text, written to jobs_dir) with sbatch's ``args`` as ``user``
        (root, or a local user made if needed); returns the job id. Its output goes to
        ``jobs_dir/<job id>.out`` (see ``output``) unless ``args`` say otherwise."""
        if user != "root":
            job_user(user)
        self._serial += 1
        path = self.jobs_dir / f"script-{self._serial}.sh"
        path.write_text(script)
        path.chmod(0o755)
        done = self._run(
            "sbatch", "--parsable", f"--output={self.jobs_dir}/%j.out", *args, str(path), user=user, cwd=self.jobs_dir
        )
        return int(done.stdout.strip().split(";")[0])

    def output(self, job_id: int) -> str:
        """What a job submitted by ``sbatch`` wrote to its output file so far ("" if none yet)."""
        path = self.jobs_dir / f"{job_id}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def job(self, job_id: int, *, detail: bool = False) -> dict[str, str]:
        """The fields of ``scontrol show job -o`` (``detail``: with ``-d``, which adds the GPU
        indexes a job holds, e.g. GRES=shard:4(IDX:0)); {} for a job slurmctld does not know
        (never submitted, or finished more than MIN_JOB_AGE_S ago)."""
        argv = ["scontrol", "show", "job", "-o", *(["-d"] if detail else []), str(job_id)]
        done = self._run(*argv, check=False)
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:
                return {}
            raise SlurmError(f"scontrol show job {job_id} failed: {done.stderr.strip()}")
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        return parse_record(lines[0]) if lines else {}

    def wait_job(self, job_id: int, states: set[str], timeout: float = 30.0) -> dict[str, str]:
        """Wait until the job's JobState is one of ``states``; returns its fields. Fails at once
        when the job ended in another state, and on timeout, with what the job and logs say."""
        seen: dict[str, str] = {}

        def reached() -> bool:
            nonlocal seen
            seen = self.job(job_id)
            state = seen.get("JobState", "")
            if state not in states and state in _ENDED:
                raise AssertionError(f"job {job_id} ended {state}, not {'|'.join(sorted(states))}: {seen}")
            return state in states

        try:
            wait_for(reached, timeout, f"job {job_id} to be {'|'.join(sorted(states))}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it is {seen or '(unknown to slurmctld)'}\n{self.logs()}") from None
        return seen

    def squeue(self) -> list[dict[str, str]]:
        """The jobs slurmctld still holds, unfinished ones and those that finished recently:
        JobId, State, Reason, User, Gres, Name each."""
        done = self._run("squeue", "-h", "-a", "-t", "all", "-o", "%i\t%T\t%r\t%u\t%b\t%j")
        keys = ("JobId", "State", "Reason", "User", "Gres", "Name")
        return [dict(zip(keys, line.split("\t", 5), strict=True)) for line in done.stdout.splitlines() if line]

    def running(self) -> list[dict[str, str]]:
        """The jobs that are running now."""
        return [job for job in self.squeue() if job["State"] == "RUNNING"]

    def wait_running(self, n: int, timeout: float = 30.0) -> list[dict[str, str]]:
        """Wait until exactly ``n`` jobs run; returns them."""
        try:
            return wait_for(lambda: jobs if len(jobs := self.running()) == n else None, timeout, f"{n} jobs to run")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the queue is {self.squeue()}\n{self.logs()}") from None

    def scancel(self, job_id: int) -> None:
        """Cancel one job (it may take a moment to end: wait_job for it)."""
        self._run("scancel", str(job_id))

    def node(self) -> dict[str, str]:
        """The fields of ``scontrol show node -o`` for the lab's node."""
        return parse_record(self._run("scontrol", "show", "node", "-o", NODE).stdout.strip())

    def node_state(self) -> str:
        """The node's state as sinfo says it, upper case: IDLE, MIXED, ALLOCATED, DRAINED, ..."""
        return self._run("sinfo", "-h", "-n", NODE, "-o", "%T").stdout.strip().upper()

    def node_reason(self) -> str:
        """Why the node is drained or down, as ``sinfo -R`` says it ("" when it is not)."""
        return self._run("sinfo", "-h", "-R", "-n", NODE, "-o", "%E").stdout.strip()

    def resume_node(self, timeout: float = 20.0) -> None:
        """Put a drained or down node back in service; returns once slurmctld has it responding
        and neither drained nor down (a resumed node answers slurmctld's next ping first)."""
        self._run("scontrol", "update", f"NodeName={NODE}", "State=RESUME")

        def back() -> bool:
            state = self.node().get("State", "")
            return not any(flag in state for flag in ("DRAIN", "DOWN", "NOT_RESPONDING", "FAIL"))

        try:
            wait_for(back, timeout, "the node to be back in service")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it is {self.node().get('State')}\n{self.logs()}") from None

    def logs(self) -> str:
        """The tails of the lab's logs: slurmctld, slurmd and munged (and what a daemon wrote to
        its stderr, when its log file is empty: errors before its log opened)."""
        parts = []
        for name in (*DAEMONS, *(ACCOUNTING if self.accounting else ())):
            text = self._log_text(name)
            source = f"{name}.log"
            if not text.strip():
                out = self.dir / "log" / f"{name}.out"
                text, source = (out.read_text(errors="replace") if out.exists() else ""), f"{name} stderr"
            if text.strip():
                parts.append(f"--- {source} (tail) ---\n{text[-LOG_TAIL:]}")
        return "\n".join(parts) or "(no logs)"

    # ----- the end -----------------------------------------------------------------------------

    def _cancel_all(self) -> None:
        """Cancel every job and wait (with a deadline) until none is pending, running or ending."""
        if self.pid("slurmctld") is None or self.pid("slurmd") is None:
            return
        with contextlib.suppress(SlurmError, AssertionError):  # the daemons are stopped next anyway
            self._run("scancel", f"--partition={PARTITION}", check=False)
            wait_for(lambda: not [j for j in self.squeue() if j["State"] in _ACTIVE], DRAIN_TIMEOUT_S, "jobs to end")

    def processes(self) -> list[psutil.Process]:
        """Every process of this lab still alive: its daemons, slurmstepd, jobs, and their children."""
        return lab_processes(self.dir)

    def close(self) -> None:
        """Cancel the jobs, stop the daemons, end whatever else of the lab still runs."""
        self._cancel_all()
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            self._stop(name)
        _end(lab_processes(self.dir))


def _belongs(proc: psutil.Process, root: str) -> bool:
    """Whether ``proc`` is one of the lab's in ``root``: it carries the lab's mark, works inside
    the lab (slurmd's children, slurmstepd among them, keep its working directory; jobs work in
    jobs_dir), or is a slurmstepd serving a socket in the lab's spool."""
    inside = root + "/"
    with contextlib.suppress(psutil.Error):
        cwd = proc.cwd()
        if cwd == root or cwd.startswith(inside):
            return True
    with contextlib.suppress(psutil.Error):
        if proc.environ().get(MARK) == root:
            return True
    with contextlib.suppress(psutil.Error):
        if proc.name().startswith("slurmstepd"):
            connections = getattr(proc, "net_connections", None) or proc.connections  # psutil < 6
            return any(str(c.laddr).startswith(inside) for c in connections("unix"))
    return False


def lab_processes(root: Path) -> list[psutil.Process]:
    """The live processes of the lab in ``root`` (see ``_belongs``) and all their descendants."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        if proc.pid != os.getpid() and _belongs(proc, str(root)):
            found[proc.pid] = proc
    for proc in list(found.values()):
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
    alive = []
    for proc in found.values():
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def _owner_alive(root: Path) -> bool:
    """Whether the process that made the lab in ``root`` still runs (True while it is being made)."""
    try:
        pid, created = (root / "owner").read_text().split()
    except (OSError, ValueError):
        return time.time() - root.stat().st_mtime < START_TIMEOUT_S
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(created)) < 1
    except psutil.Error:
        return False


def _end_abandoned() -> None:
    """End and remove the labs whose owner died without closing them (a test run killed hard)."""
    for root in Path("/tmp").glob(f"{LAB_PREFIX}*"):
        with contextlib.suppress(OSError):
            if root.is_dir() and not _owner_alive(root):
                _end(lab_processes(root))
                shutil.rmtree(root, ignore_errors=True)


def _end(procs: list[psutil.Process]) -> None:
    """SIGTERM, then SIGKILL whatever is still there after STOP_TIMEOUT_S."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=STOP_TIMEOUT_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def slurm_lab(
    *,
    prolog: Path | str | None = None,
    task_prolog: Path | str | None = None,
    epilog: Path | str | None = None,
    gpus: int = 1,
    shards_per_gpu: int = 16,
    cpus: int = 8,
    scheduler_parameters: str = "nohold_on_prolog_fail",
    extra_conf: str = "",
    accounting: bool = False,
) -> Iterator[SlurmLab]:
    """A fresh lab with its node idle; ``prolog``, ``task_prolog``, ``epilog``: paths to
    executables slurmd runs (as root) for each job; ``accounting``: slurmdbd on a private MariaDB,
    so that ``sacct`` answers. Ended and removed when the block ends."""
    if gpus < 0 or shards_per_gpu < 1 or cpus < 1:
        raise ValueError(
            f"a lab needs gpus >= 0, shards_per_gpu >= 1, cpus >= 1 (not {gpus}, {shards_per_gpu}, {cpus})"
        )
    for path in (prolog, task_prolog, epilog):
        if path is not None and not os.access(path, os.X_OK):
            raise ValueError(f"not an executable: {path}")
    _end_abandoned()
    root = Path(tempfile.mkdtemp(prefix=LAB_PREFIX, dir="/tmp"))
    root.chmod(0o755)  # the job user reaches its scripts and output through it
    lab: SlurmLab | None = None
    try:
        lab = SlurmLab(
            root,
            prolog=prolog,
            task_prolog=task_prolog,
            epilog=epilog,
            gpus=gpus,
            shards_per_gpu=shards_per_gpu,
            cpus=cpus,
            scheduler_parameters=scheduler_parameters,
            extra_conf=extra_conf,
            accounting=accounting,
        )
        lab.start()
        yield lab
    finally:
        if lab is not None:
            lab.close()
        else:
            _end(lab_processes(root))
        shutil.rmtree(root, ignore_errors=True)
