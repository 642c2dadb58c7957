"""The alliance scorecard's rules, with no server running: judgements, periods, commands and
the CRM pipeline."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import TypeAdapter, ValidationError

from concord.domain import Actor, Forbidden, NotFound, Rejected
from scorecard.domain.periods import Cadence, as_seen_in, end_of, months_in, order, period_of
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
from scorecard.domain.scorecard import (
    BenefitBalanceRestored,
    BenefitEntry,
    BenefitImbalanceDetected,
    BenefitKind,
    BenefitRecorded,
    ChangeThresholds,
    Command,
    DefineKpi,
    DefineObjective,
    Dimension,
    IngestPipeline,
    InitiativeLaunched,
    InitiativePlan,
    InitiativeProgress,
    InitiativeProgressUpdated,
    InitiativeStatus,
    ItemVerdict,
    KpiActual,
    KpiActualCorrected,
    KpiActualRecorded,
    KpiDefined,
    KpiDefinition,
    KpiKind,
    KpiRecovered,
    KpiTarget,
    KpiTargetSet,
    KpiWentOffTrack,
    LaunchInitiative,
    LinkObjectives,
    ObjectiveDefined,
    ObjectiveDefinition,
    ObjectiveLink,
    ObjectivesLinked,
    OpenScorecard,
    OpportunityCreated,
    OpportunityStageChanged,
    ProposalSubmitted,
    RecordBenefit,
    RecordKpiActual,
    Scorecard,
    ScorecardEvent,
    ScorecardOpened,
    ScorecardSetup,
    ScorecardThresholdsChanged,
    SetKpiTarget,
    UpdateInitiativeProgress,
    Visibility,
    ingest,
    scorecard,
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


# --- opening and thresholds -------------------------------------------------------------------


def test_opening_a_scorecard_once() -> None:
    alliance_id = uuid4()
    command = OpenScorecard(alliance_id, SETUP, PARTNERS, ANN)
    [event] = scorecard.decide(Scorecard(), command)
    assert isinstance(event, ScorecardOpened)
    assert (event.opened_by_org, event.currency, event.partners) == ("acme", "EUR", list(PARTNERS))
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
    assert (first.actual, first.source, first.recorded_by_org) == (D(7), "manual", "acme")
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
