"""Fuzz the running API against its own OpenAPI document with Schemathesis:
no answer is a 500, and every answer matches the document (status, media type,
body schema). Runs on SQLite and PostgreSQL like every database test."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from funnel.accounts import api_keys as keys

EXAMPLES = 40
# Every default check runs except "schema-valid data is accepted": a string the
# document allows (any email, cursor, time zone) may still be one the domain
# refuses, with a documented 400/422.
SKIPPED = [positive_data_acceptance]


@pytest.fixture
def app_config(app_config):
    return {**app_config, "API_RATELIMIT": "100000 per minute"}


def test_the_api_keeps_its_own_contract(app, live_server):
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        key = keys.create_key(s, "fuzz", ["all"], now=rt.clock())[1]
    schema = schemathesis.openapi.from_url(live_server + "/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers, excluded_checks=SKIPPED)

        fuzz()


def test_the_fuzzer_would_notice_a_broken_answer(app, live_server):
    """Negative control: an answer that breaks the document fails the same check."""
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        key = keys.create_key(s, "fuzz", ["all"], now=rt.clock())[1]
    raw = schemathesis.openapi.from_url(live_server + "/api/v1/openapi.json").raw_schema
    raw["components"]["schemas"]["Stats"]["required"].append("revenue")  # we never send it
    schema = schemathesis.openapi.from_dict(raw)
    operation = schema.find_operation_by_label("GET /stats")
    assert operation is not None
    case = schema.make_case(operation=operation)
    from schemathesis.core.failures import FailureGroup

    with pytest.raises(FailureGroup) as failed:
        case.call_and_validate(base_url=live_server + "/api/v1",
                               headers={"Authorization": f"Bearer {key}"})
    assert [e.title for e in failed.value.exceptions] == ["Response violates schema"]
