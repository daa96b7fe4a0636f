"""The metrics endpoint: ``GET /metrics`` over plain HTTP/1.1, for a Prometheus server to scrape.

Read-only and unauthenticated, like every Prometheus exporter: it shows lease ids, owners and
sizes, so it listens where the config says (loopback by default) and nowhere else. A request is
read with a size cap and a deadline, so a slow or oversized client costs nothing but its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ... import log

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT_S = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsServer:
    def __init__(self, host: str, port: int, render: Callable[[], str]) -> None:
        self.host, self.port = host, port
        self._render = render
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_REQUEST_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]  # the one given, or the one chosen for 0

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, path, *_ = [*head.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""]
            if method not in ("GET", "HEAD"):
                await _reply(writer, 405, "method not allowed\n", allow="GET, HEAD")
            elif path.split("?", 1)[0] != "/metrics":
                await _reply(writer, 404, "only /metrics is served here\n")
            else:
                body = self._render()
                await _reply(writer, 200, body, content_type=CONTENT_TYPE, head_only=method == "HEAD")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a slow, truncated or oversized request: dropped
        except Exception as exc:  # the daemon goes on; the scrape fails visibly
            log.error("metrics.failed", error=exc)
            with contextlib.suppress(ConnectionError):
                await _reply(writer, 500, "metrics failed\n")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _reply(
    writer: asyncio.StreamWriter,
    status: int,
    body: str,
    content_type: str = "text/plain; charset=utf-8",
    allow: str = "",
    head_only: bool = False,
) -> None:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}[status]
    data = body.encode()
    headers = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(data)}",
        "Connection: close",
    ]
    if allow:
        headers.append(f"Allow: {allow}")
    writer.write(("\r\n".join(headers) + "\r\n\r\n").encode() + (b"" if head_only else data))
    await writer.drain()
