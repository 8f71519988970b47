"""The fake Zammad against the facts in /work/shared/fixtures/zammad/README.md, one test per fact."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support.fakes.zammad import START, FakeZammad

pytestmark = pytest.mark.anyio

TOKEN = {"Authorization": "Token token=zammad-test-token"}


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


@pytest.fixture(params=[False, True], ids=["es_off", "es_on"])
def fake(request: pytest.FixtureRequest) -> FakeZammad:
    return FakeZammad(es=request.param)


@pytest.fixture
def sql_fake() -> FakeZammad:
    return FakeZammad(es=False)


@pytest.fixture
def es_fake() -> FakeZammad:
    return FakeZammad(es=True)


async def _client(fake: FakeZammad) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=fake.transport(), base_url="http://zammad.test/api/v1", headers=TOKEN)


@pytest.fixture
async def api(fake: FakeZammad) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(fake) as client:
        yield client


def _search_ids(data: Any) -> list[int]:
    return [t["id"] for t in data] if isinstance(data, list) else list(data["tickets"])


# ---- auth ------------------------------------------------------------------------------------------------


async def test_token_and_basic_auth_are_both_accepted(fake: FakeZammad) -> None:
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://z/api/v1") as client:
        assert (await client.get("/users/me", headers=TOKEN)).json()["login"] == "admin@example.com"
        assert (await client.get("/users/me", headers=basic("agent@example.com", "agent-pw"))).status_code == 200


async def test_bad_basic_credentials_get_401_with_error_body(fake: FakeZammad) -> None:
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://z/api/v1") as client:
        r = await client.get("/users/me", headers=basic("agent@example.com", "nope"))
    assert r.status_code == 401
    assert r.json() == {"error": "Invalid BasicAuth credentials", "error_human": "Invalid BasicAuth credentials"}


async def test_unknown_token_gets_401(fake: FakeZammad) -> None:
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://z/api/v1") as client:
        r = await client.get("/users/me", headers={"Authorization": "Token token=wrong"})
    assert r.status_code == 401
    assert r.json()["error"] == "Can't find User for Token"


async def test_no_credentials_get_403_authentication_required(fake: FakeZammad) -> None:
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://z/api/v1") as client:
        r = await client.get("/users/me")
    assert r.status_code == 403
    assert r.json()["error"] == "Authentication required"


async def test_token_without_permission_gets_403_not_authorized_token(fake: FakeZammad) -> None:
    fake.add_token("weak", permissions={"user_preferences"})
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://z/api/v1") as client:
        r = await client.get("/tickets", headers={"Authorization": "Token token=weak"})
    assert r.status_code == 403
    assert r.json() == {"error": "Not authorized (token)!", "error_human": "Not authorized (token)!"}


async def test_from_header_acts_on_behalf_of_another_user(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    tid = fake.create_ticket("Hi", "body")
    r = await api.put(
        f"/tickets/{tid}", json={"article": {"body": "n", "type": "note"}}, headers={"From": "agent@example.com"}
    )
    assert r.status_code == 200
    assert fake.requests[-1].acting_user == "agent@example.com"
    last_article = max(fake.articles.values(), key=lambda a: a["id"])
    assert last_article["created_by_id"] == fake.agent.id
    assert (await api.get("/users/me", headers={"From": "ghost@example.com"})).status_code == 401


# ---- tickets ---------------------------------------------------------------------------------------------


async def test_get_ticket_compact_has_ids_and_expand_adds_names(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    tid = fake.create_ticket("Printer", "broken")
    compact = (await api.get(f"/tickets/{tid}")).json()
    expanded = (await api.get(f"/tickets/{tid}", params={"expand": "true"})).json()
    for key in (
        "id",
        "number",
        "title",
        "group_id",
        "priority_id",
        "state_id",
        "created_at",
        "updated_at",
        "close_at",
        "article_count",
    ):
        assert key in compact
    assert "group" not in compact and "priority" not in compact
    assert (expanded["group"], expanded["priority"], expanded["state"]) == ("Users", "2 normal", "new")
    assert expanded["group_id"] == compact["group_id"]


async def test_missing_ticket_is_404_record_not_found(api: httpx.AsyncClient) -> None:
    r = await api.get("/tickets/999999")
    assert r.status_code == 404
    assert r.json() == {
        "error": "Couldn't find Ticket with 'id'=999999",
        "error_human": "Couldn't find Ticket with 'id'=999999",
    }


async def test_ticket_list_is_by_id_and_per_page_capped_at_100(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    for i in range(105):
        fake.create_ticket(f"T{i}", "b", created_at=START - timedelta(minutes=i))
    first = (await api.get("/tickets", params={"page": 1, "per_page": 500})).json()
    assert len(first) == 100
    assert [t["id"] for t in first] == sorted(t["id"] for t in first)
    second = (await api.get("/tickets", params={"page": 2, "per_page": 100})).json()
    assert [t["id"] for t in second] == [101, 102, 103, 104, 105]


async def test_search_per_page_defaults_to_50_and_caps_at_200(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    for i in range(230):
        fake.create_ticket(f"Ticket {i}", "body")
    cond = {"ticket.state_id": {"operator": "is", "value": [1]}}
    default = (await api.post("/tickets/search", json={"condition": cond})).json()
    assert len(default["tickets"]) == 50
    assert default["tickets_count"] == 50  # the page's count (`tickets.count` after limit), not all 230 matches
    assert len((await api.post("/tickets/search", json={"condition": cond, "per_page": 1000})).json()["tickets"]) == 200
    assert len((await api.post("/tickets/search", json={"condition": cond, "limit": 7})).json()["tickets"]) == 7
    page2 = (await api.post("/tickets/search", json={"condition": cond, "per_page": 200, "page": 2})).json()
    assert len(page2["tickets"]) == 30


async def test_search_response_shapes_with_and_without_expand(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    tid = fake.create_ticket("Shape", "body")
    body = {"condition": {"ticket.group_id": {"operator": "is", "value": [1]}}}
    plain = (await api.post("/tickets/search", json=body)).json()
    assert set(plain) == {"tickets", "tickets_count", "assets"}
    assert plain["tickets"] == [tid] and plain["tickets_count"] == 1
    assert plain["assets"]["Ticket"][str(tid)]["title"] == "Shape"
    assert plain["assets"]["Group"]["1"]["name"] == "Users"
    expanded = (await api.post("/tickets/search", params={"expand": "true"}, json=body)).json()
    assert isinstance(expanded, list) and expanded[0]["id"] == tid and expanded[0]["group"] == "Users"


async def test_search_default_order_is_updated_at_desc_and_sort_by_is_honoured(
    fake: FakeZammad, api: httpx.AsyncClient
) -> None:
    a = fake.create_ticket("a", "x")
    b = fake.create_ticket("b", "x")
    fake.human_move(a, "Sales")  # a is now the most recently updated
    cond = {"ticket.id": {"operator": "is", "value": [a, b]}}
    assert (await api.post("/tickets/search", json={"condition": cond})).json()["tickets"] == [a, b]
    asc = {"condition": cond, "sort_by": ["created_at", "id"], "order_by": ["asc", "asc"]}
    assert (await api.post("/tickets/search", json=asc)).json()["tickets"] == [a, b]
    desc = await api.get("/tickets/search", params={"query": "*", "sort_by": "created_at", "order_by": "desc"})
    assert desc.json()["tickets"] == [b, a]


async def test_es_on_query_string_filters_by_state_group_and_time(es_fake: FakeZammad) -> None:
    old = es_fake.create_ticket("Old one", "x", created_at=START - timedelta(hours=5))
    new = es_fake.create_ticket("Fresh one", "x")
    moved = es_fake.create_ticket("Moved", "x")
    es_fake.human_move(moved, "Service Desk")
    closed = es_fake.create_ticket("Done", "x")
    es_fake.close(closed)
    async with await _client(es_fake) as api:

        async def q(query: str) -> list[int]:
            return _search_ids((await api.get("/tickets/search", params={"query": query})).json())

        assert set(await q("state.name:new")) == {old, new, moved}
        assert set(await q('group.name:"Service Desk"')) == {moved}
        assert set(await q("created_at:>now-1h")) == {new, moved, closed}
        assert set(await q("state.name:new AND group.name:Users")) == {old, new}
        assert await q("close_at:>2000-01-01T00:00:00Z") == [closed]
        assert set(await q("fresh")) == {new}


async def test_es_off_query_is_sql_like_so_field_filters_do_not_filter(sql_fake: FakeZammad) -> None:
    a = sql_fake.create_ticket("Printer offline", "error 41")
    b = sql_fake.create_ticket("Mention state.name:new in title", "x")
    sql_fake.add_article(a, "see attached log", subject="Re: printer")
    async with await _client(sql_fake) as api:

        async def q(query: str) -> list[int]:
            return _search_ids((await api.get("/tickets/search", params={"query": query})).json())

        assert await q("state.name:new") == [b]  # matched as text, not as a state filter
        assert await q("created_at:>now-1h") == []
        assert await q("attached") == [a]  # article body
        assert await q("re: print") == [a]  # article subject, case-insensitive
        assert await q("nicole.braun") == [a, b]  # article from
        assert await q(sql_fake.tickets[a]["number"]) == [a]
        assert set(await q("*")) == {a, b}


async def test_condition_search_works_in_both_modes(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    early = fake.create_ticket("early", "x", created_at=START - timedelta(days=1))
    fresh = fake.create_ticket("fresh", "x")
    other = fake.create_ticket("elsewhere", "x", group="Sales")
    fake.close(fake.create_ticket("closed", "x"))
    body = {
        "condition": {
            "ticket.state_id": {"operator": "is", "value": [1, 2]},
            "ticket.group_id": {"operator": "is", "value": [1]},
            "ticket.created_at": {"operator": "after (absolute)", "value": "2026-11-02T00:00:00Z"},
        },
        "page": 1,
        "per_page": 50,
    }
    ids = (await api.post("/tickets/search", json=body)).json()["tickets"]
    assert ids == [fresh]
    assert early not in ids and other not in ids
    get = await api.get(
        "/tickets/search",
        params={"condition[ticket.group_id][operator]": "is", "condition[ticket.group_id][value][]": ["2", "3"]},
    )
    assert get.json()["tickets"] == [other]


async def test_update_by_names_with_note_returns_ticket_with_ids(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    tid = fake.create_ticket("Move me", "x")
    r = await api.put(
        f"/tickets/{tid}",
        json={
            "group": "Sales",
            "priority": "3 high",
            "article": {"body": "routed", "type": "note", "internal": True, "content_type": "text/plain"},
        },
    )
    assert r.status_code == 200
    data = r.json()
    assert (data["group_id"], data["priority_id"]) == (2, 3) and "group" not in data
    assert (fake.group_of(tid), fake.priority_of(tid)) == ("Sales", "3 high")
    articles = (await api.get(f"/ticket_articles/by_ticket/{tid}")).json()
    assert articles[-1]["type"] == "note" and articles[-1]["internal"] is True and articles[-1]["sender"] == "Agent"
    assert fake.writes[tid] == 3


async def test_update_by_ids(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    tid = fake.create_ticket("Move me", "x")
    r = await api.put(f"/tickets/{tid}", json={"group_id": 3, "priority_id": 1})
    assert r.status_code == 200
    assert (fake.group_of(tid), fake.priority_of(tid)) == ("Service Desk", "1 low")


async def test_unknown_name_is_422_no_lookup_value_found(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    tid = fake.create_ticket("x", "y")
    r = await api.put(f"/tickets/{tid}", json={"group": "not_existing"})
    assert r.status_code == 422
    assert r.json() == {
        "error": "No lookup value found for 'group': \"not_existing\"",
        "error_human": "No lookup value found for 'group': \"not_existing\"",
    }
    assert fake.writes[tid] == 0


async def test_closing_sets_close_at(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    tid = fake.create_ticket("x", "y")
    assert (await api.get(f"/tickets/{tid}")).json()["close_at"] is None
    await api.put(f"/tickets/{tid}", json={"state": "closed"})
    assert (await api.get(f"/tickets/{tid}")).json()["close_at"] is not None


# ---- articles and lookups --------------------------------------------------------------------------------


async def test_articles_by_ticket_fields(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    tid = fake.create_ticket("Hallo", "<p>Grüße</p>", content_type="text/html")
    articles = (await api.get(f"/ticket_articles/by_ticket/{tid}")).json()
    assert len(articles) == 1
    a = articles[0]
    for key in (
        "id",
        "ticket_id",
        "from",
        "to",
        "subject",
        "body",
        "content_type",
        "type",
        "sender",
        "internal",
        "created_at",
    ):
        assert key in a
    assert (a["sender"], a["type"], a["content_type"], a["body"]) == ("Customer", "email", "text/html", "<p>Grüße</p>")
    assert (await api.get("/ticket_articles/by_ticket/424242")).status_code == 404


async def test_lookups_groups_priorities_states(api: httpx.AsyncClient) -> None:
    groups = (await api.get("/groups")).json()
    assert {"Users", "Sales"} <= {g["name"] for g in groups}
    priorities = (await api.get("/ticket_priorities")).json()
    assert [p["name"] for p in priorities] == ["1 low", "2 normal", "3 high"]
    states = (await api.get("/ticket_states")).json()
    assert all("state_type_id" in s for s in states)
    expanded = (await api.get("/ticket_states", params={"expand": "true"})).json()
    assert {s["name"] for s in expanded if s["state_type"] == "closed"} == {"closed"}


# ---- failures --------------------------------------------------------------------------------------------


async def test_injected_500_is_opaque_error_id(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    fake.fail_next(1)
    r = await api.get("/users/me")
    assert r.status_code == 500
    assert r.json()["error"].startswith("Error ID ") and r.json()["error"].endswith(
        "Please contact your administrator."
    )
    assert (await api.get("/users/me")).status_code == 200


async def test_injected_drop_raises_connect_error(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    fake.fail_next(1, kind="drop")
    with pytest.raises(httpx.ConnectError):
        await api.get("/users/me")


async def test_injected_429_carries_retry_after(fake: FakeZammad, api: httpx.AsyncClient) -> None:
    fake.throttle_next(1, retry_after=17)
    r = await api.get("/users/me")
    assert r.status_code == 429 and r.headers["Retry-After"] == "17"
    assert (await api.get("/users/me")).status_code == 200


async def test_asgi_app_serves_the_same_state(fake: FakeZammad) -> None:
    tid = fake.create_ticket("over asgi", "x")
    transport = httpx.ASGITransport(app=fake.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://z/api/v1", headers=TOKEN) as client:
        r = await client.get(f"/tickets/{tid}", params={"expand": "true"})
    assert r.json()["title"] == "over asgi"
