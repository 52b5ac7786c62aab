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
-- Parameters:
--      i_consumer - consumer name
--
-- Returns:
--      the tick the consumer was at (NULL when it had none)
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      insert, update - qsplit.consumer
-- ----------------------------------------------------------------------
declare
    v_tick  bigint;
begin
    insert into qsplit.consumer as c (consumer_name)
        values (i_consumer)
        on conflict (consumer_name) do nothing;
    select c.last_tick_id into v_tick
        from qsplit.consumer c
        where c.consumer_name = i_consumer
        for update;
    update qsplit.consumer c
        set last_tick_id = null,
            last_tick_time = null
        where c.consumer_name = i_consumer;
    return v_tick;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
