"""The one mapping of HTTP failures to connector errors that Znuny and Zammad share."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors._http import error_for_status, retry_after, transport_errors
from connectors.errors import AuthError, ConnectorConfigError, TicketError, TransientError


@pytest.mark.parametrize(
    ("status", "ticket_id", "kind"),
    [
        (401, None, AuthError),
        (403, "7", AuthError),
        (429, "7", TransientError),
        (500, None, TransientError),
        (503, "7", TransientError),
        (404, "7", TicketError),
        (422, "7", TicketError),
        (400, "7", TicketError),
        (404, None, ConnectorConfigError),
        (422, None, ConnectorConfigError),
        (400, None, TransientError),
    ],
)
def test_status_table(status: int, ticket_id: str | None, kind: type[Exception]) -> None:
    error = error_for_status(status, f"call: HTTP {status}", ticket_id=ticket_id)
    assert type(error) is kind and f"HTTP {status}" in str(error)
    if kind is TicketError:
        assert isinstance(error, TicketError) and error.ticket_id == ticket_id


def test_retry_after_seconds_dates_and_garbage() -> None:
    assert retry_after("120") == 120.0 and retry_after(" 5 ") == 5.0 and retry_after("-3") == 0.0
    assert retry_after(None) is None and retry_after("") is None and retry_after("soon") is None
    later = datetime.now(UTC) + timedelta(seconds=300)
    assert 290 < (retry_after(email.utils.format_datetime(later, usegmt=True)) or 0) <= 300
    naive = (datetime.now(UTC) + timedelta(seconds=300)).strftime("%a, %d %b %Y %H:%M:%S")  # no zone: UTC
    assert 290 < (retry_after(naive) or 0) <= 300
    assert error_for_status(429, "x", retry_after_header="60").retry_after == 60.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (httpx.ConnectTimeout("slow"), "timed out (ConnectTimeout: slow)"),
        (httpx.ReadTimeout("slow"), "timed out (ReadTimeout: slow)"),
        (httpx.ConnectError("refused"), "could not connect (ConnectError: refused)"),
        (httpx.ReadError("reset by peer, session abc123"), "failed (ReadError: reset by peer, session ***)"),
    ],
)
@pytest.mark.anyio
async def test_transport_failures_are_transient_and_scrubbed(raised: Exception, said: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    scrub = lambda text: text.replace("abc123", "***")  # noqa: E731
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(TransientError) as info, transport_errors("znuny GET /Ticket", scrub):
            await http.get("http://127.0.0.1:9/Ticket")
    assert str(info.value) == f"znuny GET /Ticket {said}"
