"""routes, dead letters and the least-privilege roles

- qsplit.route: per consumer, regex rules mapping a routing value to a
  target queue name, tried in priority order (qsplit.add_route/remove_route).
- qsplit.dead_letter: whole events the on_unknown_queue/on_null_queue
  policies set aside, with where they came from and why
  (qsplit.replay_dead_letters re-routes them).
- roles qsplit_writer (the driver on the target: EXECUTE on the driver API)
  and qsplit_admin (DBAs: routes and dead letters).  Roles are cluster-wide:
  they are created only when missing, and the downgrade drops them only when
  no other database still has privileges granted to them.

The GRANTs themselves live in sql/privileges.sql, re-applied with the
function layer, so a re-created function never loses them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLES = ("qsplit_writer", "qsplit_admin")
# the functions this revision's tables carry (dropped with them)
FUNCTIONS = (
    "add_route", "remove_route", "replay_dead_letters", "discard_dead_letters",
    "_route_plan", "_route_target", "_check_staging", "_check_policies", "_raise_route_error",
)


def upgrade() -> None:
    # apply_batch gains the policy parameters: the old signatures go, or a
    # call with fewer arguments would be ambiguous between the two
    op.execute("drop function if exists qsplit.apply_batch(text, bigint, bigint, bigint, text)")
    op.execute(
        "drop function if exists qsplit.apply_batch(text, bigint, bigint, bigint, text, timestamptz, timestamptz)"
    )
    for role in ROLES:
        # two databases installing at once race on the shared catalog: the
        # loser sees duplicate_object or unique_violation, both mean "exists"
        op.execute(
            f"""
            do $$
            begin
                if not exists (select 1 from pg_catalog.pg_roles where rolname = '{role}') then
                    create role {role} nologin;
                end if;
            exception
                when duplicate_object or unique_violation then
                    null;
            end;
            $$
            """
        )
    op.execute(
        """
        create table qsplit.route (
            consumer_name  text not null,
            priority       integer not null,
            pattern        text not null,
            target         text not null,
            created_at     timestamptz not null default now(),
            primary key (consumer_name, priority),
            unique (consumer_name, pattern),
            check (target <> '')
        )
        """
    )
    op.execute(
        "comment on table qsplit.route is "
        "'qsplit: per consumer, routing value regex -> target queue name, first match by priority"
        " (not API: use qsplit.add_route / qsplit.remove_route)'"
    )
    op.execute(
        """
        create table qsplit.dead_letter (
            dl_id          bigint generated always as identity primary key,
            consumer_name  text not null,
            batch_id       bigint not null,
            queue_field    text not null,
            route_value    text,
            queue_name     text,
            reason         text not null,
            dead_at        timestamptz not null default now(),
            ev_id          bigint not null,
            ev_time        timestamptz not null,
            ev_txid        bigint,
            ev_retry       integer,
            ev_type        text,
            ev_data        text,
            ev_extra1      text,
            ev_extra2      text,
            ev_extra3      text,
            ev_extra4      text
        )
        """
    )
    op.execute("create index dead_letter_consumer_idx on qsplit.dead_letter (consumer_name, queue_name)")
    op.execute(
        "comment on table qsplit.dead_letter is "
        "'qsplit: events set aside by the dead_letter policy, whole, with source ev_id, batch, reason"
        " (not API: use qsplit.replay_dead_letters)'"
    )


# apply_batch and the helpers its later bodies call (dropped by name, when
# present): below 0003 the function layer of that release comes back
APPLY_BATCH = (
    "apply_batch", "_check_queue_field", "_claim_position", "_raise_position_error",
    "_insert_dead_letters", "_result_action",
)


def downgrade() -> None:
    # apply_batch goes too: its 0003 body calls the helpers dropped here, and
    # a database below head gets the function layer of its own release
    names = ", ".join(f"'{name}'" for name in FUNCTIONS + APPLY_BATCH)
    op.execute(
        f"""
        do $$
        declare
            f regprocedure;
        begin
            for f in
                select p.oid::regprocedure from pg_catalog.pg_proc p
                 where p.pronamespace = 'qsplit'::regnamespace and p.proname in ({names})
            loop
                execute format('drop function %s', f);
            end loop;
        end;
        $$
        """
    )
    op.execute("drop table qsplit.dead_letter")
    op.execute("drop table qsplit.route")
    for role in ROLES:
        # take back what this database granted, then drop the role unless
        # another database (or another object here) still depends on it
        op.execute(
            f"""
            do $$
            begin
                if not exists (select 1 from pg_catalog.pg_roles where rolname = '{role}') then
                    return;
                end if;
                revoke all on all functions in schema qsplit from {role};
                revoke all on all tables in schema qsplit from {role};
                revoke all on schema qsplit from {role};
                begin
                    drop role {role};
                exception
                    when dependent_objects_still_exist or insufficient_privilege then
                        raise notice 'qsplit: role {role} is kept, other objects still depend on it: %', sqlerrm;
                end;
            end;
            $$
            """
        )
