"""schemathesis against the live OpenAPI document of the running system: every operation, a
bounded number of generated cases each, sent with a sales rep's key and with the admin's.
Checks: no 5xx; the status code, the content type and the body are the ones the document
gives for that operation.

The module runs after tests/security/test_matrix_visibility.py (file order) because generated
cases write at random (users, teams, rules, the controllable clock) and the matrix wants a
calm system. `CRM_SCHEMATHESIS_CASES` changes the number of cases per operation.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.system import System

pytestmark = pytest.mark.e2e

CASES_PER_OPERATION = int(os.environ.get("CRM_SCHEMATHESIS_CASES", "8"))
# Only the documented examples and `CASES_PER_OPERATION` generated cases: schemathesis'
# coverage phase adds every boundary and negative case it can derive from a schema, unbounded
# (five minutes for this document), and the stateful phase does not run under pytest anyway.
CONFIG = {"phases": {"coverage": {"enabled": False}}}
ROLES = ("zhangwei", "admin")  # a sales rep's key and the admin's
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def live_schema(system: System):
    return schemathesis.openapi.from_url(system.url + "/openapi.json",
                                         config=SchemathesisConfig.from_dict(CONFIG))


schema = schemathesis.pytest.from_fixture("live_schema")


@schema.parametrize()
@settings(
    max_examples=CASES_PER_OPERATION,
    deadline=None,  # timings are never asserted
    derandomize=True,  # the same cases on every run: a failure is reproducible
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time
    suppress_health_check=list(HealthCheck),
)
def test_live_api_conforms_to_its_document(case, system: System):
    for user in ROLES:
        case.call_and_validate(
            session=system.http,
            headers={"Authorization": f"Bearer {system.keys[user]}"},
            checks=CHECKS,
            timeout=30,
        )
