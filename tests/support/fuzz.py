"""schemathesis run over the API's own /openapi.json, tallied (shared by the test and bench/api_fuzz.py)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz(app: Any, headers: dict[str, str], examples: int) -> tuple[dict[str, Any], list[str]]:
    """Positive and negative cases for every operation; returns the tally and the first failures."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tally: dict[str, Any] = {"operations": 0, "cases": 0, "failures": 0, "checks": [c.__name__ for c in CHECKS]}
    statuses: dict[str, int] = {}
    problems: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tally["operations"] += 1
        strategy = st.one_of(
            operation.as_strategy(generation_mode=mode, headers=dict(headers))
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        )

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            tally["cases"] += 1
            response = case.call(app=app)
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (
                Exception,
                BaseExceptionGroup,
            ) as exc:  # keep fuzzing; every failure is counted and the first ones reported
                tally["failures"] += 1
                if len(problems) < 10:
                    problems.append(f"{case.operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")

        run()
    tally["statuses"] = dict(sorted(statuses.items()))
    return tally, problems
