create or replace function qsplit._check_staging(
    i_consumer  text,
    i_batch_id  bigint)
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._check_staging(2)
--
--      Make sure pg_temp.qsplit_staging is what qsplit.prepare_staging()
--      makes: a plain table of this session's temp schema, no row level
--      security, no child tables, columns of built-in types only.  The
--      table belongs to the caller (the driver's role) but is read inside
--      SECURITY DEFINER functions; a view, a policy or a column type of the
--      caller's making could run the caller's code with the definer's
--      rights, so anything else is refused.
--
-- Parameters:
--      i_consumer, i_batch_id - for the error message
--
-- Errors:
--      QS004 - no staging table in this session
--      QS009 - the staging table is not a plain temp table of built-in types
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      None (reads pg_catalog.pg_class, pg_catalog.pg_attribute)
-- ----------------------------------------------------------------------
declare
    v_rel pg_catalog.pg_class%rowtype;
begin
    select c.* into v_rel
      from pg_catalog.pg_class c
     where c.relname = 'qsplit_staging'
       and c.relnamespace = pg_catalog.pg_my_temp_schema();
    if not found then
        raise exception 'qsplit: consumer "%" batch %: staging table pg_temp.qsplit_staging does not exist in this session',
                i_consumer, i_batch_id
            using errcode = 'QS004',
                  hint = 'Call qsplit.prepare_staging() once on this connection, then COPY the batch into pg_temp.qsplit_staging.';
    end if;
    if v_rel.relkind <> 'r' or v_rel.relrowsecurity or v_rel.relhassubclass or v_rel.relhasrules
       or exists (select 1 from pg_catalog.pg_attribute a
                   where a.attrelid = v_rel.oid and a.attnum > 0 and not a.attisdropped
                     and a.atttypid not in ('pg_catalog.int8'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                                            'pg_catalog.text'::pg_catalog.regtype, 'pg_catalog.timestamptz'::pg_catalog.regtype))
    then
        raise exception 'qsplit: consumer "%" batch %: pg_temp.qsplit_staging is not the staging table qsplit.prepare_staging() makes',
                i_consumer, i_batch_id
            using errcode = 'QS009',
                  detail = 'It must be a plain temporary table with columns of built-in types, without row level security, rules or child tables.',
                  hint = 'Drop it (or reconnect) and call qsplit.prepare_staging().';
    end if;
end;
$$ language plpgsql stable
   set search_path = pg_catalog, pg_temp;
