"""cnm's test suites. pytest rewrites the assertions of their helper modules (``support/``, each
suite's ``probes.py``, ``queries.py``, ``topology.py``) as it does those of conftests and test
modules, so a helper's failing assertion shows its values."""

import pytest

pytest.register_assert_rewrite(
    "tests.support",
    "tests.clients",
    "tests.dns",
    "tests.firewall",
    "tests.kernel",
    "tests.runtime",
    "tests.unit",
)
