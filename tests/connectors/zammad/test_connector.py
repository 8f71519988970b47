"""The Zammad connector against the fake: mapping, search, apply, auth and error translation."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.base import Applied, Skipped, TicketUpdate
from connectors.errors import AuthError, ConnectorConfigError, TicketError, TransientError
from connectors.registry import parse_config
from connectors.zammad import ZammadConfig, ZammadConnector
from tests.support.fakes.zammad import START, FakeZammad

pytestmark = pytest.mark.anyio

URL = "http://zammad.test"
TOKEN = "zammad-test-token"

Make = Callable[..., ZammadConnector]


@pytest.fixture(params=[False, True], ids=["es_off", "es_on"])
def fake(request: pytest.FixtureRequest) -> FakeZammad:
    return FakeZammad(es=request.param)


@pytest.fixture
async def make(fake: FakeZammad) -> AsyncIterator[Make]:
    clients: list[httpx.AsyncClient] = []

    def build(**overrides: Any) -> ZammadConnector:
        transport = overrides.pop("transport", None) or fake.transport()
        raw: dict[str, Any] = {"type": "zammad", "url": URL, "token": TOKEN, "inbound_groups": ["Users"]}
        raw.update(overrides)
        raw = {k: v for k, v in raw.items() if v is not None}
        client = httpx.AsyncClient(transport=transport)
        clients.append(client)
        config = parse_config(raw)
        return ZammadConnector.from_config(config, client)

    yield build
    for client in clients:
        await client.aclose()


# ---- config ----------------------------------------------------------------------------------------------


async def test_a_ticket_links_to_its_zoom_view(make: Make) -> None:
    assert make().ticket_url("17") == f"{URL.rstrip('/')}/#ticket/zoom/17"


def test_config_needs_one_way_to_authenticate() -> None:
    base = {"type": "zammad", "url": URL, "inbound_groups": ["Users"]}
    with pytest.raises(ValidationError):
        ZammadConfig.model_validate(base)
    with pytest.raises(ValidationError):
        ZammadConfig.model_validate({**base, "token": "t", "user": "u", "password": "p"})
    with pytest.raises(ValidationError):
        ZammadConfig.model_validate({**base, "user": "u"})
    assert ZammadConfig.model_validate({**base, "user": "u", "password": "p"}).password is not None


def test_config_rejects_unknown_keys_empty_groups_and_big_pages() -> None:
    base = {"type": "zammad", "url": URL, "token": "t", "inbound_groups": ["Users"]}
    for bad in (
        {"colour": "red"},
        {"inbound_groups": []},
        {"per_page": 201},
        {"url": "zammad.test"},
        {"url": "https://u:p@zammad.test"},
    ):
        with pytest.raises(ValidationError):
            ZammadConfig.model_validate({**base, **bad})
    assert ZammadConfig.model_validate({**base, "url": "https://z.example/api/v1/"}).url == "https://z.example"
    assert ZammadConfig.model_validate(base).new_states == ["new"]


def test_config_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZAMMAD_TOKEN", "from-env")
    config = parse_config({"type": "zammad", "url": URL, "token": "${ZAMMAD_TOKEN}", "inbound_groups": ["Users"]})
    assert isinstance(config, ZammadConfig) and config.token is not None
    assert config.token.get_secret_value() == "from-env"
    assert "from-env" not in repr(config)
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\n")
    config = parse_config(
        {
            "type": "zammad",
            "url": URL,
            "user": "agent@example.com",
            "password_file": str(secret_file),
            "inbound_groups": ["Users"],
        }
    )
    assert isinstance(config, ZammadConfig) and config.password is not None
    assert config.password.get_secret_value() == "s3cret"


# ---- auth headers ----------------------------------------------------------------------------------------


async def test_token_auth_header(fake: FakeZammad, make: Make) -> None:
    await make().check()
    assert fake.requests[-1].headers["authorization"] == f"Token token={TOKEN}"
    assert "from" not in fake.requests[-1].headers


async def test_basic_auth_header(fake: FakeZammad, make: Make) -> None:
    await make(token=None, user="agent@example.com", password="agent-pw").check()
    expected = "Basic " + base64.b64encode(b"agent@example.com:agent-pw").decode()
    assert fake.requests[-1].headers["authorization"] == expected
    assert fake.requests[-1].user == "agent@example.com"


async def test_from_header_acts_on_behalf(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("VPN", "down")
    conn = make(on_behalf_of="agent@example.com")
    await conn.apply(TicketUpdate(str(tid), expected_queue="Users", queue="Sales", note="routed"))
    put = [r for r in fake.requests if r.method == "PUT"][-1]
    assert put.headers["from"] == "agent@example.com" and put.acting_user == "agent@example.com"
    note = max(fake.articles.values(), key=lambda a: a["id"])
    assert note["created_by_id"] == fake.agent.id


async def test_bad_password_is_auth_error_without_the_secret(make: Make) -> None:
    conn = make(token=None, user="agent@example.com", password="very-secret-pw")
    with pytest.raises(AuthError) as info:
        await conn.check()
    assert "very-secret-pw" not in str(info.value)
    assert "Invalid BasicAuth credentials" in str(info.value)


async def test_token_without_permission_is_auth_error(fake: FakeZammad, make: Make) -> None:
    fake.add_token("weak", permissions=set())
    with pytest.raises(AuthError) as info:
        await make(token="weak").fetch_new(None, 10)
    assert "weak" not in str(info.value)


# ---- fetching --------------------------------------------------------------------------------------------


async def test_html_article_becomes_text_with_umlauts(fake: FakeZammad, make: Make) -> None:
    fake.create_ticket(
        "Größenänderung",
        "<p>Sehr geehrte Damen &amp; Herren,</p><p>bitte <b>Größe</b> ändern.</p>",
        content_type="text/html",
    )
    page = await make().fetch_new(None, 10)
    assert page.tickets[0].subject == "Größenänderung"
    assert page.tickets[0].body == "Sehr geehrte Damen & Herren,\nbitte Größe ändern."


async def test_agent_created_phone_ticket_uses_first_article(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("Phone call", "Caller says the mail server is down", article_type="phone", sender="Agent")
    fake.add_article(tid, "internal: checked logs", internal=True)
    page = await make().fetch_new(None, 10)
    assert page.tickets[0].body == "Caller says the mail server is down"


async def test_customer_article_wins_over_earlier_agent_article(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("Mixed", "agent wrote first", sender="Agent", article_type="note")
    fake.add_article(tid, "the customer's words", sender="Customer", type="email")
    page = await make().fetch_new(None, 10)
    assert page.tickets[0].body == "the customer's words"


async def test_only_inbound_groups_and_new_states(fake: FakeZammad, make: Make) -> None:
    inbound = fake.create_ticket("inbound", "x")
    fake.create_ticket("sales", "x", group="Sales")
    opened = fake.create_ticket("opened", "x", state="open")
    fake.close(fake.create_ticket("closed", "x"))
    assert [t.id for t in (await make().fetch_new(None, 50)).tickets] == [str(inbound)]
    both = make(new_states=["new", "open"], inbound_groups=["Users", "Billing"])
    assert [t.id for t in (await both.fetch_new(None, 50)).tickets] == [str(inbound), str(opened)]


async def test_new_tickets_are_found_by_condition_search_not_query(fake: FakeZammad, make: Make) -> None:
    fake.create_ticket("a", "x")
    await make().fetch_new(None, 10)
    searches = [r for r in fake.requests if r.path == "/api/v1/tickets/search"]
    assert searches and all(r.method == "POST" and "condition" in r.body and "query" not in r.body for r in searches)


async def test_same_instant_tickets_are_not_lost_across_pages(fake: FakeZammad, make: Make) -> None:
    ids = [fake.create_ticket(f"burst {i}", "x", created_at=START) for i in range(5)]
    conn = make(per_page=2)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await conn.fetch_new(cursor, 2)
        seen += [t.id for t in page.tickets]
        cursor = page.cursor
        if not page.more:
            break
    assert seen == [str(i) for i in ids]
    late = fake.create_ticket("late", "x", created_at=START)  # same instant, higher id
    assert [t.id for t in (await conn.fetch_new(cursor, 10)).tickets] == [str(late)]


async def test_empty_page_keeps_the_cursor(make: Make) -> None:
    page = await make().fetch_new(None, 10)
    assert page.tickets == [] and page.cursor is None and not page.more
    page = await make().fetch_new("2026-11-02T09:00:00.000Z|7", 10)
    assert page.cursor == "2026-11-02T09:00:00.000Z|7"


async def test_unknown_inbound_group_is_config_error(make: Make) -> None:
    with pytest.raises(ConnectorConfigError, match="Nowhere"):
        await make(inbound_groups=["Nowhere"]).fetch_new(None, 10)


async def test_closed_tickets_by_close_at_with_final_labels(fake: FakeZammad, make: Make) -> None:
    first = fake.create_ticket("Refund", "Please refund order 1234.", created_at=START - timedelta(days=2))
    second = fake.create_ticket("Invoice", "Wrong VAT")
    fake.create_ticket("Still open", "x")
    fake.close(second, group="Billing", priority="1 low")  # closed first although created later
    fake.close(first, group="Sales", priority="3 high")
    merged = fake.create_ticket("dup", "x")
    fake.close(merged, state="merged")
    conn = make()
    page = await conn.fetch_closed(None, 1)
    assert [t.id for t in page.tickets] == [str(second)] and page.more
    assert (page.tickets[0].queue, page.tickets[0].priority) == ("Billing", "1 low")
    assert page.tickets[0].closed_at is not None
    page = await conn.fetch_closed(page.cursor, 10)
    assert [t.id for t in page.tickets] == [str(first)] and not page.more
    assert "refund order 1234" in page.tickets[0].body
    assert (await conn.fetch_closed(page.cursor, 10)).tickets == []


async def test_taxonomy_lists_active_groups_and_priorities(fake: FakeZammad, make: Make) -> None:
    fake.add_group("Archive", active=False)
    conn = make()
    assert [q.name for q in await conn.list_queues()] == ["Users", "Sales", "Service Desk", "Billing"]
    assert [(p.id, p.name) for p in await conn.list_priorities()] == [
        ("1", "1 low"),
        ("2", "2 normal"),
        ("3", "3 high"),
    ]


# ---- apply -----------------------------------------------------------------------------------------------


async def test_apply_is_one_put_with_note_and_idempotent(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("VPN down", "Nobody can connect.")
    conn = make()
    update = TicketUpdate(str(tid), expected_queue="Users", queue="Sales", priority="3 high", note="ticketd: routed")
    assert await conn.apply(update) == Applied(str(tid), ("queue", "priority", "note"))
    assert fake.puts(tid) == 1
    put = next(r for r in fake.requests if r.method == "PUT")
    assert put.body == {
        "group": "Sales",
        "priority": "3 high",
        "article": {"body": "ticketd: routed", "type": "note", "internal": True, "content_type": "text/plain"},
    }
    assert await conn.apply(update) == Applied(str(tid), ())
    assert fake.puts(tid) == 1
    notes = [a for a in fake.articles.values() if a["ticket_id"] == tid and a["type_id"] == 10]
    assert len(notes) == 1 and notes[0]["internal"]


async def test_apply_only_sends_what_changes(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("x", "y", priority="3 high")
    outcome = await make().apply(TicketUpdate(str(tid), expected_queue="Users", queue="Sales", priority="3 high"))
    assert outcome == Applied(str(tid), ("queue",))
    assert [r.body for r in fake.requests if r.method == "PUT"] == [{"group": "Sales"}]


async def test_priority_only_update_stays_in_group(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("x", "y")
    conn = make()
    update = TicketUpdate(str(tid), expected_queue="Users", priority="1 low")
    assert await conn.apply(update) == Applied(str(tid), ("priority",))
    assert await conn.apply(update) == Applied(str(tid), ())
    assert (fake.group_of(tid), fake.priority_of(tid), fake.puts(tid)) == ("Users", "1 low", 1)


async def test_note_only_update_is_written_once(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("x", "y")
    conn = make()
    update = TicketUpdate(str(tid), expected_queue="Users", note="ticketd suggests: Sales (0.91)")
    assert await conn.apply(update) == Applied(str(tid), ("note",))
    assert await conn.apply(update) == Applied(str(tid), ())
    assert fake.puts(tid) == 1


async def test_human_moved_ticket_is_skipped_naming_the_group(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("Laptop", "flickers")
    fake.human_move(tid, "Service Desk")
    outcome = await make().apply(TicketUpdate(str(tid), expected_queue="Users", queue="Sales", note="n"))
    assert isinstance(outcome, Skipped) and "Service Desk" in outcome.reason
    assert fake.puts(tid) == 0 and fake.group_of(tid) == "Service Desk"


async def test_human_moved_to_the_same_target_counts_as_applied(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("Laptop", "flickers")
    fake.human_move(tid, "Sales")
    assert await make().apply(TicketUpdate(str(tid), expected_queue="Users", queue="Sales")) == Applied(str(tid), ())
    assert fake.puts(tid) == 0


async def test_unknown_target_group_is_config_error(fake: FakeZammad, make: Make) -> None:
    tid = fake.create_ticket("x", "y")
    with pytest.raises(ConnectorConfigError, match="No lookup value found for 'group'"):
        await make().apply(TicketUpdate(str(tid), expected_queue="Users", queue="not_existing"))
    assert fake.writes[tid] == 0


async def test_missing_ticket_is_ticket_error(make: Make) -> None:
    with pytest.raises(TicketError) as info:
        await make().apply(TicketUpdate("999999", expected_queue="Users", queue="Sales"))
    assert info.value.ticket_id == "999999"
    with pytest.raises(TicketError):
        await make().apply(TicketUpdate("../users/me", expected_queue="Users", queue="Sales"))


# ---- transient failures ----------------------------------------------------------------------------------


async def test_429_is_transient_with_retry_after(fake: FakeZammad, make: Make) -> None:
    fake.throttle_next(1, retry_after=42)
    conn = make()
    with pytest.raises(TransientError) as info:
        await conn.fetch_new(None, 10)
    assert info.value.retry_after == 42
    fake.throttle_next(1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    with pytest.raises(TransientError) as info:
        await conn.check()
    assert info.value.retry_after == 0


@pytest.mark.parametrize("kind", ["500", "drop"])
async def test_server_errors_and_dropped_connections_are_transient(fake: FakeZammad, make: Make, kind: str) -> None:
    conn = make()
    fake.fail_next(1, kind=kind)
    with pytest.raises(TransientError):
        await conn.list_queues()
    await conn.list_queues()


async def test_timeouts_and_non_json_bodies_are_transient(make: Make) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    with pytest.raises(TransientError, match="timed out"):
        await make(transport=httpx.MockTransport(timeout)).check()
    with pytest.raises(TransientError, match="not JSON"):
        await make(transport=httpx.MockTransport(html)).check()

    def too_deep(request: httpx.Request) -> httpx.Response:  # a RecursionError in json.loads before
        return httpx.Response(200, content=b"[" * 50_000 + b"]" * 50_000)

    with pytest.raises(TransientError, match="not JSON"):
        await make(transport=httpx.MockTransport(too_deep)).check()


async def test_wrong_base_url_is_config_error(make: Make) -> None:
    def not_zammad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "No route matches"})

    with pytest.raises(ConnectorConfigError):
        await make(transport=httpx.MockTransport(not_zammad)).list_queues()
