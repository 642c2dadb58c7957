"""Scorecard's read model, the scorecard board. (The alliances it knows, with their partners,
are the kernel's projection of governance's charter events: `concord.membership`.) The board
holds the balance of benefits too, so one version says how far every part of a scorecard
read has caught up.

Every `apply` uses only the event (its time, never now()), so a rebuild writes the same rows.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as UUID_TYPE

from concord.events import Recorded
from concord.projections import Projection, ReadModel
from scorecard.domain import periods
from scorecard.domain.scorecard import EVENT_REGISTRY


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


class ScorecardBoard(Projection):
    """The scorecard as its readers see it: KPIs with their numbers per period and every
    change to them, the strategy map, initiatives with their progress, the benefits ledger
    and the balance of benefits.
    Status and direction are not stored: the read API derives them with the same rules the
    aggregate judges by, so a change of thresholds shows everywhere at once."""

    name = "scorecard_board"
    events = EVENT_REGISTRY
    subjects = ("concord.scorecard.scorecard.>",)
    tables = (  # declared in scorecard.tables
        "scorecard.scorecards",
        "scorecard.kpis",
        "scorecard.kpi_periods",
        "scorecard.kpi_changes",
        "scorecard.objectives",
        "scorecard.objective_links",
        "scorecard.initiatives",
        "scorecard.initiative_progress",
        "scorecard.benefits",
        "scorecard.benefit_balance",
    )

    _opened = text(
        """INSERT INTO scorecard.scorecards (alliance_id, currency, thresholds, opened_at, version)
           VALUES (:id, :currency, :thresholds, :at, :version)
           ON CONFLICT (alliance_id) DO NOTHING"""
    ).bindparams(bindparam("thresholds", type_=JSONB))
    _thresholds = text(
        "UPDATE scorecard.scorecards SET thresholds = :thresholds WHERE alliance_id = :id"
    ).bindparams(bindparam("thresholds", type_=JSONB))
    _version = text(
        """UPDATE scorecard.scorecards SET version = :version
           WHERE alliance_id = :id AND version < :version"""
    )
    _kpi = text(
        """INSERT INTO scorecard.kpis (alliance_id, kpi_id, position, name, description,
               dimension, kind, unit, currency, good_direction, owner_org, visibility, cadence,
               headline, feed, defined_at)
           VALUES (:id, :kpi_id, :version, :name, :description, :dimension, :kind, :unit,
               :currency, :good_direction, :owner_org, :visibility, :cadence, :headline, :feed,
               :at)
           ON CONFLICT DO NOTHING"""
    )
    _target = text(
        """INSERT INTO scorecard.kpi_periods
               (alliance_id, kpi_id, period, period_order, target, updated_at)
           VALUES (:id, :kpi_id, :period, :order, :value, :at)
           ON CONFLICT (alliance_id, kpi_id, period)
           DO UPDATE SET target = excluded.target, updated_at = excluded.updated_at"""
    )
    _actual = text(
        """INSERT INTO scorecard.kpi_periods
               (alliance_id, kpi_id, period, period_order, actual, actual_source, updated_at)
           VALUES (:id, :kpi_id, :period, :order, :value, :source, :at)
           ON CONFLICT (alliance_id, kpi_id, period)
           DO UPDATE SET actual = excluded.actual, actual_source = excluded.actual_source,
                         updated_at = excluded.updated_at"""
    )
    _change = text(
        """INSERT INTO scorecard.kpi_changes (alliance_id, stream_version, kpi_id, period,
               change, old_value, new_value, status, source, note, by_org, by_sub, at)
           VALUES (:id, :version, :kpi_id, :period, :change, :old, :new, :status, :source,
               :note, :by_org, :by_sub, :at)
           ON CONFLICT DO NOTHING"""
    )
    _objective = text(
        """INSERT INTO scorecard.objectives
               (alliance_id, objective_id, position, name, description, dimension, kpi_ids)
           VALUES (:id, :objective_id, :version, :name, :description, :dimension, :kpi_ids)
           ON CONFLICT DO NOTHING"""
    ).bindparams(bindparam("kpi_ids", type_=ARRAY(UUID_TYPE)))
    _link = text(
        """INSERT INTO scorecard.objective_links (alliance_id, cause_id, effect_id, position)
           VALUES (:id, :cause_id, :effect_id, :version) ON CONFLICT DO NOTHING"""
    )
    _initiative = text(
        """INSERT INTO scorecard.initiatives (alliance_id, initiative_id, position, name,
               description, dimension, owner_org, owner_name, leading_indicator, due_date,
               launched_at)
           VALUES (:id, :initiative_id, :version, :name, :description, :dimension, :owner_org,
               :owner_name, :leading_indicator, :due_date, :at)
           ON CONFLICT DO NOTHING"""
    )
    _progress = text(
        """INSERT INTO scorecard.initiative_progress (alliance_id, stream_version,
               initiative_id, as_of, completion, status, note, by_org, by_sub, at)
           VALUES (:id, :version, :initiative_id, :as_of, :completion, :status, :note,
               :by_org, :by_sub, :at)
           ON CONFLICT DO NOTHING"""
    )
    _benefit = text(
        """INSERT INTO scorecard.benefits (alliance_id, entry_id, position, partner_org, kind,
               amount, currency, period, period_order, evidence, visibility, by_org, by_sub,
               recorded_at)
           VALUES (:id, :entry_id, :version, :partner_org, :kind, :amount, :currency, :period,
               :order, :evidence, :visibility, :by_org, :by_sub, :at)
           ON CONFLICT DO NOTHING"""
    )

    _balance = text(
        """INSERT INTO scorecard.benefit_balance
               (alliance_id, period, period_order, partner_org, amount, entries)
           VALUES (:id, :period, :order, :partner_org, :amount, 1)
           ON CONFLICT (alliance_id, period, partner_org) DO UPDATE
           SET amount = benefit_balance.amount + excluded.amount,
               entries = benefit_balance.entries + 1"""
    )

    async def apply(self, model: ReadModel, recorded: Recorded[Any]) -> None:
        event = recorded.envelope
        d = event.data
        common = {"id": event.allianceid, "version": event.streamversion, "at": event.time}
        match event.name:
            case "scorecard_opened":
                model.write(
                    self._opened,
                    {**common, "currency": d["currency"], "thresholds": d["thresholds"]},
                )
                return
            case "scorecard_thresholds_changed":
                model.write(
                    self._thresholds, {"id": event.allianceid, "thresholds": d["thresholds"]}
                )
            case "kpi_defined":
                model.write(
                    self._kpi,
                    {
                        **common,
                        **{
                            k: d[k]
                            for k in (
                                "kpi_id",
                                "name",
                                "description",
                                "dimension",
                                "kind",
                                "unit",
                                "currency",
                                "good_direction",
                                "owner_org",
                                "visibility",
                                "cadence",
                                "headline",
                                "feed",
                            )
                        },
                    },
                )
            case "kpi_target_set":
                numbers = {
                    **common,
                    "kpi_id": d["kpi_id"],
                    "period": d["period"],
                    "order": periods.order(d["period"]),
                    "value": Decimal(d["target"]),
                }
                model.write(self._target, numbers)
                self._log(
                    model,
                    common,
                    d,
                    "target_set",
                    d["previous_target"],
                    d["target"],
                    by=(d["set_by_org"], d["set_by"]),
                )
            case "kpi_actual_recorded" | "kpi_actual_corrected":
                corrected = event.name == "kpi_actual_corrected"
                model.write(
                    self._actual,
                    {
                        **common,
                        "kpi_id": d["kpi_id"],
                        "period": d["period"],
                        "order": periods.order(d["period"]),
                        "value": Decimal(d["actual"]),
                        "source": d["source"],
                    },
                )
                self._log(
                    model,
                    common,
                    d,
                    "actual_corrected" if corrected else "actual_recorded",
                    d.get("previous_actual"),
                    d["actual"],
                    by=(d["corrected_by_org"], d["corrected_by"])
                    if corrected
                    else (d["recorded_by_org"], d["recorded_by"]),
                    source=d["source"],
                    note=d["note"],
                )
            case "kpi_went_off_track":
                self._log(model, common, d, "went_off_track", None, d["actual"], status="off_track")
            case "kpi_recovered":
                self._log(model, common, d, "recovered", None, d["actual"], status=d["status"])
            case "objective_defined":
                model.write(
                    self._objective,
                    {
                        **common,
                        "objective_id": d["objective_id"],
                        "name": d["name"],
                        "description": d["description"],
                        "dimension": d["dimension"],
                        "kpi_ids": [UUID(k) for k in d["kpi_ids"]],
                    },
                )
            case "objectives_linked":
                model.write(
                    self._link, {**common, "cause_id": d["cause_id"], "effect_id": d["effect_id"]}
                )
            case "initiative_launched":
                model.write(
                    self._initiative,
                    {
                        **common,
                        **{
                            k: d[k]
                            for k in (
                                "initiative_id",
                                "name",
                                "description",
                                "dimension",
                                "owner_org",
                                "owner_name",
                                "leading_indicator",
                            )
                        },
                        "due_date": date.fromisoformat(d["due_date"]),
                    },
                )
            case "initiative_progress_updated":
                model.write(
                    self._progress,
                    {
                        **common,
                        "initiative_id": d["initiative_id"],
                        "as_of": date.fromisoformat(d["as_of"]),
                        "completion": d["completion"],
                        "status": d["status"],
                        "note": d["note"],
                        "by_org": d["updated_by_org"],
                        "by_sub": d["updated_by"],
                    },
                )
            case "benefit_recorded":
                model.write(
                    self._benefit,
                    {
                        **common,
                        **{
                            k: d[k]
                            for k in (
                                "entry_id",
                                "partner_org",
                                "kind",
                                "currency",
                                "period",
                                "evidence",
                                "visibility",
                            )
                        },
                        "amount": Decimal(d["amount"]),
                        "order": periods.order(d["period"]),
                        "by_org": d["recorded_by_org"],
                        "by_sub": d["recorded_by"],
                    },
                )
                if d["visibility"] == "shared":
                    model.write(
                        self._balance,
                        {
                            "id": event.allianceid,
                            "period": d["period"],
                            "order": periods.order(d["period"]),
                            "partner_org": d["partner_org"],
                            "amount": Decimal(d["amount"]),
                        },
                    )
        model.write(self._version, common)

    def _log(
        self,
        model: ReadModel,
        common: dict[str, Any],
        d: dict[str, Any],
        change: str,
        old: Any,
        new: Any,
        *,
        by: tuple[str, str] | None = None,
        source: str | None = None,
        note: str | None = None,
        status: str | None = None,
    ) -> None:
        model.write(
            self._change,
            {
                **common,
                "kpi_id": d["kpi_id"],
                "period": d["period"],
                "change": change,
                "old": _decimal(old),
                "new": _decimal(new),
                "status": status,
                "source": source,
                "note": note,
                "by_org": by[0] if by else None,
                "by_sub": by[1] if by else None,
            },
        )
