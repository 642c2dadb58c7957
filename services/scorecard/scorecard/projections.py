"""Scorecard's read model, the scorecard board. (The alliances it knows, with their partners,
are the kernel's projection of governance's charter events: `concord.membership`.) The board
holds the balance of benefits too, so one version says how far every part of a scorecard
read has caught up.

Every `apply` uses only the event (its time, never now()) and the rows earlier events wrote,
so a rebuild writes the same rows.

A partner's private scorecard (ADR 0009) moves only that partner's `private_scorecards` row,
never the shared version; its rows carry where they came from (`private_to`, and a private
position after the shared version they were read at), so a private row never shifts a shared
one's place.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as UUID_TYPE

from concord.events import Recorded
from concord.projections import Projection, ReadModel
from scorecard.domain import periods
from scorecard.domain.events import (
    EVENT_REGISTRY,
    BenefitRecorded,
    InitiativeLaunched,
    InitiativeProgressUpdated,
    KpiActualCorrected,
    KpiActualRecorded,
    KpiDefined,
    KpiRecovered,
    KpiTargetSet,
    KpiWentOffTrack,
    ObjectiveDefined,
    ObjectiveMeasuredPrivately,
    ObjectivesLinked,
    ScorecardOpened,
    ScorecardThresholdsChanged,
    Visibility,
)
from scorecard.domain.rules import Status

# Who made a change that nobody made (a status crossing: the change before it caused it).
NOBODY: Mapping[str, str | None] = {"by_org": None, "by_sub": None}
# Where a row falls among the shared rows: a shared row at its version; a private one after
# the shared version the board had read when it came (its `:position` is NULL).
POSITION = """coalesce(CAST(:position AS integer),
    (SELECT version FROM scorecard.scorecards WHERE alliance_id = CAST(:id AS uuid)))"""


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
        "scorecard.private_scorecards",
        "scorecard.kpis",
        "scorecard.kpi_periods",
        "scorecard.kpi_changes",
        "scorecard.objectives",
        "scorecard.objective_private_kpis",
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
    _private_version = text(
        """INSERT INTO scorecard.private_scorecards (alliance_id, org_id, version)
           VALUES (:id, :private_to, :version)
           ON CONFLICT (alliance_id, org_id) DO UPDATE SET version = excluded.version
           WHERE private_scorecards.version < excluded.version"""
    )
    _kpi = text(
        f"""INSERT INTO scorecard.kpis (alliance_id, kpi_id, position, private_position, name,
               description, dimension, kind, unit, currency, good_direction, owner_org,
               visibility, cadence, headline, feed, defined_at)
           VALUES (:id, :kpi_id, {POSITION}, :private_position, :name, :description,
               :dimension, :kind, :unit, :currency, :good_direction, :owner_org, :visibility,
               :cadence, :headline, :feed, :at)
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
        """INSERT INTO scorecard.kpi_changes (alliance_id, private_to, stream_version, kpi_id,
               period, change, old_value, new_value, status, source, note, by_org, by_sub, at)
           VALUES (:id, :private_to, :version, :kpi_id, :period, :change, :old, :new, :status,
               :source, :note, :by_org, :by_sub, :at)
           ON CONFLICT DO NOTHING"""
    )
    _objective = text(
        """INSERT INTO scorecard.objectives
               (alliance_id, objective_id, position, name, description, dimension, kpi_ids)
           VALUES (:id, :objective_id, :version, :name, :description, :dimension, :kpi_ids)
           ON CONFLICT DO NOTHING"""
    ).bindparams(bindparam("kpi_ids", type_=ARRAY(UUID_TYPE)))
    _measured_privately = text(
        """INSERT INTO scorecard.objective_private_kpis
               (alliance_id, objective_id, org_id, kpi_ids)
           VALUES (:id, :objective_id, :private_to, :kpi_ids) ON CONFLICT DO NOTHING"""
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
        f"""INSERT INTO scorecard.benefits (alliance_id, entry_id, position, private_position,
               partner_org, kind, amount, currency, period, period_order, evidence, visibility,
               by_org, by_sub, recorded_at)
           VALUES (:id, :entry_id, {POSITION}, :private_position, :partner_org, :kind, :amount,
               :currency, :period, :order, :evidence, :visibility, :by_org, :by_sub, :at)
           ON CONFLICT DO NOTHING"""
    )

    # Summed again from the ledger, never added to: a benefit applied twice counts once.
    _balance = text(
        """INSERT INTO scorecard.benefit_balance
               (alliance_id, period, period_order, partner_org, amount, entries)
           SELECT alliance_id, period, CAST(:order AS integer), partner_org, sum(amount),
               count(*)
           FROM scorecard.benefits
           WHERE alliance_id = :id AND period = :period AND partner_org = :partner_org
             AND visibility = 'shared'
           GROUP BY alliance_id, period, partner_org
           ON CONFLICT (alliance_id, period, partner_org) DO UPDATE
           SET amount = excluded.amount, entries = excluded.entries"""
    )

    async def apply(self, model: ReadModel, recorded: Recorded[Any]) -> None:
        private_to = recorded.private_to
        common = {
            "id": recorded.alliance_id,
            "version": recorded.stream_version,
            "at": recorded.time,
            "private_to": private_to or "",
            # A shared row's place is its version; a private one's, after the shared rows.
            "position": None if private_to else recorded.stream_version,
            "private_position": recorded.stream_version if private_to else 0,
        }
        match recorded.event:
            case ScorecardOpened() as e:
                thresholds = e.thresholds.model_dump(mode="json")
                model.write(
                    self._opened, {**common, "currency": e.currency, "thresholds": thresholds}
                )
                return
            case ScorecardThresholdsChanged() as e:
                thresholds = e.thresholds.model_dump(mode="json")
                model.write(
                    self._thresholds, {"id": recorded.alliance_id, "thresholds": thresholds}
                )
            case KpiDefined() as e:
                model.write(self._kpi, {**common, **_kpi_row(e)})
            case KpiTargetSet() | KpiActualRecorded() | KpiActualCorrected() as e:
                self._numbers(model, common, recorded, e)
            case KpiWentOffTrack() as e:
                self._log(
                    model, common, e, "went_off_track", None, e.actual, status=Status.off_track
                )
            case KpiRecovered() as e:
                self._log(model, common, e, "recovered", None, e.actual, status=e.status)
            case ObjectiveDefined() as e:
                model.write(
                    self._objective,
                    {
                        **common,
                        "objective_id": e.objective_id,
                        "name": e.name,
                        "description": e.description,
                        "dimension": e.dimension,
                        "kpi_ids": e.kpi_ids,
                    },
                )
            case ObjectiveMeasuredPrivately() as e:
                model.write(
                    self._measured_privately,
                    {**common, "objective_id": e.objective_id, "kpi_ids": e.kpi_ids},
                )
            case ObjectivesLinked() as e:
                model.write(
                    self._link, {**common, "cause_id": e.cause_id, "effect_id": e.effect_id}
                )
            case InitiativeLaunched() as e:
                model.write(self._initiative, {**common, **_initiative_row(e)})
            case InitiativeProgressUpdated() as e:
                model.write(
                    self._progress,
                    {
                        **common,
                        "initiative_id": e.initiative_id,
                        "as_of": e.as_of,
                        "completion": e.completion,
                        "status": e.status,
                        "note": e.note,
                        **_who(recorded),
                    },
                )
            case BenefitRecorded() as e:
                self._benefit_recorded(model, common, recorded, e)
        # Everything else (a balance crossing, a missing actual, a partner welcomed, the
        # pipeline, thresholds adopted) shows only as the scorecard's version.
        model.write(self._private_version if private_to else self._version, common)

    def _numbers(
        self,
        model: ReadModel,
        common: dict[str, Any],
        recorded: Recorded[Any],
        e: KpiTargetSet | KpiActualRecorded | KpiActualCorrected,
    ) -> None:
        numbers = {
            **common,
            "kpi_id": e.kpi_id,
            "period": e.period,
            "order": periods.order(e.period),
        }
        who = _who(recorded)
        if isinstance(e, KpiTargetSet):
            model.write(self._target, {**numbers, "value": e.target})
            self._log(model, common, e, "target_set", e.previous_target, e.target, who=who)
            return
        model.write(self._actual, {**numbers, "value": e.actual, "source": e.source})
        if isinstance(e, KpiActualCorrected):
            change, old = "actual_corrected", e.previous_actual
        else:
            change, old = "actual_recorded", None
        self._log(model, common, e, change, old, e.actual, who=who, source=e.source, note=e.note)

    def _benefit_recorded(
        self, model: ReadModel, common: dict[str, Any], recorded: Recorded[Any], e: BenefitRecorded
    ) -> None:
        order = periods.order(e.period)
        model.write(
            self._benefit,
            {
                **common,
                "entry_id": e.entry_id,
                "partner_org": e.partner_org,
                "kind": e.kind,
                "amount": e.amount,
                "currency": e.currency,
                "period": e.period,
                "order": order,
                "evidence": e.evidence,
                "visibility": e.visibility,
                **_who(recorded),
            },
        )
        if e.visibility is Visibility.shared:
            model.write(
                self._balance,
                {
                    "id": recorded.alliance_id,
                    "period": e.period,
                    "order": order,
                    "partner_org": e.partner_org,
                },
            )

    def _log(
        self,
        model: ReadModel,
        common: dict[str, Any],
        e: KpiTargetSet | KpiActualRecorded | KpiActualCorrected | KpiWentOffTrack | KpiRecovered,
        change: str,
        old: Decimal | None,
        new: Decimal | None,
        *,
        who: Mapping[str, str | None] = NOBODY,
        source: str | None = None,
        note: str | None = None,
        status: Status | None = None,
    ) -> None:
        """One line of a KPI's history."""
        model.write(
            self._change,
            {
                **common,
                "kpi_id": e.kpi_id,
                "period": e.period,
                "change": change,
                "old": old,
                "new": new,
                "status": status,
                "source": source,
                "note": note,
                **who,
            },
        )


def _who(recorded: Recorded[Any]) -> dict[str, str | None]:
    """Who made a change, as its envelope says (Concord itself has no organisation: "")."""
    actor = recorded.actor
    return {"by_org": actor.org if actor else None, "by_sub": actor.sub if actor else None}


def _kpi_row(e: KpiDefined) -> dict[str, Any]:
    return {
        "kpi_id": e.kpi_id,
        "name": e.name,
        "description": e.description,
        "dimension": e.dimension,
        "kind": e.kind,
        "unit": e.unit,
        "currency": e.currency,
        "good_direction": e.good_direction.value,  # not a str (see GoodDirection)
        "owner_org": e.owner_org,
        "visibility": e.visibility,
        "cadence": e.cadence,
        "headline": e.headline,
        "feed": e.feed,
    }


def _initiative_row(e: InitiativeLaunched) -> dict[str, Any]:
    return {
        "initiative_id": e.initiative_id,
        "name": e.name,
        "description": e.description,
        "dimension": e.dimension,
        "owner_org": e.owner_org,
        "owner_name": e.owner_name,
        "leading_indicator": e.leading_indicator,
        "due_date": e.due_date,
    }
