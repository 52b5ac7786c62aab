-- The seed's USECASE (queue_splitter manual), on the source database:
-- events are made with plain SQL inserts; the trigger turns each insert into
-- an event on 'singlequeue' (ev_extra1 = the table name) and skips the row.
select pgq.create_queue('singlequeue');

CREATE SCHEMA queue;

CREATE TABLE queue.event1 (
    -- this should correspond to event internal structure
    -- here you can put checks that correct data is put into queue
    id int4,
    name text,
    -- not needed, but good to have:
    primary key (id)
);
-- put data into queue in urlencoded format, skip actual insert
CREATE TRIGGER redirect_queue1_trg BEFORE INSERT ON queue.event1
FOR EACH ROW EXECUTE PROCEDURE pgq.logutriga('singlequeue', 'SKIP');

-- repeat the above for event2
CREATE TABLE queue.event2 (
    id int4,
    name text,
    primary key (id)
);
CREATE TRIGGER redirect_queue2_trg BEFORE INSERT ON queue.event2
FOR EACH ROW EXECUTE PROCEDURE pgq.logutriga('singlequeue', 'SKIP');
