"""Assemble and run bitshared: backend, store, ledger, gRPC listeners, housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import signal
import ssl
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .. import __version__, log
from ..address import Address, parse_address
from ..config import DaemonConfig
from ..errors import ConfigError, StartupError
from ..protocol.v1 import bitshare_pb2 as pb
from ..protocol.v1 import bitshare_pb2_grpc as pb_grpc
from ..units import format_mib
from . import systemd
from .api.auth import Authenticator, load_or_create_secret, load_tokens
from .api.local_credentials import remove_stale_socket, serve_credentials
from .api.metrics import LeaseCounters
from .api.metrics import render as render_metrics
from .api.metrics_http import MetricsServer
from .api.service import AdminService, LeaseService, Shared
from .api.streams import StreamsEndAtStop
from .backends import Backend, select_backend
from .enforcement.enforcer import Enforcer
from .enforcement.mps import MpsControl, MpsUnavailable, control_binary
from .enforcement.watchdog import Watchdog, WatchdogPolicy
from .state.manager import LeaseManager
from .state.model import Gpu, Policy
from .state.store import Store, StoreError, UnusableState, trusted_owner
from .workers.bulk_port import BulkPort
from .workers.relay import RemoteRelay

MAX_MESSAGE = 64 * 1024 * 1024
SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["LeaseService"].full_name,
    pb.DESCRIPTOR.services_by_name["AdminService"].full_name,
    pb.DESCRIPTOR.services_by_name["RemoteService"].full_name,
)


# What unary calls in flight at a stop get to finish; streams are ended at once (StreamsEndAtStop).
STOP_GRACE_S = 0.5
# How long, once everything is closed, the calls a stop cut short get to finish their own
# cleanup (a holder's detach, a store write in a thread) before the event loop ends.
SETTLE_S = 5.0


@dataclass
class _Running:
    server: grpc.aio.Server
    streams: StreamsEndAtStop
    bulk: BulkPort | None
    cred_servers: list[asyncio.AbstractServer] = field(default_factory=list)
    sockets: list[Path] = field(default_factory=list)


def lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive lock on the state directory for the daemon's life."""
    if state_dir.exists() and not state_dir.is_dir():
        raise UnusableState(f"the state directory {state_dir} is not a directory")
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        owner = state_dir.stat().st_uid
        if not trusted_owner(owner):  # its owner could replace the state file with anything
            raise UnusableState(
                f"the state directory {state_dir} is owned by uid {owner}, "
                f"not by this daemon's user (uid {os.geteuid()})"
            )
        fd = os.open(state_dir / "bitshared.lock", os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise StartupError(f"cannot use the state directory {state_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StartupError(f"another bitshared is using the state directory {state_dir}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _check_reserve(backend: Backend, reserve_mib: int) -> None:
    """A reserve at or above a GPU's memory leaves that GPU lending nothing. On every GPU it is
    surely a mistake (a daemon that can grant nothing at all): the start is refused. On some
    GPUs only, it may be meant (a small display GPU beside large ones), so the daemon starts
    and says which GPUs lend nothing."""
    empty = [gpu for gpu in backend.gpus if reserve_mib >= gpu.total_mib]
    if not empty:
        return
    named = ", ".join(f"GPU {gpu.index} ({format_mib(gpu.total_mib)})" for gpu in empty)
    if len(empty) == len(backend.gpus):
        raise ConfigError(
            f"reserve = {format_mib(reserve_mib)} leaves nothing to lend: it is at or above the memory of {named}"
        )
    log.warning("daemon.reserve", detail=f"reserve = {format_mib(reserve_mib)} leaves {named} lending nothing")


def _check_tls_material(cert: Path, key: Path) -> None:
    """Refuse a certificate or key that does not parse, or a key that is not the certificate's,
    before anything listens (gRPC would only say that it failed to bind). An expired or not yet
    valid certificate is a warning: local callers on the Unix socket are served either way, and a
    renewed certificate is often only a restart away; TLS clients will refuse it meanwhile."""
    try:
        ssl.create_default_context(cafile=str(cert))
    except ssl.SSLError:
        raise ConfigError(f"TLS certificate {cert} is not a PEM certificate") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS certificate {cert}: {exc.strerror}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"TLS key {key} does not match the certificate {cert}") from None
        raise ConfigError(f"TLS key {key} is not an unencrypted PEM private key") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS key {key}: {exc.strerror}") from None
    _warn_of_validity(cert)
    if key.stat().st_mode & stat.S_IROTH:  # anyone on this host could impersonate the daemon
        log.warning("daemon.tls_key_readable", key=key, detail="the TLS private key is readable by every user")


def _warn_of_validity(cert: Path) -> None:
    # The standard library reads a certificate's dates only through this helper (which its own
    # tests use); without it the dates go unchecked, and the TLS handshake still checks them.
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # type: ignore[attr-defined]
    if decode is None:
        return
    try:
        decoded = decode(str(cert))
        not_before = ssl.cert_time_to_seconds(decoded["notBefore"])
        not_after = ssl.cert_time_to_seconds(decoded["notAfter"])
    except (ssl.SSLError, KeyError, ValueError):
        return
    now = time.time()
    if now > not_after:
        log.warning("daemon.tls_expired", cert=cert, expired=decoded["notAfter"], detail=_CLIENTS_REFUSE)
    elif now < not_before:
        log.warning("daemon.tls_not_yet_valid", cert=cert, valid_from=decoded["notBefore"], detail=_CLIENTS_REFUSE)


_CLIENTS_REFUSE = "TLS clients will refuse this daemon until its certificate is valid"


def _server_credentials(config: DaemonConfig, address: Address) -> grpc.ServerCredentials | None:
    """TLS credentials for a TCP listener, None for plaintext (loopback or explicitly allowed)."""
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise ConfigError("TLS needs both tls_cert and tls_key")
        try:
            key = Path(config.tls_key).read_bytes()
            cert = Path(config.tls_cert).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read TLS key or certificate: {exc}") from None
        return grpc.ssl_server_credentials([(key, cert)])
    if address.is_loopback or config.allow_insecure_tcp:
        return None
    raise ConfigError(
        f"refusing plaintext TCP on {address}: set tls_cert and tls_key, listen on loopback, "
        "or set allow_insecure_tcp = true"
    )


class Daemon:
    """One bitshared: call :meth:`run` to serve until stopped."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.addresses = [parse_address(a) for a in config.listen]
        # Checked (and TLS files read) before any state is touched; None means plaintext.
        if config.tls_cert and config.tls_key and any(a.kind == "tcp" for a in self.addresses):
            _check_tls_material(Path(config.tls_cert), Path(config.tls_key))
        self.tcp_credentials = {
            address: _server_credentials(config, address) for address in self.addresses if address.kind == "tcp"
        }
        if any(a.kind == "tcp" for a in self.addresses) and not config.tokens_file:
            log.warning(
                "daemon.no_tokens", detail="TCP listener without a tokens file: no remote caller can authenticate"
            )
        self.stop_event = asyncio.Event()

    async def run(self) -> int:
        """Serve until a signal (0) or a fatal error in housekeeping or enforcement (1). Each part
        registers its own teardown as it starts; they run in reverse order, however the run ends."""
        async with contextlib.AsyncExitStack() as stack:
            backend, store = self._open_state(stack)
            shared = await self._assemble(stack, backend, store)
            store.start()
            await shared.manager.tick()  # persist what restoring changed (leases on GPUs that are gone)
            await self._serve(stack, shared)
            tasks = [
                asyncio.ensure_future(self._housekeeping(shared.manager)),
                asyncio.ensure_future(shared.enforcer.run()),
            ]
            for task in tasks:
                stack.callback(task.cancel)
            gc.freeze()  # start-up objects never become garbage: keep them out of every collection
            systemd.notify("READY=1")
            log.event(
                "daemon.ready",
                listen=",".join(str(a) for a in self.addresses),
                gpus=len(backend.gpus),
                leases=len(shared.manager.live()),
            )
            return await self._until_stopped(tasks)
        raise AssertionError("unreachable: the exit stack swallows nothing")

    def _open_state(self, stack: contextlib.AsyncExitStack) -> tuple[Backend, Store]:
        """Lock the state directory, choose the backend, open the store. What is refused is refused
        in one line, before the state or anything else is opened."""
        config = self.config
        state_dir = Path(config.state_dir)
        stack.callback(os.close, lock_state_dir(state_dir))
        backend = select_backend(config)
        stack.callback(backend.close)
        if config.mps == "on" and backend.simulated:
            raise ConfigError("mps = on needs NVIDIA GPUs; this daemon serves simulated GPUs")
        _check_reserve(backend, config.reserve_mib)
        store = Store(state_dir, history_s=config.history_days * 86400)
        stack.callback(store.close)
        log.event("daemon.starting", version=__version__, pid=os.getpid(), state_dir=state_dir)
        if backend.simulated:
            log.warning("daemon.simulated", detail=backend.describe())
        else:
            log.event("daemon.gpus", detail=backend.describe())
        return backend, store

    async def _assemble(self, stack: contextlib.AsyncExitStack, backend: Backend, store: Store) -> Shared:
        """MPS, the manager over the restored ledger, enforcement and authentication."""
        config = self.config
        runtime_dir = config.runtime_path()
        with _refused_on_os_error("the runtime directory", runtime_dir):
            runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        mps = await asyncio.to_thread(self._start_mps, backend, runtime_dir / "mps")
        stack.push_async_callback(_stop_mps, mps)  # a no-op for those the enforcer has stopped
        manager = self._restore(backend, store, set(mps))
        watchdog = Watchdog(WatchdogPolicy(config.watchdog, config.grace_s, backend.context_mib))
        enforcer = Enforcer(manager, backend, watchdog, config.sample_interval_s, mps)
        stack.push_async_callback(enforcer.close)
        simgpu = ""
        if backend.simulated:
            with _refused_on_os_error("the runtime directory", runtime_dir):
                backend.open_registry(runtime_dir / "simgpu")
            simgpu = str(runtime_dir / "simgpu")
        tokens = load_tokens(Path(config.tokens_file)) if config.tokens_file else []
        state_dir = Path(config.state_dir)
        with _refused_on_os_error("the state directory", state_dir):
            secret = load_or_create_secret(state_dir)
        auth = Authenticator(secret, tokens, config.admin_group)
        return Shared(
            manager,
            auth,
            backend.name,
            backend.simulated,
            time.time(),
            enforcer,
            simgpu,
            str(runtime_dir),
            config.max_client_priority,
        )

    async def _serve(self, stack: contextlib.AsyncExitStack, shared: Shared) -> None:
        """The gRPC listeners, then the metrics endpoint (stopped first), then the signals."""
        await self._listen(stack, shared, shared.auth)
        if self.config.metrics_listen:
            metrics = await self._serve_metrics(shared)
            stack.push_async_callback(metrics.stop)
        self._install_signals(shared.auth)

    async def _until_stopped(self, tasks: list[asyncio.Future[None]]) -> int:
        stop = asyncio.ensure_future(self.stop_event.wait())
        await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
        systemd.notify("STOPPING=1")
        for task in (stop, *tasks):
            task.cancel()
        failed = any(task.done() and not task.cancelled() and task.exception() is not None for task in tasks)
        log.event("daemon.stopping", reason="fatal error" if failed else "signal")
        return 1 if failed else 0

    async def _serve_metrics(self, shared: Shared) -> MetricsServer:
        """The Prometheus endpoint: the ledger's transitions counted from now on, the rest read
        at each scrape."""
        counters = LeaseCounters()
        shared.manager.listeners.append(counters)
        me = psutil.Process()

        def scrape() -> str:
            positions = shared.manager.queue_positions()
            leases = [shared.lease_pb(lease, positions.get(lease.id, 0)) for lease in shared.manager.live()]
            cpu = me.cpu_times()
            usage = (cpu.user + cpu.system, me.memory_info().rss)
            return render_metrics(shared.gpus_pb(None), leases, counters, time.time(), usage)

        address = parse_address(self.config.metrics_listen)
        server = MetricsServer(address.host, address.port, scrape)
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(f"cannot serve metrics on {address.target}: {exc.strerror or exc}") from None
        log.event("daemon.metrics", listen=f"{address.target}/metrics")
        return server

    def _start_mps(self, backend: Backend, base_dir: Path) -> dict[int, MpsControl]:
        """One MPS control daemon per GPU when the config asks for MPS (``auto``: when it can run)."""
        mode = self.config.mps
        if mode == "off":
            return {}
        if backend.simulated:
            return {}
        started: dict[int, MpsControl] = {}
        try:
            binary = control_binary()
            for gpu in backend.gpus:
                control = MpsControl(gpu.index, gpu.uuid, base_dir, binary)
                control.start()
                started[gpu.index] = control
                log.event("mps.started", gpu=gpu.index, pid=control.pid, pipe=control.pipe_dir)
        except MpsUnavailable as exc:
            for control in started.values():
                control.stop()
            if mode == "on":
                raise StartupError(f"mps = on, but MPS cannot run: {exc}") from None
            log.warning("mps.off", detail=f"MPS is not used: {exc}")
            return {}
        return started

    def _restore(self, backend: Backend, store: Store, mps_gpus: set[int]) -> LeaseManager:
        config = self.config
        policy = Policy(
            lease_ttl_s=config.lease_ttl_s,
            max_ttl_s=config.max_ttl_s,
            aging_s=config.aging_s,
            starvation_s=config.starvation_s,
            idle_timeout_s=config.idle_timeout_s,
        )

        def gpus(drained: set[str]) -> list[Gpu]:
            return [
                Gpu(
                    g.index,
                    g.uuid,
                    g.name,
                    g.total_mib,
                    min(config.reserve_mib, g.total_mib),
                    g.uuid in drained,
                    mps=g.index in mps_gpus,
                )
                for g in backend.gpus
            ]

        manager = LeaseManager.from_store(store, gpus, policy)
        restored = manager.live()
        if restored:
            log.event("daemon.restored", leases=len(restored))
        return manager

    async def _listen(self, stack: contextlib.AsyncExitStack, shared: Shared, auth: Authenticator) -> None:
        """Listen on every address. The teardown is registered before the first one: it closes and
        removes whatever was set up, so a later address that fails leaves nothing behind."""
        streams = StreamsEndAtStop()
        server = grpc.aio.server(
            interceptors=[streams],
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.so_reuseport", 0),
            ],
        )
        pb_grpc.add_LeaseServiceServicer_to_server(LeaseService(shared), server)
        pb_grpc.add_AdminServiceServicer_to_server(AdminService(shared), server)
        bulk = self._bulk_port()
        server.add_generic_rpc_handlers((RemoteRelay(shared, bulk).handler(),))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        running = _Running(server, streams, bulk)
        stack.push_async_callback(_stop_listening, running)
        for address in self.addresses:
            if address.kind == "unix":
                path = Path(address.path)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                except OSError as exc:
                    raise StartupError(f"cannot listen on {address}: {exc.strerror}") from None
                remove_stale_socket(path)
                try:
                    server.add_insecure_port(address.target)
                except RuntimeError:
                    raise StartupError(f"cannot listen on {address}: cannot bind the socket there") from None
                running.sockets.append(path)  # bound by this start: removed by its teardown
                cred_path = Path(address.credentials_path)
                try:
                    os.chmod(path, 0o666)  # who may do what is decided per call, by identity
                    running.cred_servers.append(await serve_credentials(cred_path, auth))
                    running.sockets.append(cred_path)  # only now ours: a live one is never taken
                except OSError as exc:
                    raise StartupError(f"cannot listen on {address}: {exc.strerror}") from None
            else:
                credentials = self.tcp_credentials[address]
                try:
                    if credentials is None:
                        server.add_insecure_port(address.target)
                    else:
                        server.add_secure_port(address.target, credentials)
                except RuntimeError as exc:
                    raise StartupError(f"cannot listen on {address}: {exc}") from None
        if bulk is not None:
            await self._start_bulk_port(bulk)
        await server.start()
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    def _bulk_port(self) -> BulkPort | None:
        """Remote sessions' bulk data from other hosts, where the daemon listens on TCP: TLS as
        the TCP listeners are (plaintext only where they are plaintext)."""
        if self.config.bulk_port == 0 or not any(a.kind == "tcp" for a in self.addresses):
            return None
        if self.config.tls_cert and self.config.tls_key:
            return BulkPort(self.config.tls_cert, self.config.tls_key)
        return BulkPort()

    async def _start_bulk_port(self, bulk: BulkPort) -> None:
        tcp = [a for a in self.addresses if a.kind == "tcp"]
        port = self.config.bulk_port if self.config.bulk_port > 0 else (tcp[0].port + 1 if tcp[0].port else 0)
        try:
            await bulk.start([a.host for a in tcp], port)
        except OSError as exc:
            await bulk.close()
            why = exc.strerror or str(exc)
            if self.config.bulk_port > 0:
                raise StartupError(f"cannot listen for bulk data on port {port} (bulk_port): {why}") from None
            # Not asked for by name: the daemon serves, and remote clients' bulk data takes the stream.
            log.warning("daemon.no_bulk_port", port=port, detail=f"{why}; set bulk_port to choose another")
            return
        log.event("daemon.bulk_port", port=bulk.port, tls=bulk.tls)

    async def _housekeeping(self, manager: LeaseManager) -> None:
        """Expire silent holders, time out waiters and move the queue, several times per TTL."""
        interval = max(0.05, min(1.0, self.config.lease_ttl_s / 10))
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(StoreError):  # the manager now refuses changes until it can write
                await manager.tick()

    def _install_signals(self, auth: Authenticator) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_tokens, auth)

    def _reload_tokens(self, auth: Authenticator) -> None:
        """SIGHUP: read the tokens file again; a bad file keeps the tokens already loaded."""
        if not self.config.tokens_file:
            log.event("daemon.reload", tokens=0, detail="no tokens file configured")
            return
        try:
            tokens = load_tokens(Path(self.config.tokens_file))
        except ConfigError as exc:
            log.error("daemon.reload_failed", error=exc)
            return
        auth.replace_tokens(tokens)
        log.event("daemon.reload", tokens=len(tokens))


@contextlib.contextmanager
def _refused_on_os_error(what: str, path: Path) -> Iterator[None]:
    """An OSError inside refuses the start in one line naming ``what`` and the path that failed."""
    try:
        yield
    except OSError as exc:
        raise StartupError(f"cannot use {what} {exc.filename or path}: {exc.strerror}") from None


async def _stop_listening(running: _Running) -> None:
    running.streams.end_all()
    await running.server.stop(grace=STOP_GRACE_S)
    if running.bulk is not None:
        await running.bulk.close()
    for cred in running.cred_servers:
        cred.close()
    for path in running.sockets:
        path.unlink(missing_ok=True)


async def _stop_mps(mps: dict[int, MpsControl]) -> None:
    for control in mps.values():
        await asyncio.to_thread(control.stop)


async def settle(timeout: float) -> None:
    """Wait up to ``timeout`` for the tasks still running to finish. gRPC's stop returns once its
    core has ended the calls, while their Python handlers may still be unwinding; asyncio.run
    would cancel those, cutting their cleanup short (and gRPC prints a traceback for each)."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if not others:
        return
    _, pending = await asyncio.wait(others, timeout=timeout)
    if pending:
        log.warning("daemon.unfinished", tasks=len(pending), detail=f"still running {timeout:g} s after the stop")


async def _run_then_settle(daemon: Daemon) -> int:
    status = await daemon.run()
    await settle(SETTLE_S)
    return status


def run_daemon(config: DaemonConfig) -> int:
    """Run bitshared in the foreground until SIGTERM/SIGINT; returns the exit status."""
    return asyncio.run(_run_then_settle(Daemon(config)))
