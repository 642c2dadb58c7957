"""Scorecard HTTP API: commands on an alliance's scorecard, and reads from scorecard's own read
models only. Every route is scoped by the caller's organisation: an organisation outside the
alliance gets 404 everywhere, and a partner never sees another partner's private items.

One router per concept (`scorecard`, `kpis`, `strategy`, `initiatives`, `benefits`);
`alliances` says who may see and change what, and runs every command (`Commands`)."""

from __future__ import annotations

from fastapi import APIRouter

from scorecard.api import alliances, benefits, initiatives, kpis, scorecard, strategy
from scorecard.api.alliances import known_alliance

router = APIRouter()
for concept in (alliances, scorecard, kpis, strategy, initiatives, benefits):
    router.include_router(concept.router)

__all__ = ["known_alliance", "router"]
