create or replace function qsplit._pgq_ext_set_tick(
    i_consumer  text,
    i_tick      bigint)
returns boolean as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._pgq_ext_set_tick(2)
--
--      Keep queue_splitter's position in step with qsplit's: move the
--      consumer's existing row of pgq_ext.completed_tick to i_tick, in the
--      caller's transaction (the batch's: it commits with the events or
--      not at all).  So the original, started again with the same ini
--      file, continues after the last batch qsplit applied, and its
--      --rewind goes to the right tick.  A missing row is not created:
--      only a target the original has run on keeps one.  A NULL tick
--      deletes the row, as the original's --reset (pgq_ext.set_last_tick
--      with NULL) does: qsplit-driver --reset and --unregister forget both
--      positions.
--
--      Reaches pgq_ext only through qsplit._pgq_ext_table (a trusted plain
--      table, locked ROW EXCLUSIVE, else QS012), with a plain UPDATE and
--      the values as parameters; pgq_ext's own functions are never called.
--      The caller must have claimed the consumer (qsplit._claim_consumer).
--
-- Parameters:
--      i_consumer - consumer name
--      i_tick     - the tick now applied; NULL: delete the row
--
-- Returns:
--      true when a row was moved (or deleted), false when there is none
--
-- Errors:
--      QS012 - pgq_ext.completed_tick is not a trusted plain table
--
-- Calls:
--      qsplit._pgq_ext_table(1)
--
-- Tables directly manipulated:
--      update, delete - pgq_ext.completed_tick
-- ----------------------------------------------------------------------
declare
    v_rel   regclass;
    v_sql   text;
    v_rows  bigint;
begin
    v_rel := qsplit._pgq_ext_table(true);
    if v_rel is null then
        return false;
    end if;
    v_sql := case when i_tick is null then format('delete from %s t where t.consumer_id = $1', v_rel)
                  else format('update %s t set last_tick_id = $2 where t.consumer_id = $1', v_rel) end;
    if exists (select 1 from pg_catalog.pg_attribute a
                where a.attrelid = v_rel and a.attname = 'subconsumer_id' and not a.attisdropped) then
        v_sql := v_sql || ' and t.subconsumer_id = ''''';
    end if;
    execute v_sql using i_consumer, i_tick;
    get diagnostics v_rows = row_count;
    return v_rows > 0;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
