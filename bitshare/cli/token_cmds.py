"""``bitshare token create``: make a bearer token for TCP callers and record its hash."""

from __future__ import annotations

import contextlib
import grp
import os
import re
from pathlib import Path

import typer

from ..config import ConfigError
from ..daemon.api.auth import ROLES, hash_token, load_tokens, new_token
from ..errors import EXIT_CONFIG, BitshareError, UsageError
from .base import JSON, app, emit
from .output import say

token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens for clients and admins on TCP.")
app.add_typer(token_app, name="token")


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Who the token is for (shown as owner token:NAME)."),
    role: str = typer.Option("client", "--role", help="client or admin."),
    tokens_file: Path = typer.Option(Path("/etc/bitshare/tokens.toml"), "--file", help="The daemon's tokens file."),
    json_output: bool = JSON,
) -> None:
    """Create a token, append its SHA-256 to the tokens file, and print the token once."""
    if role not in ROLES:
        raise UsageError(f"--role must be client or admin, got {role!r}")
    if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", name):
        raise UsageError(f"--name may use letters, digits and ._@- (1-64 characters), got {name!r}")
    try:
        existing = load_tokens(tokens_file) if tokens_file.exists() else []
    except ConfigError as exc:
        raise BitshareError(str(exc), exit_code=EXIT_CONFIG) from None
    if any(t.name == name for t in existing):
        raise UsageError(f"{tokens_file} already has a token named {name!r}")
    token = new_token()
    entry = f'\n[[token]]\nname = "{name}"\nrole = "{role}"\nsha256 = "{hash_token(token)}"\n'
    try:
        tokens_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tokens_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(fd, "a") as handle:
            handle.write(entry)
        with contextlib.suppress(KeyError, PermissionError):  # the packaged daemon runs as group bitshare
            os.chown(tokens_file, -1, grp.getgrnam("bitshare").gr_gid)
    except OSError as exc:
        raise BitshareError(f"cannot write {tokens_file}: {exc.strerror}") from None
    emit(ctx, json_output, {"name": name, "role": role, "file": str(tokens_file), "token": token}, token)
    say(f"bitshare: token {name!r} ({role}) added to {tokens_file}; reload bitshared (SIGHUP) to use it", err=True)
