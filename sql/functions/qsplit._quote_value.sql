create or replace function qsplit._quote_value(
    i_value text)
returns text as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._quote_value(1)
--
--      A value from event data, quoted for an error message: a plain SQL
--      literal ('queue.a'), or, when it holds control characters (line
--      breaks of any kind, terminal escapes, bidi overrides), an E'' literal
--      with them escaped (E'a\nb').  Either is valid SQL for the value, so
--      a HINT's command still works; neither can break a log line of the
--      server or of the driver.
--
-- Parameters:
--      i_value - the value (NULL gives NULL, unquoted)
--
-- Returns:
--      the quoted value
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
declare
    v_controls constant text := '[\x01-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]';
    v_out  text;
    v_char text;
begin
    if i_value is null then
        return 'NULL';
    end if;
    if i_value !~ v_controls then
        return quote_literal(i_value);
    end if;
    v_out := replace(replace(i_value, '\', '\\'), '''', '\''');
    for v_char in select distinct m[1] from regexp_matches(v_out, '(' || v_controls || ')', 'g') m loop
        v_out := replace(v_out, v_char,
                         case v_char when E'\n' then '\n' when E'\r' then '\r' when E'\t' then '\t'
                                     else '\u' || lpad(to_hex(ascii(v_char)), 4, '0') end);
    end loop;
    return 'E''' || v_out || '''';
end;
$$ language plpgsql immutable
   set search_path = pg_catalog, pg_temp;
