create or replace function qsplit._route_pattern_problem(
    i_pattern   text)
returns text as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._route_pattern_problem(1)
--
--      What is wrong with a routing pattern (a route rule's, or the
--      create_pattern of apply_batch), NULL when nothing is.  The pattern
--      is matched against event data once per distinct routing value of
--      every batch, so it must not be able to take unbounded time:
--        - it must compile on its own and anchored as '^(?:p)$' (a pattern
--          like 'a)|(b' would escape the anchors);
--        - it must have no back-reference (\1 .. \9, \mnn): PostgreSQL
--          matches those by backtracking, and (a*)(a*)...\2\1 ran without
--          bound on a 41-character value.  Without back-references the
--          engine is a DFA: time linear in the value.
--      Any backslash followed by a digit is refused (also in a bracket
--      expression, and octal escapes \0nn): write [0-9] or \d instead.
--
-- Parameters:
--      i_pattern - the POSIX regular expression (PostgreSQL ~)
--
-- Returns:
--      NULL, or one line saying what is wrong
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
declare
    v_i     integer := 1;
    v_len   integer := pg_catalog.length(i_pattern);
begin
    while v_i < v_len loop
        if pg_catalog.substr(i_pattern, v_i, 1) = '\' then
            if pg_catalog.substr(i_pattern, v_i + 1, 1) operator(pg_catalog.~) '^[0-9]$' then
                return format('it has a back-reference or octal escape (%s at character %s), which can make '
                              'matching take unbounded time', pg_catalog.substr(i_pattern, v_i, 2), v_i);
            end if;
            v_i := v_i + 2;  -- the escaped character is not an escape itself
        else
            v_i := v_i + 1;
        end if;
    end loop;
    begin
        perform '' operator(pg_catalog.~) i_pattern;
        perform '' operator(pg_catalog.~) ('^(?:' || i_pattern || ')$');
    exception when invalid_regular_expression or program_limit_exceeded then
        return 'it is not a valid regular expression: ' || sqlerrm;
    end;
    return null;
end;
$$ language plpgsql immutable
   set search_path = pg_catalog, pg_temp;
