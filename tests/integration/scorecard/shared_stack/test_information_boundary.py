"""The information boundary between partners, tried as an attacker would: nothing globex can
observe (a version, an ETag, a body, a count, a limit) may depend on acme's private items.

Globex bisects `off_track_below` while watching the scorecard's version, the attack that
once read a private KPI's attainment to four decimals in 14 requests. It runs against three
scorecards that differ only in what acme keeps to itself: a private KPI at two attainments,
and none at all. What globex records must be the same all three times."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx

from tests.contract.conftest import assert_problem
from tests.integration.scorecard.conftest import (
    PARTNER_A,
    PARTNER_B,
    Board,
    kpi,
    open_board,
)
from tests.integration.scorecard.support import Services, actual, benefit, target

STEPS = 14
ON_TRACK_FROM = Decimal("0.99")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SEEN_HEADERS = ("etag", "location", "content-type", "content-disposition")


class Observer:
    """Everything globex sees, in order, with ids named by their first appearance (each
    scorecard has ids of its own; what matters is whether anything else differs)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.names: dict[str, str] = {}

    def record(self, label: str, answer: httpx.Response) -> None:
        headers = {k: answer.headers[k] for k in SEEN_HEADERS if k in answer.headers}
        body = answer.text
        if answer.headers.get("content-type", "").startswith("application"):
            body = re.sub(r'"(instance|request_id)":\s*"[^"]*"', "", body)
        self.seen.append(self._named(f"{label} {answer.status_code} {headers} {body}"))

    def _named(self, text: str) -> str:
        def name(match: re.Match[str]) -> str:
            return self.names.setdefault(match.group(0), f"<id{len(self.names)}>")

        return UUID.sub(name, text)


async def scorecard_with(board: Board, private_actual: str | None) -> tuple[str, int]:
    """The same shared scorecard each time; acme's private KPI (target 40) only if given an
    actual, with a private benefit and the objective it measures. Returns the shared KPI and
    the version globex last saw."""
    shared = await board.kpi()
    await target(board, shared["id"], "2026-01", "100")
    await actual(board, shared["id"], "2026-01", "90")
    measures = [shared["id"]]
    if private_actual is not None:
        private = await board.kpi(
            name="Acme margin", unit="%", currency=None, visibility="private", headline=True
        )
        await target(board, private["id"], "2026-01", "40")
        await actual(board, private["id"], "2026-01", private_actual)
        await board.ok("/benefits", benefit(PARTNER_A, "777", "2026-01", visibility="private"))
        measures.append(private["id"])
    await board.ok(
        "/objectives", {"name": "Profitable growth", "dimension": "commercial", "kpi_ids": measures}
    )
    await board.ok("/benefits", benefit(PARTNER_A, "100", "2026-01"))
    last = await board.ok("/benefits", benefit(PARTNER_B, "80", "2026-01"), PARTNER_B)
    return shared["id"], last["version"]


async def what_globex_learns(board: Board, shared_kpi: str, version: int) -> list[str]:
    """Globex bisects the off-track line: a version that moved by more than its own event
    and its own KPI's crossings would mean a private KPI crossed, so the private
    attainment lies between the last two lines."""
    seen = Observer()
    history = f"/kpis/{shared_kpi}/history"
    low, high, off_track = Decimal(0), ON_TRACK_FROM, False
    crossings = 0
    for _ in range(STEPS):
        line = ((low + high) / 2).quantize(Decimal("0.0001"))
        body = {"on_track_from": str(ON_TRACK_FROM), "off_track_below": str(line)}
        answer = await board.post("/thresholds", body, PARTNER_B)
        seen.record(f"thresholds {line}", answer)
        assert answer.status_code == 200, answer.text
        now = answer.json()["version"]
        page = await board.get("", PARTNER_B, period="2026-01", min_version=now)
        seen.record("page", page)
        changes = await board.get(history, PARTNER_B)
        seen.record("history", changes)
        judged = [c for c in changes.json()["changes"] if c["status"] is not None]
        hidden = now - version - 1 - (len(judged) - crossings)
        version, crossings = now, len(judged)
        if hidden % 2:
            off_track = not off_track
        low, high = (low, line) if off_track else (line, high)
    for path in ("/benefits", "/balance-of-benefits", "/export.csv"):
        seen.record(path, await board.get(path, PARTNER_B, period="2026-01"))
    seen.record("limit", await kpi_allowance(board, PARTNER_B, visibility="shared"))
    return seen.seen


async def kpi_allowance(board: Board, org: str, **fields: Any) -> httpx.Response:
    """Defines KPIs until the scorecard refuses one; the refusal tells how many it took."""
    for n in range(1, 202):
        body = kpi(org, name=f"{org} probe {n}", unit="deals", currency=None, **fields)
        answer = await board.post("/kpis", body, org)
        if answer.status_code != 201:
            assert_problem(answer, 422)
            return httpx.Response(
                answer.status_code,
                headers=answer.headers,
                json={"defined": n - 1, "refusal": answer.json()["detail"]},
            )
    raise AssertionError("no limit")


async def test_bisecting_the_thresholds_tells_the_other_partner_nothing(
    services: Services,
) -> None:
    """Two private attainments (off track at 0.83 and at 0.69 of target) and no private KPI
    at all: globex's 14 threshold changes, the answers, ETags, versions, pages, histories,
    ledger, balance, export and its KPI allowance are the same every time."""
    runs = []
    for private_actual in ("33.1", "27.7", None):
        board = await open_board(services.governance, services.scorecard)
        shared_kpi, version = await scorecard_with(board, private_actual)
        runs.append(await what_globex_learns(board, shared_kpi, version))
    assert len(runs[0]) == STEPS * 3 + 4
    assert runs[0] == runs[1]  # nothing of the attainment
    assert runs[1] == runs[2]  # nor that there is a private KPI at all


async def test_a_partners_private_kpis_leave_the_others_allowance_whole(
    services: Services,
) -> None:
    """A scorecard has at most 100 shared KPIs, and each partner at most 100 private ones of
    its own: acme's private KPIs take nothing from what globex may define."""
    board = await open_board(services.governance, services.scorecard)
    for n in range(3):
        await board.kpi(name=f"Acme secret {n}", visibility="private")
    theirs = await kpi_allowance(board, PARTNER_B)
    assert theirs.json()["defined"] == 100, theirs.text
    assert "at most 100" in theirs.json()["refusal"]
    mine = await kpi_allowance(board, PARTNER_A, visibility="private")
    assert mine.json()["defined"] == 97, mine.text
