create or replace function qsplit._raise_lost_position(
    i_consumer      text,
    i_batch_id      bigint,
    i_prev_tick_id  bigint,
    i_cur_tick_id   bigint,
    i_last_tick     bigint,
    i_ext_tick      bigint)
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._raise_lost_position(6)
--
--      Raise QS001 for a batch that follows neither qsplit's position nor
--      queue_splitter's (pgq_ext.completed_tick), with the one repair that
--      neither loses nor doubles events.  What the target holds is the
--      events up to T, the later of the two positions (each tool carries
--      on from where the other stopped, and qsplit keeps pgq_ext in step);
--      the batch covers ticks P to C:
--        - T < P: ticks T..P left the source without reaching the target;
--        - T > C: the target already has this batch and more;
--        - P < T < C: the target has part of this batch.
--      In each case moving the source consumer to T (qsplit-driver
--      --rewind, pgq.register_consumer_at) makes the next batch start
--      exactly after what the target has.  --reset (apply whatever comes)
--      would lose ticks T..P or apply P..T twice, so it is never offered.
--
-- Parameters:
--      i_consumer, i_batch_id - for the message
--      i_prev_tick_id, i_cur_tick_id - the batch's ticks (P, C)
--      i_last_tick     - qsplit's position (NULL: none)
--      i_ext_tick      - queue_splitter's pgq_ext position (NULL: none)
--
-- Errors:
--      QS001 - always; the HINT names the safe repair
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
declare
    v_tick      bigint := greatest(i_last_tick, i_ext_tick);
    v_where     text;
    v_why       text;
    v_lost      text;
begin
    v_where := case when i_ext_tick is not null and i_ext_tick is distinct from i_last_tick
                         and i_ext_tick = v_tick
                    then 'recorded by queue_splitter in pgq_ext.completed_tick'
                    else 'qsplit''s position' end;
    if v_tick < i_prev_tick_id then
        v_why := format('ticks %s to %s left the source without reaching the target, so the repair moves the source consumer back to tick %s and they come again',
                        v_tick, i_prev_tick_id, v_tick);
        v_lost := format('--reset would lose them. If --rewind says tick %s is gone from the source, those events are no longer there to move', v_tick);
    elsif v_tick > i_cur_tick_id then
        v_why := format('the target already has this batch and more, so the repair moves the source consumer forward to tick %s and nothing is applied twice',
                        v_tick);
        v_lost := '--reset would apply them twice';
    else
        v_why := format('tick %s lies inside this batch, so the repair moves the source consumer to tick %s and the next batch starts exactly after what the target has',
                        v_tick, v_tick);
        v_lost := format('--reset would apply ticks %s to %s twice', i_prev_tick_id, v_tick);
    end if;
    raise exception 'qsplit: consumer "%" lost its position: batch % covers ticks % to %, but the target has applied up to tick %',
            i_consumer, i_batch_id, i_prev_tick_id, i_cur_tick_id, v_tick
        using errcode = 'QS001',
              detail = format('The target''s position is tick %s (%s; qsplit''s position: %s, pgq_ext.completed_tick: %s). The source consumer and the target disagree, so applying this batch would lose or double events. Nothing was applied.',
                              v_tick, v_where, coalesce(i_last_tick::text, 'none'), coalesce(i_ext_tick::text, 'none')),
              hint = format('Stop the driver, then qsplit-driver --rewind <config.ini> (on the source: select pgq.register_consumer_at(<queue>, %L, %s);): %s. %s.',
                            i_consumer, v_tick, v_why, v_lost);
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
