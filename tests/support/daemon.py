"""`ticketd run` as a separate process: its config against the fake Znuny's queues, its JSON log, `/readyz`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import ROOT

PASSWORD = "s3cret-agent-password"
ZAMMAD_TOKEN = "zammad-reliability-token"
API_TOKEN = "t-0123456789-0123456789-abcdef"  # the daemons' API token: /readyz shows its details to it
TARGETS = ["Billing", "Hardware", "Technical Support", "Misc"]  # the fake Znuny's queues ticketd routes into
SUBJECTS = [
    ("Invoice charged twice", "We were billed twice for March, please refund."),
    ("VPN keeps dropping", "The VPN disconnects every few minutes since the update."),
    ("Need a quote", "Please send an offer for 30 more licences."),
    ("Laptop screen broken", "My screen flickers and then goes black."),
    ("Payment failed", "The card payment failed although the card is valid."),
    ("Password reset", "I cannot reset my password, the link expired."),
]


def write_config(
    tmp_path: Path, url: str, store: Path, *, connection: dict[str, Any] | None = None, **routing: Any
) -> Path:
    """Every model label routed (threshold 0) into the fake's queues, so each ticket gets exactly one write."""
    queues = json.loads((store / "current" / "queue" / "labels.json").read_text())
    priorities = json.loads((store / "current" / "priority" / "labels.json").read_text())
    targets = TARGETS
    config = {
        "model": {"store": str(store)},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "retrain": {"enabled": False},
        "api": {"enabled": False},
        "log": {"level": "info", "json": True},
        "connectors": [
            {
                "type": "znuny",
                "name": "fake",
                "url": url,
                "user": "agent1",
                "password": "${TEST_ZNUNY_PASSWORD}",
                "inbound_queues": ["Raw"],
                "queues": targets,
                "routing": {
                    "poll_interval": 0.2,
                    "jitter": 0,
                    "batch_limit": 5,
                    "labels": every_label(queues, priorities, targets, ["2 low", "3 normal", "4 high"]),
                    **routing,
                },
                **(connection or {}),
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def every_label(
    queues: Sequence[str], priorities: Sequence[str], queue_names: Sequence[str], priority_names: Sequence[str]
) -> dict[str, Any]:
    """Every model label routed (threshold 0), the model's classes spread over the helpdesk's names in turn."""
    return {
        "queue": {"map": {q: queue_names[i % len(queue_names)] for i, q in enumerate(queues)}, "threshold": 0},
        "priority": {
            "map": {p: priority_names[i % len(priority_names)] for i, p in enumerate(priorities)},
            "threshold": 0,
        },
    }


def daemon(config: Path, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TEST_ZNUNY_PASSWORD": PASSWORD,
        "TEST_ZAMMAD_TOKEN": ZAMMAD_TOKEN,
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config), *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def readyz(api: str) -> tuple[int, dict[str, Any]]:
    """`/readyz`'s status and body; (0, {}) while the API is not listening yet."""
    import httpx

    try:
        answer = httpx.get(f"{api}/readyz", timeout=2, headers={"Authorization": f"Bearer {API_TOKEN}"})
    except httpx.HTTPError:
        return 0, {}
    return answer.status_code, answer.json()
