"""The alliances scorecard knows, projected from governance's charter events. Scorecard never
reads governance's tables: this local copy is how it learns who the partners are."""

from __future__ import annotations

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT

from concord.events import CloudEvent
from concord.projections import Projection, ReadModel


class KnownAlliances(Projection):
    name = "known_alliances"
    source = "governance"
    subjects = ("concord.governance.alliance.>",)
    tables = ("scorecard.known_alliances",)

    def ddl(self) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS scorecard.known_alliances (
                alliance_id uuid PRIMARY KEY,
                name text NOT NULL,
                purpose text NOT NULL,
                goals jsonb NOT NULL,
                partners jsonb NOT NULL,
                partner_orgs text[] NOT NULL,
                executive_sponsors jsonb NOT NULL DEFAULT '[]',
                agreement_version integer NOT NULL DEFAULT 0,
                version integer NOT NULL,
                updated_at timestamptz NOT NULL
            )""",
        ]

    _created = text(
        """INSERT INTO scorecard.known_alliances
           (alliance_id, name, purpose, goals, partners, partner_orgs, version, updated_at)
           VALUES (:id, :name, :purpose, :goals, :partners, :orgs, :version, :at)
           ON CONFLICT (alliance_id) DO NOTHING"""
    ).bindparams(
        bindparam("goals", type_=JSONB),
        bindparam("partners", type_=JSONB),
        bindparam("orgs", type_=ARRAY(TEXT)),
    )
    _partner_added = text(
        """UPDATE scorecard.known_alliances
           SET partners = partners || jsonb_build_array(:partner),
               partner_orgs = array_append(partner_orgs, :org),
               version = :version, updated_at = :at
           WHERE alliance_id = :id AND version < :version"""
    ).bindparams(bindparam("partner", type_=JSONB))
    _sponsor_appointed = text(
        """UPDATE scorecard.known_alliances
           SET executive_sponsors = coalesce((
                   SELECT jsonb_agg(s) FROM jsonb_array_elements(executive_sponsors) s
                   WHERE s->>'org_id' <> :org), '[]'::jsonb) || jsonb_build_array(:sponsor),
               version = :version, updated_at = :at
           WHERE alliance_id = :id AND version < :version"""
    ).bindparams(bindparam("sponsor", type_=JSONB))
    _agreement_agreed = text(
        """UPDATE scorecard.known_alliances
           SET agreement_version = :agreement_version, version = :version, updated_at = :at
           WHERE alliance_id = :id AND version < :version"""
    )
    _touched = text(
        """UPDATE scorecard.known_alliances SET version = :version, updated_at = :at
           WHERE alliance_id = :id AND version < :version"""
    )

    async def apply(self, model: ReadModel, event: CloudEvent) -> None:
        data = event.data
        common = {"id": event.allianceid, "version": event.streamversion, "at": event.time}
        match event.name:
            case "alliance_created":
                model.write(
                    self._created,
                    {
                        **common,
                        "name": data["name"],
                        "purpose": data["purpose"],
                        "goals": data["goals"],
                        "partners": data["partners"],
                        "orgs": [p["org_id"] for p in data["partners"]],
                    },
                )
            case "partner_added":
                partner = data["partner"]
                model.write(
                    self._partner_added, {**common, "partner": partner, "org": partner["org_id"]}
                )
            case "executive_sponsor_appointed":
                sponsor = data["sponsor"]
                model.write(
                    self._sponsor_appointed,
                    {**common, "sponsor": sponsor, "org": sponsor["org_id"]},
                )
            case "partnership_agreement_version_agreed":
                model.write(
                    self._agreement_agreed, {**common, "agreement_version": data["version"]}
                )
            case _:
                model.write(self._touched, common)
