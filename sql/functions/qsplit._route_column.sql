create or replace function qsplit._route_column(
    i_queue_field text)
returns text as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._route_column(1)
--
--      Map a queue_field setting (the ini key of the same name) to the
--      staging column that holds each event's target queue name.
--
-- Parameters:
--      i_queue_field - extra1, extra2, extra3, extra4 or type; the ev_
--                      prefixed forms (ev_extra1, ev_type) are accepted too
--
-- Returns:
--      the column name, e.g. ev_extra1; NULL for any other value (the
--      caller raises QS005 naming its consumer and batch)
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
declare
    v_field text := lower(btrim(i_queue_field));
begin
    if v_field like 'ev\_%' then
        v_field := substr(v_field, 4);
    end if;
    if v_field in ('extra1', 'extra2', 'extra3', 'extra4', 'type') then
        return 'ev_' || v_field;
    end if;
    return null;
end;
$$ language plpgsql immutable
   set search_path = pg_catalog, pg_temp;
