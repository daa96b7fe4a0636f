"""Check bitshare's packages end to end (run as root; `make package-check`).

1. Build the .deb and .rpm for amd64 and arm64 (packaging/build.py), and for amd64 at an older
   version to upgrade from.
2. Lint the new ones: lintian and rpmlint, with the overrides in packaging/ only (each explained
   there). The older ones differ from them only in their version: they are not linted.
3. For each format, in a fresh Debian 12 root booted with its own systemd (mmdebstrap, then
   ``systemd-nspawn -b``): install the old version, see bitshared active as user bitshare and a
   local user's lease granted through it, edit the configuration, upgrade, see the new version
   serving with the edit kept, every launcher answer ``--help``, (in the .deb's root) a short
   ``bitshare bench seed`` draw its plots, and a running ``bitshare run`` keep a lease older than
   its TTL across ``systemctl restart bitshared``, remove (and purge), and see nothing left behind
   but what the distribution's policy keeps (the system user and group; rpm's .rpmsave of an edit).

The amd64 packages are installed; the arm64 ones are built and linted only (no arm64 machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD, NEW = "0.1.0", "0.1.1"
SUITE = "bookworm"  # Debian 12: Python 3.11, the packages' default target
INCLUDE = "systemd,systemd-sysv,dbus,python3,rpm,procps"
PATH_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
# What may differ in the root between before the install and after the removal: the system user
# and group the package made (kept, as Debian's and Fedora's policies ask), the package managers'
# own records, and what systemd and the boot write anyway.
EXPECTED_CHANGES = (
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid",
    "etc/subgid",
    "etc/ld.so.cache",
    "var/lib/dpkg/",
    "var/lib/rpm/",
    "var/lib/systemd/",
    "var/lib/dbus/",
    "var/log/",
    "var/cache/",
    "etc/machine-id",
    "etc/systemd/system/multi-user.target.wants/",
    "home/alice",
    "root/",
)


def log(message: str) -> None:
    print(f"[package-check] {message}", flush=True)


def sh(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], check=True, **kwargs)  # type: ignore[call-overload]


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"package-check: timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.25)


class Machine:
    """A Debian root booted with systemd-nspawn; commands run in it through nsenter."""

    def __init__(self, base: Path, work: Path, name: str) -> None:
        self.dir = work / name
        self.dir.mkdir()
        sh("tar", "--numeric-owner", "-xpf", base, "-C", self.dir)
        self.log = open(work / f"{name}.console", "wb")  # noqa: SIM115 - held while it runs
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--console=pipe",
             "-D", str(self.dir), "-M", name, "--boot"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.leader = int(wait_until(self._leader, 30, "the container's init"))
        state = wait_until(self._booted, 90, "the container to finish booting")
        log(f"{name}: booted ({state})")

    def _leader(self) -> int | None:
        if self.nspawn.poll() is not None:
            raise SystemExit(f"systemd-nspawn exited with {self.nspawn.returncode}")
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children").read_text().split()
        return int(children[0]) if children else None

    def _booted(self) -> str | None:
        state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
        return state if state in ("running", "degraded") else None

    def _inside(self, command: tuple[str, ...], user: str) -> list[str]:
        prefix = ["runuser", "-u", user, "--"] if user else []
        return ["nsenter", "-t", str(self.leader), "-a", "env", "-i", *PATH_ENV, *prefix, *command]

    def run(self, *command: str, check: bool = True, user: str = "") -> subprocess.CompletedProcess:
        result = subprocess.run(self._inside(command, user), capture_output=True, text=True)
        if check and result.returncode != 0:
            raise SystemExit(
                f"package-check: `{' '.join(command)}` exited with {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def spawn(self, *command: str, user: str = "") -> subprocess.Popen:
        """Start a command in the root and leave it running (its output is read at its end)."""
        return subprocess.Popen(self._inside(command, user), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def prepare(self, packages: tuple[Path, ...]) -> dict[str, tuple[int, int, int, int]]:
        """Add the local user alice, list the root's files (before anything is installed), and
        put the packages in /root; returns that listing."""
        self.run("useradd", "--create-home", "alice")
        before = self.files()
        for package in packages:
            shutil.copy(package, self.dir / "root")
        return before

    def unstage(self, packages: tuple[Path, ...]) -> None:
        for package in packages:
            (self.dir / "root" / package.name).unlink()

    def files(self) -> dict[str, tuple[int, int, int, int]]:
        """Every file and directory outside the kernel's and the boot's own (mode, uid, gid, size)."""
        listing = {}
        for path in self.dir.rglob("*"):
            name = str(path.relative_to(self.dir))
            if name.split("/", maxsplit=1)[0] in ("proc", "sys", "dev", "run", "tmp"):
                continue
            info = path.lstat()
            listing[name] = (info.st_mode, info.st_uid, info.st_gid, 0 if path.is_dir() else info.st_size)
        return listing

    def stop(self) -> None:
        self.run("systemctl", "poweroff", check=False)
        try:
            self.nspawn.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.nspawn.kill()
            self.nspawn.wait()
        self.log.close()


def build(version: str, out: Path, arches: tuple[str, ...]) -> None:
    log(f"building {version} (deb and rpm, {' and '.join(arches)})")
    flags = [f"--arch={arch}" for arch in arches]
    sh(sys.executable, ROOT / "packaging" / "build.py", "--version", version, *flags, "--out", out)


def lint(packages: Path) -> None:
    for deb in sorted(packages.glob("*.deb")):
        log(f"lintian {deb.name}")
        sh("lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", deb)
    for rpm in sorted(packages.glob("*.rpm")):
        log(f"rpmlint {rpm.name}")
        sh("rpmlint", "-c", ROOT / "packaging" / "rpm" / "rpmlint.toml", rpm)


def base_root(cache: Path) -> Path:
    """A minimal Debian root with systemd and Python, made once and kept under build/."""
    tarball = cache / f"debian-{SUITE}-{INCLUDE.replace(',', '_')}.tar"
    if not tarball.exists():
        log(f"mmdebstrap {SUITE} (once; kept as {tarball})")
        cache.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        sh("mmdebstrap", "--quiet", "--format=tar", "--variant=minbase", f"--include={INCLUDE}", SUITE, partial)
        partial.rename(tarball)
    return tarball


def service_state(machine: Machine) -> tuple[str, str, str]:
    """(is-active, its main process's user, the daemon's version as the client sees it)."""
    active = machine.run("systemctl", "is-active", "bitshared", check=False).stdout.strip()
    pid = machine.run("systemctl", "show", "-p", "MainPID", "--value", "bitshared").stdout.strip()
    user = machine.run("ps", "-o", "user=", "-p", pid, check=False).stdout.strip() if pid != "0" else ""
    shown = machine.run("bitshare", "--json", "version", check=False).stdout
    servers = json.loads(shown)["servers"] if shown.strip() else {}
    return active, user, ",".join(servers.values())


def serving(machine: Machine, version: str) -> None:
    def ready() -> bool:
        active, user, shown = service_state(machine)
        return active == "active" and user == "bitshare" and shown == version

    wait_until(ready, 60, f"bitshared {version} active as user bitshare")
    log(f"bitshared {version} is active, running as bitshare")


def lease_through_it(machine: Machine) -> None:
    """A local user (not an admin) gets a lease from the system daemon, by default."""
    result = machine.run(
        "bitshare", "run", "-p", "0.25", "--", "sh", "-c", 'echo "lease=$BITSHARE_LEASE_ID"', user="alice"
    )
    lease = next(line for line in result.stdout.splitlines() if line.startswith("lease="))
    assert lease != "lease=", result.stdout
    shown = machine.run("bitshare", "leases", "--all", "--ended").stdout
    assert lease.removeprefix("lease=") in shown, shown
    log(f"a lease was granted to alice through the system daemon ({lease})")


def reserves(machine: Machine) -> list[int]:
    """Each GPU's reserve in MiB, as the daemon reports it (none while it does not answer)."""
    shown = machine.run("bitshare", "--json", "list-gpus", check=False)
    if shown.returncode != 0:
        return []
    return [int(gpu["reserved_mib"]) for gpu in json.loads(shown.stdout)]


def edit_config(machine: Machine) -> None:
    config = machine.dir / "etc" / "bitshare" / "bitshare.toml"
    text = config.read_text()
    assert 'reserve = "512MiB"' in text
    config.write_text(text.replace('reserve = "512MiB"', 'reserve = "1GiB"  # edited by package-check'))
    machine.run("systemctl", "restart", "bitshared")
    wait_until(lambda: reserves(machine) == [1024], 30, "the edited reserve in force")
    log("edited /etc/bitshare/bitshare.toml (reserve 1GiB), in force after a restart")


def lease_state(machine: Machine, lease_id: str) -> tuple[str, str]:
    """(state, expires_at) of one lease, as an admin lists it."""
    shown = machine.run("bitshare", "--json", "leases", "--all", "--ended").stdout
    lease = next((lease for lease in json.loads(shown) if lease["id"] == lease_id), None)
    return (lease["state"], lease.get("expires_at") or "") if lease else ("", "")


HOLDER_TTL_S = 4  # short, so that the lease is several TTLs old when the daemon restarts


def holder_survives_restart(machine: Machine) -> None:
    """A lease held by a running ``bitshare run`` for longer than its TTL is kept across
    ``systemctl restart bitshared``: the holder reconnects, the lease stays active and kept
    alive, and the command ends with its own exit status."""
    config = machine.dir / "etc" / "bitshare" / "bitshare.toml"
    text = config.read_text()
    assert "\nttl_s = 30\n" in text
    config.write_text(text.replace("\nttl_s = 30\n", f"\nttl_s = {HOLDER_TTL_S}  # edited by package-check\n"))
    machine.run("systemctl", "restart", "bitshared")
    wait_until(lambda: service_state(machine)[0] == "active", 30, "bitshared back after the TTL edit")
    stop = "/home/alice/stop-holder"
    holder = machine.spawn(
        "bitshare", "run", "-p", "0.25", "--", "sh", "-c",
        f'echo "lease=$BITSHARE_LEASE_ID"; while [ ! -e {stop} ]; do sleep 0.1; done; exit 7',
        user="alice",
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        first = holder.stdout.readline().strip()
        assert first.startswith("lease=") and first != "lease=", first
        lease_id = first.removeprefix("lease=")
        held_since = time.monotonic()
        wait_until(lambda: time.monotonic() - held_since > 3 * HOLDER_TTL_S, 5 * HOLDER_TTL_S, "three TTLs")
        machine.run("systemctl", "restart", "bitshared")
        restarted = time.monotonic()
        wait_until(lambda: lease_state(machine, lease_id)[0] == "LEASE_STATE_ACTIVE", 30, "the restored lease")
        expiry = lease_state(machine, lease_id)[1]
        wait_until(lambda: time.monotonic() - restarted > 2 * HOLDER_TTL_S, 4 * HOLDER_TTL_S, "two TTLs")
        state, later = lease_state(machine, lease_id)
        assert state == "LEASE_STATE_ACTIVE" and later > expiry, (state, expiry, later)  # heartbeats arrive
        assert holder.poll() is None, holder.communicate()
        machine.run("touch", stop, user="alice")
        out, err = holder.communicate(timeout=60)
        assert holder.returncode == 7 and "ending the command" not in err, (holder.returncode, out, err)
        assert lease_state(machine, lease_id)[0] == "LEASE_STATE_RELEASED"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        machine.run("rm", "-f", stop)
    log(f"a lease held for {3 * HOLDER_TTL_S}+ s (TTL {HOLDER_TTL_S} s) was kept across systemctl restart")


LAUNCHERS = (
    "bitshare",
    "bitshared",
    "bitshare-admin",
    "bitshare-slurm-prolog",
    "bitshare-slurm-task-prolog",
    "bitshare-slurm-epilog",
)


def launchers_answer(machine: Machine) -> None:
    """Each command is a /usr/bin link into /opt/bitshare/bin, and ``--help`` there exits 0."""
    for name in LAUNCHERS:
        link = machine.dir / "usr" / "bin" / name
        assert link.is_symlink() and os.readlink(link) == f"/opt/bitshare/bin/{name}", name
        machine.run(name, "--help")
    log(f"{len(LAUNCHERS)} launchers in /usr/bin answer --help: {', '.join(LAUNCHERS)}")


def plots_drawn(machine: Machine) -> None:
    """A short ``bitshare bench seed`` by a local user draws its plots with the bundled matplotlib."""
    out = "/home/alice/seed"
    result = machine.run(
        "bitshare", "bench", "seed", "--load", "heavy", "--duration", "1", "--workloads", "mlp-small",
        "--out", out, user="alice",
    )  # fmt: skip
    assert "no plots" not in result.stderr, result.stderr
    drawn = machine.dir / out.lstrip("/")
    assert (drawn / "seed.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), result.stderr
    assert b"<svg" in (drawn / "seed.svg").read_bytes()[:2000], result.stderr
    log("bitshare bench seed (one workload, 1 s) drew seed.png and seed.svg with the bundled matplotlib")


def edit_kept(machine: Machine) -> None:
    config = (machine.dir / "etc" / "bitshare" / "bitshare.toml").read_text()
    assert "edited by package-check" in config, "the configuration edit was lost in the upgrade"
    assert reserves(machine) == [1024], machine.run("bitshare", "--json", "list-gpus").stdout
    log("the configuration edit was kept across the upgrade, and is in force")


def left_behind(before: dict, after: dict, allowed: tuple[str, ...]) -> list[str]:
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    return sorted(name for name in changed if not name.startswith(EXPECTED_CHANGES + allowed))


def check_deb(base: Path, work: Path, old: Path, new: Path) -> None:
    machine = Machine(base, work, "bitshare-deb")
    try:
        before = machine.prepare((old, new))
        machine.run("dpkg", "-i", f"/root/{old.name}")
        assert machine.run("systemctl", "is-enabled", "bitshared").stdout.strip() == "enabled"
        serving(machine, OLD)
        lease_through_it(machine)
        edit_config(machine)
        machine.run("dpkg", "-i", f"/root/{new.name}")
        serving(machine, NEW)
        edit_kept(machine)
        lease_through_it(machine)
        launchers_answer(machine)
        plots_drawn(machine)  # the rpm's /opt/bitshare is the same tree: drawn once
        holder_survives_restart(machine)
        machine.run("dpkg", "-r", "bitshare")
        assert machine.run("systemctl", "is-active", "bitshared", check=False).stdout.strip() != "active"
        assert not (machine.dir / "opt" / "bitshare").exists() and not (machine.dir / "usr/bin/bitshare").exists()
        log("removed: the service is stopped, /opt/bitshare and /usr/bin/bitshare are gone")
        machine.run("dpkg", "-P", "bitshare")
        machine.unstage((old, new))
        leftovers = left_behind(before, machine.files(), ())
        if leftovers:
            raise SystemExit("package-check: left behind after purge:\n  " + "\n  ".join(leftovers))
        assert machine.run("getent", "passwd", "bitshare").returncode == 0
        log("purged: nothing left behind but the bitshare system user and group")
    finally:
        machine.stop()


def check_rpm(base: Path, work: Path, old: Path, new: Path) -> None:
    machine = Machine(base, work, "bitshare-rpm")
    try:
        before = machine.prepare((old, new))
        # Debian's rpm database knows none of Debian's packages, so the package's requirement on
        # python(abi) = 3.11 cannot be resolved there: --nodeps (python3.11 is in the root).
        machine.run("rpm", "-i", "--nodeps", f"/root/{old.name}")
        # Fedora and RHEL policy: the package neither starts its service nor enables it itself;
        # the distribution's preset decides (Fedora's: disabled; this Debian root's: enabled),
        # and the admin starts it.
        enabled = machine.run("systemctl", "is-enabled", "bitshared", check=False).stdout.strip()
        assert enabled in ("enabled", "disabled"), enabled
        assert machine.run("systemctl", "is-active", "bitshared", check=False).stdout.strip() == "inactive"
        log(f"installed: bitshared {enabled} by the preset, not started (rpm policy)")
        machine.run("systemctl", "enable", "--now", "bitshared")
        serving(machine, OLD)
        lease_through_it(machine)
        edit_config(machine)
        machine.run("rpm", "-U", "--nodeps", f"/root/{new.name}")
        serving(machine, NEW)
        edit_kept(machine)
        lease_through_it(machine)
        launchers_answer(machine)
        holder_survives_restart(machine)
        machine.run("rpm", "-e", "bitshare")
        assert machine.run("systemctl", "is-active", "bitshared", check=False).stdout.strip() != "active"
        machine.unstage((old, new))
        saved = machine.dir / "etc" / "bitshare" / "bitshare.toml.rpmsave"
        assert "edited by package-check" in saved.read_text(), "rpm did not keep the edited configuration"
        leftovers = left_behind(before, machine.files(), ("etc/bitshare",))
        if leftovers:
            raise SystemExit("package-check: left behind after rpm -e:\n  " + "\n  ".join(leftovers))
        remaining = sorted(p.name for p in (machine.dir / "etc" / "bitshare").iterdir())
        assert remaining == ["bitshare.toml.rpmsave"], remaining
        log("erased: nothing left behind but the system user and group, and rpm's .rpmsave of the edit")
    finally:
        machine.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="Keep the work directory (the roots, logs).")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("package-check must run as root (it boots containers)")
    for tool in ("mmdebstrap", "systemd-nspawn", "nsenter", "lintian", "rpmlint"):
        if shutil.which(tool) is None:
            needs = "apt-get install mmdebstrap systemd-container rpm lintian rpmlint"
            raise SystemExit(f"package-check needs {tool} ({needs})")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bitshare-package-check-"))
    try:
        packages = work / "packages"
        build(OLD, packages / "old", ("amd64",))  # only installed, to upgrade from
        build(NEW, packages / "new", ("amd64", "arm64"))
        lint(packages / "new")
        base = base_root(ROOT / "build" / "package-check")
        (old_deb,), (new_deb,) = (sorted((packages / v).glob("*_amd64.deb")) for v in ("old", "new"))
        (old_rpm,), (new_rpm,) = (sorted((packages / v).glob("*.x86_64.rpm")) for v in ("old", "new"))
        check_deb(base, work, old_deb, new_deb)
        check_rpm(base, work, old_rpm, new_rpm)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log(f"all checks passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
