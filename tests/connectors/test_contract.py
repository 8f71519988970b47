"""One suite, every connector: each backend's harness fixture is parametrized in `conftest.py`.

The suite itself is tests/support/contract.py, so tests/connectors/znuny/test_live.py runs it too.
"""

from tests.support.contract import *  # noqa: F403 - the suite runs here with every backend's harness
