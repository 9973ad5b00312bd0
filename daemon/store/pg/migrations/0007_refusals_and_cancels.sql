-- As ../../migrations/0007_refusals_and_cancels.sql.
ALTER TABLE attempts ADD COLUMN refusal text;
ALTER TABLE attempts ADD COLUMN cancel_time text;

CREATE TABLE given_back (
    task_id  bigint  PRIMARY KEY REFERENCES tasks (id),
    time     text    NOT NULL,
    refusal  text    NOT NULL,
    count    integer NOT NULL DEFAULT 1
);
