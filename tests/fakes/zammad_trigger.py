"""Zammad's side of a trigger webhook: when a ticket is created, POST the signed webhook, retrying like Zammad.

Built from the facts in `tests.fakes.zammad` (its module docstring; the request itself comes from
`FakeZammad.webhook_request`, the one place that builds it): TriggerWebhookJob delivers from a background
job, and a call that fails (connection refused, timeout, any non-2xx answer) is retried, 5 attempts in all,
the n-th retry n x 10 s after the one before, every attempt with the same `X-Zammad-Delivery` (the job id).
`wait_scale` shrinks those waits for tests. Every attempt is recorded with its answer.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import httpx

from tests.fakes.zammad import WEBHOOK_ATTEMPTS, WEBHOOK_RETRY_WAITS, FakeZammad


@dataclass(frozen=True)
class Attempt:
    ticket_id: int
    delivery: str
    status: int | None  # None: no answer (refused, timed out)
    at: float


class TriggerWebhook:
    """One webhook + trigger ("ticket created -> call the endpoint"), delivering in background threads."""

    def __init__(self, zammad: FakeZammad, endpoint: str, token: str | None, *, wait_scale: float = 1.0) -> None:
        self.zammad = zammad
        self.endpoint = endpoint
        self.token = token
        self.wait_scale = wait_scale
        self.attempts: list[Attempt] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def ticket_created(self, ticket_id: int) -> None:
        """The trigger fired: one delivery job, retried on failure."""
        job = secrets.token_hex(18)
        thread = threading.Thread(target=self._deliver, args=(ticket_id, job), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _deliver(self, ticket_id: int, job: str) -> None:
        headers, body = self.zammad.webhook_request(ticket_id, self.token, delivery=job)
        for attempt in range(WEBHOOK_ATTEMPTS):
            try:
                status: int | None = httpx.post(self.endpoint, content=body, headers=headers, timeout=10).status_code
            except httpx.HTTPError:
                status = None
            self.attempts.append(Attempt(ticket_id, job, status, time.monotonic()))
            if status is not None and 200 <= status < 300:
                return
            if attempt < len(WEBHOOK_RETRY_WAITS) and self._stop.wait(WEBHOOK_RETRY_WAITS[attempt] * self.wait_scale):
                return

    def join(self, timeout: float = 30) -> None:
        """Wait until every delivery has succeeded or given up."""
        for thread in self._threads:
            thread.join(timeout)

    def close(self) -> None:
        self._stop.set()
        self.join(5)
