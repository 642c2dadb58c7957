"""A service, declared in one place: its name and port, its settings, events, routes,
projections, reactions, timers and migrations. The app factory, `concord run`, `concord
worker`, the other CLI commands, the tests' stack and the Kubernetes manifests are all
driven from these declarations (`services()` finds them through the `concord.services`
entry points in pyproject.toml), so a new service costs its declaration and nothing copied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from fastapi import APIRouter, FastAPI

from concord.clock import SYSTEM_CLOCK, Clock
from concord.events import EventRegistry
from concord.http import create_service_app
from concord.observability import configure_logging
from concord.projections import Projection
from concord.reactions import Reaction
from concord.runtime import ServiceRuntime
from concord.secrets import SealedColumn
from concord.settings import ServiceSettings
from concord.timers import Timer

ENTRY_POINTS = "concord.services"


@dataclass(frozen=True)
class Service:
    name: str  # as operators say it: the CLI, the manifests ("trust-survey")
    package: str  # the import package ("trust_survey")
    port: int  # on the embedded default
    title: str
    description: str
    settings: type[ServiceSettings]
    migrations: Path
    registry: EventRegistry | None = None
    routers: Sequence[APIRouter] = ()
    # Fresh projection objects for each runtime (they hold per-runtime statements).
    projections: Callable[[], Sequence[Projection]] = tuple
    reactions: Sequence[Reaction] = ()
    timers: Sequence[Timer] = ()
    # Columns of its tables that hold sealed secrets: it then needs CONCORD_SECRETS_KEYS.
    sealed: Sequence[SealedColumn] = ()

    @property
    def factory(self) -> str:
        """What uvicorn runs: `<package>.app:create_app` with `--factory`."""
        return f"{self.package}.app:create_app"

    def runtime(
        self, settings: ServiceSettings | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> ServiceRuntime:
        return ServiceRuntime(
            settings or self.settings(),
            registry=self.registry,
            projections=self.projections(),
            reactions=self.reactions,
            timers=self.timers,
            migrations=self.migrations,
            sealed=self.sealed,
            clock=clock,
        )

    def app(self, settings: ServiceSettings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
        """The service's HTTP API (with its workers too, unless settings say otherwise)."""
        settings = settings or self.settings()
        configure_logging(settings.service, settings.log_level, settings.log_format)
        return create_service_app(
            self.runtime(settings, clock),
            title=self.title,
            description=self.description,
            routers=self.routers,
        )

    def worker_app(
        self, settings: ServiceSettings | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> FastAPI:
        """The service's workers alone (relay, projections, reactions, timers), answering
        only health, metrics and the operator's routes: `concord worker <service>`."""
        settings = (settings or self.settings()).model_copy(update={"run_workers": True})
        configure_logging(settings.service, settings.log_level, settings.log_format)
        return create_service_app(
            self.runtime(settings, clock),
            title=f"{self.title} (worker)",
            description=f"The workers of {self.name}: no API of its own.",
            routers=[],
        )


@cache
def services() -> dict[str, Service]:
    """Every declared service, by name, in port order."""
    found = [entry.load() for entry in entry_points(group=ENTRY_POINTS)]
    declared = [s for s in found if isinstance(s, Service)]
    return {s.name: s for s in sorted(declared, key=lambda s: s.port)}


def service(name: str) -> Service:
    try:
        return services()[name]
    except KeyError:
        raise KeyError(f"no service {name!r}; there are: {', '.join(services())}") from None
