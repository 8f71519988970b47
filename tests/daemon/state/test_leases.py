"""Leases and fencing on a real PostgreSQL: the database, not a timer, refuses a former owner's writes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from daemon.errors import Fenced
from daemon.state import LedgerEntry, State
from daemon.state import leases as leasing
from tests.support.servers.postgres import PostgresServer


def _entry(tid: str) -> LedgerEntry:
    now = datetime.now(UTC)
    return LedgerEntry("znuny", tid, "v1", {}, {"queue": "Billing"}, "live", "pending", None, now, now)


def test_a_lease_has_one_owner_until_it_expires_then_the_next_owner_fences_the_former(pg: State) -> None:
    a = pg.lease_take("znuny", "replica-a", ttl=0.5, seen=0)
    assert a is not None and a.epoch == 1
    assert pg.lease_take("znuny", "replica-b", ttl=0.5, seen=1) is None  # held and not expired
    assert pg.ledger_begin(_entry("1"), fence=a)
    time.sleep(0.7)  # replica-a stopped renewing (paused): its lease runs out on the database's clock
    assert pg.lease_take("znuny", "replica-b", ttl=5, seen=0) is None  # compare-and-set: epoch 1 is not 0
    b = pg.lease_take("znuny", "replica-b", ttl=5, seen=1)
    assert b is not None and b.epoch == 2
    assert not pg.lease_renew(a, ttl=5)  # a wakes up: its renewal says it lost the lease
    with pytest.raises(Fenced, match=r"lease 'znuny': held by replica-b at epoch 2, not by replica-a at epoch 1"):
        pg.ledger_begin(_entry("2"), fence=a)
    with pytest.raises(Fenced):
        pg.ledger_finish("znuny", "1", "applied", fence=a)
    with pytest.raises(Fenced):
        pg.cursor_set("znuny", "new", "cursor-of-a", fence=a)
    with pytest.raises(Fenced):
        pg.fence_check(a)
    assert pg.ledger_get("znuny", "2") is None and pg.cursor_get("znuny", "new") is None
    assert pg.ledger_get("znuny", "1").state == "pending"  # type: ignore[union-attr]
    pg.ledger_finish("znuny", "1", "applied", fence=b)  # the new owner finishes what a left pending
    assert pg.lease_renew(b, ttl=5)
    assert [(x.name, x.owner, x.epoch, x.expired) for x in pg.leases()] == [("znuny", "replica-b", 2, False)]


def test_a_released_lease_is_taken_at_once_and_force_takes_an_unexpired_one(pg: State) -> None:
    a = pg.lease_take("zammad", "replica-a", ttl=60, seen=0)
    assert a is not None
    pg.lease_release(a)
    b = pg.lease_take("zammad", "replica-b", ttl=60, seen=1)
    assert b is not None and b.epoch == 2
    c = pg.lease_take("zammad", "replica-c", ttl=60, seen=2, force=True)  # b's session is gone (lock free)
    assert c is not None and c.epoch == 3
    with pytest.raises(Fenced):
        pg.fence_check(b)


def test_a_takeover_waits_for_a_fenced_write_in_flight_to_commit(pg: State) -> None:
    """The fence is checked under a share lock: the new owner's epoch cannot slip in between check and write."""
    a = pg.lease_take("znuny", "replica-a", ttl=60, seen=0)
    assert a is not None
    order: list[str] = []
    inside = threading.Event()

    def slow_write() -> None:
        with pg.write(a) as conn:  # the check runs here, then the write takes its time
            inside.set()
            time.sleep(0.5)
            conn.execute(leasing.sa.text("SELECT 1"))
            order.append("a committed")

    writer = threading.Thread(target=slow_write)
    writer.start()
    assert inside.wait(10)
    assert pg.lease_take("znuny", "replica-b", ttl=60, seen=1, force=True) is not None
    order.append("b took over")
    writer.join()
    assert order == ["a committed", "b took over"]


def test_an_advisory_lock_is_freed_by_postgresql_when_its_session_ends(pg: State) -> None:
    with pg.session() as first:
        assert leasing.try_lock(first, "znuny", 1)
        with pg.session() as second:
            assert not leasing.try_lock(second, "znuny", 1)
            assert leasing.try_lock(second, "znuny", 2)  # each epoch has a lock of its own
    with pg.session() as third:  # the first session is closed (as a killed replica's is)
        assert leasing.try_lock(third, "znuny", 1)


def test_replicas_count_themselves_alive_and_a_leaving_one_is_dropped(pg: State) -> None:
    assert pg.replica_beat("replica-a", ttl=10) == 1
    assert pg.replica_beat("replica-b", ttl=10) == 2
    pg.replica_gone("replica-a")
    assert pg.replica_beat("replica-b", ttl=10) == 1


def test_sqlite_is_one_process_and_takes_no_part(tmp_path: object) -> None:
    with State.open("sqlite://") as state:
        assert not state.shared


def test_a_joining_replica_gets_its_share_by_a_hand_over_without_the_giver_taking_it_back(
    postgres_server: PostgresServer,
) -> None:
    from daemon.runtime.leadership import SCHEDULER, Leadership

    url = postgres_server.new_database()
    states = [State.open(url), State.open(url)]
    changes: dict[str, list[tuple[str, bool]]] = {"a": [], "b": []}
    a, b = (
        Leadership(
            state, rid, ["zammad", SCHEDULER], ttl=10, renew=2, on_change=lambda n, g, r=rid: changes[r].append((n, g))
        )
        for state, rid in zip(states, ["a", "b"], strict=True)
    )
    try:
        a.renew_now()  # alone: both leases
        assert a.held() == ["zammad", SCHEDULER]
        assert b.renew_now() == []  # joins: alive 2, its share 1, but nothing is free or orphaned
        assert a.renew_now() == [("zammad", False)]  # over its share: no new work on zammad from now on
        assert a.held() == [SCHEDULER]
        assert a.renew_now() == []  # its last job ended: released, and not taken back as if orphaned
        assert b.renew_now() == [("zammad", True)]
        for _ in range(3):  # settled: nobody takes anything from anybody
            assert a.renew_now() == [] and b.renew_now() == []
        leases = {lease.name: (lease.owner, lease.epoch) for lease in states[0].leases()}
        assert leases == {"zammad": ("b", 2), SCHEDULER: ("a", 1)}
    finally:
        for leadership in (a, b):
            leadership._release_all()
            leadership._close_session()
        for state in states:
            state.close()
