"""Guessing credentials is slow and visible: wrong tokens, logins and push signatures are limited per client.

The counting is `limits`' fixed window in memory (a well-kept library, the one behind slowapi and
Flask-Limiter; it expires idle clients itself, so a scan from many addresses does not grow without end):
`api.failed_auth_per_minute` failures per client address, IPv6 by /64 (what one host usually holds
whole). A client over it gets 429 with Retry-After for every request that carries credentials, without
their being looked at, until the minute that began with its first failure is over; requests without
credentials (probes, scrapers) are never refused. Each replica counts on its own. Every failure is
counted in /metrics and logged at most once per client and minute, with the client's address.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable
from typing import Literal

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from daemon.logging import get_logger
from daemon.metrics import Metrics

log = get_logger(__name__)
Kind = Literal["bearer", "login", "push"]
_ONCE = RateLimitItemPerMinute(1)


def client_key(address: str) -> str:
    """What a client is counted by: its IPv4 address, its IPv6 /64, or the raw value if it is no address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:10.0.0.5 is the IPv4 client 10.0.0.5
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttle:
    """Failed credentials per client: counted, logged once a minute, and refused beyond the limit."""

    def __init__(self, per_minute: Callable[[], int], metrics: Metrics) -> None:
        self._per_minute = per_minute  # read at each use: a reloaded config applies at once
        self._limiter = FixedWindowRateLimiter(MemoryStorage())
        self._metrics = metrics

    def _item(self) -> RateLimitItemPerMinute:
        return RateLimitItemPerMinute(self._per_minute())

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try credentials again, or None while it is under the limit."""
        item, key = self._item(), client_key(client)
        if self._limiter.test(item, key):
            return None
        reset = self._limiter.get_window_stats(item, key).reset_time
        return max(1, math.ceil(reset - time.time()))

    def refuse(self, client: str, kind: Kind) -> int | None:
        """Before credentials are checked: seconds to wait if this client used up its failures, else None."""
        wait = self.retry_after(client)
        if wait is not None:
            self._metrics.auth_limited(kind)
            if self._once(client, "limited"):
                log.warning(
                    "client refused for a while: too many failed credentials",
                    client=client,
                    kind=kind,
                    retry_after=wait,
                    limit_per_minute=self._per_minute(),
                )
        return wait

    def failed(self, client: str, kind: Kind, reason: str) -> None:
        """Credentials were wrong: count it against the client; log it once per client and minute."""
        self._limiter.hit(self._item(), client_key(client))
        self._metrics.auth_failed(kind)
        if self._once(client, "failed"):
            log.warning(
                "credentials refused",
                client=client,
                kind=kind,
                reason=reason,
                note="more from this client within a minute are counted (ticketd_auth_failures_total), not logged",
            )

    def _once(self, client: str, what: str) -> bool:
        return self._limiter.hit(_ONCE, client_key(client), what)
