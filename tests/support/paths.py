"""Where things are: the repository, the workplace's shared data, the datasets and the Znuny web services."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
SAMPLE_200 = SHARED / "datasets" / "softoft-tickets" / "sample-200.csv"
STARTER = ROOT / "daemon" / "ml" / "data" / "starter-tickets.csv"
ZNUNY_WEBSERVICES = {
    "GenericTicketConnectorREST": SHARED / "znuny" / "GenericTicketConnectorREST.development.yml",
    "GenericTicketConnectorREST-Release": SHARED / "znuny" / "GenericTicketConnectorREST.release-example.yml",
    "ticketd": ROOT / "deploy" / "znuny" / "ticketd-webservice.yml",
}
