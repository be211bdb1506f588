"""Schemathesis fuzzes every operation of /openapi.json on the live server: never a 5xx, every
response's status code, content type and body as the document declares them."""

import itertools
from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import API_KEY

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_operation_holds_to_its_openapi_document(live):
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /v1/models",
        "POST /v1/completions",
        "POST /v1/chat/completions",
        "POST /v1/images/generations",
        "GET /health",
    }
    calls = []
    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        if mode == GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # nothing to break in a GET without a body

        @given(case=operation.as_strategy(generation_mode=mode), positive=st.just(mode == GenerationMode.POSITIVE))
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def fuzz(case, positive):
            if positive and isinstance(case.body, dict):  # a served model, so the
                case.body["model"] = "digits-gan" if "images" in case.path else "debug"  # request gets decoded
            calls.append(
                case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"}, checks=CHECKS, timeout=60)
            )

        fuzz()
    print(Counter((r.request.method, r.request.url.split("/", 3)[-1], r.status_code) for r in calls))
    assert len(calls) >= 2 * len(operations)
    assert any(r.status_code == 200 for r in calls) and any(400 <= r.status_code < 500 for r in calls)
    assert live.scheduler.counts() == (0, 0)
