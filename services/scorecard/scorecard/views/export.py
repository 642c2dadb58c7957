"""The one-page scorecard as CSV: goals, leading and lagging KPIs, initiatives, and each
partner's share of the benefits, one row each."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from scorecard.domain.state import Dimension
from scorecard.views.kpis import KpiCard
from scorecard.views.page import ScorecardPage

CSV_COLUMNS = (
    "section",
    "dimension",
    "name",
    "kind",
    "owner_org",
    "visibility",
    "unit",
    "currency",
    "period",
    "target",
    "actual",
    "attainment",
    "status",
    "direction",
    "completion",
    "due_date",
    "share",
)


def page_as_csv(page: ScorecardPage) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in (*_kpi_rows(page), *_initiative_rows(page), *_benefit_rows(page)):
        writer.writerow(_safe(row))
    return out.getvalue()


def _kpi_rows(page: ScorecardPage) -> Iterator[dict[str, Any]]:
    for card in page.goals:
        yield _kpi_row("goal", card)
    for section, groups in (("leading", page.leading), ("lagging", page.lagging)):
        for dimension in Dimension:
            for card in getattr(groups, dimension.value):
                yield _kpi_row(section, card)


def _kpi_row(section: str, card: KpiCard) -> dict[str, Any]:
    return {
        "section": section,
        "dimension": card.dimension.value,
        "name": card.name,
        "kind": card.kind.value,
        "owner_org": card.owner_org,
        "visibility": card.visibility.value,
        "unit": card.unit,
        "currency": card.currency,
        "period": card.period,
        "target": card.target,
        "actual": card.actual,
        "attainment": card.attainment,
        "status": card.status.value,
        "direction": card.direction.value if card.direction else "",
    }


def _initiative_rows(page: ScorecardPage) -> Iterator[dict[str, Any]]:
    for initiative in page.initiatives:
        yield {
            "section": "initiative",
            "dimension": initiative.dimension.value,
            "name": initiative.name,
            "owner_org": initiative.owner_org,
            "period": page.period,
            "status": initiative.status.value,
            "direction": initiative.direction.value if initiative.direction else "",
            "completion": initiative.completion,
            "due_date": initiative.due_date.isoformat(),
        }


def _benefit_rows(page: ScorecardPage) -> Iterator[dict[str, Any]]:
    balance = page.balance_of_benefits
    for partner in balance.partners:
        yield {
            "section": "benefit",
            "name": partner.name,
            "owner_org": partner.org_id,
            "currency": balance.currency,
            "period": balance.through_period,
            "actual": partner.amount,
            "share": partner.share,
        }


def _safe(row: dict[str, Any]) -> dict[str, str]:
    """Text a partner typed cannot become a spreadsheet formula (CSV injection)."""
    cleaned = {}
    for key, value in row.items():
        text = "" if value is None else str(value)
        if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
            text = "'" + text
        cleaned[key] = text
    return cleaned


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True
