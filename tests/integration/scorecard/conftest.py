"""What the scorecard integration tests share: an alliance of acme and globex (created in
governance, as in production) with its scorecard open, and a signed CRM client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from concord.auth import sign
from tests.conftest import auth, charter

PARTNER_A, PARTNER_B, STRANGER = "acme", "globex", "initech"


@dataclass(frozen=True)
class Board:
    client: httpx.AsyncClient
    alliance_id: str

    @property
    def base(self) -> str:
        return f"/alliances/{self.alliance_id}/scorecard"

    async def post(
        self, path: str, body: dict[str, Any], org: str = PARTNER_A, **kwargs: Any
    ) -> httpx.Response:
        return await self.client.post(f"{self.base}{path}", json=body, headers=auth(org), **kwargs)

    async def get(self, path: str = "", org: str = PARTNER_A, **params: Any) -> httpx.Response:
        return await self.client.get(f"{self.base}{path}", params=params, headers=auth(org))

    async def ok(self, path: str, body: dict[str, Any], org: str = PARTNER_A) -> dict[str, Any]:
        answer = await self.post(path, body, org)
        assert answer.status_code in (200, 201), answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def kpi(self, org: str = PARTNER_A, **overrides: Any) -> dict[str, Any]:
        return await self.ok("/kpis", kpi(org, **overrides), org)

    async def page(self, org: str = PARTNER_A, **params: Any) -> dict[str, Any]:
        answer = await self.get("", org, **params)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


def kpi(org: str = PARTNER_A, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "Joint revenue",
        "dimension": "commercial",
        "kind": "lagging",
        "unit": "EUR",
        "currency": "EUR",
        "owner_org": org,
        **overrides,
    }


async def known_to(scorecard: httpx.AsyncClient, charter: dict[str, Any]) -> None:
    """Scorecard learns of an alliance from governance's events: a client reads its own write
    (the charter's version) before it acts on it."""
    known = await scorecard.get(
        f"/alliances/{charter['id']}", params={"min_version": charter["version"]}, headers=auth()
    )
    assert known.status_code == 200, known.text


async def open_board(
    governance: httpx.AsyncClient, scorecard: httpx.AsyncClient, *orgs: str
) -> Board:
    created = await governance.post("/alliances", json=charter(*orgs), headers=auth())
    assert created.status_code == 201, created.text
    alliance_id = created.json()["id"]
    # Scorecard learns of the alliance from governance's events: read our own write first.
    known = await scorecard.get(
        f"/alliances/{alliance_id}",
        params={"min_version": created.json()["version"]},
        headers=auth(),
    )
    assert known.status_code == 200, known.text
    opened = await scorecard.post(
        f"/alliances/{alliance_id}/scorecard", json={"currency": "EUR"}, headers=auth()
    )
    assert opened.status_code == 201, opened.text
    return Board(scorecard, alliance_id)


@pytest.fixture
async def board(governance: httpx.AsyncClient, scorecard: httpx.AsyncClient) -> Board:
    return await open_board(governance, scorecard)


Signer = Callable[..., dict[str, str]]


@dataclass(frozen=True)
class Crm:
    """A partner's CRM: posts signed batches of pipeline events."""

    client: httpx.AsyncClient
    key_id: str
    secret: str

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": "application/json",
            "Concord-Credential": self.key_id,
            "Concord-Timestamp": stamp,
            "Concord-Signature": sign(self.secret, stamp, body),
        }

    async def send(self, *items: dict[str, Any], **sign_with: Any) -> httpx.Response:
        body = json.dumps({"events": list(items)}).encode()
        return await self.client.post(
            "/integrations/crm/events", content=body, headers=self.headers(body, **sign_with)
        )


async def crm_of(board: Board, org: str = PARTNER_A) -> Crm:
    issued = await board.client.post(
        f"/alliances/{board.alliance_id}/integrations/crm/credentials", headers=auth(org)
    )
    assert issued.status_code == 201, issued.text
    credential = issued.json()
    return Crm(board.client, credential["key_id"], credential["secret"])
