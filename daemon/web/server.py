"""Running the API under uvicorn: as a task in `ticketd run`'s event loop, or alone for `ticketd serve`."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from daemon.config import RESTART_ONLY, Config
from daemon.errors import TicketdError
from daemon.logging import get_logger
from daemon.ml.serving import Follower
from daemon.runtime.wiring import open_state, replica_id, share
from daemon.state import State
from daemon.training.champion import policy_from_config
from daemon.web.app import create_app
from daemon.web.services import Services

log = get_logger(__name__)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the daemon (which stops it by setting `should_exit`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(services: Services, **overrides: Any) -> uvicorn.Config:
    """uvicorn settings for the API: structlog stays the only logger, no access log (paths only, but noisy)."""
    options: dict[str, Any] = {
        "host": services.api.host,
        "port": services.api.port,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "server_header": False,
        # Forwarded headers are believed from api.trusted_proxies only (daemon/web/edge.py), not uvicorn's
        # default of whatever runs on 127.0.0.1.
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
    }
    options.update(overrides)
    return uvicorn.Config(create_app(services), **options)


def bind(host: str, port: int) -> socket.socket:
    """Listen before uvicorn starts, so a taken port is a clear OSError rather than uvicorn's sys.exit.

    The socket is made as TCP explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only for
    connections whose protocol says TCP, and without it every answer on a kept-alive connection waited
    ~40 ms for the client's delayed ACK (about 22 requests a second). Linux also copies the listening
    socket's TCP_NODELAY to each accepted connection.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"the API cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def settle_memory() -> None:
    """Once serving: what the process holds at start out of the collector's way, big buffers back to the system.

    - `gc.freeze()`: the imports and the loaded model (hundreds of thousands of objects) move to a permanent
      generation. A burst of large HTML tickets makes Python run full collections; over that heap each took
      ~100 ms holding the GIL, the slowest /healthz answers (test_stall.py: 94-110 ms, 28-33 ms frozen).
    - glibc's mmap threshold pinned at 1 MiB: by default glibc raises it to the largest block freed (up to
      32 MiB), so after the first ~10 MB request body later ones come from the heap and, freed, stay in the
      process wherever a small block sits above them (RSS 45-55 MB higher after a burst, 1 run in 15).
    """
    gc.freeze()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to pin
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 1 << 20)


class ApiServer:
    """The API as a task of a running event loop; `ticketd run` starts it after the daemon and stops it first."""

    def __init__(self, services: Services, **overrides: Any) -> None:
        self.services = services
        self.server = EmbeddedServer(uvicorn_config(services, **overrides))
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None  # the bound port (useful with port 0)

    async def start(self) -> None:
        """Start serving; returns once requests are accepted; OSError if the port cannot be bound."""
        config = self.server.config
        sock = bind(config.host, config.port)
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._serve(sock), name="api")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # re-raises the startup failure
                raise OSError("the API stopped during startup")
            await asyncio.sleep(0.05)
        log.info("api listening", host=config.host, port=self.port)

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self.server.serve(sockets=[sock])
        except SystemExit:  # uvicorn's answer to a failed lifespan startup; must not end the daemon's loop
            raise OSError("the API failed to start (see the log)") from None

    def reconfigure(self, config: Config) -> None:
        """A reloaded config (SIGHUP): tokens, public_classify and the retrain policy apply to the next request.

        The restart-only keys (socket, body limit, dashboard, proxies, hosts) keep their running values.
        """
        kept = {key: getattr(self.services.api, key) for key in RESTART_ONLY["api"]}
        self.services.api = config.api.model_copy(update=kept)
        self.services.policy = policy_from_config(config)

    async def stop(self) -> None:
        """Finish in-flight requests, cancel a training job, close the socket."""
        if self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


def serve(config: Config) -> int:
    """`ticketd serve`: the API alone, on the configured host and port, until SIGTERM/SIGINT; returns an exit code."""
    state = None
    replica = replica_id(config)
    # Replicas share models, datasets, jobs and the one training there; the dashboard keeps its sessions there
    # (on SQLite too), so a logout ends them for good and a restart keeps them.
    if State.is_shared_url(config.state.url) or config.api.dashboard:
        try:
            state = open_state(config)
        except TicketdError as exc:
            log.error("api cannot start", error=str(exc))
            return 1
    services = Services.from_config(config, state=state, replica=replica)
    if state is not None and state.shared:
        try:
            share(state, replica, services.model, services.retraining)
        except TicketdError as exc:
            log.error("api cannot start", error=str(exc))
            state.close()
            return 1
        follow(services, every=config.cluster.renew_interval)
    try:
        services.model.load()
    except (TicketdError, OSError) as exc:  # serve anyway: /readyz says 503 and training can make a model
        log.warning("no model loaded; classify answers 503 until one is trained or promoted", error=str(exc))
    try:
        sock = bind(services.api.host, services.api.port)
    except OSError as exc:
        log.error("api cannot start", error=str(exc))
        if state is not None:
            state.close()
        return 1
    log.info("api listening", host=services.api.host, port=sock.getsockname()[1])
    settle_memory()
    server = uvicorn.Server(uvicorn_config(services))
    try:
        server.run(sockets=[sock])
    finally:
        if state is not None:
            state.close()
    return 0 if server.started else 1


def follow(services: Services, every: float) -> threading.Thread:
    """`serve` on PostgreSQL: load what another replica or a command promoted, within `every` seconds."""
    follower = Follower(services.model)

    def loop() -> None:
        while True:
            time.sleep(every)
            if follower.tick():
                services.note_model()

    thread = threading.Thread(target=loop, name="model follower", daemon=True)
    thread.start()
    return thread
