"""Verifying pushes: Zammad's signed webhook and Znuny's invoker token, against requests built as they send them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.base import Connector
from connectors.errors import NotReady, PushRejected
from connectors.registry import connector_class, parse_config
from tests.support.backends.znuny import PASSWORD
from tests.support.backends.znuny import config as znuny_config
from tests.support.fakes.zammad import FakeZammad
from tests.support.fakes.znuny import FakeZnuny

SECRET = "push-s3cret"


def _zammad(**extra: Any) -> tuple[FakeZammad, Connector]:
    fake = FakeZammad()
    raw = {"type": "zammad", "url": "http://zammad.test", "token": next(iter(fake.tokens))}
    config = parse_config({**raw, "inbound_groups": ["Users"], **extra})
    return fake, connector_class("zammad").from_config(config, httpx.AsyncClient(transport=fake.transport()))


def _znuny(**extra: Any) -> tuple[FakeZnuny, Connector]:
    fake = FakeZnuny(passwords={"agent1": PASSWORD})
    client = httpx.AsyncClient(transport=fake.transport(), base_url="http://znuny.test")
    return fake, connector_class("znuny").from_config(znuny_config(**extra), client)


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_a_signed_zammad_webhook_names_its_ticket_and_delivery() -> None:
    fake, conn = _zammad(webhook_secret=SECRET)
    tid = fake.create_ticket("VPN down", "since this morning")
    headers, body = fake.webhook_request(tid, SECRET, delivery="job-1")
    push = conn.read_push(_lower(headers), body)
    assert push.ticket_ids == (str(tid),) and push.delivery == "job-1"
    assert conn.accepts_push()


@pytest.mark.parametrize("how", ["unsigned", "wrong secret", "body changed", "no secret configured"])
def test_a_zammad_webhook_that_is_not_signed_with_the_secret_is_rejected(how: str) -> None:
    fake, conn = _zammad(**({} if how == "no secret configured" else {"webhook_secret": SECRET}))
    tid = fake.create_ticket("VPN down", "since this morning")
    headers, body = fake.webhook_request(
        tid, None if how == "unsigned" else "other" if how == "wrong secret" else SECRET
    )
    if how == "body changed":
        body = body.replace(f'"id": {tid}'.encode(), b'"id": 99', 1)
        assert b'"id": 99' in body
    with pytest.raises(PushRejected):
        conn.read_push(_lower(headers), body)


def test_a_signed_zammad_body_without_a_ticket_id_is_invalid_not_a_crash() -> None:
    import hashlib
    import hmac

    _, conn = _zammad(webhook_secret=SECRET)
    for body in (b"not json", b'{"ticket": {}}', b'{"ticket": {"id": true}}', b"[]", *ODD_BODIES):
        signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
        with pytest.raises(ValueError):
            conn.read_push({"x-hub-signature": signature}, body)


# A signed body nested past json's recursion limit (was a RecursionError: a 500 with two tracebacks), and
# ids in digits other than 0-9 (Arabic-Indic "١٢٣": str.isdigit() said yes, and int() reads it as 123).
ODD_BODIES = (
    b'{"ticket": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    '{"ticket": {"id": "\u0661\u0662\u0663"}}'.encode(),
    '{"ticket": {"id": "\u00b2"}}'.encode(),
)


@pytest.mark.parametrize("body", [b"[" * 50_000 + b"]" * 50_000, '{"Event": {"TicketID": "\u0661\u0662"}}'.encode()])
def test_a_znuny_invoker_body_nested_too_deeply_or_with_foreign_digits_is_invalid_not_a_crash(body: bytes) -> None:
    fake, conn = _znuny(push_token=SECRET)
    headers, _ = fake.invoker_request(fake.add_customer_ticket("Printer", "offline"), SECRET)
    with pytest.raises(ValueError):
        conn.read_push(_lower(headers), body)


@pytest.mark.parametrize("mapped", [True, False], ids=["shipped mapping", "no mapping"])
@pytest.mark.parametrize("via", ["basic", "header"])
def test_a_znuny_invoker_request_with_the_token_names_its_ticket(via: str, mapped: bool) -> None:
    fake, conn = _znuny(push_token=SECRET)
    tid = fake.add_customer_ticket("Printer", "offline again")
    headers, body = fake.invoker_request(tid, SECRET, via="basic" if via == "basic" else "header", mapped=mapped)
    assert (b"Printer" in body) is not mapped  # the shipped definition sends no ticket text
    assert conn.read_push(_lower(headers), body).ticket_ids == (str(tid),)


@pytest.mark.parametrize("token", [None, "wrong", "garbage-basic"])
def test_a_znuny_invoker_request_without_the_token_is_rejected(token: str | None) -> None:
    fake, conn = _znuny(push_token=SECRET)
    tid = fake.add_customer_ticket("Printer", "offline again")
    headers, body = fake.invoker_request(tid, None if token == "garbage-basic" else token)
    if token == "garbage-basic":
        headers["Authorization"] = "Basic ***not-base64***"
    with pytest.raises(PushRejected):
        conn.read_push(_lower(headers), body)


def test_a_connector_without_a_push_secret_takes_no_pushes() -> None:
    fake, conn = _znuny()
    tid = fake.add_customer_ticket("Printer", "offline again")
    assert not conn.accepts_push()
    with pytest.raises(PushRejected):
        conn.read_push(*fake.invoker_request(tid, SECRET))


@pytest.mark.anyio
async def test_a_pushed_znuny_ticket_without_any_article_yet_is_not_ready() -> None:
    """TicketCreate comes before the first article: a push that early must not classify an empty ticket."""
    fake, conn = _znuny(push_token=SECRET)
    tid = fake.add_customer_ticket("Printer", "offline again")
    article = fake.ticket(tid).articles.pop()
    with pytest.raises(NotReady, match=f"ticket {tid}: pushed before its first article"):
        await conn.fetch_ticket(str(tid))
    inbound = fake.ticket(tid).queue_id
    fake.ticket(tid).queue_id = fake.queue_id("Misc")  # moved away, still without an article: not new work
    assert await conn.fetch_ticket(str(tid)) is None
    fake.ticket(tid).queue_id = inbound
    fake.ticket(tid).articles.append(article)
    ticket = await conn.fetch_ticket(str(tid))
    assert ticket is not None and "offline again" in ticket.body
