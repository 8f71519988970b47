"""Contract-suite backend: the connector against a real Znuny, through one of its web services.

Human-side actions (creating, moving, closing tickets; reading the history) go through the development
sample web service, which has TicketCreate and TicketHistoryGet, with a session of their own, so the
web service under test may be as small as ticketd's own (four operations).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.znuny import ZnunyConfig, ZnunyConnector

ADMIN_WEBSERVICE = "GenericTicketConnectorREST"  # the development sample: TicketCreate, GET /TicketHistory/:id
QUEUES = ["Billing", "Misc", "Hardware", "Technical Support", "Junk", "Postmaster"]


class LiveHarness:
    inbound = "Raw"
    target = "Billing"
    other = "Misc"
    priority = "4 high"

    def __init__(
        self,
        url: str,
        *,
        user: str,
        password: str,
        webservice: str,
        path_prefix: str | None = None,
        admin_webservice: str = ADMIN_WEBSERVICE,
        type_: str = "znuny",
        **names: str,
    ) -> None:
        for key, value in names.items():
            setattr(self, key, value)
        self._settings: dict[str, Any] = {
            "type": type_,
            "url": url,
            "user": user,
            "password": password,
            "webservice": webservice,
            "inbound_queues": [self.inbound],
            "queues": list(dict.fromkeys([self.target, self.other, *QUEUES])),
        }
        if path_prefix is not None:
            self._settings["path_prefix"] = path_prefix
        self._base = ZnunyConfig.model_validate({**self._settings, "webservice": admin_webservice}).base_url
        self._http = httpx.Client(timeout=30)
        answer = self._http.post(f"{self._base}/Session", json={"UserLogin": user, "Password": password})
        self._sid = answer.json()["SessionID"]
        self._clients: list[httpx.AsyncClient] = []

    def config(self, **overrides: Any) -> ZnunyConfig:
        return ZnunyConfig.model_validate({**self._settings, **overrides})

    def _call(self, method: str, route: str, **body: Any) -> dict[str, Any]:
        if method == "GET":
            r = self._http.get(f"{self._base}{route}", params={"SessionID": self._sid, **body})
        else:
            r = self._http.request(method, f"{self._base}{route}", json={"SessionID": self._sid, **body})
        data: dict[str, Any] = r.json()
        assert "Error" not in data, data
        return data

    def _ticket(self, ticket_id: str) -> dict[str, Any]:
        ticket: dict[str, Any] = self._call("GET", f"/Ticket/{ticket_id}")["Ticket"][0]
        return ticket

    async def connector(self, *, bad_auth: bool = False) -> Connector:
        client = httpx.AsyncClient(timeout=30)
        self._clients.append(client)
        return ZnunyConnector(self.config(password="WrongPassword") if bad_auth else self.config(), client)

    def add_ticket(self, subject: str, body: str, queue: str | None = None) -> str:
        ticket = {
            "Title": subject,
            "Queue": queue or self.inbound,
            "State": "new",
            "Priority": "3 normal",
            "CustomerUser": "ticketd-live@example.com",
        }
        article = {
            "CommunicationChannel": "Email",
            "SenderType": "customer",
            "IsVisibleForCustomer": 1,
            "From": "ticketd-live@example.com",
            "Subject": subject,
            "Body": body,
            "ContentType": "text/plain; charset=utf8",
        }
        return str(self._call("POST", "/Ticket", Ticket=ticket, Article=article)["TicketID"])

    def human_move(self, ticket_id: str, queue: str) -> None:
        self._call("PATCH", f"/Ticket/{ticket_id}", Ticket={"Queue": queue})

    def close(self, ticket_id: str, queue: str, priority: str) -> None:
        fields = {"Queue": queue, "Priority": priority, "State": "closed successful"}
        self._call("PATCH", f"/Ticket/{ticket_id}", Ticket=fields)

    def queue_of(self, ticket_id: str) -> str:
        return str(self._ticket(ticket_id)["Queue"])

    def priority_of(self, ticket_id: str) -> str | None:
        return str(self._ticket(ticket_id)["Priority"])

    def history(self, ticket_id: str) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = self._call("GET", f"/TicketHistory/{ticket_id}")["TicketHistory"][0]["History"]
        return history

    def writes(self, ticket_id: str) -> int:
        return sum(h["HistoryType"] in ("Move", "PriorityUpdate", "AddNote") for h in self.history(ticket_id))

    def notes(self, ticket_id: str, subject: str = "ticketd") -> int:
        """Internal notes with ticketd's subject on the ticket."""
        articles = self._call("GET", f"/Ticket/{ticket_id}", AllArticles=1)["Ticket"][0].get("Article", [])
        return sum(a.get("Subject") == subject and a.get("SenderType") == "agent" for a in articles)

    def fail_next(self, calls: int) -> None:
        pytest.skip("a real helpdesk cannot be told to fail (the fake's fault suite covers this)")

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._http.close()


def for_server(request: pytest.FixtureRequest, webservice: str) -> LiveHarness:
    """A harness on the suite's own Znuny (started once per session from ../shared/znuny)."""
    server = request.getfixturevalue("znuny_server")
    return LiveHarness(
        server.url, user=server.user, password=server.password, webservice=webservice, path_prefix=server.path_prefix
    )
