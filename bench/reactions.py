"""9. Reaction throughput.

Setup (not timed): M `reading_taken` events (10 per meter) published on the meter
service's JetStream stream.
Kernel: a `ReactionRunner` for the echo reaction, from an empty checkpoint, timed from its
start until its checkpoint in PostgreSQL reaches the last event. Each event is one command
transaction: the checkpoint row locked, the echo stream loaded, the echo decided and
appended, the checkpoint moved, commit, ack. The relay leads in this process, as in a
worker, and publishes the echoes meanwhile.
Baseline: nats-py pulling the same messages from a durable consumer (same batch and
max_ack_pending), per message one asyncpg transaction that inserts one event row (append's
`bench_raw.events`) and updates a checkpoint row, then the ack. Each round uses a new
reaction and a new consumer, so both start from the first event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import asyncpg
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bench import append, meters
from bench.figures import Figure
from bench.stack import Stack
from concord.bus import stream_name
from concord.reactions import ReactionRunner
from concord.runtime import ServiceRuntime

DATABASE = "bench_reactions"
STREAM = stream_name(meters.SERVICE)
ECHO_EVENT = f"concord.{meters.SERVICE}.meter.reading_echoed.v1"
READINGS_PER_METER = 10
PUBLISH_BATCH = 500

RAW_DDL = [
    *append.RAW_DDL,
    """CREATE TABLE IF NOT EXISTS bench_raw.reaction_checkpoints (
        reaction text PRIMARY KEY,
        last_sequence bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
]
RAW_ADVANCE = """UPDATE bench_raw.reaction_checkpoints
    SET last_sequence = $2, updated_at = now() WHERE reaction = $1"""
CHECKPOINT = f"SELECT last_sequence FROM {meters.SERVICE}.reaction_checkpoints WHERE reaction = $1"


async def _publish(runtime: ServiceRuntime, count: int) -> int:
    """Publish the readings; returns the stream sequence of the last one."""
    await runtime.bus.ensure_stream(meters.SERVICE)
    envelopes = [
        runtime.registry.envelope(
            meters.ReadingTaken(reading=i),
            stream_id=f"meter-{i // READINGS_PER_METER}",
            stream_version=i % READINGS_PER_METER + 1,
            alliance_id=None,
            actor=meters.BENCH_ACTOR,
        )
        for i in range(count)
    ]
    for offset in range(0, count, PUBLISH_BATCH):
        await runtime.bus.publish_all(envelopes[offset : offset + PUBLISH_BATCH])
    info = await runtime.bus.js.stream_info(STREAM)
    if info.state.messages != count:
        raise RuntimeError(f"expected {count} events in {STREAM}, found {info.state.messages}")
    return int(info.state.last_seq)


async def _raw(stack: Stack, name: str, last: int, batch: int) -> float:
    conn = await asyncpg.connect(stack.dsn(DATABASE))
    nc = await nats.connect(stack.nats.url)
    try:
        await conn.execute(
            "INSERT INTO bench_raw.reaction_checkpoints (reaction, last_sequence) VALUES ($1, 0)",
            name,
        )
        js = nc.jetstream()
        started = time.perf_counter()
        await js.add_consumer(
            STREAM,
            ConsumerConfig(
                durable_name=name,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=batch,
                filter_subjects=[meters.TAKEN_SUBJECT],
            ),
        )
        sub = await js.pull_subscribe_bind(durable=name, stream=STREAM)
        sequence = 0
        while sequence < last:
            for msg in await sub.fetch(batch, timeout=5):
                sequence = msg.metadata.sequence.stream
                event = json.loads(msg.data)
                stream = f"echo-{name}-{event['subject']}"
                row = append.raw_row(
                    stream, event["streamversion"], ECHO_EVENT, event["data"]["reading"]
                )
                async with conn.transaction():
                    await conn.execute(append.RAW_INSERT, *row)
                    await conn.execute(RAW_ADVANCE, name, sequence)
                await msg.ack()
        elapsed = time.perf_counter() - started
        await sub.unsubscribe()
        return last / elapsed
    finally:
        await nc.close()
        await conn.close()


async def _kernel(stack: Stack, runtime: ServiceRuntime, name: str, last: int) -> float:
    runner = ReactionRunner(runtime, dataclasses.replace(meters.ECHO, name=name))
    watcher = await asyncpg.connect(stack.dsn(DATABASE))
    started = time.perf_counter()
    following = asyncio.create_task(runner.run())
    try:
        # Looked at every 20 ms, on a connection of its own: under 0.5% of a 5 s run.
        while True:
            if (await watcher.fetchval(CHECKPOINT, name) or 0) >= last:
                break
            if following.done():
                raise RuntimeError(f"the reaction stopped: {following.exception()!r}")
            await asyncio.sleep(0.02)
        return last / (time.perf_counter() - started)
    finally:
        runner.stop()
        await asyncio.wait({following}, timeout=5)
        await watcher.close()


async def run(stack: Stack, *, events: int = 5000, rounds: int = 2) -> list[Figure]:
    await stack.create_database(DATABASE)
    await stack.empty_jetstream()
    admin = await asyncpg.connect(stack.dsn(DATABASE))
    try:
        for statement in RAW_DDL:
            await admin.execute(statement)
    finally:
        await admin.close()
    runtime = meters.meter_runtime(stack, DATABASE)
    await runtime.install()
    batch = runtime.settings.reaction_batch_size
    kernel: list[float] = []
    raw: list[float] = []
    try:
        async with meters.relay_in_this_process(runtime):
            last = await _publish(runtime, events)
            for r in range(rounds):
                raw.append(await _raw(stack, f"raw_echo_{r}", last, batch))
                kernel.append(await _kernel(stack, runtime, f"echo_{r}", last))
                await runtime.relay.drained(60)  # the next round starts from a quiet relay
    finally:
        await runtime.engine.dispose()
    return [
        Figure(
            key="reactions_handled",
            label="9 reaction, events reacted to",
            unit="events/s",
            value=max(kernel),
            baseline=max(raw),
            baseline_label="nats-py durable pull consumer; per message one asyncpg transaction "
            "(INSERT an event, UPDATE the checkpoint), then ack",
            details={
                "events": events,
                "batch_size": batch,
                "kernel_rounds": [round(r, 1) for r in kernel],
                "raw_rounds": [round(r, 1) for r in raw],
            },
        )
    ]
