"""How far a caller's view of the scorecard has come, as every command answer and the page
say it: the shared scorecard's version, and the caller's own private scorecard's (ADR 0009).
Another partner's private items move neither."""

from __future__ import annotations

from pydantic import BaseModel, Field

from concord.commands import Version


class Versioned(BaseModel):
    version: int = Field(
        description="The shared scorecard's version, which every partner sees (for min_version)"
    )
    private_version: int = Field(
        description="Your organisation's private scorecard's version; 0 while it has none"
    )


def versions(version: Version) -> dict[str, int]:
    """A view's version (the ETag `"12.3"`) as the fields of a `Versioned` answer."""
    return {"version": version.part(0), "private_version": version.part(1)}
