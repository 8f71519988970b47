"""Connector discovery through the `ticketd.connectors` entry-point group."""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any

from connectors.base import Connector, ConnectorConfig
from connectors.errors import ConnectorConfigError

GROUP = "ticketd.connectors"


def available() -> dict[str, Any]:
    """Every registered connector type, by name (plugins included)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def connector_class(type_name: str) -> type[Connector]:
    """The class registered for `type:`; an unknown type gets a did-you-mean listing the known ones."""
    known = available()
    if type_name not in known:
        close = difflib.get_close_matches(type_name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConnectorConfigError(f"unknown connector type {type_name!r}.{hint} Known: {', '.join(sorted(known))}")
    cls = known[type_name].load()
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConnectorConfigError(f"entry point {type_name!r} in {GROUP} is not a Connector class")
    return cls


def parse_config(raw: dict[str, Any]) -> ConnectorConfig:
    """Validate one `connectors:` entry with its connector's own model."""
    type_name = raw.get("type")
    if not isinstance(type_name, str):
        raise ConnectorConfigError("connector entry has no 'type'")
    return connector_class(type_name).config_model.model_validate(raw)
