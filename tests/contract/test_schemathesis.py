"""Property-based contract tests: Schemathesis generates requests from each service's own
OpenAPI document, sends them with a valid bearer token, and checks that no answer is a 5xx,
an undocumented status or content type, or a body that breaks that document."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from concord.auth import ORG_PATTERN, sign
from concord.devstack import free_port
from governance.app import create_app as create_governance
from governance.settings import GovernanceSettings
from scorecard.app import create_app as create_scorecard
from scorecard.settings import ScorecardSettings
from tests.conftest import JWT_SECRET, auth, charter

# Building an app connects to nothing (its runtime starts with the server), so the documents
# are read at collection time, exactly as the services publish them.
governance_api = schemathesis.openapi.from_dict(
    create_governance(GovernanceSettings(jwt_secret=JWT_SECRET)).openapi()
)
scorecard_api = schemathesis.openapi.from_dict(
    create_scorecard(ScorecardSettings(jwt_secret=JWT_SECRET)).openapi()
)

FUZZ = settings(
    # Modest by default so `make test` stays quick; raise it for a deeper hunt.
    max_examples=int(os.environ.get("CONCORD_FUZZ_EXAMPLES", "30")),
    deadline=None,
    # Each operation gets a fresh database and server; the examples within it share them.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Running:
    url: str
    alliance_id: str  # one that exists, so generated ids can reach more than the 404 branch
    # Other ids that exist (a KPI, an initiative, objectives), by path parameter name.
    existing: dict[str, str] = field(default_factory=dict)
    crm: tuple[str, str] | None = None  # a CRM credential's key id and secret


def _serve(app: FastAPI) -> Iterator[str]:
    """The app behind a real uvicorn on a free port, in a thread with its own event loop:
    Schemathesis calls synchronously, and the app's lifespan needs a loop that stays up."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, name="schemathesis-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _create_alliance(governance_url: str) -> str:
    created = httpx.post(f"{governance_url}/alliances", json=charter(), headers=auth("acme"))
    assert created.status_code == 201, created.text
    alliance_id: str = created.json()["id"]
    return alliance_id


@pytest.fixture
def governance_server(settings: Callable[..., Any]) -> Iterator[Running]:
    for url in _serve(create_governance(settings(GovernanceSettings))):
        yield Running(url, _create_alliance(url))


@pytest.fixture
def scorecard_server(settings: Callable[..., Any]) -> Iterator[Running]:
    # Unknown alliances wait for the projection before their 404; keep that wait short here,
    # it is a tuning knob, not part of the contract.
    scorecard_settings = settings(ScorecardSettings, read_your_writes_wait=0.05)
    for governance_url in _serve(create_governance(settings(GovernanceSettings))):
        for url in _serve(create_scorecard(scorecard_settings)):
            alliance_id = _create_alliance(governance_url)
            deadline = time.monotonic() + 10
            while httpx.get(f"{url}/alliances/{alliance_id}", headers=auth()).status_code != 200:
                assert time.monotonic() < deadline, "scorecard never learnt of the alliance"
                time.sleep(0.05)
            existing = _furnish_scorecard(url, alliance_id)
            issued = httpx.post(
                f"{url}/alliances/{alliance_id}/integrations/crm/credentials", headers=auth()
            ).json()
            yield Running(url, alliance_id, existing, (issued["key_id"], issued["secret"]))


def _furnish_scorecard(url: str, alliance_id: str) -> dict[str, str]:
    """Open the alliance's scorecard with a KPI, an initiative and two objectives in it."""
    base = f"{url}/alliances/{alliance_id}/scorecard"

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(f"{base}{path}", json=body, headers=auth())
        assert answer.status_code in (200, 201), answer.text
        created: dict[str, Any] = answer.json()
        return created

    post("", {"currency": "EUR"})
    kpi = post(
        "/kpis",
        {
            "name": "Joint revenue",
            "dimension": "commercial",
            "kind": "lagging",
            "unit": "EUR",
            "currency": "EUR",
            "owner_org": "acme",
        },
    )
    initiative = post(
        "/initiatives",
        {
            "name": "Co-selling playbook",
            "dimension": "operational",
            "owner_org": "acme",
            "owner_name": "Ann",
            "leading_indicator": "Workshops held",
            "due_date": "2027-03-31",
        },
    )
    objective = post("/objectives", {"name": "Win banks", "dimension": "commercial"})
    return {"kpi_id": kpi["id"], "initiative_id": initiative["id"], "objective_id": objective["id"]}


def _aim(case: schemathesis.Case, running: Running) -> dict[str, str]:
    """Point about half of the generated alliance ids at the alliance that exists (a random
    UUID only ever meets a 404), name one of its partners for about half of the sponsors (a
    random organisation is never one), and speak for the first partner a generated charter
    names, so that creating an alliance can succeed. Returns the headers to add."""
    existing = {"alliance_id": running.alliance_id, **running.existing}
    for name, value in (case.path_parameters or {}).items():
        if name in existing and isinstance(value, str):
            try:
                if UUID(value).int % 2 == 0:
                    case.path_parameters[name] = existing[name]
            except ValueError:
                pass  # a deliberately invalid id: leave it for the 422
    body = case.body if isinstance(case.body, dict) else {}
    for name in ("owner_org", "partner_org"):  # a partner, about half of the time
        if isinstance(body.get(name), str) and len(body[name]) % 2 == 0:
            body[name] = "acme"
    for name in ("cause_id", "effect_id"):
        if isinstance(body.get(name), str) and len(body[name]) % 2 == 0:
            body[name] = existing["objective_id"]
    sponsor_org = body.get("org_id")
    if (
        case.path.endswith("/executive-sponsors")
        and isinstance(sponsor_org, str)
        and ORG_PATTERN.fullmatch(sponsor_org)
        and len(sponsor_org) % 2 == 0
    ):
        body["org_id"] = "globex"
    org = "acme"
    partners = body.get("partners")
    if isinstance(partners, list) and partners and isinstance(partners[0], dict):
        named = partners[0].get("org_id")
        if isinstance(named, str) and ORG_PATTERN.fullmatch(named):
            org = named
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        # The case means to send a missing or bad Authorization (or CRM signature) header:
        # keep it so, and let the API answer 401.
        return {}
    if case.path == "/integrations/crm/events" and running.crm is not None:
        return _signed(case, *running.crm)
    return auth(org)


def _signed(case: schemathesis.Case, key_id: str, secret: str) -> dict[str, str]:
    """Sign the body as the transport will send it (requests' `json=`: json.dumps, UTF-8),
    so generated batches reach the ingestion itself rather than only its 401."""
    try:
        body = json.dumps(case.body, allow_nan=False).encode()
    except (TypeError, ValueError):
        return {}  # not JSON at all: unsigned, it meets the 401
    stamp = str(int(time.time()))
    return {
        "Concord-Credential": key_id,
        "Concord-Timestamp": stamp,
        "Concord-Signature": sign(secret, stamp, body),
    }


def _a_rule_no_schema_states(case: schemathesis.Case, error: dict[str, Any]) -> bool:
    """A rule across a body or one of its objects: goals distinct regardless of case, each
    partner once, thresholds in order, a CRM-fed KPI with the currency its metric needs."""
    location = str(error.get("location", ""))
    return (location == "body" or location.startswith("body.")) and error.get(
        "type"
    ) == "value_error"


def refused_only_by_rules_a_schema_cannot_state(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """Stands in for Schemathesis' positive_data_acceptance, which expects every schema-valid
    request to succeed. Some refusals of schema-valid input are by design, for rules a JSON
    Schema cannot state (or only with a pattern on every string): a business rule about the
    alliance's state (422 rule-violated, e.g. a sponsor from an organisation that is not a
    partner), a cursor this API never gave out (400: a cursor is opaque, its schema says "a
    string"), and the rules in `_a_rule_no_schema_states`. Any other 400 or 422 for
    schema-valid input means the document and the code disagree."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code not in (400, 422):
        return
    problem = response.json()
    errors = problem.get("errors") or []
    by_design = (
        # A business rule, or a generated Idempotency-Key that an earlier example already
        # used with another body: both are refusals the document states in words.
        problem.get("type") in ("/problems/rule-violated", "/problems/idempotency-key-reused")
        or (errors and all(_a_rule_no_schema_states(case, error) for error in errors))
        or (
            response.status_code == 400
            and "cursor" in (case.query or {})
            and "cursor" in problem.get("detail", "")
        )
    )
    assert by_design, f"Schema-valid request refused as invalid: {response.status_code} {problem}"


def _check(case: schemathesis.Case, running: Running) -> None:
    excluded = [positive_data_acceptance]
    if case.path == "/integrations/crm/events":
        # A CRM batch is judged item by item by design (one bad item never sinks the good
        # ones): a batch with an invalid item is a 200 that rejects that item, not a 4xx.
        excluded.append(negative_data_rejection)
    case.call_and_validate(
        base_url=running.url,
        headers=_aim(case, running),
        excluded_checks=excluded,
        additional_checks=[refused_only_by_rules_a_schema_cannot_state],
    )


@governance_api.parametrize()
@FUZZ
def test_governance_answers_as_its_openapi_says(
    case: schemathesis.Case, governance_server: Running
) -> None:
    _check(case, governance_server)


@scorecard_api.parametrize()
@FUZZ
def test_scorecard_answers_as_its_openapi_says(
    case: schemathesis.Case, scorecard_server: Running
) -> None:
    _check(case, scorecard_server)
