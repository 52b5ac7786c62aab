create or replace function qsplit._claim_position(
    i_consumer          text,
    i_batch_id          bigint,
    i_prev_tick_id      bigint,
    i_cur_tick_id       bigint,
    i_prev_tick_time    timestamptz,
    i_cur_tick_time     timestamptz)
returns boolean as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._claim_position(6)
--
--      Lock the consumer's position row (making it when missing; it must
--      belong to the caller, see qsplit._claim_consumer), check
--      that the batch follows it, and move it to the batch's cur tick.
--      The lock is held to the end of the caller's transaction: a second
--      driver on the same consumer waits here, then finds the batch
--      already applied.  The new position commits with the batch's
--      events or not at all.  Position check (as pgq_ext does it):
--        - no position yet, or position = i_prev_tick_id: apply;
--        - position = i_cur_tick_id: already applied (a replay after a
--          crash between the target commit and pgq.finish_batch);
--        - anything else: QS001.
--      Tick ids start at 1 in every queue, so an id alone cannot tell two
--      sources apart: when both the position and the batch know the tick
--      time, a matching id with another time is QS007, never a skip.
--      A position with a tick time never moves to a tick without one
--      (QS013): the time would be lost, and with it that check.
--
-- Parameters:
--      i_consumer      - consumer name
--      i_batch_id      - source batch id (kept in the position row)
--      i_prev_tick_id, i_cur_tick_id - the batch's ticks
--      i_prev_tick_time, i_cur_tick_time - their times (NULL: unknown)
--
-- Returns:
--      true: apply the batch (the position now is its cur tick);
--      false: the batch is already applied (the position is unchanged)
--
-- Errors:
--      QS001 - lost position; QS007 - position of another source queue;
--      QS011 - the consumer belongs to another role; QS013 - no tick time
--
-- Calls:
--      qsplit._claim_consumer(3), qsplit._raise_position_error(8)
--
-- Tables directly manipulated:
--      insert, update - qsplit.consumer
-- ----------------------------------------------------------------------
declare
    v_last_tick bigint;
    v_last_time timestamptz;
    v_tick_time timestamptz;
begin
    -- the row is the caller's (or becomes it), else QS011; now locked
    perform qsplit._claim_consumer(i_consumer, i_batch_id);
    select c.last_tick_id, c.last_tick_time into v_last_tick, v_last_time
        from qsplit.consumer c
        where c.consumer_name = i_consumer
        for update;

    -- the recorded tick time must be the one of the tick it is compared with
    v_tick_time := case v_last_tick when i_cur_tick_id then i_cur_tick_time
                                    when i_prev_tick_id then i_prev_tick_time end;
    if v_last_time is not null and v_tick_time is not null and v_last_time <> v_tick_time then
        perform qsplit._raise_position_error('other_source', i_consumer, i_batch_id, i_prev_tick_id,
                                             i_cur_tick_id, v_last_tick, v_last_time, v_tick_time);
    end if;
    if v_last_tick = i_cur_tick_id then
        return false;
    end if;
    if v_last_tick is distinct from i_prev_tick_id and v_last_tick is not null then
        perform qsplit._raise_position_error('lost_position', i_consumer, i_batch_id, i_prev_tick_id,
                                             i_cur_tick_id, v_last_tick, v_last_time, v_tick_time);
    end if;
    -- the tick time is what tells two sources apart: once known, never
    -- replaced by NULL
    if v_last_time is not null and i_cur_tick_time is null then
        perform qsplit._raise_position_error('no_tick_time', i_consumer, i_batch_id, i_prev_tick_id,
                                             i_cur_tick_id, v_last_tick, v_last_time, v_tick_time);
    end if;

    update qsplit.consumer c
        set last_tick_id = i_cur_tick_id,
            last_tick_time = i_cur_tick_time,
            last_batch_id = i_batch_id,
            last_applied_at = now()
        where c.consumer_name = i_consumer;
    return true;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
