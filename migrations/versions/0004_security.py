"""consumer owners and bounded index keys (issue 11)

- qsplit.consumer.owner_role: the role a consumer belongs to (the login
  role that first used it, or one an admin names with
  qsplit.set_consumer_owner).  Other writer roles get QS011.  Existing
  consumers start unowned: the first role to use one owns it.
- qsplit.queue_stats: its key holds the routing value's target queue name,
  which comes from event data and can be of any length; a btree entry over
  ~2.7 kB fails ("index row size exceeds") and stopped the consumer for
  good.  The unique key now holds a SHA-256 of the name instead (fixed 32
  bytes), which is collision-resistant, so the counts stay exact.
- qsplit.dead_letter: the (consumer_name, queue_name) index had the same
  weakness; it becomes (consumer_name, SHA-256 of queue_name).
- apply_batch, _route_plan, _check_policies: three more parameters (the
  'create' policy's per-batch limit, allow-list pattern and fallback); the
  old signatures are dropped, the function layer makes the new ones.

The hash expression is an IMMUTABLE-only chain (decode of the escaped text
gives the name's bytes in the database encoding), so it can be indexed;
qsplit._record_batch_stats names the same expression in ON CONFLICT.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# the bytes of a text value, hashed; every function in it is IMMUTABLE
NAME_KEY = r"pg_catalog.sha256(pg_catalog.decode(pg_catalog.replace({col}, '\', '\\'), 'escape'))"


def upgrade() -> None:
    # apply_batch and two of its helpers gain the create policy's limits
    # (create_limit, create_pattern, create_fallback): the old signatures
    # go, or a call with fewer arguments would be ambiguous
    op.execute(
        "drop function if exists qsplit.apply_batch"
        "(text, bigint, bigint, bigint, text, text, text, text, timestamptz, timestamptz)"
    )
    op.execute("drop function if exists qsplit._route_plan(text, text, text, text, text)")
    op.execute("drop function if exists qsplit._check_policies(text, bigint, text, text, text)")
    op.execute("alter table qsplit.consumer add column owner_role oid")
    op.execute(
        "comment on column qsplit.consumer.owner_role is "
        "'qsplit: the role this consumer belongs to (pg_roles.oid; NULL: the next role to use it)'"
    )
    op.execute("alter table qsplit.queue_stats drop constraint queue_stats_pkey")
    op.execute(
        "create unique index queue_stats_key on qsplit.queue_stats"
        f" (consumer_name, action, ({NAME_KEY.format(col='queue_name')}))"
    )
    op.execute("drop index qsplit.dead_letter_consumer_idx")
    op.execute(
        "create index dead_letter_consumer_idx on qsplit.dead_letter"
        f" (consumer_name, ({NAME_KEY.format(col='queue_name')}))"
    )


# functions that use what this revision adds (dropped with it; head brings
# them back)
FUNCTIONS = (
    "_claim_consumer", "_pgq_ext_table", "set_consumer_owner", "_route_pattern_problem",
    "apply_batch", "take_over_position", "reset_position", "_record_batch_stats",
    "_route_plan", "_check_policies", "_claim_position", "add_route",
)


def downgrade() -> None:
    # the function layer of this revision goes; a database below head gets
    # the function layer of its own release
    names = ", ".join(f"'{name}'" for name in FUNCTIONS)
    op.execute(
        f"""
        do $$
        declare
            f regprocedure;
        begin
            for f in
                select p.oid::regprocedure from pg_catalog.pg_proc p
                 where p.pronamespace = 'qsplit'::regnamespace
                   and p.proname in ({names})
            loop
                execute format('drop function %s', f);
            end loop;
        end;
        $$
        """
    )
    op.execute("drop view if exists qsplit.consumer_status")
    op.execute("drop view if exists qsplit.queue_status")
    op.execute("drop index qsplit.dead_letter_consumer_idx")
    op.execute("create index dead_letter_consumer_idx on qsplit.dead_letter (consumer_name, queue_name)")
    op.execute("drop index qsplit.queue_stats_key")
    op.execute("alter table qsplit.queue_stats add primary key (consumer_name, queue_name, action)")
    op.execute("alter table qsplit.consumer drop column owner_role")
