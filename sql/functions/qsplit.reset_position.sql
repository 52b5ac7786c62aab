create or replace function qsplit.reset_position(
    i_consumer  text)
returns bigint as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.reset_position(1)
--
--      Forget where the consumer is on this target (qsplit-driver --reset,
--      and --unregister): the next batch is applied whatever its ticks.
--      The row and its counts stay.  Queue_splitter's position for the
--      consumer (its pgq_ext.completed_tick row) is deleted too, as the
--      original's own --reset does: the position checked is the later of
--      the two, so a stale pgq_ext tick must not outlive the reset.  Waits
--      for a batch being applied for this consumer to commit.
--
--      Only the consumer's own role (or an admin) may reset it: another
--      writer role could otherwise make its driver skip or double
--      batches.  A writer resetting a consumer nobody owns yet owns it
--      from then on; an admin (superuser, qsplit_admin) does not.
--
-- Parameters:
--      i_consumer - consumer name
--
-- Returns:
--      the tick the consumer was at (the later of qsplit's and pgq_ext's;
--      NULL when it had none)
--
-- Errors:
--      QS011 - the consumer belongs to another role
--      QS012 - pgq_ext.completed_tick is not a trusted plain table
--
-- Calls:
--      qsplit._claim_consumer, qsplit._pgq_ext_tick, qsplit._pgq_ext_set_tick
--
-- Tables directly manipulated:
--      insert, update - qsplit.consumer
--      delete - pgq_ext.completed_tick (the consumer's row)
-- ----------------------------------------------------------------------
declare
    v_tick  bigint;
begin
    perform qsplit._claim_consumer(i_consumer, null,
                                   not pg_catalog.pg_has_role(session_user, 'qsplit_admin', 'MEMBER'));
    select c.last_tick_id into v_tick
        from qsplit.consumer c
        where c.consumer_name = i_consumer;
    update qsplit.consumer c
        set last_tick_id = null,
            last_tick_time = null
        where c.consumer_name = i_consumer;
    v_tick := greatest(v_tick, qsplit._pgq_ext_tick(i_consumer, true));
    perform qsplit._pgq_ext_set_tick(i_consumer, null);
    return v_tick;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
