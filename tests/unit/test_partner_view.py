"""A partner's view of a scorecard (ADR 0009), with no server running: a command decided on
the shared scorecard and the partner's own private one, each event sent to the stream its
item lives in, each stream judged on its own, and private thresholds adopted by value."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from concord.domain import Rejected, ScheduleTimer
from scorecard.domain import partner_view
from scorecard.domain.benefits import BenefitEntry, BenefitKind, RecordBenefit
from scorecard.domain.events import (
    BenefitRecorded,
    KpiActualRecorded,
    KpiRecovered,
    KpiTargetSet,
    KpiWentOffTrack,
    ObjectiveDefined,
    ObjectiveMeasuredPrivately,
    ScorecardEvent,
    ScorecardThresholdsChanged,
    ThresholdsAdopted,
)
from scorecard.domain.kpis import MAX_KPIS, DefineKpi
from scorecard.domain.missing_actuals import timers_for
from scorecard.domain.opening import ChangeThresholds
from scorecard.domain.partner_view import PartnerView, adopt
from scorecard.domain.rules import StatusThresholds
from scorecard.domain.scorecard import PartnerCommand, scorecard
from scorecard.domain.state import Scorecard, Visibility
from scorecard.domain.strategy import DefineObjective
from tests.unit.test_scorecard_domain import (
    ANN,
    GUS,
    PARTNERS,
    actual,
    kpi,
    objective,
    opened,
    target,
    types,
)

STRICT = StatusThresholds(on_track_from=Decimal("0.95"), off_track_below=Decimal("0.9"))


class Partner:
    """One partner's streams: the shared scorecard (which others write too) and its own."""

    def __init__(self, shared: Scorecard, private: Scorecard | None = None) -> None:
        self.shared = shared
        self.private = private or Scorecard()

    def do(self, command: PartnerCommand) -> tuple[list[ScorecardEvent], list[ScorecardEvent]]:
        shared, private = partner_view.decide(PartnerView(self.shared, self.private), command)
        self.shared = scorecard.fold(shared, self.shared)
        self.private = scorecard.fold(private, self.private)
        return shared, private

    def define(self, **overrides: object) -> UUID:
        kpi_id = uuid4()
        self.do(DefineKpi(kpi_id, kpi(**overrides), PARTNERS, ANN))
        return kpi_id


def test_a_private_kpi_and_everything_about_it_is_kept_on_the_private_scorecard() -> None:
    acme = Partner(opened())
    margin = acme.define(name="Margin", visibility=Visibility.private)
    shared, private = acme.do(target(margin, "40"))
    assert (shared, types(private)) == ([], [KpiTargetSet])
    shared, private = acme.do(actual(margin, "20"))
    assert (shared, types(private)) == ([], [KpiActualRecorded, KpiWentOffTrack])
    assert margin in acme.private.kpis and margin not in acme.shared.kpis


def test_a_private_kpi_already_on_the_shared_scorecard_stays_there() -> None:
    """Recorded before private scorecards existed: its numbers and crossings go on where it
    is, so an older scorecard keeps working as it did."""
    legacy = uuid4()
    definition = kpi(name="Margin", visibility=Visibility.private)
    on_shared = scorecard.fold(
        scorecard.decide(opened(), DefineKpi(legacy, definition, PARTNERS, ANN)), opened()
    )
    acme = Partner(on_shared)
    acme.do(target(legacy, "40"))
    shared, private = acme.do(actual(legacy, "20"))
    assert (types(shared), private) == ([KpiActualRecorded, KpiWentOffTrack], [])


def test_a_private_benefit_is_kept_on_the_private_scorecard_and_tips_nothing() -> None:
    acme = Partner(opened())
    entry = BenefitEntry(
        partner_org="acme",
        kind=BenefitKind.revenue,
        amount=Decimal(900),
        currency="EUR",
        period="2026-01",
        evidence="A deal",
        visibility=Visibility.private,
    )
    shared, private = acme.do(RecordBenefit(uuid4(), entry, PARTNERS, ANN))
    assert (shared, types(private)) == ([], [BenefitRecorded])


def test_an_objective_names_private_measures_on_the_private_scorecard() -> None:
    acme = Partner(opened())
    revenue, margin = acme.define(), acme.define(name="Margin", visibility=Visibility.private)
    objective_id = uuid4()
    shared, private = acme.do(
        DefineObjective(objective_id, objective("Grow", revenue, margin), ANN)
    )
    assert [e.kpi_ids for e in shared if isinstance(e, ObjectiveDefined)] == [[revenue]]
    assert private == [ObjectiveMeasuredPrivately(objective_id=objective_id, kpi_ids=[margin])]
    seen = PartnerView(acme.shared, acme.private).seen
    assert seen.objectives[objective_id].kpi_ids == (revenue, margin)
    assert PartnerView(acme.shared, Scorecard()).seen.objectives[objective_id].kpi_ids == (revenue,)


def test_new_thresholds_change_the_shared_scorecard_and_are_adopted_by_the_callers() -> None:
    """The change is the shared scorecard's; the caller's own private scorecard adopts it in
    the same command, with the crossings it causes there."""
    acme = Partner(opened())
    margin = acme.define(name="Margin", visibility=Visibility.private)
    acme.do(target(margin, "40"))
    acme.do(actual(margin, "34"))  # 85%: at risk
    shared, private = acme.do(ChangeThresholds(STRICT, ANN))
    assert types(shared) == [ScorecardThresholdsChanged]
    assert types(private) == [ThresholdsAdopted, KpiWentOffTrack]
    assert acme.private.thresholds == STRICT


def test_another_partners_command_never_sees_a_private_scorecard_not_its_own() -> None:
    acme = Partner(opened())
    margin = acme.define(name="Margin", visibility=Visibility.private)
    acme.do(target(margin, "40"))
    acme.do(actual(margin, "34"))
    globex = Partner(acme.shared)
    shared, private = globex.do(ChangeThresholds(STRICT, GUS))
    assert (types(shared), private) == ([ScorecardThresholdsChanged], [])
    # acme's, moments later (the reaction), and once only: by value, whoever comes first.
    went = adopt(acme.private, globex.shared.thresholds)
    assert types(went) == [ThresholdsAdopted, KpiWentOffTrack]
    after = scorecard.fold(went, acme.private)
    assert adopt(after, globex.shared.thresholds) == []
    back = adopt(after, StatusThresholds())
    assert types(back) == [ThresholdsAdopted, KpiRecovered]


def test_a_private_scorecard_without_kpis_adopts_nothing_until_it_is_written() -> None:
    assert adopt(Scorecard(), STRICT) == []
    acme = Partner(scorecard.fold([ScorecardThresholdsChanged(thresholds=STRICT)], opened()))
    acme.define(name="Margin", visibility=Visibility.private)
    assert acme.private.thresholds == STRICT  # adopted before its first KPI


def test_adopted_grace_days_move_the_private_timers() -> None:
    acme = Partner(opened())
    margin = acme.define(name="Margin", visibility=Visibility.private)
    acme.do(target(margin, "40", period="2026-01"))
    graceful = StatusThresholds(actual_grace_days=30)
    adopted = adopt(acme.private, graceful)
    [moved] = timers_for(scorecard.fold(adopted, acme.private), adopted)
    assert isinstance(moved, ScheduleTimer)
    assert moved.due.isoformat() == "2026-03-03T00:00:00+00:00"


def test_private_kpis_take_nothing_from_the_shared_allowance() -> None:
    acme = Partner(opened())
    for n in range(3):
        acme.define(name=f"Secret {n}", visibility=Visibility.private)
    globex = Partner(acme.shared)
    for n in range(MAX_KPIS):
        globex.do(DefineKpi(uuid4(), kpi(name=f"Shared {n}", owner_org="globex"), PARTNERS, GUS))
    with pytest.raises(Rejected, match="at most 100 shared KPIs"):
        globex.do(DefineKpi(uuid4(), kpi(name="One more", owner_org="globex"), PARTNERS, GUS))
    acme = Partner(globex.shared, acme.private)
    acme.define(name="Secret 3", visibility=Visibility.private)  # its own allowance is whole
    assert len(acme.private.kpis) == 4
