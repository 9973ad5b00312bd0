-- Times are UTC text 'YYYY-MM-DD HH:MM:SS': they sort and compare as strings.

CREATE TABLE queues (
    id                    INTEGER PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    name                  TEXT    NOT NULL,
    comment               TEXT    NOT NULL DEFAULT '',
    status                TEXT    NOT NULL DEFAULT 'off' CHECK (status IN ('on', 'off')),
    concurrent_task_limit INTEGER NOT NULL DEFAULT 10,
    create_date           TEXT    NOT NULL,
    last_call_date        TEXT
);
CREATE INDEX queues_by_client ON queues (client_id, id);

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY,
    scheduler_id     INTEGER NOT NULL REFERENCES queues (id),
    name             TEXT    NOT NULL DEFAULT '',
    params           TEXT    NOT NULL,          -- the validated task input as JSON
    start_time       TEXT,                      -- as the client asked, UTC
    status           TEXT    NOT NULL,
    finish_result    TEXT,
    finish_comment   TEXT    NOT NULL DEFAULT '',
    cdr              TEXT    NOT NULL DEFAULT '',
    attempts_made    INTEGER NOT NULL DEFAULT 0,
    caller_attempts  INTEGER NOT NULL DEFAULT 0, -- attempts in which no A number answered
    invalid_numbers  TEXT    NOT NULL DEFAULT '[]',
    next_attempt     TEXT,                      -- due time while waiting, else NULL
    create_date      TEXT    NOT NULL
);
CREATE INDEX tasks_by_queue ON tasks (scheduler_id, id);
CREATE INDEX tasks_by_queue_status ON tasks (scheduler_id, status, id);
CREATE INDEX tasks_by_queue_result ON tasks (scheduler_id, finish_result, id);
CREATE INDEX tasks_by_queue_name ON tasks (scheduler_id, name, id);
-- The scheduler's "next due" lookup touches only waiting tasks.
CREATE INDEX tasks_due ON tasks (next_attempt, id) WHERE next_attempt IS NOT NULL;

-- Task counts per queue, status and result, kept by triggers so that queue counters and
-- the X-Total-Count of status/result filters never count rows.
CREATE TABLE task_counts (
    scheduler_id  INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    finish_result TEXT    NOT NULL DEFAULT '',
    n             INTEGER NOT NULL,
    PRIMARY KEY (scheduler_id, status, finish_result)
) WITHOUT ROWID;

CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (scheduler_id, status, finish_result, n)
    VALUES (NEW.scheduler_id, NEW.status, coalesce(NEW.finish_result, ''), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_counts_update AFTER UPDATE OF status, finish_result ON tasks
WHEN OLD.status IS NOT NEW.status OR OLD.finish_result IS NOT NEW.finish_result BEGIN
    UPDATE task_counts SET n = n - 1
    WHERE scheduler_id = OLD.scheduler_id AND status = OLD.status
      AND finish_result = coalesce(OLD.finish_result, '');
    INSERT INTO task_counts (scheduler_id, status, finish_result, n)
    VALUES (NEW.scheduler_id, NEW.status, coalesce(NEW.finish_result, ''), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1
    WHERE scheduler_id = OLD.scheduler_id AND status = OLD.status
      AND finish_result = coalesce(OLD.finish_result, '');
END;

-- One row per attempt: the call record of docs/api.md. Written before the Originate is sent.
CREATE TABLE attempts (
    call_uuid         TEXT    PRIMARY KEY,
    task_id           INTEGER NOT NULL REFERENCES tasks (id),
    attempt_no        INTEGER NOT NULL,
    scheduler_id      INTEGER NOT NULL,
    state             TEXT    NOT NULL,         -- originating | in_call | ended
    plan              TEXT    NOT NULL,         -- numbers dialled, caller IDs sent (JSON)
    start_time        TEXT    NOT NULL,
    a_answer_time     TEXT,
    bridged_time      TEXT,
    end_time          TEXT,
    answered_a_number TEXT,
    a_dial_status     TEXT,
    b_dial_status     TEXT,
    a_hangup_cause    INTEGER,
    b_hangup_cause    INTEGER,
    result            TEXT,
    result_comment    TEXT    NOT NULL DEFAULT '',
    UNIQUE (task_id, attempt_no)
);
CREATE INDEX attempts_by_queue_time ON attempts (scheduler_id, start_time);
CREATE INDEX attempts_by_time ON attempts (start_time);
CREATE INDEX attempts_live ON attempts (state) WHERE state != 'ended';

CREATE TABLE call_events (
    call_uuid   TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    received_at TEXT    NOT NULL,
    event       TEXT    NOT NULL,               -- the AMI event's headers as JSON
    PRIMARY KEY (call_uuid, seq)
) WITHOUT ROWID;

-- Webhooks wait here until delivered, so a restart loses none.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    task_id      INTEGER NOT NULL,
    event        TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    created      TEXT    NOT NULL,
    next_try     TEXT    NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT,
    given_up     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_pending ON outbox (next_try, id) WHERE delivered_at IS NULL AND given_up = 0;
CREATE INDEX outbox_by_task ON outbox (task_id, id);

CREATE TABLE idempotency_keys (
    client_id    TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    created      TEXT    NOT NULL,
    PRIMARY KEY (client_id, key)
) WITHOUT ROWID;
