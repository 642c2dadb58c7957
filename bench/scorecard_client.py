"""What benchmarks 5 and 6 share: governance and scorecard as uvicorn subprocesses on one
database, and an HTTP client that makes the same calls as tests/integration/scorecard
(an alliance created in governance, its scorecard opened, commands, a CRM credential, the
one-page view awaited at a version)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from bench.http_load import service_server
from bench.lag import charter
from bench.stack import JWT_SECRET, Stack
from concord.auth import mint_token, sign

PARTNER_A, PARTNER_B = "acme", "globex"


def auth(org: str = PARTNER_A) -> dict[str, str]:
    token = mint_token(JWT_SECRET, sub="bench", org=org, roles=["alliance_manager"])
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def scorecard_stack(stack: Stack, database: str) -> Iterator[tuple[str, str]]:
    """(governance URL, scorecard URL): both services on `database`, each its own process."""
    with (
        service_server(
            stack, stack.root / f"{database}-governance.log", "governance", database
        ) as governance,
        service_server(
            stack, stack.root / f"{database}-scorecard.log", "scorecard", database
        ) as scorecard,
    ):
        yield governance, scorecard


@dataclass(frozen=True)
class Crm:
    """A partner's CRM: signs each batch with its integration credential."""

    key_id: str
    secret: str

    def headers(self, body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        return {
            "Content-Type": "application/json",
            "Concord-Credential": self.key_id,
            "Concord-Timestamp": stamp,
            "Concord-Signature": sign(self.secret, stamp, body),
        }


class ScorecardClient:
    """Talks to both services over loopback HTTP, as acme's alliance manager by default."""

    def __init__(self, governance_url: str, scorecard_url: str) -> None:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        self.governance = httpx.AsyncClient(base_url=governance_url, timeout=60, limits=limits)
        self.scorecard = httpx.AsyncClient(base_url=scorecard_url, timeout=60, limits=limits)
        self.headers = auth(PARTNER_A)
        self.retried = 0  # commands answered 409 (a concurrent change) and sent again

    async def close(self) -> None:
        await self.governance.aclose()
        await self.scorecard.aclose()

    async def create_alliance(self, i: int) -> str:
        created = await self.governance.post("/alliances", json=charter(i), headers=self.headers)
        if created.status_code != 201:
            raise RuntimeError(f"create alliance: {created.status_code} {created.text}")
        alliance_id: str = created.json()["id"]
        return alliance_id

    async def command(
        self, path: str, body: dict[str, Any] | None = None, *, attempts: int = 20
    ) -> dict[str, Any]:
        """POST a command; sent again on 409 (the stream moved under it) and on 404 (the
        alliance is not yet known to scorecard: governance's event is on its way)."""
        for attempt in range(attempts):
            answer = await self.scorecard.post(path, json=body, headers=self.headers)
            if answer.status_code in (200, 201):
                result: dict[str, Any] = answer.json()
                return result
            if answer.status_code in (404, 409) and attempt < attempts - 1:
                self.retried += 1
                await asyncio.sleep(0.01 * (attempt + 1))
                continue
            raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text[:500]}")
        raise AssertionError("unreachable")

    async def open_scorecard(self, i: int) -> str:
        alliance_id = await self.create_alliance(i)
        await self.command(f"/alliances/{alliance_id}/scorecard", {"currency": "EUR"})
        return alliance_id

    async def crm(self, alliance_id: str) -> Crm:
        issued = await self.command(f"/alliances/{alliance_id}/integrations/crm/credentials")
        return Crm(issued["key_id"], issued["secret"])

    async def send(self, crm: Crm, body: bytes) -> dict[str, Any]:
        answer = await self.scorecard.post(
            "/integrations/crm/events", content=body, headers=crm.headers(body)
        )
        if answer.status_code != 200:
            raise RuntimeError(f"CRM batch: {answer.status_code} {answer.text[:500]}")
        report: dict[str, Any] = answer.json()
        return report

    async def page(
        self, alliance_id: str, period: str, min_version: int = 0, timeout: float = 120.0
    ) -> dict[str, Any]:
        """The one-page view once it reflects `min_version` (the server waits briefly for the
        projection, then answers 404: asked again until `timeout`)."""
        deadline = time.perf_counter() + timeout
        params: dict[str, str | int] = {"period": period, "min_version": min_version}
        while True:
            answer = await self.scorecard.get(
                f"/alliances/{alliance_id}/scorecard", params=params, headers=self.headers
            )
            if answer.status_code == 200:
                page: dict[str, Any] = answer.json()
                return page
            if answer.status_code != 404 or time.perf_counter() > deadline:
                raise RuntimeError(
                    f"scorecard page at version {min_version}: {answer.status_code} "
                    f"{answer.text[:500]}"
                )


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
