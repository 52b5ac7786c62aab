"""per-queue routing counts for the status view

One row per consumer, target queue and action (inserted, and whatever a
routing policy adds: skipped, dead_letter, ...), kept by qsplit.apply_batch
through qsplit._record_batch_stats in the batch's own transaction, so the
counts are exact.  The views qsplit.consumer_status and qsplit.queue_status
(sql/views/) read it.  No foreign key to qsplit.consumer: the counts are
history and stay when a position row is deleted by hand.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        create table qsplit.queue_stats (
            consumer_name    text not null,
            queue_name       text not null,
            action           text not null default 'inserted',
            n_events         bigint not null default 0,
            n_batches        bigint not null default 0,
            last_batch_id    bigint,
            last_applied_at  timestamptz,
            primary key (consumer_name, queue_name, action)
        )
        """
    )
    op.execute(
        "comment on table qsplit.queue_stats is "
        "'qsplit: events routed per consumer, target queue and action (not API: read qsplit.queue_status)'"
    )


def downgrade() -> None:
    # the views of the function layer read this table
    op.execute("drop view if exists qsplit.consumer_status")
    op.execute("drop view if exists qsplit.queue_status")
    op.execute("drop function if exists qsplit._record_batch_stats(text, bigint, text[], bigint[], text[])")
    op.execute("drop table qsplit.queue_stats")
