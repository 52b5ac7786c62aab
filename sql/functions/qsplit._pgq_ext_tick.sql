create or replace function qsplit._pgq_ext_tick(
    i_consumer  text,
    i_for_write boolean default false)
returns bigint as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._pgq_ext_tick(2)
--
--      The tick Skytools' queue_splitter (python-pgq SerialConsumer)
--      recorded for a consumer on this target: its row of
--      pgq_ext.completed_tick (subconsumer '' in the Skytools 3 layout,
--      the consumer_id alone in the 2.x one).  With i_for_write the row is
--      locked (FOR UPDATE) to the end of the transaction, so an original
--      running at the same moment waits, and qsplit._pgq_ext_set_tick may
--      move it.
--
--      Reaches pgq_ext only through qsplit._pgq_ext_table, which proves the
--      table is a plain table of trusted making (else QS012); values go in
--      as parameters.  The caller must have claimed the consumer
--      (qsplit._claim_consumer): only that consumer's row is read.
--
-- Parameters:
--      i_consumer  - consumer name
--      i_for_write - lock the row for an update in this transaction
--
-- Returns:
--      the tick, or NULL when there is no pgq_ext.completed_tick or no
--      row (or a NULL tick) for the consumer
--
-- Errors:
--      QS012 - pgq_ext.completed_tick is not a trusted plain table
--
-- Calls:
--      qsplit._pgq_ext_table(1)
--
-- Tables directly manipulated:
--      select - pgq_ext.completed_tick
-- ----------------------------------------------------------------------
declare
    v_rel   regclass;
    v_sql   text;
    v_tick  bigint;
begin
    v_rel := qsplit._pgq_ext_table(i_for_write);
    if v_rel is null then
        return null;
    end if;
    v_sql := format('select t.last_tick_id from %s t where t.consumer_id = $1', v_rel);
    if exists (select 1 from pg_catalog.pg_attribute a
                where a.attrelid = v_rel and a.attname = 'subconsumer_id' and not a.attisdropped) then
        v_sql := v_sql || ' and t.subconsumer_id = ''''';
    end if;
    if i_for_write then
        v_sql := v_sql || ' for update';
    end if;
    execute v_sql into v_tick using i_consumer;
    return v_tick;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
