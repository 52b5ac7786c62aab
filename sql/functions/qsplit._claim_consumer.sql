create or replace function qsplit._claim_consumer(
    i_consumer  text,
    i_batch_id  bigint default null,
    i_bind      boolean default true)
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._claim_consumer(3)
--
--      Make sure the calling role may act for a consumer, and lock the
--      consumer's row (FOR UPDATE) for the rest of the transaction.
--      A consumer belongs to one role (qsplit.consumer.owner_role): the
--      login role that first used it, or the one an admin named
--      (qsplit.set_consumer_owner).  The caller is session_user, the role
--      that logged in: inside SECURITY DEFINER code current_user is the
--      owner, and session_user cannot be changed by SET ROLE.  It may act
--      when it is the owner or a member of it (a group role named by an
--      admin), a superuser, or a member of qsplit_admin; any other role
--      gets QS011 and nothing changes.
--      With i_bind, a consumer without an owner (new, or from before
--      owners existed) becomes the caller's; admins calling an admin
--      function (qsplit.reset_position) pass i_bind = false and leave it
--      unowned.
--
-- Parameters:
--      i_consumer  - consumer name
--      i_batch_id  - the batch being applied, for the message (NULL: none)
--      i_bind      - give an unowned consumer to the caller
--
-- Returns:
--      nothing; the consumer's row exists and is locked
--
-- Errors:
--      QS011 - the consumer belongs to another role
--
-- Calls:
--      nothing outside pg_catalog
--
-- Tables directly manipulated:
--      insert, update - qsplit.consumer
-- ----------------------------------------------------------------------
declare
    v_me        oid;
    v_owner     oid;
    v_owner_name name;
begin
    select r.oid into v_me from pg_catalog.pg_roles r where r.rolname = session_user;
    insert into qsplit.consumer as c (consumer_name, owner_role)
        values (i_consumer, case when i_bind then v_me end)
        on conflict (consumer_name) do nothing;
    select c.owner_role into v_owner
      from qsplit.consumer c
     where c.consumer_name = i_consumer
       for update;
    if v_owner is null then
        if i_bind then
            update qsplit.consumer c set owner_role = v_me where c.consumer_name = i_consumer;
        end if;
        return;
    end if;
    if v_owner = v_me
       or pg_catalog.pg_has_role(session_user, 'qsplit_admin', 'MEMBER') then
        return;
    end if;
    select r.rolname into v_owner_name from pg_catalog.pg_roles r where r.oid = v_owner;
    if v_owner_name is not null and pg_catalog.pg_has_role(session_user, v_owner, 'MEMBER') then
        return;
    end if;
    raise exception 'qsplit: consumer "%"%: belongs to role %, not to %',
            i_consumer, coalesce(' batch ' || i_batch_id, ''),
            coalesce(quote_ident(v_owner_name), format('(dropped role, oid %s)', v_owner)), quote_ident(session_user)
        using errcode = 'QS011',
              detail = 'A consumer belongs to the role that first used it (or the one an admin named); other roles may not apply batches to it, reset it or take it over. Nothing was changed.',
              hint = format('Give each driver its own consumer name (pgq_consumer_id or job_name). If this role is to run the consumer from now on, a qsplit_admin member runs: select qsplit.set_consumer_owner(%L, %L);',
                            i_consumer, session_user);
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
