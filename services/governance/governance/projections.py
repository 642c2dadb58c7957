"""Governance's own read model: the directory of alliances each organisation belongs to."""

from __future__ import annotations

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT

from concord.events import CloudEvent
from concord.projections import Projection, ReadModel


class AllianceDirectory(Projection):
    name = "alliance_directory"
    source = "governance"
    subjects = ("concord.governance.alliance.>",)
    tables = ("governance.alliance_directory",)

    def ddl(self) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS governance.alliance_directory (
                alliance_id uuid PRIMARY KEY,
                name text NOT NULL,
                partner_orgs text[] NOT NULL,
                created_at timestamptz NOT NULL,
                version integer NOT NULL
            )""",
            """CREATE INDEX IF NOT EXISTS alliance_directory_partners
                ON governance.alliance_directory USING gin (partner_orgs)""",
        ]

    _created = text(
        """INSERT INTO governance.alliance_directory
           (alliance_id, name, partner_orgs, created_at, version)
           VALUES (:id, :name, :orgs, :at, :version) ON CONFLICT (alliance_id) DO NOTHING"""
    ).bindparams(bindparam("orgs", type_=ARRAY(TEXT)))
    _partner_added = text(
        """UPDATE governance.alliance_directory
           SET partner_orgs = array_append(partner_orgs, :org), version = :version
           WHERE alliance_id = :id AND NOT :org = ANY(partner_orgs)"""
    )
    _touched = text(
        "UPDATE governance.alliance_directory SET version = :version WHERE alliance_id = :id"
    )

    async def apply(self, model: ReadModel, event: CloudEvent) -> None:
        data, version, alliance_id = event.data, event.streamversion, event.allianceid
        if event.name == "alliance_created":
            model.write(
                self._created,
                {
                    "id": alliance_id,
                    "name": data["name"],
                    "orgs": [p["org_id"] for p in data["partners"]],
                    "at": event.time,
                    "version": version,
                },
            )
        elif event.name == "partner_added":
            model.write(
                self._partner_added,
                {"id": alliance_id, "org": data["partner"]["org_id"], "version": version},
            )
        else:
            model.write(self._touched, {"id": alliance_id, "version": version})
