"""The alliance charter's rules, with no server running."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import pytest
from pydantic import ValidationError

from concord.domain import Actor, Rejected
from governance.domain.alliance import (
    AddPartner,
    AgreementVersion,
    AgreePartnershipAgreementVersion,
    Alliance,
    AllianceCharter,
    AllianceCreated,
    AppointExecutiveSponsor,
    CreateAlliance,
    ExecutiveSponsor,
    PartnerAdded,
    PartnerOrganisation,
    PartnershipAgreementVersionAgreed,
    RecordRelationalExpectation,
    RelationalExpectation,
    alliance,
)

ACME = Actor(sub="alice", org="acme", roles=frozenset({"alliance_manager"}))


def charter(*orgs: str) -> AllianceCharter:
    return AllianceCharter(
        name="Acme x Globex",
        purpose="Win mid-market banking deals together",
        goals=["Grow joint revenue", "Launch a co-sold offering"],
        partners=[
            PartnerOrganisation(org_id=o, name=o.title()) for o in (orgs or ("acme", "globex"))
        ],
    )


def created() -> Alliance:
    events = alliance.decide(alliance.initial(), CreateAlliance(uuid4(), charter(), ACME))
    return alliance.fold(events)


def test_creating_an_alliance_records_its_charter() -> None:
    alliance_id = uuid4()
    [event] = alliance.decide(alliance.initial(), CreateAlliance(alliance_id, charter(), ACME))
    assert isinstance(event, AllianceCreated)
    state = alliance.fold([event])
    assert state.alliance_id == alliance_id
    assert [p.org_id for p in state.partners] == ["acme", "globex"]
    assert event.name == charter().name
    # Who created it is the envelope's to say, not the payload's.
    assert not any(field.endswith("_by") or "_by_" in field for field in event.model_dump())


def test_an_organisation_cannot_create_an_alliance_it_is_not_part_of() -> None:
    with pytest.raises(Rejected, match="must be one of the partners"):
        alliance.decide(
            alliance.initial(), CreateAlliance(uuid4(), charter("globex", "initech"), ACME)
        )


def test_an_alliance_cannot_be_created_twice() -> None:
    with pytest.raises(Rejected, match="already exists"):
        alliance.decide(created(), CreateAlliance(uuid4(), charter(), ACME))


@pytest.mark.parametrize("goals", [["Only one"], ["One", "Two", "Three", "Four"], ["Same", "same"]])
def test_a_charter_has_two_or_three_distinct_goals(goals: list[str]) -> None:
    with pytest.raises(ValidationError):
        AllianceCharter(
            name="X",
            purpose="Y",
            goals=goals,
            partners=[
                PartnerOrganisation(org_id="a", name="A"),
                PartnerOrganisation(org_id="b", name="B"),
            ],
        )


def test_a_charter_needs_two_distinct_partners() -> None:
    with pytest.raises(ValidationError):
        charter("acme", "acme")
    with pytest.raises(ValidationError):
        charter("acme")


def test_a_partner_joins_once() -> None:
    state = created()
    [event] = alliance.decide(
        state, AddPartner(PartnerOrganisation(org_id="initech", name="Initech"), ACME)
    )
    assert isinstance(event, PartnerAdded)
    state = alliance.evolve(state, event)
    assert state.has_partner("initech")
    with pytest.raises(Rejected, match="already a partner"):
        alliance.decide(
            state, AddPartner(PartnerOrganisation(org_id="initech", name="Initech"), ACME)
        )


def test_an_executive_sponsor_comes_from_a_partner_and_replaces_the_previous_one() -> None:
    state = created()
    with pytest.raises(Rejected, match="partner organisation"):
        alliance.decide(
            state, AppointExecutiveSponsor(ExecutiveSponsor(org_id="umbrella", name="X"), ACME)
        )
    first = ExecutiveSponsor(org_id="globex", name="Hank")
    second = ExecutiveSponsor(org_id="globex", name="Mindy", title="COO")
    state = alliance.fold(alliance.decide(state, AppointExecutiveSponsor(first, ACME)), state)
    assert alliance.decide(state, AppointExecutiveSponsor(first, ACME)) == []  # already so
    state = alliance.fold(alliance.decide(state, AppointExecutiveSponsor(second, ACME)), state)
    assert state.sponsors == (second,)


def test_relational_expectations_are_numbered_and_not_repeated() -> None:
    state = created()
    norm = RelationalExpectation(statement="Bad news travels fast")
    [event] = alliance.decide(state, RecordRelationalExpectation(norm, ACME))
    state = alliance.evolve(state, event)
    assert state.expectations == ("Bad news travels fast",)
    with pytest.raises(Rejected, match="already recorded"):
        alliance.decide(
            state,
            RecordRelationalExpectation(
                RelationalExpectation(statement="bad news travels FAST"), ACME
            ),
        )


def test_agreement_versions_count_up_and_never_take_effect_earlier() -> None:
    state = created()
    v1 = AgreementVersion(summary="First", text="How we work", effective_from=date(2026, 1, 1))
    [event] = alliance.decide(state, AgreePartnershipAgreementVersion(v1, ACME))
    assert isinstance(event, PartnershipAgreementVersionAgreed) and event.version == 1
    state = alliance.evolve(state, event)
    earlier = AgreementVersion(summary="Back-dated", text="No", effective_from=date(2025, 12, 1))
    with pytest.raises(Rejected, match="cannot take effect before version 1"):
        alliance.decide(state, AgreePartnershipAgreementVersion(earlier, ACME))
    v2 = AgreementVersion(summary="Second", text="Now quarterly", effective_from=date(2026, 4, 1))
    [event] = alliance.decide(state, AgreePartnershipAgreementVersion(v2, ACME))
    assert event.version == 2
