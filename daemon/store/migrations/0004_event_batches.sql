-- A call's AMI events are stored in the batches the engine writes them in (the events
-- that came since the last flush, or the rest of them at the call's end): one row per
-- batch rather than one per event. A callback brings 25-60 events; one B-tree insert
-- each under a random call uuid was the largest part of the daemon's store work per
-- call. `events` is a JSON array of [received_at, {headers}] in arrival order, and
-- `last_seq` numbers the batch's last event (a call's events are numbered from 1), so
-- a call's batches sort by it and a write can skip events stored already.
CREATE TABLE call_event_batches (
    call_uuid TEXT    NOT NULL,
    last_seq  INTEGER NOT NULL,
    events    TEXT    NOT NULL,
    PRIMARY KEY (call_uuid, last_seq)
);

INSERT INTO call_event_batches (call_uuid, last_seq, events)
SELECT call_uuid, seq, json_array(json_array(received_at, json(event))) FROM call_events;

DROP TABLE call_events;
