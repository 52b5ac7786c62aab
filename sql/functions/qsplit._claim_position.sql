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
--      (position: see the switching paragraph below)
--      Tick ids start at 1 in every queue, so an id alone cannot tell two
--      sources apart: when both the position and the batch know the tick
--      time, a matching id with another time is QS007, never a skip.
--      A position with a tick time never moves to a tick without one
--      (QS013): the time would be lost, and with it that check.
--
--      Switching with Skytools' queue_splitter both ways: when the target
--      has the consumer's pgq_ext.completed_tick row (the original's
--      position), it moves to the batch's cur tick with qsplit's, in this
--      transaction, so the original started again carries on exactly after
--      qsplit.  And the position checked is what the target holds: the
--      later of qsplit's and pgq_ext's, since each tool carries on from
--      where the other stopped.  So when the original ran meanwhile, its
--      tick is adopted when it equals the batch's prev tick (apply) or cur
--      tick (already applied by the original, which died before
--      pgq.finish_batch): the source consumer's position is the second
--      witness.  Any other tick: QS001, whose hint names the one safe
--      repair (qsplit._raise_lost_position).  --reset clears both
--      positions (qsplit.reset_position).  pgq_ext is reached only through
--      qsplit._pgq_ext_tick / _pgq_ext_set_tick (trusted table check).
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
--      qsplit._claim_consumer(3), qsplit._raise_position_error(8),
--      qsplit._raise_lost_position(6), qsplit._pgq_ext_tick(2),
--      qsplit._pgq_ext_set_tick(2)
--
-- Tables directly manipulated:
--      insert, update - qsplit.consumer
--      select, update - pgq_ext.completed_tick (the consumer's row, if any)
-- ----------------------------------------------------------------------
declare
    v_last_tick bigint;
    v_last_time timestamptz;
    v_ext_tick  bigint;
    v_tick      bigint;
    v_tick_time timestamptz;
begin
    -- the row is the caller's (or becomes it), else QS011; now locked
    perform qsplit._claim_consumer(i_consumer, i_batch_id);
    select c.last_tick_id, c.last_tick_time into v_last_tick, v_last_time
        from qsplit.consumer c
        where c.consumer_name = i_consumer
        for update;
    -- queue_splitter's position, locked for the update below (NULL: none)
    v_ext_tick := qsplit._pgq_ext_tick(i_consumer, true);
    -- what the target holds: each tool carries on from where the other
    -- stopped, so the later of the two positions
    v_tick := greatest(v_last_tick, v_ext_tick);

    -- the recorded tick time must be the one of the tick it is compared with
    v_tick_time := case v_last_tick when i_cur_tick_id then i_cur_tick_time
                                    when i_prev_tick_id then i_prev_tick_time end;
    if v_last_time is not null and v_tick_time is not null and v_last_time <> v_tick_time then
        perform qsplit._raise_position_error('other_source', i_consumer, i_batch_id, i_prev_tick_id,
                                             i_cur_tick_id, v_last_tick, v_last_time, v_tick_time);
    end if;
    if v_tick is not null and v_tick <> i_cur_tick_id and v_tick <> i_prev_tick_id then
        perform qsplit._raise_lost_position(i_consumer, i_batch_id, i_prev_tick_id, i_cur_tick_id,
                                            v_last_tick, v_ext_tick);
    end if;
    -- the tick time is what tells two sources apart: once known, never
    -- replaced by NULL
    if v_last_time is not null and i_cur_tick_time is null and v_last_tick is distinct from i_cur_tick_id then
        perform qsplit._raise_position_error('no_tick_time', i_consumer, i_batch_id, i_prev_tick_id,
                                             i_cur_tick_id, v_last_tick, v_last_time, v_tick_time);
    end if;

    if v_tick = i_cur_tick_id then
        -- already applied: by qsplit, or by queue_splitter, which died
        -- before pgq.finish_batch (then take its position)
        if v_last_tick is distinct from i_cur_tick_id then
            raise notice 'consumer "%": took position tick % from pgq_ext.completed_tick: queue_splitter applied batch % (ticks % to %) and stopped before finishing it; qsplit''s position was %',
                i_consumer, v_ext_tick, i_batch_id, i_prev_tick_id, i_cur_tick_id, coalesce(v_last_tick::text, 'none');
            update qsplit.consumer c
                set last_tick_id = i_cur_tick_id,
                    last_tick_time = i_cur_tick_time
                where c.consumer_name = i_consumer;
        end if;
        return false;
    end if;
    if v_last_tick is distinct from v_tick then
        raise notice 'consumer "%": took position tick % from pgq_ext.completed_tick: queue_splitter ran since qsplit''s position %',
            i_consumer, v_ext_tick, coalesce(v_last_tick::text, 'none');
    end if;
    update qsplit.consumer c
        set last_tick_id = i_cur_tick_id,
            last_tick_time = i_cur_tick_time,
            last_batch_id = i_batch_id,
            last_applied_at = now()
        where c.consumer_name = i_consumer;
    if v_ext_tick is not null then
        perform qsplit._pgq_ext_set_tick(i_consumer, i_cur_tick_id);
    end if;
    return true;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
