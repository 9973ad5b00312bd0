-- Time intervals (a queue's calling hours) and the queue's choice of one.
CREATE TABLE intervals (
    id          INTEGER PRIMARY KEY,
    client_id   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    timezone    TEXT    NOT NULL,
    conditions  TEXT    NOT NULL DEFAULT '[]',   -- the validated conditions as JSON
    create_date TEXT    NOT NULL
);
CREATE INDEX intervals_by_client ON intervals (client_id, id);

ALTER TABLE queues ADD COLUMN interval_id INTEGER REFERENCES intervals (id);
-- "Is this interval in use?" on its DELETE.
CREATE INDEX queues_by_interval ON queues (interval_id) WHERE interval_id IS NOT NULL;
