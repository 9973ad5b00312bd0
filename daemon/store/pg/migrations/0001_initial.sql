-- The PostgreSQL twin of ../../migrations/0001_initial.sql: the same tables and columns
-- (tests/integration/test_pg_schema.py compares them at every version), plus what
-- several hosts need (the hosts, and the host of each attempt). Times of the store's own rows stay UTC
-- text 'YYYY-MM-DD HH:MM:SS', as in SQLite, so both compare and sort them alike;
-- heartbeats use the database's own clock (timestamptz, now()).

CREATE TABLE queues (
    id                    bigint  PRIMARY KEY,
    client_id             text    NOT NULL,
    name                  text    NOT NULL,
    comment               text    NOT NULL DEFAULT '',
    status                text    NOT NULL DEFAULT 'off' CHECK (status IN ('on', 'off')),
    concurrent_task_limit integer NOT NULL DEFAULT 10,
    create_date           text    NOT NULL,
    last_call_date        text
);
CREATE INDEX queues_by_client ON queues (client_id, id);

CREATE TABLE tasks (
    id               bigint  PRIMARY KEY,
    scheduler_id     bigint  NOT NULL REFERENCES queues (id),
    name             text    NOT NULL DEFAULT '',
    params           text    NOT NULL,
    start_time       text,
    status           text    NOT NULL,
    finish_result    text,
    finish_comment   text    NOT NULL DEFAULT '',
    cdr              text    NOT NULL DEFAULT '',
    attempts_made    integer NOT NULL DEFAULT 0,
    caller_attempts  integer NOT NULL DEFAULT 0,
    invalid_numbers  text    NOT NULL DEFAULT '[]',
    next_attempt     text,
    create_date      text    NOT NULL
);
CREATE INDEX tasks_by_queue ON tasks (scheduler_id, id);
CREATE INDEX tasks_by_queue_status ON tasks (scheduler_id, status, id);
CREATE INDEX tasks_by_queue_result ON tasks (scheduler_id, finish_result, id);
CREATE INDEX tasks_by_queue_name ON tasks (scheduler_id, name, id);
CREATE INDEX tasks_due ON tasks (next_attempt, id) WHERE next_attempt IS NOT NULL;

-- Task counts per queue, status and result. SQLite keeps one row per key; here every
-- statement appends its changes as rows of deltas (readers sum them, housekeeping folds
-- them): counting rows of one hot key in place would make concurrent hosts wait on,
-- and deadlock over, the same few rows.
CREATE TABLE task_counts (
    scheduler_id  bigint  NOT NULL,
    status        text    NOT NULL,
    finish_result text    NOT NULL DEFAULT '',
    n             integer NOT NULL
);
CREATE INDEX task_counts_by_key ON task_counts (scheduler_id, status, finish_result);

CREATE FUNCTION task_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_counts (scheduler_id, status, finish_result, n)
    SELECT scheduler_id, status, coalesce(finish_result, ''), count(*)
    FROM new_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;
CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_insert();

CREATE FUNCTION task_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_counts (scheduler_id, status, finish_result, n)
    SELECT scheduler_id, status, finish_result, sum(n) FROM (
        SELECT o.scheduler_id, o.status, coalesce(o.finish_result, '') AS finish_result, -1 AS n
        FROM old_rows o JOIN new_rows w ON w.id = o.id
        WHERE o.status IS DISTINCT FROM w.status OR o.finish_result IS DISTINCT FROM w.finish_result
        UNION ALL
        SELECT w.scheduler_id, w.status, coalesce(w.finish_result, ''), 1
        FROM old_rows o JOIN new_rows w ON w.id = o.id
        WHERE o.status IS DISTINCT FROM w.status OR o.finish_result IS DISTINCT FROM w.finish_result
    ) changes GROUP BY 1, 2, 3 HAVING sum(n) != 0;
    RETURN NULL;
END $$;
CREATE TRIGGER task_counts_update AFTER UPDATE ON tasks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION task_counts_update();

CREATE FUNCTION task_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_counts (scheduler_id, status, finish_result, n)
    SELECT scheduler_id, status, coalesce(finish_result, ''), -count(*)
    FROM old_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_delete();

CREATE TABLE attempts (
    call_uuid         text    PRIMARY KEY,
    task_id           bigint  NOT NULL REFERENCES tasks (id),
    attempt_no        integer NOT NULL,
    scheduler_id      bigint  NOT NULL,
    state             text    NOT NULL,
    plan              text    NOT NULL,
    start_time        text    NOT NULL,
    a_answer_time     text,
    bridged_time      text,
    end_time          text,
    answered_a_number text,
    a_dial_status     text,
    b_dial_status     text,
    a_hangup_cause    integer,
    b_hangup_cause    integer,
    result            text,
    result_comment    text    NOT NULL DEFAULT '',
    -- The host whose PBX places the call, committed before the Originate is sent.
    host_id           text    NOT NULL DEFAULT '',
    UNIQUE (task_id, attempt_no)
);
CREATE INDEX attempts_by_queue_time ON attempts (scheduler_id, start_time);
CREATE INDEX attempts_by_time ON attempts (start_time);
CREATE INDEX attempts_live ON attempts (host_id, state) WHERE state != 'ended';

CREATE TABLE call_events (
    call_uuid   text    NOT NULL,
    seq         integer NOT NULL,
    received_at text    NOT NULL,
    event       text    NOT NULL,
    PRIMARY KEY (call_uuid, seq)
);

CREATE TABLE outbox (
    id           bigint  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    task_id      bigint  NOT NULL,
    event        text    NOT NULL,
    url          text    NOT NULL,
    body         text    NOT NULL,
    created      text    NOT NULL,
    next_try     text    NOT NULL,
    tries        integer NOT NULL DEFAULT 0,
    delivered_at text,
    given_up     integer NOT NULL DEFAULT 0,
    last_error   text    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_pending ON outbox (next_try, id) WHERE delivered_at IS NULL AND given_up = 0;
CREATE INDEX outbox_by_task ON outbox (task_id, id);

CREATE TABLE idempotency_keys (
    client_id    text    NOT NULL,
    key          text    NOT NULL,
    request_hash text    NOT NULL,
    status       integer NOT NULL,
    body         text    NOT NULL,
    created      text    NOT NULL,
    PRIMARY KEY (client_id, key)
);

-- The hosts sharing this store. Heartbeats are stamped with the database's clock,
-- never a host's own, so skewed host clocks cannot make a live host look gone.
CREATE TABLE hosts (
    host_id        text        PRIMARY KEY,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now(),
    schema_version integer     NOT NULL,
    -- The longest a call of this host can last (ring times + max_talk_time), 0 = no
    -- limit: once it is gone, its calls are closed only after this, or on release.
    max_call_seconds integer   NOT NULL DEFAULT 0,
    released_at    timestamptz                 -- `callbackd cluster release HOST`
);
