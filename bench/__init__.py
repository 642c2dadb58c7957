"""Concord's benchmarks (`make bench`): each figure against a baseline measured in the same run.

    1. append    kernel EventStore.append per transaction vs raw asyncpg INSERTs
    2. lag       governance POST -> scorecard projection vs a hand-written minimal pipeline
    3. rebuild   ProjectionRunner.rebuild vs raw batched inserts of the same rows
    4. http      POST /alliances under uvicorn vs GET /livez on the same server
    5. crm       signed CRM batches accepted and projected vs raw batched inserts of the items
    6. view      GET of the one-page scorecard (20 KPIs x 24 months) vs GET /livez

`python -m bench --only crm view` runs a subset; `--quick` runs small counts.

Everything runs on an embedded PostgreSQL and NATS started in a temp dir on free loopback
ports. Targets are reported as met or not met; a benchmark never fails the build.
"""
