"""Pushes signed with a shared secret (Zammad's webhook, deploy/rt's scrip): one check, in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from connectors import _json as safe_json
from connectors.errors import PushRejected


def signed_json(
    headers: Mapping[str, str], body: bytes, *, key: str, key_name: str, header: str, algorithm: str, what: str
) -> Any:
    """The JSON body of a push whose `header` is `<algorithm>=<hex HMAC of the raw body>` keyed by `key`.

    PushRejected when no key is configured or the signature is missing or wrong (the body is not read then);
    ValueError naming `what` when a correctly signed body is not JSON. `headers` are keyed by lower-case name.
    """
    if not key:
        raise PushRejected(f"no {key_name} configured for this connector")
    given = headers.get(header.lower(), "")
    wanted = f"{algorithm}=" + hmac.new(key.encode(), body, algorithm).hexdigest()
    if not hmac.compare_digest(given.encode(), wanted.encode()):
        raise PushRejected(f"{header} missing or not signed with the {key_name}")
    try:
        return safe_json.loads(body)
    except ValueError:
        raise ValueError(f"{what} is not JSON") from None
