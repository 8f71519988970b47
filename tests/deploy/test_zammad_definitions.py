"""deploy/zammad/: the webhook and trigger bodies an admin POSTs to Zammad, and the README's placeholders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from daemon.web.api.hooks import router

ZAMMAD = Path(__file__).resolve().parents[2] / "deploy" / "zammad"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ZAMMAD / name).read_text(encoding="utf-8"))
    return data


def test_the_webhook_points_at_ticketds_hook_route_and_is_signed() -> None:
    hook = _load("webhook.json")
    assert {"name", "endpoint", "signature_token", "ssl_verify", "active"} <= set(hook)
    assert hook["ssl_verify"] is True and hook["active"] is True
    path = re.sub(r"^https?://[^/]+", "", hook["endpoint"]).replace("CONNECTOR_NAME", "{connector}")
    assert path in {route.path for route in router.routes}  # type: ignore[attr-defined]
    assert hook["signature_token"] == "CHANGE-ME-webhook-secret"


def test_the_trigger_fires_on_create_in_the_inbound_groups_and_calls_the_webhook() -> None:
    trigger = _load("trigger.json")
    assert trigger["activator"] == "action" and trigger["execution_condition_mode"] == "selective"
    assert trigger["condition"]["ticket.action"] == {"operator": "is", "value": "create"}
    assert trigger["condition"]["ticket.group_id"]["value"] == ["INBOUND_GROUP_ID"]
    assert trigger["perform"] == {"notification.webhook": {"webhook_id": "WEBHOOK_ID"}}


def test_every_placeholder_is_one_the_readme_fills_in() -> None:
    readme = (ZAMMAD / "README.md").read_text(encoding="utf-8")
    text = (ZAMMAD / "webhook.json").read_text() + (ZAMMAD / "trigger.json").read_text()
    placeholders = set(
        re.findall(r"CHANGE-ME-[a-z-]+|\b[A-Z]+_[A-Z_]+\b|https://ticketd\.example\.internal:8080", text)
    )
    assert placeholders == {
        "CONNECTOR_NAME",
        "CHANGE-ME-webhook-secret",
        "INBOUND_GROUP_ID",
        "WEBHOOK_ID",
        "https://ticketd.example.internal:8080",
    }
    for placeholder in placeholders:
        assert placeholder in readme, placeholder
