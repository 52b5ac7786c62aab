create or replace function qsplit._pgq_ext_table(
    i_for_write boolean default false)
returns regclass as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._pgq_ext_table(1)
--
--      The one door of SECURITY DEFINER code to pgq_ext.completed_tick
--      (the tracking table of Skytools' queue_splitter).  Anything under
--      the name pgq_ext could have been made by a role with CREATE on the
--      database, and reading it with the owner's rights would run that
--      role's code (a view's function, a column type's cast, a rule, a
--      trigger) as the owner.  So the object is proven to be a genuine
--      table of trusted making before anyone reads or writes it:
--        - a plain table (relkind 'r': no view, materialized view,
--          foreign or partitioned table);
--        - the table's owner and the pgq_ext schema's owner are each a
--          superuser or the owner of schema qsplit;
--        - every column of a built-in type (pg_catalog), so no cast or
--          operator of another role's making is ever resolved;
--        - no rules, no user triggers, no child tables.
--      The table is locked first (ACCESS SHARE, or ROW EXCLUSIVE with
--      i_for_write, which conflicts with CREATE TRIGGER and every ALTER),
--      then checked, so it cannot change between the check and the use.
--      Callers use only the regclass returned, with plain SELECT / INSERT
--      / UPDATE and the values as parameters; they never call pgq_ext's
--      functions.  Rule and reasons: docs/security.md, "pgq_ext".
--
-- Parameters:
--      i_for_write - the caller will write the table (lock accordingly)
--
-- Returns:
--      the table, or NULL when there is no relation pgq_ext.completed_tick
--
-- Errors:
--      QS012 - pgq_ext.completed_tick exists but is not a trusted plain table
--
-- Calls:
--      nothing outside pg_catalog
--
-- Tables directly manipulated:
--      lock - pgq_ext.completed_tick (when it is a plain table)
-- ----------------------------------------------------------------------
declare
    v_rel       regclass;
    v_kind      "char";
    v_problem   text;
begin
    select c.oid, c.relkind into v_rel, v_kind
      from pg_catalog.pg_class c
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'pgq_ext' and c.relname = 'completed_tick';
    if not found then
        return null;
    end if;
    if v_kind <> 'r' then
        v_problem := format('it is not a plain table (relkind %s)', v_kind);
    else
        -- a plain table can be locked without running anything of its maker's
        execute format('lock table %s in %s mode', v_rel,
                       case when i_for_write then 'row exclusive' else 'access share' end);
        select case
                 when not (tr.rolsuper or tr.oid = q.nspowner)
                   then format('its owner %s is neither a superuser nor the owner of schema qsplit',
                               quote_ident(tr.rolname))
                 when not (sr.rolsuper or sr.oid = q.nspowner)
                   then format('the owner %s of schema pgq_ext is neither a superuser nor the owner of schema qsplit',
                               quote_ident(sr.rolname))
                 when c.relhasrules then 'it has rules'
                 when c.relhassubclass then 'it has child tables'
                 when exists (select 1 from pg_catalog.pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal)
                   then 'it has triggers'
                 when exists (select 1 from pg_catalog.pg_attribute a
                                join pg_catalog.pg_type ty on ty.oid = a.atttypid
                               where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                                 and ty.typnamespace <> 'pg_catalog'::pg_catalog.regnamespace)
                   then 'a column has a type from outside pg_catalog'
               end
          into v_problem
          from pg_catalog.pg_class c
          join pg_catalog.pg_namespace n on n.oid = c.relnamespace
          join pg_catalog.pg_roles tr on tr.oid = c.relowner
          join pg_catalog.pg_roles sr on sr.oid = n.nspowner
          cross join (select qn.nspowner from pg_catalog.pg_namespace qn where qn.nspname = 'qsplit') q
         where c.oid = v_rel;
        if not found then
            v_problem := 'it was dropped or renamed while being checked';
        end if;
    end if;
    if v_problem is not null then
        raise exception 'qsplit: pgq_ext.completed_tick is not trusted: %', v_problem
            using errcode = 'QS012',
                  detail = 'qsplit reads and writes pgq_ext.completed_tick with its functions'' owner''s rights, so it only uses a plain table that a superuser or the qsplit owner made and owns. Nothing was read.',
                  hint = 'If it is queue_splitter''s genuine table, have a superuser own it and its schema (alter schema pgq_ext owner to ...; alter table pgq_ext.completed_tick owner to ...) and remove rules and triggers; if it is not, drop it (or the pgq_ext schema). See docs/security.md.';
    end if;
    return v_rel;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
