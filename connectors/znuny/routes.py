"""Which URL and method reach each operation ticketd uses: the stock layouts, and a config override.

GenericTicketConnectorREST exists in (at least) two stock layouts that admins import: the development
sample (TicketSearch as `GET /Ticket`, what the 7.0.19 recordings show) and the example shipped in the
release tree, `var/webservices/examples/` (TicketSearch as `POST /Ticket/Search`, also the layout of
ticketd's own `deploy/znuny/ticketd-webservice.yml`). Znuny cannot list a web service's routes, so the
connector probes them (see `ZnunyConnector.detect_routes`) unless `routes:` names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

_ROUTE = re.compile(r"^(GET|POST|PATCH|PUT) (/\S*)$")


@dataclass(frozen=True)
class Route:
    """One operation's HTTP method and path; `:TicketID` in the path stands for the ticket."""

    method: str
    path: str

    @classmethod
    def parse(cls, text: str) -> Route:
        """`"POST /Ticket/Search"` -> Route; the error says what a route looks like."""
        match = _ROUTE.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a route: write METHOD /path, e.g. 'POST /Ticket/Search'")
        return cls(match.group(1), match.group(2))

    def url(self, ticket_id: str | None = None) -> str:
        """The path with the ticket id filled in (ids of several tickets joined by commas stay as they are)."""
        if ticket_id is None:
            return self.path
        return self.path.replace(":TicketID", quote(ticket_id, safe=","))

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Routes:
    """The four operations ticketd calls; `layout` says where they came from, for `ticketd check`."""

    session_create: Route
    ticket_search: Route
    ticket_get: Route
    ticket_update: Route
    layout: str


_SESSION = Route("POST", "/Session")
_GET = Route("GET", "/Ticket/:TicketID")
_UPDATE = Route("PATCH", "/Ticket/:TicketID")

# Probed in this order: the layouts differ only in TicketSearch.
LAYOUTS = (
    Routes(_SESSION, Route("GET", "/Ticket"), _GET, _UPDATE, "development sample layout"),
    Routes(_SESSION, Route("POST", "/Ticket/Search"), _GET, _UPDATE, "release example / ticketd layout"),
)
DEFAULTS = {"session_create": _SESSION, "ticket_get": _GET, "ticket_update": _UPDATE}
HOW_TO_ADD = (
    "import deploy/znuny/ticketd-webservice.yml (bin/znuny.Console.pl Admin::WebService::Add --name ticketd "
    "--source-path ticketd-webservice.yml) or add the operation in Admin -> Web Services, "
    "or name its route under routes: in the connector's config"
)
