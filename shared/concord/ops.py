"""What an operator does with work that kept failing: reaction events and timers parked after
every attempt. `GET /ops/parked` lists them (and the `concord_parked_work` metric counts them),
a retry runs one again. Only the `operator` role may: parked work can be about any alliance.
`concord parked` and `concord retry` do the same from a shell."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from concord.auth import OPERATOR
from concord.domain import Actor, Forbidden, NotFound
from concord.http import OPERATION, CallerDep, RuntimeDep
from concord.problems import ProblemError, problem_responses
from concord.runtime import ServiceRuntime


class ParkedReaction(BaseModel):
    reaction: str
    sequence: int
    event_id: str | None
    event_type: str
    attempts: int
    error: str
    parked_at: datetime


class ParkedTimer(BaseModel):
    timer_id: UUID
    name: str
    stream_id: str
    key: str
    alliance_id: str | None
    due_at: datetime
    attempts: int
    error: str | None
    parked_at: datetime


class ParkedWork(BaseModel):
    reactions: list[ParkedReaction]
    timers: list[ParkedTimer]


class Retried(BaseModel):
    retried: bool
    detail: str


async def parked(runtime: ServiceRuntime) -> ParkedWork:
    async with runtime.engine.connect() as conn:
        reactions = (await conn.execute(runtime.reaction_book.parked)).all()
        timers = (await conn.execute(runtime.timer_book.parked)).all()
    return ParkedWork(
        reactions=[ParkedReaction.model_validate(r, from_attributes=True) for r in reactions],
        timers=[ParkedTimer.model_validate({**r._mapping, "error": r.last_error}) for r in timers],
    )


async def retry_reaction(runtime: ServiceRuntime, reaction: str, sequence: int) -> Retried:
    """Handle a parked event again, now; raises if it fails again (it stays parked)."""
    runner = runtime.reactions.get(reaction)
    if runner is None:
        raise NotFound(f"{runtime.service} has no reaction {reaction}")
    if not await runner.retry_parked(sequence):
        raise NotFound(f"No event {sequence} is parked for {reaction}")
    return Retried(retried=True, detail=f"{reaction} handled event {sequence}")


async def retry_timer(runtime: ServiceRuntime, timer_id: UUID) -> Retried:
    """Make a parked timer due again; the scheduler fires it within moments."""
    async with runtime.engine.begin() as conn:
        found = await runtime.timer_book.unpark(conn, timer_id, runtime.clock.now())
    if not found:
        raise NotFound(f"No timer {timer_id} is parked")
    await runtime.timers_changed()
    await runtime.count_parked()
    return Retried(retried=True, detail=f"timer {timer_id} is due again")


def require_operator(caller: CallerDep) -> Actor:
    if OPERATOR not in caller.roles:
        raise Forbidden(f"Only an {OPERATOR} may see or retry parked work")
    return caller


OperatorDep = Annotated[Actor, Depends(require_operator)]
router = APIRouter(prefix="/ops", tags=["operations"], responses=problem_responses(403))


@router.get("/parked", operation_id="operations-parked", summary="Work parked after failing")
async def list_parked(runtime: RuntimeDep, _: OperatorDep) -> ParkedWork:
    return await parked(runtime)


@router.post(
    "/parked/reactions/{reaction}/{sequence}/retry",
    operation_id="operations-retry-reaction",
    summary="Handle a parked reaction event again",
    responses=problem_responses(409),
    openapi_extra={OPERATION: True},
)
async def retry_parked_reaction(
    reaction: Annotated[str, Path(max_length=100)],
    sequence: Annotated[int, Path(ge=1, le=2**62)],
    runtime: RuntimeDep,
    _: OperatorDep,
) -> Retried:
    try:
        return await retry_reaction(runtime, reaction, sequence)
    except (NotFound, ProblemError):
        raise
    except Exception as error:
        raise ProblemError(
            409, "still-failing", "Still failing", f"It failed again and stays parked: {error}"
        ) from error


@router.post(
    "/parked/timers/{timer_id}/retry",
    operation_id="operations-retry-timer",
    summary="Make a parked timer due again",
    status_code=202,
    openapi_extra={OPERATION: True},
)
async def retry_parked_timer(timer_id: UUID, runtime: RuntimeDep, _: OperatorDep) -> Retried:
    return await retry_timer(runtime, timer_id)
