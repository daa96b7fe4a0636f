"""The side socket where local callers learn their token: the kernel vouches for their uid."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from pathlib import Path

from ... import log
from .auth import Authenticator, user_name

_UCRED = struct.Struct("3i")  # pid, uid, gid


async def serve_credentials(path: Path, auth: Authenticator) -> asyncio.AbstractServer:
    """Listen on ``path``; each connection gets one JSON line with a token for its uid."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock: socket.socket = writer.get_extra_info("socket")
            _, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
            answer = {"token": auth.issue_local(uid), "uid": uid, "user": user_name(uid), "role": auth.local_role(uid)}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except OSError as exc:
            log.warning("auth.local_failed", error=exc)
        finally:
            writer.close()

    remove_stale_socket(path)
    server = await asyncio.start_unix_server(handle, path=str(path))
    os.chmod(path, 0o666)
    return server


def remove_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse to steal one that is live."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RuntimeError(f"cannot remove the stale socket {path}: {exc.strerror}") from None
        return
    except OSError as exc:
        raise RuntimeError(f"cannot use {path}: {exc.strerror}") from None  # not ours to remove
    finally:
        probe.close()
    raise RuntimeError(f"another process is listening on {path}")
