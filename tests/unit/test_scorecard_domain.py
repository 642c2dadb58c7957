"""The alliance scorecard's rules, with no server running: judgements, periods, commands and
the CRM pipeline."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import TypeAdapter, ValidationError

from concord.domain import (
    Actor,
    CancelTimer,
    DomainEvent,
    Forbidden,
    NotFound,
    Rejected,
    ScheduleTimer,
)
from concord.events import CloudEvent
from scorecard.domain.benefits import BenefitEntry, BenefitKind, RecordBenefit, WelcomePartner
from scorecard.domain.events import (
    EVENT_REGISTRY,
    EVENTS,
    BenefitBalanceRestored,
    BenefitImbalanceDetected,
    BenefitRecorded,
    InitiativeLaunched,
    InitiativeProgressUpdated,
    KpiActualCorrected,
    KpiActualMissing,
    KpiActualRecorded,
    KpiDefined,
    KpiRecovered,
    KpiTargetSet,
    KpiWentOffTrack,
    ObjectiveDefined,
    ObjectivesLinked,
    OpportunityCreated,
    OpportunityStageChanged,
    PartnerWelcomed,
    ProposalSubmitted,
    ScorecardEvent,
    ScorecardOpened,
    ScorecardThresholdsChanged,
)
from scorecard.domain.ingestion import IngestPipeline, ItemVerdict
from scorecard.domain.initiatives import (
    InitiativePlan,
    InitiativeProgress,
    InitiativeStatus,
    LaunchInitiative,
    UpdateInitiativeProgress,
)
from scorecard.domain.kpi_numbers import KpiActual, KpiTarget, RecordKpiActual, SetKpiTarget
from scorecard.domain.kpis import DefineKpi, KpiDefinition
from scorecard.domain.missing_actuals import NoteMissingActual, timers_for
from scorecard.domain.opening import ChangeThresholds, OpenScorecard, ScorecardSetup
from scorecard.domain.periods import (
    Cadence,
    as_seen_in,
    end_of,
    first_instant_after,
    months_in,
    order,
    period_of,
)
from scorecard.domain.pipeline import Metric, PipelineItem
from scorecard.domain.rules import (
    Direction,
    GoodDirection,
    Status,
    StatusThresholds,
    direction_of,
    imbalance_index,
    status_of,
)
from scorecard.domain.scorecard import Command, ingest, scorecard, stream_id
from scorecard.domain.state import Dimension, KpiKind, Scorecard, Visibility
from scorecard.domain.strategy import (
    DefineObjective,
    LinkObjectives,
    ObjectiveDefinition,
    ObjectiveLink,
)

ANN = Actor("ann", "acme", frozenset({"alliance_manager"}))
GUS = Actor("gus", "globex", frozenset({"alliance_manager"}))
IVY = Actor("ivy", "initech", frozenset({"alliance_manager"}))
PARTNERS = ("acme", "globex")
DEFAULT = StatusThresholds()
D = Decimal
SETUP = ScorecardSetup(currency="EUR")


def opened() -> Scorecard:
    return scorecard.fold(
        scorecard.decide(Scorecard(), OpenScorecard(uuid4(), SETUP, PARTNERS, ANN))
    )


def run(state: Scorecard, command: Command) -> tuple[list[ScorecardEvent], Scorecard]:
    events = list(scorecard.decide(state, command))
    return events, scorecard.fold(events, state)


def kpi(name: str = "Joint pipeline", **overrides: Any) -> KpiDefinition:
    fields = {"dimension": Dimension.commercial, "kind": KpiKind.leading, "unit": "deals"}
    return KpiDefinition(**({"name": name, "owner_org": "acme"} | fields | overrides))


def defined(state: Scorecard, by: Actor = ANN, **overrides: Any) -> tuple[UUID, Scorecard]:
    kpi_id = uuid4()
    _, state = run(state, DefineKpi(kpi_id, kpi(**overrides), PARTNERS, by))
    return kpi_id, state


def target(kpi_id: UUID, value: str, period: str = "2026-03", by: Actor = ANN) -> SetKpiTarget:
    return SetKpiTarget(kpi_id, KpiTarget(period=period, target=D(value)), by)


def actual(kpi_id: UUID, value: str, period: str = "2026-03", by: Actor = ANN) -> RecordKpiActual:
    return RecordKpiActual(kpi_id, KpiActual(period=period, actual=D(value)), by)


def types(events: list[ScorecardEvent]) -> list[type]:
    return [type(e) for e in events]


# --- rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target_", "actual_", "good", "expected"),
    [
        ("100", "100", GoodDirection.higher, Status.on_track),
        ("100", "95", GoodDirection.higher, Status.on_track),  # 0.95 is on track
        ("100", "94.99", GoodDirection.higher, Status.at_risk),
        ("100", "80", GoodDirection.higher, Status.at_risk),  # 0.80 is still at risk
        ("100", "79.99", GoodDirection.higher, Status.off_track),
        ("10", "10", GoodDirection.lower, Status.on_track),
        ("10", "10.5", GoodDirection.lower, Status.on_track),  # 10 / 10.5 = 0.9524
        ("10", "12.5", GoodDirection.lower, Status.at_risk),  # 10 / 12.5 = 0.80
        ("10", "13", GoodDirection.lower, Status.off_track),
        ("10", "5", GoodDirection.lower, Status.on_track),
    ],
)
def test_status_is_attainment_against_the_thresholds(
    target_: str, actual_: str, good: GoodDirection, expected: Status
) -> None:
    """On track from 95% of the target, off track below 80% (target ÷ actual when lower is
    better), at risk in between."""
    assert status_of(D(target_), D(actual_), good, DEFAULT) is expected


def test_status_without_a_target_or_an_actual() -> None:
    """Nothing to judge against is 'no target'; a target with nothing measured is 'no data'."""
    assert status_of(None, D(5), GoodDirection.higher, DEFAULT) is Status.no_target
    assert status_of(None, None, GoodDirection.higher, DEFAULT) is Status.no_target
    assert status_of(D(5), None, GoodDirection.higher, DEFAULT) is Status.no_data


def test_a_zero_target_is_met_or_not() -> None:
    """Against a zero target only 'met or not' counts: no ratio, so no 'at risk'."""
    assert status_of(D(0), D(0), GoodDirection.higher, DEFAULT) is Status.on_track
    assert status_of(D(0), D(3), GoodDirection.higher, DEFAULT) is Status.on_track
    assert status_of(D(0), D(-1), GoodDirection.higher, DEFAULT) is Status.off_track
    assert status_of(D(0), D(0), GoodDirection.lower, DEFAULT) is Status.on_track  # zero incidents
    assert status_of(D(0), D(1), GoodDirection.lower, DEFAULT) is Status.off_track


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("102", Direction.flat),  # +2% is within the band
        ("102.01", Direction.up),
        ("98", Direction.flat),
        ("97.99", Direction.down),
    ],
)
def test_direction_compares_with_the_recent_mean(value: str, expected: Direction) -> None:
    """A move within ±2% of the mean of the earlier periods is flat."""
    assert direction_of([D(100), D(100), D(100)], D(value), D("0.02")) is expected


def test_direction_uses_only_the_three_latest_earlier_periods() -> None:
    """A spike four periods back no longer drags the baseline."""
    assert direction_of([D(1000), D(100), D(100), D(100)], D(100), D("0.02")) is Direction.flat
    assert direction_of([D(1000), D(100), D(100)], D(100), D("0.02")) is Direction.down


def test_no_direction_without_history_or_actual() -> None:
    assert direction_of([], D(100), D("0.02")) is None
    assert direction_of([D(100)], None, D("0.02")) is None


@pytest.mark.parametrize(
    ("amounts", "partners", "expected"),
    [
        ({"acme": 65, "globex": 35}, ("acme", "globex"), "0.3000"),
        ({"acme": 50, "globex": 50}, ("acme", "globex"), "0"),
        ({"acme": 10}, ("acme", "globex"), "1"),
        ({}, ("acme", "globex"), "0"),  # nothing recorded yet
        ({"acme": 60, "globex": 20, "initech": 20}, ("acme", "globex", "initech"), "0.4"),
        ({"acme": 1, "globex": 1, "initech": 1}, ("acme", "globex", "initech"), "0"),
    ],
)
def test_imbalance_index(amounts: dict[str, int], partners: tuple[str, ...], expected: str) -> None:
    """0 is an equal split, 1 is one partner taking everything; 65/35 scores 0.30."""
    got = imbalance_index({org: D(v) for org, v in amounts.items()}, partners)
    assert got == D(expected)


def test_actuals_are_due_ten_days_after_a_period_unless_the_scorecard_says_otherwise() -> None:
    """Thresholds recorded before the setting existed read as the default."""
    assert DEFAULT.actual_grace_days == 10
    old = StatusThresholds.model_validate(
        {"on_track_from": "0.95", "off_track_below": "0.80", "flat_band": "0.02"}
    )
    assert old.actual_grace_days == 10
    assert StatusThresholds(actual_grace_days=0).actual_grace_days == 0
    for days in (-1, 91):
        with pytest.raises(ValidationError, match="actual_grace_days"):
            StatusThresholds(actual_grace_days=days)


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="off_track_below"):
        StatusThresholds(on_track_from=D("0.80"), off_track_below=D("0.90"))
    same = StatusThresholds(on_track_from=D("0.90"), off_track_below=D("0.90"))
    assert status_of(D(100), D(89), GoodDirection.higher, same) is Status.off_track


# --- periods ----------------------------------------------------------------------------------


def test_periods() -> None:
    """Months like 2026-11, quarters like 2026-Q4; a quarter sorts with its last month."""
    assert period_of(date(2026, 11, 30), Cadence.month) == "2026-11"
    assert period_of(date(2026, 11, 30), Cadence.quarter) == "2026-Q4"
    assert period_of(date(2026, 1, 1), Cadence.quarter) == "2026-Q1"
    assert months_in("2026-Q2") == ("2026-04", "2026-05", "2026-06")
    assert months_in("2026-05") == ("2026-05",)
    assert as_seen_in("2026-11", Cadence.quarter) == "2026-Q4"  # month view, quarterly KPI
    assert as_seen_in("2026-Q4", Cadence.month) == "2026-12"  # quarter view, monthly KPI
    assert as_seen_in("2026-11", Cadence.month) == "2026-11"
    assert order("2026-Q4") == order("2026-12") > order("2026-11") > order("2025-Q4")
    assert end_of("2026-02") == date(2026, 2, 28)
    assert end_of("2028-02") == date(2028, 2, 29)
    assert end_of("2026-Q4") == date(2026, 12, 31)
    assert end_of("2026-Q1") == date(2026, 3, 31)
    assert first_instant_after("2026-02") == datetime(2026, 3, 1, tzinfo=UTC)
    assert first_instant_after("2026-12") == datetime(2027, 1, 1, tzinfo=UTC)
    assert first_instant_after("2026-Q3") == datetime(2026, 10, 1, tzinfo=UTC)


# --- opening and thresholds -------------------------------------------------------------------


def test_opening_a_scorecard_once() -> None:
    alliance_id = uuid4()
    command = OpenScorecard(alliance_id, SETUP, PARTNERS, ANN)
    [event] = scorecard.decide(Scorecard(), command)
    assert isinstance(event, ScorecardOpened)
    assert event == ScorecardOpened(
        alliance_id=alliance_id, partners=list(PARTNERS), currency="EUR", thresholds=DEFAULT
    )
    assert (event.currency, event.partners) == ("EUR", list(PARTNERS))
    state = scorecard.fold([event])
    assert (state.alliance_id, state.partners, state.thresholds) == (alliance_id, PARTNERS, DEFAULT)
    with pytest.raises(Rejected, match="already open"):
        scorecard.decide(state, command)


def test_nothing_happens_on_a_scorecard_that_is_not_open() -> None:
    with pytest.raises(NotFound):
        scorecard.decide(Scorecard(), ChangeThresholds(DEFAULT, ANN))


def test_changing_thresholds_only_when_they_change() -> None:
    state = opened()
    assert scorecard.decide(state, ChangeThresholds(StatusThresholds(), ANN)) == []
    stricter = StatusThresholds(on_track_from=D("0.98"))
    [event], state = run(state, ChangeThresholds(stricter, ANN))
    assert isinstance(event, ScorecardThresholdsChanged)
    assert state.thresholds == stricter


# --- KPIs -------------------------------------------------------------------------------------


def test_defining_a_kpi() -> None:
    kpi_id = uuid4()
    [event], state = run(opened(), DefineKpi(kpi_id, kpi(), PARTNERS, ANN))
    assert isinstance(event, KpiDefined)
    assert (event.kpi_id, event.owner_org, event.visibility) == (kpi_id, "acme", Visibility.shared)
    assert state.kpis[kpi_id].name == "Joint pipeline"


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"owner_org": "initech"}, "initech is not a partner"),
        ({"owner_org": "globex", "visibility": Visibility.private}, "private KPI"),
        ({"owner_org": "globex", "feed": Metric.proposals_submitted}, "whose CRM feeds it"),
    ],
)
def test_who_may_own_a_kpi(overrides: dict[str, Any], rule: str) -> None:
    """A KPI belongs to a partner; a private or CRM-fed one to the caller's own organisation."""
    with pytest.raises(Rejected, match=rule) as refusal:
        defined(opened(), **overrides)
    assert refusal.value.field_name == "owner_org"


def test_kpi_names_are_unique_among_the_kpis_the_caller_can_see() -> None:
    """A refusal must not reveal another partner's private KPI, so its name does not block."""
    _, state = defined(
        opened(), by=GUS, name="Partner NPS", owner_org="globex", visibility=Visibility.private
    )
    [event], state = run(state, DefineKpi(uuid4(), kpi("partner nps"), PARTNERS, ANN))
    assert isinstance(event, KpiDefined)
    with pytest.raises(Rejected, match="already a KPI named"):
        defined(state, name="PARTNER NPS")
    with pytest.raises(Rejected, match="already a KPI named"):
        defined(state, by=GUS, name="Partner NPS", owner_org="globex")


def test_one_kpi_per_crm_feed() -> None:
    _, state = defined(opened(), name="Proposals", feed=Metric.proposals_submitted)
    with pytest.raises(Rejected, match="already fed by proposals_submitted"):
        defined(state, name="Proposals again", feed=Metric.proposals_submitted)
    _, state = defined(
        state, by=GUS, name="Their proposals", owner_org="globex", feed=Metric.proposals_submitted
    )
    assert len(state.kpis) == 2  # each organisation feeds its own


def test_only_the_owner_sets_a_target() -> None:
    kpi_id, state = defined(opened())
    with pytest.raises(Forbidden, match="Only acme"):
        scorecard.decide(state, target(kpi_id, "10", by=GUS))
    private_id, state = defined(state, name="Margin", visibility=Visibility.private)
    for stranger in (GUS, IVY):  # they cannot even see it
        with pytest.raises(NotFound):
            scorecard.decide(state, target(private_id, "10", by=stranger))
    with pytest.raises(NotFound):
        scorecard.decide(state, target(uuid4(), "10"))


def test_a_target_names_a_period_of_the_kpis_cadence() -> None:
    kpi_id, state = defined(opened())
    with pytest.raises(Rejected, match="per month") as refusal:
        scorecard.decide(state, target(kpi_id, "10", period="2026-Q1"))
    assert refusal.value.field_name == "period"
    quarterly_id, state = defined(state, name="Joint wins", cadence=Cadence.quarter)
    with pytest.raises(Rejected, match="per quarter"):
        scorecard.decide(state, target(quarterly_id, "10", period="2026-03"))


def test_setting_a_target_keeps_the_previous_one_and_repeats_change_nothing() -> None:
    kpi_id, state = defined(opened())
    [first], state = run(state, target(kpi_id, "10"))
    assert isinstance(first, KpiTargetSet) and first.previous_target is None
    assert scorecard.decide(state, target(kpi_id, "10.00")) == []
    [second], state = run(state, target(kpi_id, "12"))
    assert isinstance(second, KpiTargetSet) and second.previous_target == D(10)
    assert state.numbers[(kpi_id, "2026-03")].target == D(12)


def test_recording_then_correcting_an_actual() -> None:
    kpi_id, state = defined(opened())
    [first], state = run(state, actual(kpi_id, "7"))
    assert isinstance(first, KpiActualRecorded)
    assert first == KpiActualRecorded(
        kpi_id=kpi_id,
        owner_org="acme",
        visibility=Visibility.shared,
        period="2026-03",
        actual=D(7),
        source="manual",
        note=None,
    )
    assert (first.actual, first.source) == (D(7), "manual")
    assert scorecard.decide(state, actual(kpi_id, "7")) == []
    [second], state = run(state, actual(kpi_id, "9"))
    assert isinstance(second, KpiActualCorrected)
    assert (second.previous_actual, second.actual) == (D(7), D(9))
    assert state.numbers[(kpi_id, "2026-03")].actual == D(9)


def test_a_crm_fed_kpi_takes_no_manual_actual() -> None:
    kpi_id, state = defined(opened(), feed=Metric.proposals_submitted)
    with pytest.raises(Rejected, match="fed by acme's CRM"):
        scorecard.decide(state, actual(kpi_id, "3"))


def test_falling_below_80_percent_goes_off_track_and_reaching_95_recovers() -> None:
    kpi_id, state = defined(opened())
    _, state = run(state, target(kpi_id, "100"))
    events, state = run(state, actual(kpi_id, "79"))
    assert types(events) == [KpiActualRecorded, KpiWentOffTrack]
    off = events[1]
    assert isinstance(off, KpiWentOffTrack)
    assert (off.period, off.target, off.actual) == ("2026-03", D(100), D(79))
    assert off.previous_status is Status.no_data
    assert state.status(kpi_id, "2026-03") is Status.off_track
    assert types(scorecard.decide(state, actual(kpi_id, "70"))) == [KpiActualCorrected]
    events, state = run(state, actual(kpi_id, "95"))
    assert types(events) == [KpiActualCorrected, KpiRecovered]
    back = events[1]
    assert isinstance(back, KpiRecovered)
    assert (back.status, back.actual) == (Status.on_track, D(95))


def test_a_new_target_can_put_a_kpi_off_track() -> None:
    kpi_id, state = defined(opened())
    _, state = run(state, actual(kpi_id, "50"))
    events, _ = run(state, target(kpi_id, "100"))
    assert types(events) == [KpiTargetSet, KpiWentOffTrack]


def test_stricter_thresholds_can_put_a_kpi_off_track() -> None:
    kpi_id, state = defined(opened())
    _, state = run(state, target(kpi_id, "100"))
    events, state = run(state, actual(kpi_id, "85"))
    assert types(events) == [KpiActualRecorded]  # at risk: no crossing
    stricter = StatusThresholds(off_track_below=D("0.90"))
    events, state = run(state, ChangeThresholds(stricter, ANN))
    assert types(events) == [ScorecardThresholdsChanged, KpiWentOffTrack]
    off = events[1]
    assert isinstance(off, KpiWentOffTrack) and off.previous_status is Status.at_risk
    events, _ = run(state, ChangeThresholds(DEFAULT, ANN))
    assert types(events) == [ScorecardThresholdsChanged, KpiRecovered]


# --- objectives and initiatives ---------------------------------------------------------------


def objective(name: str, *kpi_ids: UUID) -> ObjectiveDefinition:
    return ObjectiveDefinition(name=name, dimension=Dimension.strategic, kpi_ids=list(kpi_ids))


def test_an_objective_is_measured_by_kpis_the_caller_can_see() -> None:
    kpi_id, state = defined(opened())
    private_id, state = defined(
        state, by=GUS, name="Margin", owner_org="globex", visibility=Visibility.private
    )
    with pytest.raises(Rejected, match="No KPI") as refusal:
        scorecard.decide(state, DefineObjective(uuid4(), objective("Grow", uuid4()), ANN))
    assert refusal.value.field_name == "kpi_ids"
    with pytest.raises(Rejected, match="No KPI"):
        scorecard.decide(state, DefineObjective(uuid4(), objective("Grow", private_id), ANN))
    objective_id = uuid4()
    [event], state = run(state, DefineObjective(objective_id, objective("Grow", kpi_id), ANN))
    assert isinstance(event, ObjectiveDefined) and event.kpi_ids == [kpi_id]
    assert state.objectives[objective_id].kpi_ids == (kpi_id,)


def link(cause_id: UUID, effect_id: UUID) -> LinkObjectives:
    return LinkObjectives(ObjectiveLink(cause_id=cause_id, effect_id=effect_id), ANN)


def test_the_strategy_map_runs_from_causes_to_effects_without_loops() -> None:
    state = opened()
    a, b, c = uuid4(), uuid4(), uuid4()
    for objective_id, name in ((a, "Train"), (b, "Co-sell"), (c, "Grow")):
        _, state = run(state, DefineObjective(objective_id, objective(name), ANN))
    with pytest.raises(Rejected, match="cannot drive itself"):
        scorecard.decide(state, link(a, a))
    [linked], state = run(state, link(a, b))
    assert isinstance(linked, ObjectivesLinked)
    _, state = run(state, link(b, c))
    assert state.links == {(a, b), (b, c)}
    assert scorecard.decide(state, link(a, b)) == []  # already so
    with pytest.raises(Rejected, match="close a loop"):
        scorecard.decide(state, link(c, a))


def plan(owner_org: str = "acme") -> InitiativePlan:
    fields = {"name": "Webinars", "owner_name": "Ann", "leading_indicator": "Registrations"}
    return InitiativePlan(
        **fields, dimension=Dimension.commercial, owner_org=owner_org, due_date=date(2026, 6, 30)
    )


def progress(
    completion: int, as_of: date, status: InitiativeStatus = InitiativeStatus.in_progress
) -> InitiativeProgress:
    return InitiativeProgress(completion=completion, status=status, as_of=as_of)


def test_an_initiative_is_owned_by_a_partner() -> None:
    with pytest.raises(Rejected, match="initech is not a partner"):
        scorecard.decide(opened(), LaunchInitiative(uuid4(), plan("initech"), PARTNERS, ANN))
    [event] = scorecard.decide(opened(), LaunchInitiative(uuid4(), plan("globex"), PARTNERS, ANN))
    assert isinstance(event, InitiativeLaunched) and event.owner_org == "globex"


def test_only_the_owner_reports_progress_and_never_back_in_time() -> None:
    initiative_id = uuid4()
    _, state = run(opened(), LaunchInitiative(initiative_id, plan(), PARTNERS, ANN))
    update = UpdateInitiativeProgress(initiative_id, progress(40, date(2026, 3, 10)), GUS)
    with pytest.raises(Forbidden, match="Only acme"):
        scorecard.decide(state, update)
    [event], state = run(state, UpdateInitiativeProgress(initiative_id, update.progress, ANN))
    assert isinstance(event, InitiativeProgressUpdated)
    assert (event.previous_completion, event.completion) == (0, 40)
    assert state.initiatives[initiative_id].as_of == date(2026, 3, 10)
    earlier = UpdateInitiativeProgress(initiative_id, progress(50, date(2026, 3, 1)), ANN)
    with pytest.raises(Rejected, match="already reported as of 2026-03-10"):
        scorecard.decide(state, earlier)
    with pytest.raises(NotFound):
        scorecard.decide(state, UpdateInitiativeProgress(uuid4(), update.progress, ANN))


def test_a_done_initiative_is_complete() -> None:
    with pytest.raises(ValidationError, match="100% complete"):
        progress(90, date(2026, 3, 1), InitiativeStatus.done)
    assert progress(100, date(2026, 3, 1), InitiativeStatus.done).completion == 100


# --- benefits ---------------------------------------------------------------------------------


def benefit(partner_org: str, amount: str, by: Actor = ANN, **overrides: Any) -> RecordBenefit:
    fields = {"kind": BenefitKind.revenue, "currency": "EUR", "period": "2026-03"}
    entry = {"partner_org": partner_org, "amount": D(amount), "evidence": "Signed order"}
    return RecordBenefit(uuid4(), BenefitEntry(**(entry | fields | overrides)), PARTNERS, by)


def test_a_benefit_is_a_partners_in_the_ledgers_currency() -> None:
    state = opened()
    with pytest.raises(Rejected, match="kept in EUR"):
        scorecard.decide(state, benefit("acme", "10", currency="USD"))
    with pytest.raises(Rejected, match="initech is not a partner"):
        scorecard.decide(state, benefit("initech", "10"))
    with pytest.raises(Rejected, match="your own organisation's"):
        scorecard.decide(state, benefit("globex", "10", visibility=Visibility.private))


def test_an_imbalance_is_detected_and_its_restoration_noticed() -> None:
    events, state = run(opened(), benefit("globex", "50", GUS))
    assert types(events) == [BenefitRecorded, BenefitImbalanceDetected]
    detected = events[1]
    assert isinstance(detected, BenefitImbalanceDetected)
    assert (detected.most_favoured_org, detected.imbalance_index) == ("globex", D(1))
    events, state = run(state, benefit("acme", "50"))
    assert types(events) == [BenefitRecorded, BenefitBalanceRestored]
    restored = events[1]
    assert isinstance(restored, BenefitBalanceRestored)
    assert restored.shares == {"acme": D("0.5"), "globex": D("0.5")}
    events, state = run(state, benefit("acme", "30"))  # 80/50: index 0.23
    assert types(events) == [BenefitRecorded]
    events, state = run(state, benefit("acme", "20"))  # 100/50: index 0.33
    assert types(events) == [BenefitRecorded, BenefitImbalanceDetected]
    assert isinstance(events[1], BenefitImbalanceDetected)
    assert events[1].most_favoured_org == "acme"
    assert state.imbalanced and state.shared_benefits == {"acme": D(100), "globex": D(50)}


def test_private_benefits_do_not_count_towards_the_balance() -> None:
    events, state = run(opened(), benefit("globex", "100", GUS, visibility=Visibility.private))
    assert types(events) == [BenefitRecorded]
    assert state.shared_benefits == {} and not state.imbalanced
    _, state = run(state, benefit("globex", "50", GUS))
    _, state = run(state, benefit("acme", "50"))
    events, state = run(state, benefit("acme", "1000", visibility=Visibility.private))
    assert types(events) == [BenefitRecorded]
    assert state.shared_benefits == {"acme": D(50), "globex": D(50)} and not state.imbalanced


# --- the CRM pipeline -------------------------------------------------------------------------

ITEMS: TypeAdapter[list[PipelineItem]] = TypeAdapter(list[PipelineItem])


def batch(*items: dict[str, Any], org: str = "acme", by: Actor = ANN) -> IngestPipeline:
    return IngestPipeline(tuple(ITEMS.validate_python(list(items))), org, by)


def feed(state: Scorecard, *items: dict[str, Any]) -> tuple[list[ScorecardEvent], Scorecard]:
    return run(state, batch(*items))


_ids = iter(range(1_000_000))


def item(kind: str, at: str = "2026-03-10T09:00:00Z", **fields: Any) -> dict[str, Any]:
    """A CRM pipeline item as the CRM sends it, with an id of its own."""
    return {"type": kind, "id": f"crm-{next(_ids)}", "occurred_at": at, **fields}


def created(opp: str, amount: str, at: str = "2026-03-10T09:00:00Z") -> dict[str, Any]:
    fields = {"account": "Bank", "currency": "EUR", "stage": "qualify", "close_date": "2026-06-30"}
    return item("opportunity.created", at, opportunity_id=opp, amount=amount, **fields)


def won(opp: str, amount: str, close_date: str, currency: str = "EUR") -> dict[str, Any]:
    return item(
        "opportunity.closed_won",
        f"{close_date}T12:00:00Z",
        opportunity_id=opp,
        amount=amount,
        currency=currency,
        close_date=close_date,
    )


def counted(kind: str, at: str) -> dict[str, Any]:
    return item(kind, at, account="Bank")


def total(state: Scorecard, metric: Metric, month: str, currency: str | None = "EUR") -> Decimal:
    value: Decimal = state.pipeline.get(("acme", metric, month, currency), D(0))
    return value


def test_each_item_gets_its_own_verdict() -> None:
    """One bad item never sinks the others."""
    command = batch(
        created("o1", "100"),
        item("opportunity.stage_changed", opportunity_id="ghost", stage="propose"),
        created("o1", "999"),
        counted("proposal.submitted", "2026-03-12T09:00:00Z"),
    )
    result = ingest(opened(), command)
    assert [v.accepted for v in result.verdicts] == [True, False, False, True]
    assert "ghost is not known" in (result.verdicts[1].reason or "")
    assert "already created" in (result.verdicts[2].reason or "")
    assert result.verdicts[0] == ItemVerdict(True)
    assert types(result.events) == [OpportunityCreated, ProposalSubmitted]
    assert scorecard.decide(opened(), command) == result.events
    with pytest.raises(NotFound):
        ingest(Scorecard(), command)


def test_a_new_amount_adjusts_the_pipeline_of_the_month_the_opportunity_was_created() -> None:
    events, state = feed(
        opened(),
        created("o1", "100"),
        item(
            "opportunity.stage_changed",
            "2026-04-02T09:00:00Z",
            opportunity_id="o1",
            stage="propose",
            amount="140",
        ),
    )
    changed = events[1]
    assert isinstance(changed, OpportunityStageChanged)
    assert (changed.previous_amount, changed.amount) == (D(100), D(140))
    assert total(state, Metric.pipeline_value, "2026-03") == D(140)
    assert total(state, Metric.pipeline_value, "2026-04") == D(0)


def test_a_repeated_win_replaces_the_earlier_one_and_a_loss_removes_it() -> None:
    _, state = feed(opened(), won("o1", "100", "2026-03-20"))
    assert total(state, Metric.closed_won_revenue, "2026-03") == D(100)
    _, state = feed(state, won("o1", "150", "2026-04-02"))
    assert total(state, Metric.closed_won_revenue, "2026-03") == D(0)
    assert total(state, Metric.closed_won_revenue, "2026-04") == D(150)
    _, state = feed(
        state, item("opportunity.closed_lost", opportunity_id="o1", close_date="2026-04-10")
    )
    assert total(state, Metric.closed_won_revenue, "2026-04") == D(0)


def test_proposals_and_key_accounts_count_one_each_per_month() -> None:
    _, state = feed(
        opened(),
        counted("proposal.submitted", "2026-03-01T09:00:00Z"),
        counted("proposal.submitted", "2026-03-31T09:00:00Z"),
        counted("proposal.submitted", "2026-04-01T09:00:00Z"),
        counted("key_account.agreed", "2026-03-15T09:00:00Z"),
    )
    assert total(state, Metric.proposals_submitted, "2026-03", None) == D(2)
    assert total(state, Metric.proposals_submitted, "2026-04", None) == D(1)
    assert total(state, Metric.key_accounts_agreed, "2026-03", None) == D(1)


def test_a_moment_is_placed_in_its_utc_month() -> None:
    """01:00 on 1 April in UTC+2 is still 31 March in UTC."""
    _, state = feed(opened(), counted("proposal.submitted", "2026-04-01T01:00:00+02:00"))
    assert total(state, Metric.proposals_submitted, "2026-03", None) == D(1)
    assert total(state, Metric.proposals_submitted, "2026-04", None) == D(0)


def test_the_crm_records_then_corrects_a_fed_kpi() -> None:
    kpi_id, state = defined(
        opened(), name="Pipeline", unit="EUR", currency="EUR", feed=Metric.pipeline_value
    )
    _, state = run(state, target(kpi_id, "200"))
    events, state = feed(state, created("o1", "100"))
    assert types(events) == [OpportunityCreated, KpiActualRecorded, KpiWentOffTrack]
    recorded = events[1]
    assert isinstance(recorded, KpiActualRecorded)
    assert (recorded.period, recorded.actual, recorded.source) == ("2026-03", D(100), "crm")
    events, state = feed(state, created("o2", "95"))
    assert types(events) == [OpportunityCreated, KpiActualCorrected, KpiRecovered]
    corrected = events[1]
    assert isinstance(corrected, KpiActualCorrected)
    assert (corrected.previous_actual, corrected.actual) == (D(100), D(195))
    assert corrected.source == "crm"
    assert state.numbers[(kpi_id, "2026-03")].actual == D(195)


def test_a_quarterly_fed_kpi_sums_its_three_months() -> None:
    kpi_id, state = defined(
        opened(), name="Proposals", cadence=Cadence.quarter, feed=Metric.proposals_submitted
    )
    events, state = feed(
        state,
        *(counted("proposal.submitted", f"2026-{m}-15T09:00:00Z") for m in ("01", "02", "03")),
        counted("proposal.submitted", "2026-04-15T09:00:00Z"),
    )
    recorded = [e for e in events if isinstance(e, KpiActualRecorded)]
    assert [(e.period, e.actual) for e in recorded] == [("2026-Q1", D(3)), ("2026-Q2", D(1))]
    assert state.numbers[(kpi_id, "2026-Q1")].actual == D(3)


def test_a_kpi_defined_later_counts_what_the_crm_already_reported() -> None:
    _, state = feed(
        opened(),
        created("o1", "100", at="2026-02-10T09:00:00Z"),
        created("o2", "50", at="2026-03-10T09:00:00Z"),
        created("o3", "70", at="2026-03-11T09:00:00Z"),
    )
    kpi_id = uuid4()
    definition = kpi("Pipeline", unit="EUR", currency="EUR", feed=Metric.pipeline_value)
    events, state = run(state, DefineKpi(kpi_id, definition, PARTNERS, ANN))
    assert types(events) == [KpiDefined, KpiActualRecorded, KpiActualRecorded]
    backfill = [(e.period, e.actual, e.source) for e in events if isinstance(e, KpiActualRecorded)]
    assert backfill == [("2026-02", D(100), "crm"), ("2026-03", D(120), "crm")]
    assert state.numbers[(kpi_id, "2026-03")].actual == D(120)


def test_money_in_another_currency_than_its_fed_kpi_is_refused_per_item() -> None:
    _, state = defined(
        opened(), name="Wins", unit="EUR", currency="EUR", feed=Metric.closed_won_revenue
    )
    result = ingest(
        state, batch(won("o1", "100", "2026-03-20", "USD"), won("o2", "80", "2026-03-21"))
    )
    assert [v.accepted for v in result.verdicts] == [False, True]
    assert "kept in EUR" in (result.verdicts[0].reason or "")
    recorded = [e for e in result.events if isinstance(e, KpiActualRecorded)]
    assert [e.actual for e in recorded] == [D(80)]


def test_an_item_dated_outside_the_calendar_is_rejected_on_its_own() -> None:
    """Dates a CRM sends are within 2000-2199: year 1 at +14:00 would overflow as it is placed
    in UTC, year 999 names no period; either is that item's error, not the batch's."""
    for at in ("0001-01-01T00:00:00+14:00", "0999-06-01T00:00:00Z", "2200-01-01T00:00:00Z"):
        with pytest.raises(ValidationError, match="year from 2000 to 2199"):
            ITEMS.validate_python([counted("proposal.submitted", at)])
    with pytest.raises(ValidationError, match="year from 2000 to 2199"):
        ITEMS.validate_python([won("o1", "100", "0999-06-30")])


def test_a_stream_holding_an_item_from_year_999_still_defines_its_fed_kpi() -> None:
    """Before dates were bounded, an item dated 999 was accepted; a KPI fed by its metric
    could then never be defined (its month read as no date). Such a stream works: the item
    counts in 0999-06, as it was recorded."""
    old = ProposalSubmitted(
        crm_event_id="old",
        source_org="acme",
        occurred_at=datetime(999, 6, 1, tzinfo=UTC),
        account="Bank",
        opportunity_id=None,
    )
    state = scorecard.fold([old], opened())
    definition = kpi("Proposals", unit="count", feed=Metric.proposals_submitted)
    events, state = run(state, DefineKpi(uuid4(), definition, PARTNERS, ANN))
    backfill = [(e.period, e.actual) for e in events if isinstance(e, KpiActualRecorded)]
    assert backfill == [("0999-06", D(1))]


# --- who did it travels in the envelope -------------------------------------------------------


def v1_envelope(event: DomainEvent, **who: str) -> CloudEvent:
    """`event` as version 1 wrote it: who did it in the payload, nothing in the envelope."""
    data = {**event.model_dump(mode="json", exclude={"previous_thresholds"}), **who}
    alliance_id = uuid4()
    return CloudEvent(
        id=uuid4(),
        source="/concord/scorecard",
        type=f"concord.scorecard.scorecard.{event.event_name()}.v1",
        subject=stream_id(alliance_id),
        time=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        data=data,
        allianceid=str(alliance_id),
        streamversion=4,
    )


def test_a_v1_target_says_who_set_it_in_its_envelope_now() -> None:
    kpi_id = uuid4()
    v1 = v1_envelope(
        KpiTargetSet(
            kpi_id=kpi_id,
            owner_org="acme",
            visibility=Visibility.shared,
            period="2026-03",
            target=D(100),
            previous_target=None,
        ),
        set_by_org="acme",
        set_by="ann",
    )
    recorded = EVENT_REGISTRY.recorded(v1)
    assert recorded.event == KpiTargetSet(
        kpi_id=kpi_id,
        owner_org="acme",
        visibility=Visibility.shared,
        period="2026-03",
        target=D(100),
        previous_target=None,
    )
    assert recorded.actor == Actor(sub="ann", org="acme")
    assert "set_by_org" not in recorded.envelope.data


def test_no_event_names_who_did_it_in_its_payload() -> None:
    for event in EVENTS:
        actor_fields = {f for f in event.model_fields if f.endswith(("_by", "_by_org"))}
        assert not actor_fields, event.__name__


def everything_once() -> list[ScorecardEvent]:
    """One event of every kind that named who did it in version 1."""
    kpi_id, objective_id, cause_id, initiative_id = uuid4(), uuid4(), uuid4(), uuid4()
    events = list(scorecard.decide(Scorecard(), OpenScorecard(uuid4(), SETUP, PARTNERS, ANN)))
    state = scorecard.fold(events)
    for command in (
        ChangeThresholds(StatusThresholds(on_track_from=D("0.98")), ANN),
        DefineKpi(kpi_id, kpi(), PARTNERS, ANN),
        target(kpi_id, "100"),
        actual(kpi_id, "99"),
        actual(kpi_id, "98"),
        DefineObjective(cause_id, objective("Train"), ANN),
        DefineObjective(objective_id, objective("Grow", kpi_id), ANN),
        link(cause_id, objective_id),
        LaunchInitiative(initiative_id, plan(), PARTNERS, ANN),
        UpdateInitiativeProgress(initiative_id, progress(40, date(2026, 3, 10)), ANN),
        benefit("acme", "10"),
    ):
        decided, state = run(state, command)
        events.append(decided[0])
    return events


V1_ACTOR_FIELDS = {
    "ScorecardOpened": ("opened_by_org", "opened_by"),
    "ScorecardThresholdsChanged": ("changed_by_org", "changed_by"),
    "KpiDefined": ("defined_by_org", "defined_by"),
    "KpiTargetSet": ("set_by_org", "set_by"),
    "KpiActualRecorded": ("recorded_by_org", "recorded_by"),
    "KpiActualCorrected": ("corrected_by_org", "corrected_by"),
    "ObjectiveDefined": ("defined_by_org", "defined_by"),
    "ObjectivesLinked": ("linked_by_org", "linked_by"),
    "InitiativeLaunched": ("launched_by_org", "launched_by"),
    "InitiativeProgressUpdated": ("updated_by_org", "updated_by"),
    "BenefitRecorded": ("recorded_by_org", "recorded_by"),
}


def test_every_event_stored_at_v1_still_says_who_did_it() -> None:
    events = everything_once()
    assert {type(e).__name__ for e in events} == set(V1_ACTOR_FIELDS)
    for event in events:
        org, sub = V1_ACTOR_FIELDS[type(event).__name__]
        recorded = EVENT_REGISTRY.recorded(v1_envelope(event, **{org: "acme", sub: "ann"}))
        assert recorded.actor == Actor(sub="ann", org="acme"), type(event).__name__
        assert type(recorded.event) is type(event) and type(event).schema_version == 2
        if isinstance(event, ScorecardThresholdsChanged):  # v1 did not say what it was before
            assert recorded.event == event.model_copy(update={"previous_thresholds": None})
        else:
            assert recorded.event == event


# --- a missing actual (the kpi_actual_due timer) ----------------------------------------------

SEVEN_DAYS = StatusThresholds(actual_grace_days=7)


def timer_changes(state: Scorecard, command: Command) -> tuple[list[Any], Scorecard]:
    """What `command` decides, as the timers its events set, move or cancel."""
    events, after = run(state, command)
    return timers_for(after, events), after


def due_timer(kpi_id: UUID, period: str, due: datetime) -> ScheduleTimer:
    return ScheduleTimer(
        key=f"actual-due/{kpi_id}/{period}",
        due=due,
        name="kpi_actual_due",
        data={"kpi_id": str(kpi_id), "period": period},
    )


def test_a_target_sets_the_timer_for_its_actual() -> None:
    """Due the grace days after the period is over (midnight UTC after its last day)."""
    kpi_id, state = defined(opened())
    changes, state = timer_changes(state, target(kpi_id, "100"))
    assert changes == [due_timer(kpi_id, "2026-03", datetime(2026, 4, 11, tzinfo=UTC))]
    assert scorecard.timers is timers_for
    quarterly_id, state = defined(state, name="Joint wins", cadence=Cadence.quarter)
    changes, state = timer_changes(state, target(quarterly_id, "5", period="2026-Q2"))
    assert changes == [due_timer(quarterly_id, "2026-Q2", datetime(2026, 7, 11, tzinfo=UTC))]


def test_a_target_on_a_period_that_has_its_actual_sets_no_timer() -> None:
    kpi_id, state = defined(opened())
    _, state = run(state, actual(kpi_id, "80"))
    changes, _ = timer_changes(state, target(kpi_id, "100"))
    assert changes == []


def test_the_actual_cancels_the_timer_and_a_correction_changes_nothing() -> None:
    kpi_id, state = defined(opened())
    _, state = run(state, target(kpi_id, "100"))
    changes, state = timer_changes(state, actual(kpi_id, "70"))
    assert changes == [CancelTimer(f"actual-due/{kpi_id}/2026-03")]
    changes, _ = timer_changes(state, actual(kpi_id, "75"))
    assert changes == []


def test_a_crm_actual_cancels_the_timer_too() -> None:
    kpi_id, state = defined(opened(), name="Proposals", feed=Metric.proposals_submitted)
    _, state = run(state, target(kpi_id, "2"))
    changes, _ = timer_changes(state, batch(counted("proposal.submitted", "2026-03-12T09:00:00Z")))
    assert changes == [CancelTimer(f"actual-due/{kpi_id}/2026-03")]


def test_new_grace_days_move_the_timers_of_actuals_still_due() -> None:
    kpi_id, state = defined(opened())
    other_id, state = defined(state, name="Proposals")
    for period in ("2026-03", "2026-04", "2026-05"):
        _, state = run(state, target(kpi_id, "100", period=period))
    _, state = run(state, target(other_id, "3", period="2026-03"))
    _, state = run(state, actual(kpi_id, "90", period="2026-04"))  # has its actual
    _, state = run(state, NoteMissingActual(kpi_id, "2026-05"))  # already reported missing
    changes, state = timer_changes(state, ChangeThresholds(SEVEN_DAYS, ANN))
    assert sorted(changes, key=lambda c: c.key) == sorted(
        [
            due_timer(kpi_id, "2026-03", datetime(2026, 4, 8, tzinfo=UTC)),
            due_timer(other_id, "2026-03", datetime(2026, 4, 8, tzinfo=UTC)),
        ],
        key=lambda c: c.key,
    )
    # Thresholds that keep the grace days move nothing.
    changes, _ = timer_changes(
        state, ChangeThresholds(StatusThresholds(actual_grace_days=7, on_track_from=D("0.9")), ANN)
    )
    assert changes == []


def test_a_missing_actual_is_reported_once() -> None:
    kpi_id, state = defined(
        opened(), name="Margin", owner_org="acme", visibility=Visibility.private
    )
    _, state = run(state, ChangeThresholds(SEVEN_DAYS, ANN))
    _, state = run(state, target(kpi_id, "12"))
    events, state = run(state, NoteMissingActual(kpi_id, "2026-03"))
    assert events == [
        KpiActualMissing(
            kpi_id=kpi_id,
            owner_org="acme",
            visibility=Visibility.private,
            name="Margin",
            period="2026-03",
            target=D(12),
            due=datetime(2026, 4, 8, tzinfo=UTC),
        )
    ]
    assert state.numbers[(kpi_id, "2026-03")].reported_missing
    # Moved and fired again (new grace days), it finds it already reported.
    assert scorecard.decide(state, NoteMissingActual(kpi_id, "2026-03")) == []
    changes, state = timer_changes(state, ChangeThresholds(DEFAULT, ANN))
    assert changes == []
    changes, state = timer_changes(state, target(kpi_id, "14"))
    assert changes == []
    # The actual may still come, late.
    events, state = run(state, actual(kpi_id, "14"))
    assert types(events) == [KpiActualRecorded]
    assert state.numbers[(kpi_id, "2026-03")].actual == D(14)


def test_nothing_is_missing_where_the_actual_came_or_nothing_was_asked() -> None:
    kpi_id, state = defined(opened())
    _, state = run(state, target(kpi_id, "100"))
    _, state = run(state, actual(kpi_id, "100"))
    assert scorecard.decide(state, NoteMissingActual(kpi_id, "2026-03")) == []
    assert scorecard.decide(state, NoteMissingActual(kpi_id, "2026-04")) == []  # no target
    assert scorecard.decide(state, NoteMissingActual(uuid4(), "2026-03")) == []  # no such KPI
    assert scorecard.decide(Scorecard(), NoteMissingActual(kpi_id, "2026-03")) == []


# --- a partner joins the balance of benefits --------------------------------------------------


def test_a_partner_added_to_the_alliance_is_welcomed_once() -> None:
    events, state = run(opened(), WelcomePartner("initech"))
    assert events == [PartnerWelcomed(org_id="initech")]
    assert state.partners == ("acme", "globex", "initech")
    assert scorecard.decide(state, WelcomePartner("initech")) == []
    assert scorecard.decide(state, WelcomePartner("acme")) == []
    assert scorecard.decide(Scorecard(), WelcomePartner("initech")) == []  # no scorecard yet


def test_a_welcomed_partner_with_nothing_gained_can_tip_the_balance() -> None:
    """60/40 between two partners is 0.20; with a third at 0 it is 0.50."""
    _, state = run(opened(), benefit("acme", "60"))
    _, state = run(state, benefit("globex", "40", GUS))
    assert not state.imbalanced
    events, state = run(state, WelcomePartner("initech"))
    assert types(events) == [PartnerWelcomed, BenefitImbalanceDetected]
    detected = events[1]
    assert isinstance(detected, BenefitImbalanceDetected)
    assert detected.shares == {"acme": D("0.6"), "globex": D("0.4"), "initech": D(0)}
    assert (detected.imbalance_index, detected.most_favoured_org) == (D("0.5"), "acme")
    assert state.imbalanced


def test_a_benefit_recorded_from_an_older_partner_list_keeps_the_welcomed_partner() -> None:
    _, state = run(opened(), WelcomePartner("initech"))
    _, state = run(state, benefit("acme", "10"))  # PARTNERS: acme and globex only
    assert state.partners == ("acme", "globex", "initech")
