"""ticketd's import packages are called `daemon` and `connectors`; other distributions may claim them too.

The popular `python-daemon` also installs `site-packages/daemon/`: both write into one folder, the
last install wins and uninstalling either breaks the other. ticketd belongs in its own virtual
environment; this check makes a shared one fail at start with one line instead of an obscure import
error later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

PACKAGES = ("daemon", "connectors")
DISTRIBUTION = "ticketd"
MARK = "__ticketd__"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def conflicts(owners: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """One sentence per import package that is not ticketd's alone; [] when all is well."""
    import importlib

    if owners is None:
        from importlib.metadata import packages_distributions

        owners = packages_distributions()
    found = []
    for package in PACKAGES:
        others = sorted({d for d in owners.get(package, ()) if _canonical(d) != DISTRIBUTION})
        if others:
            found.append(f"the import package {package!r} is also installed by {', '.join(others)}")
        elif not getattr(importlib.import_module(package), MARK, False):
            module = importlib.import_module(package)
            where = getattr(module, "__file__", None) or list(getattr(module, "__path__", []))
            found.append(f"the import package {package!r} ({where}) is not ticketd's")
    return found


def message(found: list[str]) -> str:
    """The one line `ticketd` stops with."""
    return (
        "; ".join(found)
        + ". Both write into the same site-packages folder: install ticketd into its own virtual environment"
        " (python -m venv /opt/ticketd && /opt/ticketd/bin/pip install ticketd)"
    )
