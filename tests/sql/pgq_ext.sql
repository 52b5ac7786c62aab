-- ----------------------------------------------------------------------
-- Test fixture: the part of Skytools' pgq_ext a queue_splitter target
-- has, written for the tests from pgq_ext's documented behaviour (its
-- function headers and python-pgq's SerialConsumer, which calls them):
--
--   pgq_ext.completed_tick   one row per (consumer, subconsumer): the last
--                            tick applied on this database
--   get_last_tick(consumer [, subconsumer])  that tick, NULL without a row
--   set_last_tick(consumer [, subconsumer], tick)  upsert; a NULL tick
--                            deletes the row (the original's --reset)
--
-- The one-argument forms mean subconsumer ''.  SECURITY DEFINER, as in
-- pgq_ext.  Created by the test's superuser, like a real install.
-- ----------------------------------------------------------------------
create schema pgq_ext;
grant usage on schema pgq_ext to public;

create table pgq_ext.completed_tick (
    consumer_id     text not null,
    subconsumer_id  text not null default '',
    last_tick_id    bigint not null,
    primary key (consumer_id, subconsumer_id)
);

create function pgq_ext.get_last_tick(a_consumer text, a_subconsumer text)
returns bigint as $$
    select t.last_tick_id from pgq_ext.completed_tick t
     where t.consumer_id = a_consumer and t.subconsumer_id = a_subconsumer;
$$ language sql security definer set search_path = pg_catalog, pg_temp;

create function pgq_ext.get_last_tick(a_consumer text)
returns bigint as $$
    select pgq_ext.get_last_tick(a_consumer, '');
$$ language sql security definer set search_path = pg_catalog, pg_temp;

create function pgq_ext.set_last_tick(a_consumer text, a_subconsumer text, a_tick_id bigint)
returns integer as $$
begin
    if a_tick_id is null then
        delete from pgq_ext.completed_tick t
         where t.consumer_id = a_consumer and t.subconsumer_id = a_subconsumer;
    else
        insert into pgq_ext.completed_tick as t (consumer_id, subconsumer_id, last_tick_id)
             values (a_consumer, a_subconsumer, a_tick_id)
        on conflict (consumer_id, subconsumer_id) do update set last_tick_id = excluded.last_tick_id;
    end if;
    return 1;
end;
$$ language plpgsql security definer set search_path = pg_catalog, pg_temp;

create function pgq_ext.set_last_tick(a_consumer text, a_tick_id bigint)
returns integer as $$
    select pgq_ext.set_last_tick(a_consumer, '', a_tick_id);
$$ language sql security definer set search_path = pg_catalog, pg_temp;
