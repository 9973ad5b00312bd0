-- As ../../migrations/0005_intervals.sql.
CREATE TABLE intervals (
    id          bigint  PRIMARY KEY,
    client_id   text    NOT NULL,
    name        text    NOT NULL,
    timezone    text    NOT NULL,
    conditions  text    NOT NULL DEFAULT '[]',
    create_date text    NOT NULL
);
CREATE INDEX intervals_by_client ON intervals (client_id, id);

ALTER TABLE queues ADD COLUMN interval_id bigint REFERENCES intervals (id);
CREATE INDEX queues_by_interval ON queues (interval_id) WHERE interval_id IS NOT NULL;
