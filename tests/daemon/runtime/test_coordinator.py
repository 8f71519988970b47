"""Failure policy: each failure class (transient, credentials, configuration, state, unexpected), logged once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from connectors.errors import AuthError, ConnectorConfigError, TransientError
from daemon.errors import StateError
from daemon.runtime.coordinator import Coordinator

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def every_level() -> Iterator[None]:
    """Debug lines are part of what is checked here, whatever level an earlier test configured."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Fails `failures` times with `error`, then succeeds; counts calls."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.left = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise self.error
        return "ok"


async def test_backoff_doubles_and_caps_and_skips_calls_while_waiting() -> None:
    clock = Clock()
    coord = Coordinator("z", base_delay=10, max_delay=35, clock=clock)
    job = Flaky(5, TransientError("HTTP 500"))
    delays = []
    for _ in range(5):
        assert await coord.run(job) is None
        delays.append(coord.not_before - clock.now)
        assert await coord.run(job) is None  # still backing off: no request
        clock.now = coord.not_before
    assert delays == [10, 20, 35, 35, 35]
    assert job.calls == 5
    assert await coord.run(job) == "ok"
    assert coord.state == "ok" and coord.failures == 0 and coord.last_success is not None


async def test_logs_once_when_failing_and_once_on_recovery() -> None:
    clock = Clock()
    coord = Coordinator("znuny-main", base_delay=1, clock=clock)
    job = Flaky(4, TransientError("connection reset"))
    with capture_logs() as logs:
        for _ in range(5):
            await coord.run(job)
            clock.now = coord.not_before
    shown = [e for e in logs if e["log_level"] != "debug"]  # each retry is a debug line only
    assert [(e["log_level"], e["event"]) for e in shown] == [
        ("warning", "connector failing; backing off"),
        ("info", "connector recovered"),
    ]
    assert shown[0]["connector"] == "znuny-main" and shown[1]["failed_attempts"] == 4


async def test_retry_after_is_honoured() -> None:
    clock = Clock()
    coord = Coordinator("zammad", base_delay=5, max_delay=600, clock=clock)
    await coord.run(Flaky(1, TransientError("429", retry_after=120)))
    assert coord.not_before - clock.now == 120


async def test_auth_failure_stops_polling_until_the_config_is_reloaded() -> None:
    # A reload (SIGHUP) builds new coordinators: tests/e2e/test_faults.py shows polling resume.
    clock = Clock()
    coord = Coordinator("imap", clock=clock)
    job = Flaky(1, AuthError("login rejected"))
    with capture_logs() as logs:
        await coord.run(job)
        for _ in range(10):
            clock.now += 10_000
            assert await coord.run(job) is None
    assert job.calls == 1  # no request storm
    assert not coord.ready
    assert [e["log_level"] for e in logs] == ["error"]


async def test_a_configuration_error_at_run_time_stops_polling_and_says_why() -> None:
    clock = Clock()
    coord = Coordinator("znuny", clock=clock)
    job = Flaky(1, ConnectorConfigError("webservice 'Nope': no answer"))
    with capture_logs() as logs:
        for _ in range(5):
            assert await coord.run(job) is None
            clock.now += 10_000
    assert job.calls == 1 and not coord.ready
    assert (coord.stop_reason, coord.last_error) == ("configuration error", "webservice 'Nope': no answer")
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("error", "connector configuration error; polling stopped until the config is fixed and reloaded")
    ]


class Script:
    """Fails or succeeds as scripted (True = success); counts calls."""

    def __init__(self, outcomes: list[bool]) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if not self.outcomes.pop(0):
            raise TransientError("HTTP 502")
        return "ok"


async def test_a_flapping_connector_is_one_outage_until_healthy_for_recover_after() -> None:
    clock = Clock()
    coord = Coordinator("flaky", base_delay=10, max_delay=40, recover_after=60, clock=clock)
    # fail, ok, fail, fail, ok, ok, fail: every success is followed by a failure within 60 s
    flapping = [False, True, False, False, True, True, False]
    job = Script([*flapping, *([True] * 8)])
    with capture_logs() as logs:
        results = []
        for _ in range(len(flapping) + 8):
            clock.now = max(clock.now + 10, coord.not_before)
            results.append(await coord.run(job))
    assert job.calls == len(flapping) + 8  # every try went out once its backoff had passed
    levels = [(e["log_level"], e["event"]) for e in logs]
    assert levels.count(("warning", "connector failing; backing off")) == 1
    assert levels.count(("debug", "connector still failing")) == 3
    recovered = [e for e in logs if e["event"] == "connector recovered"]
    assert len(recovered) == 1 and recovered[0]["failed_attempts"] == 4
    # the 7th success is the first with 60 s of success behind it (10 s apart from the first)
    assert [e["event"] for e in logs][-1] == "connector recovered"
    assert results[-1] == "ok" and results.count("ok") == 3 + 8
    assert coord.state == "ok" and coord.failures == 0


async def test_debug_lines_show_each_retry_backing_off_within_the_cap() -> None:
    clock = Clock()
    coord = Coordinator("down", base_delay=5, max_delay=30, recover_after=0, clock=clock)
    job = Script([False] * 6 + [True])
    with capture_logs() as logs:
        for _ in range(7):
            clock.now = coord.not_before
            await coord.run(job)
    retries = [e["retry_in"] for e in logs if "retry_in" in e]
    assert retries == [5, 10, 20, 30, 30, 30]
    assert [e["event"] for e in logs if e["log_level"] != "debug"] == [
        "connector failing; backing off",
        "connector recovered",
    ]


async def test_a_state_error_backs_off_and_is_not_ready_until_the_database_answers() -> None:
    from daemon.errors import StateError

    clock = Clock()
    coord = Coordinator("znuny", base_delay=5, max_delay=60, clock=clock)
    job = Flaky(3, StateError("state database /var/lib/ticketd/state.db: database is locked"))
    with capture_logs() as logs:
        for expected_delay in (5, 10, 20):
            assert await coord.run(job) is None
            assert coord.not_before - clock.now == expected_delay  # backoff, no storm
            assert not coord.ready and coord.failure_class == "state"
            assert coord.reason == "state: state database /var/lib/ticketd/state.db: database is locked"
            assert await coord.run(job) is None  # still waiting: no call
            clock.now = coord.not_before
        assert await coord.run(job) == "ok"
    assert job.calls == 4 and coord.ready and coord.reason is None
    assert [(e["log_level"], e["event"]) for e in logs if e["log_level"] != "debug"] == [
        ("warning", "state database failing; backing off"),
        ("info", "connector recovered"),
    ]


async def test_an_unexpected_error_is_logged_once_with_its_traceback_and_not_ready_once_it_repeats() -> None:
    clock = Clock()
    coord = Coordinator("maildir", base_delay=5, clock=clock)
    job = Flaky(3, KeyError("cursor"))
    with capture_logs() as logs:
        assert await coord.run(job) is None
        assert coord.ready and coord.failure_class == "unexpected"  # once may be a fluke
        for _ in range(2):
            clock.now = coord.not_before
            assert await coord.run(job) is None
            assert not coord.ready and coord.reason == "unexpected: 'cursor'"
        clock.now = coord.not_before
        assert await coord.run(job) == "ok"
    assert coord.ready and job.calls == 4
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1 and errors[0]["event"] == "unexpected error; backing off"
    assert errors[0]["error_type"] == "KeyError" and isinstance(errors[0]["exc_info"], KeyError)


async def test_the_daemons_own_config_error_stops_like_the_connectors() -> None:
    from daemon.errors import ConfigError as DaemonConfigError

    coord = Coordinator("x", clock=Clock())
    assert await coord.run(Flaky(1, DaemonConfigError("routing.labels.queue.map: no queue 'Nope'"))) is None
    assert coord.state == "stopped" and coord.failure_class == "configuration" and not coord.ready


async def test_a_failure_that_changes_its_nature_is_said_again() -> None:
    from daemon.errors import StateError

    clock = Clock()
    coord = Coordinator("z", base_delay=1, clock=clock)
    job = Script([False, False])
    with capture_logs() as logs:
        await coord.run(job)
        clock.now = coord.not_before
        await coord.run(Flaky(1, StateError("disk I/O error")))
    assert [e["event"] for e in logs if e["log_level"] != "debug"] == [
        "connector failing; backing off",
        "state database failing; backing off",
    ]


async def test_a_signal_from_the_helpdesk_ends_a_transient_backoff_early_but_not_more_than_every_5_s() -> None:
    clock = Clock()
    coord = Coordinator("z", base_delay=3600, clock=clock)
    job = Flaky(2, TransientError("HTTP 502"))
    assert await coord.run(job) is None  # fails: an hour of backoff
    clock.now += 1
    coord.signalled()  # a push or new mail, one second later: the last failure is too recent
    assert await coord.run(job) is None and job.calls == 1
    clock.now += 4
    coord.signalled()
    assert await coord.run(job) is None and job.calls == 2  # tried at once, failed again
    clock.now += 5
    coord.signalled()
    assert await coord.run(job) == "ok" and job.calls == 3


async def test_a_signal_does_not_lift_a_stop_or_a_state_backoff() -> None:
    clock = Clock()
    coord = Coordinator("z", base_delay=3600, clock=clock)
    await coord.run(Flaky(1, AuthError("401")))
    clock.now += 60
    coord.signalled()
    assert not coord.due()
    state = Coordinator("s", base_delay=3600, clock=clock)
    await state.run(Flaky(1, StateError("database is locked")))
    clock.now += 60
    state.signalled()
    assert not state.due()
