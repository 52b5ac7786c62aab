create or replace function qsplit.take_over_position(
    i_consumer  text)
returns bigint as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.take_over_position(1)
--
--      Start a consumer where Skytools' queue_splitter stopped.  When this
--      target has no qsplit position row for the consumer yet and holds a
--      pgq_ext.completed_tick row for it (the tracking table of the
--      original), the consumer's position becomes that tick, so the next
--      batch continues exactly after the last one the original applied (or
--      is recognised as applied, when the original died between its target
--      commit and pgq.finish_batch).
--
--      Done once: after that the consumer has a row here, and a later
--      --reset or --unregister (which clear the position but keep the row)
--      is never undone by reading pgq_ext again.  Both layouts are read:
--      Skytools 3 (consumer_id, subconsumer_id = '') and Skytools 2
--      (consumer_id only).  pgq_ext itself is only read, never changed.
--
--      pgq_ext is read with the owner's rights, so only through
--      qsplit._pgq_ext_table, which refuses (QS012) anything but a plain
--      table a superuser or the qsplit owner made: a look-alike made by a
--      role with CREATE on the database never runs.  The consumer taken
--      over belongs to the caller from then on (qsplit._claim_consumer);
--      a consumer of another role: QS011.
--
-- Parameters:
--      i_consumer - consumer name (pgq_consumer_id of the ini file)
--
-- Returns:
--      the tick taken over, or NULL when there was nothing to take over
--      (the consumer already has a row, or pgq_ext has no position for it)
--
-- Errors:
--      QS011 - the consumer belongs to another role
--      QS012 - pgq_ext.completed_tick is not a trusted plain table
--
-- Calls:
--      qsplit._claim_consumer, qsplit._pgq_ext_tick
--
-- Tables directly manipulated:
--      insert - qsplit.consumer
--      select - pgq_ext.completed_tick
-- ----------------------------------------------------------------------
declare
    v_owner oid;
    v_tick  bigint;
begin
    -- a consumer with a row here is not taken over; it must be the
    -- caller's, but this check takes no lock: a batch being applied holds
    -- the row, and a driver starting meanwhile must not wait for it
    select c.owner_role into v_owner from qsplit.consumer c where c.consumer_name = i_consumer;
    if found then
        if v_owner is not null
           and not pg_catalog.pg_has_role(session_user, 'qsplit_admin', 'MEMBER')
           and not exists (select 1 from pg_catalog.pg_roles r
                            where r.oid = v_owner and pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')) then
            perform qsplit._claim_consumer(i_consumer);  -- raises QS011
        end if;
        return null;
    end if;
    v_tick := qsplit._pgq_ext_tick(i_consumer, false);  -- NULL: no trusted pgq_ext row
    if v_tick is null then
        return null;
    end if;

    insert into qsplit.consumer as c (consumer_name, last_tick_id, owner_role)
        values (i_consumer, v_tick, (select r.oid from pg_catalog.pg_roles r where r.rolname = session_user))
        on conflict (consumer_name) do nothing;
    if not found then
        -- a driver got there first: its row stands
        perform qsplit._claim_consumer(i_consumer);
        return null;
    end if;
    return v_tick;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
