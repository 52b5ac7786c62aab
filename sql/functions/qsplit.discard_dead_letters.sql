create or replace function qsplit.discard_dead_letters(
    i_consumer  text,
    i_queue     text default null)
returns bigint as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.discard_dead_letters(2)
--
--      Delete a consumer's dead letters for good: the events a DBA has
--      decided to lose (or has handled by hand), e.g. those with a NULL
--      routing value, which qsplit.replay_dead_letters never moves.
--
-- Parameters:
--      i_consumer  - consumer name
--      i_queue     - only the dead letters that wanted this queue;
--                    default: all of the consumer's
--
-- Returns:
--      how many events were deleted
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      delete - qsplit.dead_letter
-- ----------------------------------------------------------------------
declare
    v_n bigint;
begin
    delete from qsplit.dead_letter d
     where d.consumer_name = i_consumer
       and (i_queue is null or d.queue_name = i_queue);
    get diagnostics v_n = row_count;
    return v_n;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
