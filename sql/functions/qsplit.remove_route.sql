create or replace function qsplit.remove_route(
    i_consumer  text,
    i_pattern   text)
returns boolean as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.remove_route(2)
--
--      Remove a consumer's routing rule (see qsplit.add_route).  Takes
--      effect with the next batch.
--
-- Parameters:
--      i_consumer  - consumer name
--      i_pattern   - the rule's pattern, exactly as it was added
--
-- Returns:
--      true when a rule was removed, false when there was none
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      delete - qsplit.route
-- ----------------------------------------------------------------------
begin
    delete from qsplit.route r where r.consumer_name = i_consumer and r.pattern = i_pattern;
    return found;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
