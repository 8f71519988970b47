"""Contract-suite backend: the RT connector on the fake RT with user and password (RT's web session)."""

from tests.support.backends.rt import make_password_harness as make_harness

__all__ = ["make_harness"]
