"""The watch loop owes a signal its poll until one succeeds (daemon.runtime.push.Watcher, without a mailbox)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from connectors.base import Connector, Watch
from daemon.runtime.coordinator import Coordinator
from daemon.runtime.push import Watcher
from tests.support.waiting import until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Signals(Watch):
    """A watch that says "new work" whenever the test calls `signal`."""

    def __init__(self) -> None:
        self._new = asyncio.Event()
        self._closed = False

    def signal(self) -> None:
        self._new.set()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._new.wait(), timeout)
        except TimeoutError:
            return False
        self._new.clear()
        return not self._closed

    async def aclose(self) -> None:
        self._closed = True
        self._new.set()


class Mailbox:
    def __init__(self) -> None:
        self.signals = Signals()

    async def watch(self) -> Watch:
        return self.signals


class Polls:
    """The daemon's signalled poll: answers from a script (None: refused by the policy, or failed)."""

    def __init__(self, *answers: int | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> int | None:
        self.calls += 1
        return self.answers.pop(0) if self.answers else 0


def _watching(polls: Polls, monkeypatch: pytest.MonkeyPatch) -> tuple[Mailbox, list[float], Watcher]:
    monkeypatch.setattr(Watcher, "RETRY", 0.05)
    box, routed = Mailbox(), []
    watcher = Watcher(
        "mail",
        cast(Connector, box),
        policy=Coordinator("mail", base_delay=5.0),
        poll=polls,
        mode=lambda pushing: None,
        routed=routed.append,
    )
    return box, routed, watcher


async def test_a_signal_whose_poll_is_refused_is_polled_again_until_one_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    polls = Polls(0, None, None, 2)  # catch-up; the signal's poll refused, then failed; then it routes 2
    box, routed, watcher = _watching(polls, monkeypatch)
    running = asyncio.create_task(watcher.run())
    try:
        await until(lambda: polls.calls == 1, "the catch-up poll", timeout=2, step=0.01)
        box.signals.signal()
        await until(lambda: polls.calls == 4, "the owed poll, tried again", timeout=2, step=0.01)
        await until(lambda: len(routed) == 1, "the signal-to-write-back time", timeout=2, step=0.01)
        await asyncio.sleep(0.2)  # paid: no further polls without a new signal
        assert polls.calls == 4
    finally:
        await watcher.stop()
        await running


async def test_a_refused_catch_up_poll_is_tried_again_and_not_timed_as_a_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    polls = Polls(None, 3)
    _, routed, watcher = _watching(polls, monkeypatch)
    running = asyncio.create_task(watcher.run())
    try:
        await until(lambda: polls.calls == 2, "the catch-up poll, tried again", timeout=2, step=0.01)
        await asyncio.sleep(0.2)
        assert polls.calls == 2
        assert routed == []  # no signal asked for it: nothing to time
    finally:
        await watcher.stop()
        await running
