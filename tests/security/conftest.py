"""The security suites run against the same kind of system as tests/e2e (the fixtures are
tests/e2e/conftest.py's own, so the system starts with the same environment): one start for
this directory, separate from the e2e session's system because schemathesis and the matrix
write records that the e2e tests' assertions do not expect.
"""

from tests.e2e.conftest import (  # noqa: F401  (fixtures, registered by name)
    _restore_system,
    mailbox,
    system,
    webhook_receiver,
)
