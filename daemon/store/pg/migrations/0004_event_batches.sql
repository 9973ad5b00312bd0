-- As ../../migrations/0004_event_batches.sql: a call's AMI events in the batches the
-- engine writes them in.
CREATE TABLE call_event_batches (
    call_uuid text    NOT NULL,
    last_seq  integer NOT NULL,
    events    text    NOT NULL,
    PRIMARY KEY (call_uuid, last_seq)
);

DROP TABLE call_events;
