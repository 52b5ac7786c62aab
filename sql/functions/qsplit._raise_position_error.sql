create or replace function qsplit._raise_position_error(
    i_reason        text,
    i_consumer      text,
    i_batch_id      bigint,
    i_prev_tick_id  bigint,
    i_cur_tick_id   bigint,
    i_last_tick     bigint,
    i_last_time     timestamptz,
    i_tick_time     timestamptz)
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._raise_position_error(8)
--
--      Raise the error for a batch that does not follow the consumer's
--      position on the target (see qsplit._claim_position).  Nothing has
--      been applied when it is raised.
--
-- Parameters:
--      i_reason        - other_source: the position's tick id matches but
--                        its tick time is another one (QS007);
--                        no_tick_time: the batch has no tick time but
--                        the position has one (QS013);
--                        anything else: lost position (QS001)
--      i_consumer, i_batch_id - for the message
--      i_prev_tick_id, i_cur_tick_id - the batch's ticks
--      i_last_tick, i_last_time - the position on the target
--      i_tick_time     - the batch's time of the tick i_last_tick
--
-- Errors:
--      QS001 - lost position; QS007 - the position was written by
--      another source queue; QS013 - no tick time.  The HINT names the command that fixes it.
--
-- Calls:
--      qsplit._raise_lost_position(6) (QS001, with the safe repair)
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
begin
    if i_reason = 'other_source' then
        raise exception 'qsplit: consumer "%" batch %: the target position (tick % of %) was written by another '
                        'source queue; this batch''s tick % is of %',
                i_consumer, i_batch_id, i_last_tick, i_last_time, i_last_tick, i_tick_time
            using errcode = 'QS007',
                  detail = 'Tick ids restart at 1 in every queue: two source queues (another database, or a '
                           're-created queue) are using one consumer name on this target. Nothing was applied.',
                  hint = format('Give each source its own consumer name (pgq_consumer_id or job_name). If the '
                                'source queue was re-created on purpose, forget the old position: qsplit-driver '
                                '--reset <config.ini> (on the target: select qsplit.reset_position(%L);).',
                                i_consumer);
    end if;
    if i_reason = 'no_tick_time' then
        raise exception 'qsplit: consumer "%" batch % (ticks % to %) has no tick time, but the target position (tick %) has one (%)',
                i_consumer, i_batch_id, i_prev_tick_id, i_cur_tick_id, i_last_tick, i_last_time
            using errcode = 'QS013',
                  detail = 'The tick time tells two source queues apart (QS007); a position that has one is never moved to a tick without one. Nothing was applied.',
                  hint = 'Pass the batch''s tick times (i_prev_tick_time, i_cur_tick_time) to qsplit.apply_batch; the qsplit driver always does.';
    end if;
    perform qsplit._raise_lost_position(i_consumer, i_batch_id, i_prev_tick_id, i_cur_tick_id, i_last_tick, null);
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
