"""The API tested against its own OpenAPI schema by schemathesis: generated requests (valid
and invalid) to every operation, as a statistician with a token (and the identifiers
permission), over a launched sample trial with synthetic participants. Every response must
be no 5xx, a documented status code and content type, and a body and headers that match the
schema (schemathesis's default checks)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.config import SchemathesisConfig

from tests.api.conftest import make_user
from trials.models import Trial
from trials.roles import STATISTICIAN

pytestmark = pytest.mark.django_db


class InProcessApp:
    """Django's WSGI application, called inside the test's transaction. Like django.test's
    Client, it keeps request_started/finished from closing the test's database connection
    (which would roll back the data the test set up)."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            try:
                return [b"".join(response)]  # a streamed body is read while disconnected
            finally:
                response.close()  # type: ignore[attr-defined]
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


@pytest.fixture
def api_token(synthetic_trial: Trial) -> str:
    # With the identifiers permission, so identified responses are checked against the schema too.
    return Token.objects.create(user=make_user(STATISTICIAN, identifiers=True)).key


def _generated_schema() -> dict[str, Any]:
    # The document /api/schema/ serves, built without a request (and so without the
    # database, which is closed while pytest collects). JSON round trip: plain types only.
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


# schemathesis.pytest.from_fixture (a lazily loaded schema) does not work with pytest 9.2
# (it sets Node._nodeid, which pytest no longer has), so the schema is loaded at collection.
# A well-formed request naming a trial, version, arm or stage that does not exist is a 400
# (a typo must not look like an empty arm); `refuses_only_unknown_names` checks that this is
# the only reason a schema-valid request gets one.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "403", "404", "409"]
            }
        }
    }
)
UNKNOWN_NAME = re.compile(r"^no (trial|arm|stage) '|^trial '[^']+' has no version ")
schema = schemathesis.openapi.from_dict(_generated_schema(), config=CONFIG)
schema.app = InProcessApp()


def refuses_only_unknown_names(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if response.status_code != 400 or meta is None or not meta.generation.mode.is_positive:
        return None
    messages = [m for ms in response.json().values() for m in ms]
    assert all(UNKNOWN_NAME.match(m) for m in messages), f"valid request refused: {messages}"
    return True


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    # The fixtures (database rows, token) are set up once for all the operations and only
    # read by the API, so sharing them between generated examples is what we want.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_every_operation_conforms_to_the_schema(case: Any, api_token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Token {api_token}"},
        additional_checks=[refuses_only_unknown_names],
    )
