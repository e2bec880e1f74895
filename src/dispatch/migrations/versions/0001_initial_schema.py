"""Initial schema: cases, collectors, crews, policies, outcomes, plans, jobs and keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 19:24:59.182411
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply the revision."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("value_cents", sa.BigInteger(), nullable=False),
        sa.Column("skills", sa.Text(), nullable=False),
        sa.Column("service_s", sa.Integer(), nullable=False),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("preferred_collector", sa.String(length=100), nullable=True),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("debtor_name", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("national_id", sa.Text(), nullable=False),
        sa.Column("min_crew", sa.Integer(), nullable=False),
        sa.Column("appointment_s", sa.Integer(), nullable=True),
        sa.Column("appointment_tolerance_s", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index(op.f("ix_cases_days_past_due"), "cases", ["days_past_due"], unique=False)
    op.create_table(
        "collectors",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("start_lat", sa.Float(), nullable=False),
        sa.Column("start_lon", sa.Float(), nullable=False),
        sa.Column("end_lat", sa.Float(), nullable=False),
        sa.Column("end_lon", sa.Float(), nullable=False),
        sa.Column("shift_start_s", sa.Integer(), nullable=False),
        sa.Column("shift_end_s", sa.Integer(), nullable=False),
        sa.Column("skills", sa.Text(), nullable=False),
        sa.Column("max_visits", sa.Integer(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("break_start_s", sa.Integer(), nullable=True),
        sa.Column("break_end_s", sa.Integer(), nullable=True),
        sa.Column("break_s", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collectors")),
    )
    op.create_index(op.f("ix_collectors_mode"), "collectors", ["mode"], unique=False)
    op.create_table(
        "crews",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("member_ids", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crews")),
    )
    op.create_table(
        "plan_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("active_key", sa.String(length=64), nullable=True),
        sa.Column("data_version", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_jobs")),
        sa.UniqueConstraint("active_key", name=op.f("uq_plan_jobs_active_key")),
    )
    op.create_index(op.f("ix_plan_jobs_created_at"), "plan_jobs", ["created_at"], unique=False)
    op.create_index(op.f("ix_plan_jobs_dedupe_key"), "plan_jobs", ["dedupe_key"], unique=False)
    op.create_index(op.f("ix_plan_jobs_status"), "plan_jobs", ["status"], unique=False)
    op.create_table(
        "policies",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_policies")),
    )
    op.create_table(
        "revoked_links",
        sa.Column("link_id", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("link_id", name=op.f("pk_revoked_links")),
    )
    state = op.create_table(
        "store_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_state")),
    )
    # The data version lives in a single row that every planning-relevant write bumps.
    op.bulk_insert(state, [{"id": 1, "data_version": 0}])
    op.create_table(
        "outcomes",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("case_id", sa.String(length=100), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("promise_due", sa.Date(), nullable=True),
        sa.Column("promise_amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("collector_id", sa.String(length=100), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_outcomes_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
    )
    op.create_index(op.f("ix_outcomes_case_id"), "outcomes", ["case_id"], unique=False)
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("cases", sa.JSON(), nullable=False),
        sa.Column("collectors", sa.JSON(), nullable=False),
        sa.Column("crews", sa.JSON(), nullable=False),
        sa.Column("exposure", sa.JSON(), nullable=False),
        sa.Column("objective", sa.BigInteger(), nullable=False),
        sa.Column("solve_time_s", sa.Float(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("policy_name", sa.String(length=200), nullable=True),
        sa.Column("policy_version", sa.String(length=100), nullable=True),
        sa.Column("policy_hash", sa.String(length=64), nullable=True),
        sa.Column("policy_sources", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["plan_jobs.id"], name=op.f("fk_plans_job_id_plan_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    op.create_index(op.f("ix_plans_date"), "plans", ["date"], unique=False)
    op.create_index(op.f("ix_plans_job_id"), "plans", ["job_id"], unique=False)
    op.create_table(
        "audit_entries",
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("included", sa.Boolean(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("local_timezone", sa.String(length=64), nullable=True),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("min_crew", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_audit_entries_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("plan_id", "case_id", name=op.f("pk_audit_entries")),
    )
    op.create_table(
        "routes",
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("collector_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("member_ids", sa.Text(), nullable=False),
        sa.Column("start_s", sa.Integer(), nullable=False),
        sa.Column("end_s", sa.Integer(), nullable=False),
        sa.Column("travel_time_s", sa.Integer(), nullable=False),
        sa.Column("distance_m", sa.Integer(), nullable=False),
        sa.Column("return_travel_time_s", sa.Integer(), nullable=False),
        sa.Column("return_distance_m", sa.Integer(), nullable=False),
        sa.Column("break_start_s", sa.Integer(), nullable=True),
        sa.Column("break_end_s", sa.Integer(), nullable=True),
        sa.Column("return_coords", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_routes_plan_id_plans")),
        sa.PrimaryKeyConstraint("plan_id", "collector_id", name=op.f("pk_routes")),
    )
    op.create_table(
        "unassigned",
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_unassigned_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("plan_id", "case_id", name=op.f("pk_unassigned")),
    )
    op.create_index(op.f("ix_unassigned_reason"), "unassigned", ["reason"], unique=False)
    op.create_table(
        "stops",
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("collector_id", sa.String(length=100), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=100), nullable=False),
        sa.Column("arrival_s", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Integer(), nullable=False),
        sa.Column("end_s", sa.Integer(), nullable=False),
        sa.Column("travel_time_s", sa.Integer(), nullable=False),
        sa.Column("distance_m", sa.Integer(), nullable=False),
        sa.Column("case", sa.JSON(), nullable=False),
        sa.Column("coords", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id", "collector_id"],
            ["routes.plan_id", "routes.collector_id"],
            name=op.f("fk_stops_plan_id_routes"),
        ),
        sa.PrimaryKeyConstraint("plan_id", "collector_id", "number", name=op.f("pk_stops")),
    )
    op.create_index(op.f("ix_stops_case_id"), "stops", ["case_id"], unique=False)


def downgrade() -> None:
    """Undo the revision."""
    op.drop_index(op.f("ix_stops_case_id"), table_name="stops")
    op.drop_table("stops")
    op.drop_index(op.f("ix_unassigned_reason"), table_name="unassigned")
    op.drop_table("unassigned")
    op.drop_table("routes")
    op.drop_table("audit_entries")
    op.drop_index(op.f("ix_plans_job_id"), table_name="plans")
    op.drop_index(op.f("ix_plans_date"), table_name="plans")
    op.drop_table("plans")
    op.drop_index(op.f("ix_outcomes_case_id"), table_name="outcomes")
    op.drop_table("outcomes")
    op.drop_table("store_state")
    op.drop_table("revoked_links")
    op.drop_table("policies")
    op.drop_index(op.f("ix_plan_jobs_status"), table_name="plan_jobs")
    op.drop_index(op.f("ix_plan_jobs_dedupe_key"), table_name="plan_jobs")
    op.drop_index(op.f("ix_plan_jobs_created_at"), table_name="plan_jobs")
    op.drop_table("plan_jobs")
    op.drop_table("crews")
    op.drop_index(op.f("ix_collectors_mode"), table_name="collectors")
    op.drop_table("collectors")
    op.drop_index(op.f("ix_cases_days_past_due"), table_name="cases")
    op.drop_table("cases")
    op.drop_table("api_keys")
