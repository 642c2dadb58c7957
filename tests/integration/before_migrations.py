"""The start-up DDL as it was before migrations (commit 5a1929d), copied verbatim: the
schemas a developer's `.concord` (and a pre-migration deployment) holds, which adoption must
take over. Frozen on purpose: never edit these to follow the code."""

from __future__ import annotations


def kernel_ddl(schema: str) -> list[str]:
    s = schema
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        # transaction_id orders readers by commit safety (see eventstore.read_committed).
        f"""CREATE TABLE IF NOT EXISTS {s}.events (
            position bigserial PRIMARY KEY,
            transaction_id bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
            event_id uuid NOT NULL UNIQUE,
            stream_id text NOT NULL,
            stream_version integer NOT NULL,
            event_type text NOT NULL,
            alliance_id text,
            occurred_at timestamptz NOT NULL,
            envelope jsonb NOT NULL,
            CONSTRAINT events_stream_version UNIQUE (stream_id, stream_version)
        )""",
        f"CREATE INDEX IF NOT EXISTS events_commit_order ON {s}.events (transaction_id, position)",
        f"""CREATE TABLE IF NOT EXISTS {s}.relay_checkpoint (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            transaction_id bigint NOT NULL,
            position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.projection_checkpoints (
            projection text PRIMARY KEY,
            last_sequence bigint NOT NULL,
            paused_until timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.idempotency_keys (
            caller text NOT NULL,
            key text NOT NULL,
            request_hash text NOT NULL,
            status_code integer,
            body jsonb,
            headers jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (caller, key)
        )""",
        # Within a stream, global order must agree with version order. A transaction that
        # got its id before a newer one committed the previous version (it wrote something
        # else first, such as its idempotency key) would be read before it: refuse it, and
        # the command retries in a new transaction.
        f"""CREATE OR REPLACE FUNCTION {s}.keep_stream_in_commit_order() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.stream_version > 1 AND EXISTS (
                  SELECT 1 FROM {s}.events
                  WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1
                    AND transaction_id > NEW.transaction_id) THEN
                RAISE EXCEPTION 'stream % moved on in a newer transaction', NEW.stream_id
                  USING ERRCODE = 'serialization_failure';
              END IF;
              RETURN NEW;
            END $$""",
        f"""CREATE OR REPLACE TRIGGER events_in_stream_order BEFORE INSERT ON {s}.events
            FOR EACH ROW EXECUTE FUNCTION {s}.keep_stream_in_commit_order()""",
    ]


SCORECARD = [
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
    """CREATE TABLE IF NOT EXISTS scorecard.scorecards (
        alliance_id uuid PRIMARY KEY,
        currency text NOT NULL,
        thresholds jsonb NOT NULL,
        opened_at timestamptz NOT NULL,
        version integer NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS scorecard.kpis (
        alliance_id uuid NOT NULL,
        kpi_id uuid NOT NULL,
        position integer NOT NULL,
        name text NOT NULL,
        description text,
        dimension text NOT NULL,
        kind text NOT NULL,
        unit text NOT NULL,
        currency text,
        good_direction text NOT NULL,
        owner_org text NOT NULL,
        visibility text NOT NULL,
        cadence text NOT NULL,
        headline boolean NOT NULL,
        feed text,
        defined_at timestamptz NOT NULL,
        PRIMARY KEY (alliance_id, kpi_id)
    )""",
    """CREATE TABLE IF NOT EXISTS scorecard.kpi_periods (
        alliance_id uuid NOT NULL,
        kpi_id uuid NOT NULL,
        period text NOT NULL,
        period_order integer NOT NULL,
        target numeric,
        actual numeric,
        actual_source text,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (alliance_id, kpi_id, period)
    )""",
    """CREATE TABLE IF NOT EXISTS scorecard.kpi_changes (
        alliance_id uuid NOT NULL,
        stream_version integer NOT NULL,
        kpi_id uuid NOT NULL,
        period text NOT NULL,
        change text NOT NULL,
        old_value numeric,
        new_value numeric,
        status text,
        source text,
        note text,
        by_org text,
        by_sub text,
        at timestamptz NOT NULL,
        PRIMARY KEY (alliance_id, stream_version)
    )""",
    """CREATE INDEX IF NOT EXISTS kpi_changes_by_kpi
        ON scorecard.kpi_changes (alliance_id, kpi_id, stream_version)""",
    """CREATE TABLE IF NOT EXISTS scorecard.objectives (
        alliance_id uuid NOT NULL,
        objective_id uuid NOT NULL,
        position integer NOT NULL,
        name text NOT NULL,
        description text,
        dimension text NOT NULL,
        kpi_ids uuid[] NOT NULL,
        PRIMARY KEY (alliance_id, objective_id)
    )""",
    """CREATE TABLE IF NOT EXISTS scorecard.objective_links (
        alliance_id uuid NOT NULL,
        cause_id uuid NOT NULL,
        effect_id uuid NOT NULL,
        position integer NOT NULL,
        PRIMARY KEY (alliance_id, cause_id, effect_id)
    )""",
    """CREATE TABLE IF NOT EXISTS scorecard.initiatives (
        alliance_id uuid NOT NULL,
        initiative_id uuid NOT NULL,
        position integer NOT NULL,
        name text NOT NULL,
        description text,
        dimension text NOT NULL,
        owner_org text NOT NULL,
        owner_name text NOT NULL,
        leading_indicator text NOT NULL,
        due_date date NOT NULL,
        launched_at timestamptz NOT NULL,
        PRIMARY KEY (alliance_id, initiative_id)
    )""",
    """CREATE TABLE IF NOT EXISTS scorecard.initiative_progress (
        alliance_id uuid NOT NULL,
        stream_version integer NOT NULL,
        initiative_id uuid NOT NULL,
        as_of date NOT NULL,
        completion integer NOT NULL,
        status text NOT NULL,
        note text,
        by_org text NOT NULL,
        by_sub text NOT NULL,
        at timestamptz NOT NULL,
        PRIMARY KEY (alliance_id, stream_version)
    )""",
    """CREATE TABLE IF NOT EXISTS scorecard.benefits (
        alliance_id uuid NOT NULL,
        entry_id uuid NOT NULL,
        position integer NOT NULL,
        partner_org text NOT NULL,
        kind text NOT NULL,
        amount numeric NOT NULL,
        currency text NOT NULL,
        period text NOT NULL,
        period_order integer NOT NULL,
        evidence text NOT NULL,
        visibility text NOT NULL,
        by_org text NOT NULL,
        by_sub text NOT NULL,
        recorded_at timestamptz NOT NULL,
        PRIMARY KEY (alliance_id, entry_id)
    )""",
    """CREATE INDEX IF NOT EXISTS benefits_in_order
        ON scorecard.benefits (alliance_id, position)""",
    # The balance of benefits: each partner's shared benefits per period, from which
    # the read API derives shares over time and the imbalance index. Private entries
    # stay out: a share must not reveal what another partner keeps to itself.
    """CREATE TABLE IF NOT EXISTS scorecard.benefit_balance (
        alliance_id uuid NOT NULL,
        period text NOT NULL,
        period_order integer NOT NULL,
        partner_org text NOT NULL,
        amount numeric NOT NULL,
        entries integer NOT NULL,
        PRIMARY KEY (alliance_id, period, partner_org)
    )""",
    """CREATE TABLE IF NOT EXISTS scorecard.crm_credentials (
        key_id text PRIMARY KEY,
        alliance_id uuid NOT NULL,
        org_id text NOT NULL,
        secret text NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
    )""",
    # Signatures seen within the tolerance: the same signed request twice is a replay.
    """CREATE TABLE IF NOT EXISTS scorecard.crm_deliveries (
        key_id text NOT NULL,
        signature text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (key_id, signature)
    )""",
    """CREATE INDEX IF NOT EXISTS crm_deliveries_by_age
        ON scorecard.crm_deliveries (key_id, received_at)""",
    # The CRM events accepted, by the CRM's own id: what makes a re-sent batch change nothing.
    """CREATE TABLE IF NOT EXISTS scorecard.crm_receipts (
        alliance_id uuid NOT NULL,
        org_id text NOT NULL,
        crm_event_id text NOT NULL,
        content_hash text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (alliance_id, org_id, crm_event_id)
    )""",
]

GOVERNANCE = [
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
