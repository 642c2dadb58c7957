"""What an operator does with work that kept failing: reaction events and timers parked after
every attempt, and the messages a projection set aside (unreadable, foreign, invalid, or ahead
of their stream). `GET /ops/parked` lists them, and the projections a failing `apply` stopped
(the `concord_parked_work` metric counts them); a retry runs one again, a parked message can be
replayed or dropped. Only the `operator` role may: parked work can be about any alliance.
`concord parked`, `concord retry` and `concord drop` do the same from a shell."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from concord.auth import OPERATOR
from concord.domain import Actor, Forbidden, NotFound
from concord.http import CallerDep, RuntimeDep
from concord.intake import Reason
from concord.openapi import OPERATION
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


class ParkedMessage(BaseModel):
    projection: str
    sequence: int = Field(description="The message's sequence in its source's stream")
    subject: str
    reason: Reason
    error: str
    event_id: str | None
    event_type: str | None
    stream_id: str | None
    stream_version: int | None
    parked_at: datetime


class StoppedProjection(BaseModel):
    """A projection that retries a valid event whose `apply` fails: a bug to fix."""

    projection: str
    last_sequence: int
    sequence: int = Field(description="The message it stopped at")
    error: str
    since: datetime


class ParkedWork(BaseModel):
    reactions: list[ParkedReaction]
    timers: list[ParkedTimer]
    messages: list[ParkedMessage]
    stopped: list[StoppedProjection]


class Retried(BaseModel):
    retried: bool
    detail: str


class Settled(BaseModel):
    projection: str
    sequence: int
    outcome: str = Field(description="applied, seen (its stream was past it: gone) or dropped")
    detail: str


async def parked(runtime: ServiceRuntime) -> ParkedWork:
    async with runtime.engine.connect() as conn:
        reactions = (await conn.execute(runtime.reaction_book.parked)).all()
        timers = (await conn.execute(runtime.timer_book.parked)).all()
        messages = (await conn.execute(runtime.parked_messages.listed)).all()
        stopped = (await conn.execute(runtime.parked_messages.stopped)).all()
    return ParkedWork(
        reactions=[ParkedReaction.model_validate(r, from_attributes=True) for r in reactions],
        timers=[ParkedTimer.model_validate({**r._mapping, "error": r.last_error}) for r in timers],
        messages=[ParkedMessage.model_validate(r, from_attributes=True) for r in messages],
        stopped=[StoppedProjection.model_validate(r, from_attributes=True) for r in stopped],
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


async def settle_message(
    runtime: ServiceRuntime, projection: str, sequence: int, *, drop: bool
) -> Settled:
    """Replay a parked message through its projection's checks (or drop it); a message that
    is set aside again stays parked (ProblemError 409)."""
    runner = runtime.runners.get(projection)
    if runner is None:
        raise NotFound(f"{runtime.service} has no projection {projection}")
    try:
        settled = await runner.settle(sequence, drop=drop)
    except Exception as failure:  # a valid event whose apply fails: nothing changed
        raise ProblemError(
            409, "still-failing", "Still failing", f"It failed again and stays parked: {failure}"
        ) from failure
    if settled is None:
        raise NotFound(f"No message {sequence} is parked for {projection}")
    outcome, error = settled
    if outcome in ("applied", "seen", "dropped"):
        detail = {
            "applied": f"{projection} applied message {sequence}",
            "seen": f"{projection} had applied that version of its stream already: forgotten",
            "dropped": f"{projection} dropped message {sequence}; a rebuild skips it too",
        }[outcome]
        return Settled(projection=projection, sequence=sequence, outcome=outcome, detail=detail)
    raise ProblemError(
        409, "still-parked", "Still parked", f"It was set aside again ({outcome}): {error}"
    )


def require_operator(caller: CallerDep) -> Actor:
    if OPERATOR not in caller.roles:
        raise Forbidden(f"Only an {OPERATOR} may see or retry parked work")
    return caller


OperatorDep = Annotated[Actor, Depends(require_operator)]
WorkerName = Annotated[str, Path(max_length=100)]  # a reaction's or a projection's
StreamSequence = Annotated[int, Path(ge=1, le=2**62)]
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
    reaction: WorkerName, sequence: StreamSequence, runtime: RuntimeDep, _: OperatorDep
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


@router.post(
    "/parked/projections/{projection}/{sequence}/replay",
    operation_id="operations-replay-message",
    summary="Replay a message a projection parked",
    responses=problem_responses(404, 409),
    openapi_extra={OPERATION: True},
)
async def replay_parked_message(
    projection: WorkerName, sequence: StreamSequence, runtime: RuntimeDep, _: OperatorDep
) -> Settled:
    return await settle_message(runtime, projection, sequence, drop=False)


@router.delete(
    "/parked/projections/{projection}/{sequence}",
    operation_id="operations-drop-message",
    summary="Drop a message a projection parked (its stream moves on past it)",
    responses=problem_responses(404, 409),
    openapi_extra={OPERATION: True},
)
async def drop_parked_message(
    projection: WorkerName, sequence: StreamSequence, runtime: RuntimeDep, _: OperatorDep
) -> Settled:
    return await settle_message(runtime, projection, sequence, drop=True)
