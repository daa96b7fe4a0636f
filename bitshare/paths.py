"""Where bitshare keeps sockets, state and per-user files."""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from pathlib import Path

from .errors import Denied

SYSTEM_CONFIG = Path("/etc/bitshare/bitshare.toml")
SYSTEM_CLIENT_CONFIG = Path("/etc/bitshare/client.toml")  # the host's client settings (servers, CA)
SYSTEM_STATE_DIR = Path("/var/lib/bitshare")
SYSTEM_SOCKET = Path("/run/bitshare/bitshared.sock")
SYSTEM_USER = "bitshare"  # the system daemon runs as this user (packaging/bitshared.service)


def is_root() -> bool:
    return os.geteuid() == 0


def user_runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR/bitshare, else a private directory under /tmp."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        return Path(base) / "bitshare"
    return Path("/tmp") / f"bitshare-{os.getuid()}"


def user_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "bitshare"


def user_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bitshare" / "client.toml"


def default_state_dir() -> Path:
    return SYSTEM_STATE_DIR if is_root() else user_state_dir()


def embedded_socket() -> Path:
    """The socket of the per-user daemon that client verbs start when no server is configured."""
    return user_runtime_dir() / "bitshared.sock"


def ensure_private_dir(path: Path) -> Path:
    """Create the directory for this user only; refuse one that someone else owns or can write.

    (In /tmp another user could create it first and put a socket of theirs in it.)
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return check_private_dir(path)


def check_private_dir(path: Path) -> Path:
    """Refuse a directory that is not this user's own, or that others can write (raises Denied)."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise Denied(f"{path} is not a private directory of this user; remove it or set XDG_RUNTIME_DIR")
    return path


def daemon_uids() -> set[int]:
    """Whose daemons a client trusts: its own user's, root's and the system daemon's user's."""
    uids = {os.getuid(), 0}
    with contextlib.suppress(KeyError):  # no such user: no system daemon installed here
        uids.add(pwd.getpwnam(SYSTEM_USER).pw_uid)
    return uids


def check_socket_path(path: Path, owners: set[int]) -> Path:
    """The socket's real path, once no one outside ``owners`` (and root) can have put it there or
    can replace it: every directory above it is theirs and not writable by others (unless sticky,
    like /tmp, where others cannot move what is not theirs), and the socket is theirs.

    Raises Denied, or FileNotFoundError when there is no socket.
    """
    real = Path(os.path.realpath(path))
    trusted = owners | {0}
    for directory in reversed(real.parents):
        info = directory.stat()
        if info.st_uid not in trusted:
            raise Denied(f"refusing the socket {path}: {directory} belongs to uid {info.st_uid}")
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise Denied(f"refusing the socket {path}: others can write to {directory}")
    info = real.lstat()
    if not stat.S_ISSOCK(info.st_mode):
        raise Denied(f"refusing {path}: it is not a socket")
    if info.st_uid not in owners:
        raise Denied(f"refusing the socket {path}: it belongs to uid {info.st_uid}")
    return real
