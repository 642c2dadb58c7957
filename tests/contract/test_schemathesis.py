"""Property-based contract tests: Schemathesis generates requests from each service's own
OpenAPI document and runs every check it has, as `st run --checks all` would: no 5xx; no
undocumented status, content type, header or body; schema-valid requests accepted and
invalid ones refused; methods and Allow headers as documented; authentication never
ignored; and, over sequences of calls, what is created can be read."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from concord.service import services
from tests.conftest import (
    JWT_SECRET,
    SECRETS_KEYS,
    Stack,
    empty_jetstream,
    fresh_database,
    nats_login,
)
from tests.contract.fuzzing import (
    Running,
    aim,
    create_alliance,
    crm_credential,
    furnish_scorecard,
    known_to_scorecard,
    serve,
)

# Building an app connects to nothing (its runtime starts with the server), so the documents
# are read at collection time, exactly as the services publish them.
DOCUMENTS = {
    name: schemathesis.openapi.from_dict(
        declared.app(declared.settings(jwt_secret=JWT_SECRET)).openapi()
    )
    for name, declared in services().items()
}

# The examples per operation beyond those the coverage phase derives from the document (2,600
# in all, whatever this says); raise them for a deeper hunt. The whole module takes about two
# minutes on two cores as it is.
FUZZ = settings(
    max_examples=int(os.environ.get("CONCORD_FUZZ_EXAMPLES", "20")),
    deadline=None,
    # Every operation of a service talks to the one server the module starts for it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
async def module_stack(stack: Stack) -> AsyncIterator[dict[str, Any]]:
    """Settings for this module's servers: a database and a JetStream of their own."""
    async with fresh_database(stack, prefix="st") as database_url:
        yield {
            "database_url": database_url,
            "nats_url": await empty_jetstream(stack),
            "jwt_secret": JWT_SECRET,
            "secrets_keys": SECRETS_KEYS,
            "database_pool_size": 5,
            "relay_poll_interval": 0.5,
            # A generated unknown alliance id with min_version waits this long for its 404: a
            # tuning knob, not part of the contract.
            "read_your_writes_wait": 0.05,
        }


@pytest.fixture(scope="module")
def running(module_stack: dict[str, Any]) -> Iterator[dict[str, Running]]:
    """Every service behind its own uvicorn, started once for the module (starting them for
    each operation took most of the time), with an alliance in governance that scorecard
    knows, its scorecard furnished with one of everything."""
    urls: dict[str, str] = {}
    servers = []
    try:
        for name, declared in services().items():
            login = nats_login(declared.settings.service)
            served = serve(declared.app(declared.settings(**module_stack, **login)))
            urls[name] = next(served)
            servers.append(served)
        governance, scorecard = urls["governance"], urls["scorecard"]
        alliance_id = create_alliance(governance)
        known_to_scorecard(scorecard, alliance_id)
        existing = furnish_scorecard(scorecard, alliance_id)
        crm = crm_credential(scorecard, alliance_id)
        yield {name: Running(url, alliance_id, existing, crm) for name, url in urls.items()}
    finally:
        for served in reversed(servers):
            next(served, None)


# Refusals of schema-valid requests by the state of what they change, which no request
# schema can foresee; the document states each kind in words.
STATE_REFUSALS = {
    "/problems/rule-violated": "a business rule about the alliance as it stands (422)",
    "/problems/idempotency-key-reused": "a generated key an earlier example used (422)",
    "/problems/precondition-failed": "a well-formed ETag of another version (412)",
}
# Rules across the fields or items of one object that the document states in words, in its
# description of that object, each refused with a 422 whose error names it.
RULES_IN_WORDS = {
    "goals must be distinct": "regardless of case (uniqueItems states exact repeats)",
    "each partner organisation may appear once": "one property unique across objects",
    "off_track_below cannot be above on_track_from": "an order between two fields",
    "a done initiative is 100% complete": "one field's value fixes another's",
    "a KPI fed by": "the feed's metric decides whether a currency is named",
}


def _refused_by_design(problem: dict[str, Any]) -> bool:
    if problem.get("type") in STATE_REFUSALS:
        return True
    messages = [str(error.get("message", "")) for error in problem.get("errors") or []]
    return bool(messages) and all(
        any(message.removeprefix("Value error, ").startswith(rule) for rule in RULES_IN_WORDS)
        for message in messages
    )


def accepted_unless_refused_by_design() -> schemathesis.CheckFunction:
    """Schemathesis' positive_data_acceptance (a schema-valid request is not refused as
    invalid), except for the refusals above: any other 4xx to schema-valid input means the
    document and the code disagree."""

    def check(
        ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
    ) -> bool | None:
        if response.status_code in (400, 412, 422) and _refused_by_design(response.json()):
            return None
        return positive_data_acceptance(ctx, response, case)

    check.__name__ = positive_data_acceptance.__name__
    return check


def _excluded(case: schemathesis.Case) -> list[schemathesis.CheckFunction]:
    """Every check Schemathesis has runs, but positive_data_acceptance runs as
    accepted_unless_refused_by_design."""
    if case.path == "/integrations/crm/events":
        # A CRM batch is judged item by item by design (one bad item never sinks the good
        # ones): a batch with an invalid item is a 200 that rejects that item, not a 4xx.
        return [positive_data_acceptance, negative_data_rejection]
    return [positive_data_acceptance]


def _check(case: schemathesis.Case, service: str, running: dict[str, Running]) -> None:
    case.call_and_validate(
        base_url=running[service].url,
        headers=aim(case, running[service]),
        excluded_checks=_excluded(case),
        additional_checks=[accepted_unless_refused_by_design()],
    )


def _answers_as_its_openapi_says(service: str) -> Any:
    @DOCUMENTS[service].parametrize()
    @FUZZ
    def test(case: schemathesis.Case, running: dict[str, Running]) -> None:
        _check(case, service, running)

    return test


# One test per declared service, each operation of its document a case of it.
for _service in DOCUMENTS:
    globals()[f"test_{_service.replace('-', '_')}_answers_as_its_openapi_says"] = (
        _answers_as_its_openapi_says(_service)
    )


WORKFLOWS = settings(
    max_examples=int(os.environ.get("CONCORD_FUZZ_WORKFLOWS", "10")),
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("service", sorted(DOCUMENTS))
def test_workflows_answer_as_the_openapi_says(service: str, running: dict[str, Running]) -> None:
    """Sequences of calls along the links Schemathesis infers from the document (create,
    then read or change what was created), with the checks only sequences have: a created
    resource can be read (ensure_resource_availability), a deleted one stays gone
    (use_after_free). object_level_authorization runs too, but needs identities declared
    in Schemathesis' WFC auth configuration to compare; the boundary between
    organisations is tested directly (test_auth.py, and the scorecard's visibility tests)."""
    target = running[service]

    class Workflow(DOCUMENTS[service].as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": target.url, "headers": aim(case, target)}

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            case.validate_response(
                response,
                excluded_checks=_excluded(case),
                additional_checks=[accepted_unless_refused_by_design()],
                transport_kwargs=kwargs.get("transport_kwargs") or kwargs or None,
                recorder=getattr(self, "recorder", None),
            )

    Workflow.run(settings=WORKFLOWS)
