create or replace function qsplit._result_action(
    i_plan_action   text)
returns text as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._result_action(1)
--
--      The one map from the words of a routing plan (qsplit._route_plan:
--      what to do) to the words of a result (qsplit.apply_batch's rows
--      and qsplit.queue_stats: what was done).
--
-- Parameters:
--      i_plan_action   - insert | create | skip | dead_letter
--
-- Returns:
--      inserted | created | skipped | dead_letter; any other word as it is
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
    select case i_plan_action when 'insert' then 'inserted'
                              when 'create' then 'created'
                              when 'skip' then 'skipped'
                              else i_plan_action end;
$$ language sql immutable;
