"""The suite's real Znuny answers like the one admins run: logins, tickets, errors, per web-service layout."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from tests.support.servers.znuny import ZnunyServer

pytestmark = pytest.mark.znuny

DEV = "GenericTicketConnectorREST"
RELEASE = "GenericTicketConnectorREST-Release"
TICKETD = "ticketd"


def _login(server: ZnunyServer, webservice: str) -> str:
    answer = httpx.post(
        f"{server.base_url(webservice)}/Session",
        json={"UserLogin": server.user, "Password": server.password},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    session: str = answer.json()["SessionID"]
    return session


@pytest.mark.parametrize("webservice", [DEV, RELEASE, TICKETD])
def test_login_returns_a_session_id(znuny_server: ZnunyServer, webservice: str) -> None:
    assert len(_login(znuny_server, webservice)) >= 16


@pytest.mark.parametrize("webservice", [DEV, RELEASE])
def test_ticket_create_in_raw_then_ticket_get_reads_it_back(znuny_server: ZnunyServer, webservice: str) -> None:
    session = _login(znuny_server, webservice)
    title = f"printer on fire {secrets.token_hex(4)}"
    created = httpx.post(
        f"{znuny_server.base_url(webservice)}/Ticket",
        json={
            "SessionID": session,
            "Ticket": {
                "Title": title,
                "Queue": "Raw",
                "State": "new",
                "Priority": "3 normal",
                "CustomerUser": "customer@example.com",
            },
            "Article": {
                "CommunicationChannel": "Email",
                "SenderType": "customer",
                "From": "customer@example.com",
                "Subject": title,
                "Body": "The printer on floor 2 is on fire.",
                "ContentType": "text/plain; charset=utf8",
            },
        },
        timeout=30,
    )
    assert created.status_code == 200, created.text
    ticket_id = created.json()["TicketID"]

    got = httpx.get(
        f"{znuny_server.base_url(webservice)}/Ticket/{ticket_id}",
        params={"SessionID": session, "AllArticles": 1},
        timeout=30,
    )
    assert got.status_code == 200, got.text
    ticket: dict[str, Any] = got.json()["Ticket"][0]
    # TicketCreate answers the ID as a string, TicketGet as a number.
    assert (ticket["TicketID"], ticket["Title"], ticket["Queue"]) == (int(ticket_id), title, "Raw")
    assert ticket["Article"][0]["Body"] == "The printer on floor 2 is on fire."


@pytest.mark.parametrize("webservice", [DEV, RELEASE, TICKETD])
def test_wrong_password_is_http_200_with_auth_fail(znuny_server: ZnunyServer, webservice: str) -> None:
    answer = httpx.post(
        f"{znuny_server.base_url(webservice)}/Session",
        json={"UserLogin": znuny_server.user, "Password": "not-" + znuny_server.password},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.json()["Error"]["ErrorCode"].endswith("AuthFail")


def test_unknown_webservice_gets_no_http_answer(znuny_server: ZnunyServer) -> None:
    # Znuny writes nothing; Apache drops the connection when its KeepAliveTimeout (5 s) runs out.
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{znuny_server.base_url('NoSuchService')}/Session", json={}, timeout=20)


@pytest.mark.parametrize("webservice", [RELEASE, TICKETD])
def test_dev_search_route_is_http_500_on_the_release_layout(znuny_server: ZnunyServer, webservice: str) -> None:
    session = _login(znuny_server, webservice)
    answer = httpx.get(f"{znuny_server.base_url(webservice)}/Ticket", params={"SessionID": session}, timeout=30)
    assert answer.status_code == 500
    assert answer.text.startswith("HTTP::REST Error while determine Operation")


def test_console_sees_the_queues_and_keeps_agent1_out_of_restricted(znuny_server: ZnunyServer) -> None:
    queues = znuny_server.console("Admin::Queue::List")
    for name in ("Raw", "Billing", "Misc", "Hardware", "Technical Support", "Junk", "Restricted"):
        assert name in queues
    members = znuny_server.psql(
        "SELECT g.name FROM group_user gu JOIN users u ON u.id = gu.user_id "
        "JOIN permission_groups g ON g.id = gu.group_id WHERE u.login = 'agent1'"
    ).split()
    assert sorted(members) == ["admin", "users"]
