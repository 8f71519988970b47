"""The REST API inside `ticketd run`: one event loop, sharing the daemon's model, metrics, readiness and pushes."""

from __future__ import annotations

from typing import Any

from daemon.errors import ConfigError
from daemon.logging import get_logger
from daemon.runtime.daemon import Daemon
from daemon.web.server import ApiServer
from daemon.web.services import DashboardSource, Services

log = get_logger(__name__)


async def start_api(daemon: Daemon) -> None:
    """Serve the API (and the dashboard) of a started daemon until it shuts down; nothing when `api.enabled` is off."""
    config = daemon.config
    if not config.api.enabled:
        return
    services = Services.from_config(
        config,
        model=daemon.model,
        metrics=daemon.metrics,
        readiness=daemon.readiness,
        retraining=daemon.retraining,
        dashboard=dashboard_source(daemon),
        hooks=daemon.receive_push,
        state=daemon.state,
        replica=daemon.leadership.replica if daemon.leadership is not None else "",
    )
    server = ApiServer(services)
    try:
        await server.start()
    except OSError as exc:
        raise ConfigError(f"api: {exc.strerror or exc}") from None
    daemon.api = server
    if config.api.dashboard:
        log.info("dashboard", url=dashboard_url(daemon))


def dashboard_url(daemon: Daemon) -> str | None:
    """Where /ui answers (None while the API is not listening or the dashboard is off)."""
    if daemon.api is None or not daemon.config.api.dashboard:
        return None
    return f"http://{daemon.config.api.host}:{daemon.api.port}/ui"


def dashboard_source(daemon: Daemon) -> DashboardSource:
    """What /ui reads of this process: the state, each connector's health, the routing rules."""

    def connectors() -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "type": w.entry.type,
                "mode": w.pipeline.mode,
                "state": w.coordinator.state,
                "failure": w.coordinator.failure_class,
                "reason": w.coordinator.reason if w.coordinator.state != "ok" else None,
                "last_success": w.coordinator.last_success.strftime("%Y-%m-%d %H:%M:%S UTC")
                if w.coordinator.last_success
                else None,
            }
            for name, w in daemon.stacks.items()
        ]

    def ticket_url(connector: str, ticket_id: str) -> str | None:
        stack = daemon.stacks.get(connector)
        return stack.connector.ticket_url(ticket_id) if stack is not None else None

    return DashboardSource(
        state=daemon.state,
        connectors=connectors,
        rules=lambda: {name: w.pipeline.rules for name, w in daemon.stacks.items()},
        include_ticket_text=lambda: daemon.config.log.include_ticket_text,
        ticket_url=ticket_url,
    )
