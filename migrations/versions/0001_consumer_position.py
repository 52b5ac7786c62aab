"""consumer position table

The tracking table of the vertical slice: one row per consumer holding the
last source tick (id and time: the time tells two source queues apart) whose
batch is applied on this target.  qsplit.apply_batch
locks the row, checks the batch's ticks against it and moves it in the same
transaction as the events.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        create table qsplit.consumer (
            consumer_name    text primary key,
            last_tick_id     bigint,
            last_tick_time   timestamptz,
            last_batch_id    bigint,
            last_applied_at  timestamptz,
            created_at       timestamptz not null default now()
        )
        """
    )
    op.execute(
        "comment on table qsplit.consumer is "
        "'qsplit: per consumer, the last source tick applied on this target (not API: use the qsplit functions)'"
    )


def downgrade() -> None:
    # the function layer goes with the schema objects it works on
    op.execute(
        """
        do $$
        declare
            f regprocedure;
        begin
            for f in
                select p.oid::regprocedure
                  from pg_catalog.pg_proc p
                 where p.pronamespace = 'qsplit'::regnamespace
            loop
                execute 'drop function ' || f::text;
            end loop;
        end;
        $$
        """
    )
    op.execute("drop table qsplit.consumer")
