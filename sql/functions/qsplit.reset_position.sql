create or replace function qsplit.reset_position(
    i_consumer  text)
returns bigint as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.reset_position(1)
--
--      Forget where the consumer is on this target (qsplit-driver --reset,
--      and --unregister): the next batch is applied whatever its ticks.
--      The row and its counts stay, so qsplit.take_over_position does not
--      bring back an old pgq_ext position.  Waits for a batch being
--      applied for this consumer to commit.
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
--      the tick the consumer was at (NULL when it had none)
--
-- Errors:
--      QS011 - the consumer belongs to another role
--
-- Calls:
--      qsplit._claim_consumer
--
-- Tables directly manipulated:
--      insert, update - qsplit.consumer
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
    return v_tick;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
