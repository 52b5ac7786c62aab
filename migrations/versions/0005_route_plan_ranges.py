"""route plan and inserts share one pass over the staged batch (issue 13)

- qsplit._route_plan also returns each routing value's first and last
  staged row (by ctid), from the grouping pass it already makes;
- qsplit._insert_routed takes those stretches instead of grouping the
  staged rows a second time (and the NULL value's queue as one more
  element of its arrays instead of a parameter of its own).
Both signatures change, so the old functions go here; the function layer
at head makes the new ones.  No table changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("drop function if exists qsplit._route_plan(text, text, text, text, text, integer, text, text)")
    op.execute("drop function if exists qsplit._insert_routed(text, text[], text[], text)")


# the functions of this revision's release that go with it: the two new
# signatures and apply_batch, which calls them (a database below head gets
# the function layer of its own release)
FUNCTIONS = ("_route_plan", "_insert_routed", "apply_batch")


def downgrade() -> None:
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
