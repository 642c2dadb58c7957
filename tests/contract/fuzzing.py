"""What the Schemathesis tests need around the services: each behind a real uvicorn, an
alliance that exists with one of everything in its scorecard, and generated requests aimed
so that they reach more than the 404 of a random id or the 401 of an unsigned batch."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import schemathesis
import uvicorn
from fastapi import FastAPI
from schemathesis.core.parameters import ParameterLocation

from concord.auth import ALLIANCE_MANAGER, OPERATOR, ORG_PATTERN, sign
from concord.devstack import free_port
from tests.conftest import auth, charter


@dataclass(frozen=True)
class Running:
    url: str
    alliance_id: str  # one that exists, so generated ids can reach more than the 404 branch
    # Other ids that exist (a KPI, an initiative, objectives), by path parameter name.
    existing: dict[str, str] = field(default_factory=dict)
    crm: tuple[str, str] | None = None  # a CRM credential's key id and secret


def serve(app: FastAPI) -> Iterator[str]:
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


def create_alliance(governance_url: str) -> str:
    created = httpx.post(f"{governance_url}/alliances", json=charter(), headers=auth("acme"))
    assert created.status_code == 201, created.text
    alliance_id: str = created.json()["id"]
    return alliance_id


def known_to_scorecard(scorecard_url: str, alliance_id: str) -> None:
    """Wait for scorecard to learn of a new alliance from governance's events."""
    deadline = time.monotonic() + 10
    while httpx.get(f"{scorecard_url}/alliances/{alliance_id}", headers=auth()).status_code != 200:
        assert time.monotonic() < deadline, "scorecard never learnt of the alliance"
        time.sleep(0.05)


def crm_credential(scorecard_url: str, alliance_id: str) -> tuple[str, str]:
    """A CRM credential of the alliance, so generated batches reach its ingestion."""
    issued = httpx.post(
        f"{scorecard_url}/alliances/{alliance_id}/integrations/crm/credentials", headers=auth()
    )
    assert issued.is_success, issued.text
    return issued.json()["key_id"], issued.json()["secret"]


def furnish_scorecard(url: str, alliance_id: str) -> dict[str, str]:
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


def aim(case: schemathesis.Case, running: Running) -> dict[str, str]:
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
    _drop_headers_that_break_their_pattern(case)
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        # The case means to send a missing or bad Authorization (or CRM signature) header:
        # keep it so, and let the API answer 401.
        return {}
    if case.path == "/integrations/crm/events" and running.crm is not None:
        return _signed(case, *running.crm)
    return auth(org, (ALLIANCE_MANAGER, OPERATOR))


def _drop_headers_that_break_their_pattern(case: schemathesis.Case) -> None:
    """Schemathesis 4.32's coverage phase narrows header values to letters and digits, and
    where a header's pattern needs more (If-Match's quotes) it sends `0` and calls that
    valid. An optional header left out is what a valid request would do."""
    if case.meta is None or not case.meta.generation.mode.is_positive or not case.headers:
        return
    for parameter in case.operation.headers:
        pattern = parameter.definition.get("schema", {}).get("pattern")
        value = case.headers.get(parameter.name)
        broken = isinstance(value, str) and pattern and not re.search(pattern, value)
        if broken and not parameter.is_required:
            del case.headers[parameter.name]


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
