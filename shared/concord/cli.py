"""`concord`: run the whole system on the embedded default, mint development tokens,
rebuild projections and migrate schemas.

    concord run                      PostgreSQL, NATS and the four services; Ctrl-C stops all
    concord token --org acme --roles alliance_manager
    concord rebuild scorecard scorecard_board
    concord migrate [scorecard]      every service's schema (or one) to head
    concord worker scorecard         a service's relay, projections, reactions and timers alone
    concord parked scorecard         parked reaction events, timers and projection messages
    concord retry scorecard reaction partner_joins_balance 42  |  ... timer <timer-id>
    concord retry scorecard message alliances 17     replay a message a projection parked
    concord drop scorecard alliances 17              drop it: its stream moves on past it
    concord reseal scorecard         its stored secrets sealed again under the first key
    concord manifests [--check]      deploy/k8s rendered from the service declarations
    concord manifests --dev-secrets  the dev overlay's secrets.env, made for this clone
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from uuid import UUID

from concord import embedded
from concord.runtime import ServiceRuntime
from concord.service import service, services


def token(args: argparse.Namespace) -> int:
    from concord.auth import mint_token

    secret = os.environ.get("CONCORD_JWT_SECRET") or embedded.dev_secret()
    roles = [r for r in args.roles.replace(",", " ").split() if r]
    print(mint_token(secret, sub=args.sub, org=args.org, roles=roles, ttl_seconds=args.ttl))
    return 0


def _on_runtime(name: str, work: Callable[[ServiceRuntime], Awaitable[int]]) -> int:
    """Run `work` on a service's runtime (no workers, no HTTP), then let go of everything."""
    embedded.use_embedded_stack(service(name).settings.service)
    runtime = service(name).runtime()

    async def go() -> int:
        try:
            return await work(runtime)
        finally:
            await runtime.bus.close()
            await runtime.engine.dispose()

    return asyncio.run(go())


def rebuild(args: argparse.Namespace) -> int:
    async def work(runtime: ServiceRuntime) -> int:
        from concord.db import LeadershipTaken

        if args.projection not in runtime.runners:
            known = ", ".join(runtime.runners)
            print(f"{args.service} has no projection {args.projection}; it has: {known}")
            return 2
        await runtime.install()
        await runtime.bus.connect()
        try:
            # A running service pauses its projection within a second and resumes after.
            report = await runtime.runners[args.projection].rebuild(wait=args.wait)
        except LeadershipTaken:
            print(f"{args.projection} did not pause within {args.wait}s; is a replica stuck?")
            return 1
        except Exception as error:  # its batches so far stand, with a true checkpoint
            print(
                f"rebuild of {args.projection} stopped: {error!r}. Its read model holds the "
                "events up to the last batch committed; the live projection carries on from "
                "there, or run the rebuild again to start over."
            )
            return 1
        print(
            f"rebuilt {report.projection}: {report.events} events in {report.seconds:.2f}s "
            f"({report.events_per_second:,.0f} events/s)"
        )
        return 0

    return _on_runtime(args.service, work)


def parked(args: argparse.Namespace) -> int:
    async def work(runtime: ServiceRuntime) -> int:
        from concord import ops

        found = await ops.parked(runtime)
        for r in found.reactions:
            print(
                f"reaction {r.reaction} event {r.sequence} {r.event_type} x{r.attempts}: {r.error}"
            )
        for t in found.timers:
            print(f"timer {t.timer_id} {t.name} on {t.stream_id} x{t.attempts}: {t.error}")
        for m in found.messages:
            print(f"message {m.projection} {m.sequence} on {m.subject} ({m.reason}): {m.error}")
        for p in found.stopped:
            print(f"STOPPED {p.projection} at message {p.sequence} since {p.since}: {p.error}")
        if not (found.reactions or found.timers or found.messages or found.stopped):
            print(f"{args.service}: nothing parked")
        return 0

    return _on_runtime(args.service, work)


def retry(args: argparse.Namespace) -> int:
    async def work(runtime: ServiceRuntime) -> int:
        from concord import ops
        from concord.domain import NotFound
        from concord.problems import ProblemError

        try:
            if args.kind == "reaction":
                done: ops.Retried | ops.Settled
                done = await ops.retry_reaction(runtime, args.name, args.sequence)
            elif args.kind == "message":
                done = await ops.settle_message(runtime, args.name, args.sequence, drop=False)
            else:
                done = await ops.retry_timer(runtime, args.timer_id)
        except NotFound as missing:
            print(missing.detail)
            return 1
        except ProblemError as still:
            print(f"still parked: {still.detail}")
            return 1
        except Exception as error:  # the handler failed again: it stays parked
            print(f"still failing, still parked: {error}")
            return 1
        print(done.detail)
        return 0

    return _on_runtime(args.service, work)


def drop(args: argparse.Namespace) -> int:
    async def work(runtime: ServiceRuntime) -> int:
        from concord import ops
        from concord.domain import NotFound
        from concord.problems import ProblemError

        try:
            done = await ops.settle_message(runtime, args.projection, args.sequence, drop=True)
        except (NotFound, ProblemError) as refused:
            print(refused.detail)
            return 1
        print(done.detail)
        return 0

    return _on_runtime(args.service, work)


def reseal(args: argparse.Namespace) -> int:
    """After a new key was put first in CONCORD_SECRETS_KEYS: every stored secret sealed
    again under it, so the older keys can be dropped."""

    async def work(runtime: ServiceRuntime) -> int:
        from concord.secrets import reseal as seal_again

        await runtime.install()
        async with runtime.engine.begin() as conn:
            count = await seal_again(conn, runtime.schema, runtime.sealed, runtime.secrets)
        print(f"{args.service}: {count} secret(s) sealed again under the first key")
        return 0

    return _on_runtime(args.service, work)


def worker(args: argparse.Namespace) -> int:
    """The service's relay, projections, reactions and timers in a process of their own, with
    health, metrics and the operator's routes: production's worker Deployment."""
    import uvicorn

    embedded.use_embedded_stack(service(args.service).settings.service)
    app = service(args.service).worker_app()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, timeout_graceful_shutdown=20)
    return 0


def migrate(args: argparse.Namespace) -> int:
    """Each service's schema to head, as its start-up would (same lock, same history)."""
    names = [args.service] if args.service else list(services())
    with ExitStack() as cleanup:
        if "CONCORD_DATABASE_URL" not in os.environ:
            embedded.postgres_for(cleanup)
        return asyncio.run(_migrate(names))


async def _migrate(names: list[str]) -> int:
    for name in names:
        runtime = service(name).runtime()
        try:
            migrated = await runtime.install()
        finally:
            await runtime.engine.dispose()
        if migrated.adopted:
            print(f"{name}: stamped {', '.join(migrated.adopted)} (made before migrations)")
        for step in migrated.applied:
            print(f"{name}: applied {step.revision}  {step.doc}")
        print(f"{name}: at {', '.join(migrated.heads)}")
    return 0


def manifests(args: argparse.Namespace) -> int:
    from concord.manifests import command  # needs PyYAML, a dev dependency

    return command(args.folder, check=args.check, dev_secrets=args.dev_secrets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="concord")
    commands = parser.add_subparsers(dest="command", required=True)
    everything = commands.add_parser("run", help="run everything on the embedded default")
    everything.set_defaults(fn=lambda _: embedded.run_everything())
    t = commands.add_parser("token", help="print a development bearer token")
    t.add_argument("--org", required=True)
    t.add_argument("--roles", default="alliance_manager")
    t.add_argument("--sub", default="dev-user")
    t.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    t.set_defaults(fn=token)
    r = commands.add_parser("rebuild", help="replay a projection from its event stream")
    names = sorted(services())
    r.add_argument("service", choices=names)
    r.add_argument("projection")
    r.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the pause")
    r.set_defaults(fn=rebuild)
    m = commands.add_parser("migrate", help="migrate service schemas to head")
    m.add_argument("service", nargs="?", choices=names, help="all when omitted")
    m.set_defaults(fn=migrate)
    w = commands.add_parser("worker", help="run a service's workers alone (production)")
    w.add_argument("service", choices=names)
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=8100, help="health, metrics and /ops")
    w.set_defaults(fn=worker)
    p = commands.add_parser("parked", help="list a service's parked reaction events and timers")
    p.add_argument("service", choices=names)
    p.set_defaults(fn=parked)
    y = commands.add_parser("retry", help="retry one parked reaction event or timer")
    y.add_argument("service", choices=names)
    kinds = y.add_subparsers(dest="kind", required=True)
    yr = kinds.add_parser("reaction", help="handle a parked event again, now")
    yr.add_argument("name")
    yr.add_argument("sequence", type=int)
    kinds.add_parser("timer", help="make a parked timer due again").add_argument(
        "timer_id", type=UUID
    )
    ym = kinds.add_parser("message", help="replay a message a projection parked")
    ym.add_argument("name", metavar="projection")
    ym.add_argument("sequence", type=int)
    y.set_defaults(fn=retry)
    d = commands.add_parser("drop", help="drop a message a projection parked")
    d.add_argument("service", choices=names)
    d.add_argument("projection")
    d.add_argument("sequence", type=int)
    d.set_defaults(fn=drop)
    s = commands.add_parser("reseal", help="seal a service's stored secrets under the first key")
    s.add_argument("service", choices=names)
    s.set_defaults(fn=reseal)
    k = commands.add_parser("manifests", help="render deploy/k8s from the service declarations")
    k.add_argument("folder", nargs="?", type=Path, default=Path("deploy/k8s"))
    k.add_argument("--check", action="store_true", help="exit 1 if a file is not as rendered")
    k.add_argument(
        "--dev-secrets",
        action="store_true",
        help="make the dev overlay's git-ignored secrets.env (if missing), nothing else",
    )
    k.set_defaults(fn=manifests)
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
