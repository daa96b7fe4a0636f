"""Response streams end at once when the daemon stops, with UNAVAILABLE and one clear message."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

STOPPING = "bitshared is stopping"


class StreamsEndAtStop(grpc.aio.ServerInterceptor):
    """At a stop, every response stream (holders' attach streams, telemetry, remote sessions)
    ends at once with UNAVAILABLE, "bitshared is stopping", and streams that arrive after it are
    refused so. Left to gRPC, a stream runs out the stop's grace period and is then cancelled,
    which gRPC logs as an error with a CancelledError traceback; a holder reconnects either way.
    """

    def __init__(self) -> None:
        self.stopping = False
        self._streams: set[asyncio.Task] = set()

    def end_all(self) -> None:
        self.stopping = True
        for task in list(self._streams):
            task.cancel()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not handler.response_streaming:
            return handler
        if handler.request_streaming:
            return handler._replace(stream_stream=self._wrap(handler.stream_stream))
        return handler._replace(unary_stream=self._wrap(handler.unary_stream))

    def _wrap(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        """The handler, ended at a stop; of the same kind (gRPC treats an async generator, which
        yields its replies, and a coroutine, which writes them, differently)."""
        if inspect.isasyncgenfunction(behaviour):

            async def generator_ended_at_stop(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                with self._ended_at_stop():
                    if not self.stopping:
                        async for reply in behaviour(request, context):
                            yield reply
                if self.stopping:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING)

            return generator_ended_at_stop

        async def writer_ended_at_stop(request: Any, context: grpc.aio.ServicerContext) -> None:
            with self._ended_at_stop():
                if not self.stopping:
                    await behaviour(request, context)
            if self.stopping:
                await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING)

        return writer_ended_at_stop

    @contextlib.contextmanager
    def _ended_at_stop(self) -> Iterator[None]:
        """Track the running stream, so that a stop can cancel it; that cancellation ends here."""
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self.stopping:  # the caller went away: gRPC's own cancellation
                raise
        finally:
            self._streams.discard(task)
