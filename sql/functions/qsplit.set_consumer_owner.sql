create or replace function qsplit.set_consumer_owner(
    i_consumer  text,
    i_role      text)
returns text as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.set_consumer_owner(2)
--
--      Name the role a consumer belongs to (admins only: qsplit_admin).
--      Only that role, its members, superusers and qsplit_admin members
--      may then apply batches to the consumer, reset it or take it over
--      (see qsplit._claim_consumer).  Naming a group role lets several
--      login roles (a standby driver host) run one consumer.  NULL makes
--      the consumer unowned: the next role to use it owns it.  A consumer
--      not known yet on this target is created without a position.
--
-- Parameters:
--      i_consumer  - consumer name
--      i_role      - role name (as in pg_roles, not quoted), or NULL
--
-- Returns:
--      the previous owner's name (NULL: none)
--
-- Errors:
--      QS011 - no such role
--
-- Calls:
--      nothing outside pg_catalog
--
-- Tables directly manipulated:
--      insert, update - qsplit.consumer
-- ----------------------------------------------------------------------
declare
    v_new   oid;
    v_old   oid;
begin
    if i_role is not null then
        select r.oid into v_new from pg_catalog.pg_roles r where r.rolname = i_role;
        if not found then
            raise exception 'qsplit: consumer "%": no role named %', i_consumer, quote_literal(i_role)
                using errcode = 'QS011',
                      hint = 'Give the role''s name as pg_roles has it (select rolname from pg_roles).';
        end if;
    end if;
    insert into qsplit.consumer as c (consumer_name)
        values (i_consumer)
        on conflict (consumer_name) do nothing;
    select c.owner_role into v_old from qsplit.consumer c where c.consumer_name = i_consumer for update;
    update qsplit.consumer c set owner_role = v_new where c.consumer_name = i_consumer;
    return (select r.rolname::text from pg_catalog.pg_roles r where r.oid = v_old);
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
