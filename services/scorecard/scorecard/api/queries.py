"""What the reads select from the board's tables (`scorecard.tables`), each scoped to one
alliance and, where an item can be private, to what the caller's organisation may see."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB

# The columns each read selects: named, so a column added by a migration changes no read.
KPI_COLUMNS = (
    "alliance_id, kpi_id, position, name, description, dimension, kind, unit, currency, "
    "good_direction, owner_org, visibility, cadence, headline, feed, defined_at"
)
INITIATIVE_COLUMNS = (
    "initiative_id, position, name, description, dimension, owner_org, owner_name, "
    "leading_indicator, due_date, launched_at"
)
PROGRESS_COLUMNS = (
    "initiative_id, stream_version, as_of, completion, status, note, by_org, by_sub, at"
)
LINK_COLUMNS = "cause_id, effect_id, position"
CHANGE_COLUMNS = (
    "stream_version, kpi_id, period, change, old_value, new_value, status, source, note, "
    "by_org, by_sub, at"
)
BENEFIT_COLUMNS = (
    "entry_id, position, partner_org, kind, amount, currency, period, period_order, evidence, "
    "visibility, by_org, by_sub, recorded_at, private_position"
)

# --- the page: every table of the board, in one snapshot ------------------------------------

# The caller's row: the shared scorecard's, with its own private scorecard's version.
board = text(
    """SELECT s.currency, s.thresholds, s.version, coalesce(p.version, 0) AS private_version
       FROM scorecard.scorecards s LEFT JOIN scorecard.private_scorecards p
         ON p.alliance_id = s.alliance_id AND p.org_id = :org
       WHERE s.alliance_id = :id AND s.version >= :min_version
         AND coalesce(p.version, 0) >= :min_private"""
).columns(thresholds=JSONB)
kpis = text(
    f"""SELECT {KPI_COLUMNS}
       FROM scorecard.kpis WHERE alliance_id = :id
         AND (visibility = 'shared' OR owner_org = :org)
       ORDER BY position, private_position"""
)
numbers_of_kpis = text(
    """SELECT n.kpi_id, n.period, n.period_order, n.target, n.actual
       FROM scorecard.kpi_periods n JOIN scorecard.kpis k USING (alliance_id, kpi_id)
       WHERE n.alliance_id = :id AND (k.visibility = 'shared' OR k.owner_org = :org)
         AND n.period_order <= :through"""
)
initiatives = text(f"""SELECT {INITIATIVE_COLUMNS}
       FROM scorecard.initiatives WHERE alliance_id = :id ORDER BY position""")
progress = text(
    f"""SELECT {PROGRESS_COLUMNS}
       FROM scorecard.initiative_progress WHERE alliance_id = :id
       ORDER BY stream_version"""
)
balance = text(
    """SELECT period, period_order, partner_org, amount FROM scorecard.benefit_balance
       WHERE alliance_id = :id"""
)
# An objective with the KPIs that measure it: the shared ones, and the caller's private ones.
objectives = text(
    """SELECT o.objective_id, o.position, o.name, o.description, o.dimension,
           o.kpi_ids || coalesce(p.kpi_ids, CAST('{}' AS uuid[])) AS kpi_ids
       FROM scorecard.objectives o LEFT JOIN scorecard.objective_private_kpis p
         ON p.alliance_id = o.alliance_id AND p.objective_id = o.objective_id
        AND p.org_id = :org
       WHERE o.alliance_id = :id"""
)
links = text(f"""SELECT {LINK_COLUMNS}
       FROM scorecard.objective_links WHERE alliance_id = :id""")

# --- one KPI, one initiative, the ledger ----------------------------------------------------

one_kpi = text(
    f"""SELECT {KPI_COLUMNS}
       FROM scorecard.kpis WHERE alliance_id = :id AND kpi_id = :kpi_id
         AND (visibility = 'shared' OR owner_org = :org)"""
)
kpi_numbers = text(
    """SELECT period, period_order, target, actual FROM scorecard.kpi_periods
       WHERE alliance_id = :id AND kpi_id = :kpi_id"""
)
kpi_changes = text(
    f"""SELECT {CHANGE_COLUMNS}
       FROM scorecard.kpi_changes WHERE alliance_id = :id AND kpi_id = :kpi_id
       ORDER BY stream_version"""
)
one_initiative = text(
    f"""SELECT {INITIATIVE_COLUMNS}
       FROM scorecard.initiatives WHERE alliance_id = :id AND initiative_id = :initiative_id"""
)
initiative_progress = text(
    f"""SELECT {PROGRESS_COLUMNS}
       FROM scorecard.initiative_progress
       WHERE alliance_id = :id AND initiative_id = :initiative_id ORDER BY stream_version"""
)
ledger = text(
    f"""SELECT {BENEFIT_COLUMNS}
       FROM scorecard.benefits
       WHERE alliance_id = :id AND (visibility = 'shared' OR partner_org = :org)
         AND (position, private_position)
             > (CAST(:after AS bigint), CAST(:after_private AS bigint))
       ORDER BY position, private_position LIMIT :limit"""
)
