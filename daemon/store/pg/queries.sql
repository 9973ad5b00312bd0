-- The PostgreSQL text of the named queries of ../queries.sql whose SQLite text
-- PostgreSQL does not take; daemon/store/pg/dbapi.py uses each in place of its twin.
-- Parameters are written as in SQLite (:name, ?); the adapter converts them.
--
-- Ids: several hosts add queues and tasks at once, so the next id is not "the highest
-- row + 1" read in a snapshot, but a counter row in retired_ids, taken with its row
-- lock (held to the commit) and moved past the new rows in the same statement. It is
-- also past every deleted id, as retired_ids is in SQLite.

-- name: insert_queue
WITH next AS (
    INSERT INTO retired_ids (name, max_id)
    VALUES ('queues', (SELECT coalesce(max(id), 0) FROM queues) + 1)
    ON CONFLICT (name) DO UPDATE SET max_id = retired_ids.max_id + 1
    RETURNING max_id
)
INSERT INTO queues (id, client_id, name, comment, status, concurrent_task_limit, interval_id,
                    create_date)
SELECT max_id, :client_id, :name, :comment, :status, :concurrent_task_limit, :interval_id, :now
FROM next
RETURNING id;

-- name: insert_interval
WITH next AS (
    INSERT INTO retired_ids (name, max_id)
    VALUES ('intervals', (SELECT coalesce(max(id), 0) FROM intervals) + 1)
    ON CONFLICT (name) DO UPDATE SET max_id = retired_ids.max_id + 1
    RETURNING max_id
)
INSERT INTO intervals (id, client_id, name, timezone, conditions, create_date)
SELECT max_id, :client_id, :name, :timezone, :conditions, :now FROM next
RETURNING id;

-- name: retire_interval_id
INSERT INTO retired_ids (name, max_id) VALUES ('intervals', :id)
ON CONFLICT (name) DO UPDATE SET max_id = greatest(retired_ids.max_id, excluded.max_id);

-- name: retire_queue_task_ids
INSERT INTO retired_ids (name, max_id)
SELECT 'tasks', max(id) FROM tasks WHERE scheduler_id = :id GROUP BY scheduler_id
ON CONFLICT (name) DO UPDATE SET max_id = greatest(retired_ids.max_id, excluded.max_id);

-- name: retire_queue_id
INSERT INTO retired_ids (name, max_id) VALUES ('queues', :id)
ON CONFLICT (name) DO UPDATE SET max_id = greatest(retired_ids.max_id, excluded.max_id);

-- name: next_task_id
-- Locks the counter row until the commit; insert_tasks moves it past the batch.
INSERT INTO retired_ids (name, max_id)
VALUES ('tasks', (SELECT coalesce(max(id), 0) FROM tasks))
ON CONFLICT (name) DO UPDATE SET max_id = retired_ids.max_id
RETURNING max_id + 1;

-- name: insert_tasks
WITH batch AS (
    SELECT p.key - 1 AS key, p.value,
           CASE WHEN :starts != '[]' THEN (:starts)::jsonb ->> (p.key - 1)::int END AS start
    FROM jsonb_array_elements((:params)::jsonb) WITH ORDINALITY AS p (value, key)
), counted AS (
    UPDATE retired_ids SET max_id = greatest(max_id, :first_id + (SELECT count(*) FROM batch) - 1)
    WHERE name = 'tasks'
)
INSERT INTO tasks (id, scheduler_id, name, params, start_time, status, next_attempt, create_date)
SELECT :first_id + key, :scheduler_id, coalesce(value ->> 'name', ''), value::text,
       start, 'scheduled', coalesce(start, :now), :now
FROM batch;

-- name: select_task_with_webhook_url
SELECT *, params::jsonb ->> substr(:url_path, 3) AS webhook_url FROM tasks WHERE id = :id;

-- name: select_call_events
SELECT e.value ->> 0 AS received_at, (e.value -> 1)::text AS event
FROM call_event_batches b, jsonb_array_elements(b.events::jsonb) WITH ORDINALITY AS e (value, key)
WHERE b.call_uuid = :call_uuid
ORDER BY b.last_seq, e.key;

-- name: withdraw_start_webhook
DELETE FROM outbox
WHERE task_id = :task_id AND event IN ('before', 'before_again')
  AND delivered_at IS NULL AND given_up = 0
  AND body::jsonb #>> '{attempt,call_uuid}' = :call_uuid;

-- name: outbox_heads
-- As in SQLite, and only the webhooks this host sends: those of tasks whose latest
-- attempt is this host's, or, when that host is gone or the task has no attempt, those
-- of the first host alive (by name); with no host alive, this one's. So each webhook
-- is sent by one host, and a task's in order; a gone host's go to one of the others.
WITH me AS (SELECT coalesce(current_setting('callbackd.host_id', true), '') AS id),
alive AS (
    SELECT host_id FROM hosts
    WHERE last_heartbeat >= now() - make_interval(
        secs => coalesce(nullif(current_setting('callbackd.host_timeout', true), ''), '30')::float8)
),
first_alive AS (SELECT coalesce(min(host_id), (SELECT id FROM me)) AS id FROM alive)
SELECT o.id, o.task_id, o.event, o.url, o.body, o.created, o.next_try, o.tries
FROM outbox o
WHERE o.delivered_at IS NULL AND o.given_up = 0
  AND o.task_id NOT IN (SELECT value::bigint FROM jsonb_array_elements_text((:busy)::jsonb))
  AND NOT EXISTS (SELECT 1 FROM outbox e
                  WHERE e.task_id = o.task_id AND e.id < o.id
                    AND e.delivered_at IS NULL AND e.given_up = 0)
  AND coalesce(
        (SELECT a.host_id FROM attempts a
         WHERE a.task_id = o.task_id AND a.host_id IN (SELECT host_id FROM alive)
           AND a.attempt_no = (SELECT max(b.attempt_no) FROM attempts b
                               WHERE b.task_id = o.task_id)),
        (SELECT id FROM first_alive)
      ) = (SELECT id FROM me)
ORDER BY o.next_try, o.id
LIMIT :n;

-- name: select_recent_attempts
-- The extension id as the number SQLite's ->> gives for a JSON number.
SELECT a.call_uuid, a.end_time, a.a_answer_time, a.result,
       (t.params::jsonb ->> 'extension_id')::bigint AS extension_id
FROM attempts a JOIN tasks t ON t.id = a.task_id
WHERE a.start_time >= :since AND a.state = 'ended' AND a.end_time IS NOT NULL
ORDER BY a.end_time;

-- name: insert_attempt
-- The attempt names the host whose PBX places its call (the session's callbackd.host_id).
INSERT INTO attempts (call_uuid, task_id, attempt_no, scheduler_id, state, plan, start_time,
                      host_id)
VALUES (:call_uuid, :task_id, :attempt_no, :scheduler_id, 'originating', :plan, :now,
        coalesce(current_setting('callbackd.host_id', true), ''));

-- name: select_live_attempts
-- A host reconciles the calls of its own PBX only; the others' are theirs, or the
-- recovery's once their host is gone.
SELECT * FROM attempts
WHERE state != 'ended' AND host_id = coalesce(current_setting('callbackd.host_id', true), '')
ORDER BY start_time;

-- name: lock_queue_for_claim
-- Claims of one queue are serialized across hosts: the count that follows, a statement
-- of its own, is read once every claim before has committed.
SELECT concurrent_task_limit FROM queues WHERE id = :id FOR UPDATE;

-- name: select_executing_tasks
-- This host's calls: calls.max_concurrent and a profile's max_concurrent hold per host
-- (each protects its own PBX); a queue's limit is held by the claim.
SELECT t.id, t.scheduler_id, t.params FROM tasks t
WHERE t.status = 'executed' AND EXISTS (
    SELECT 1 FROM attempts a WHERE a.task_id = t.id AND a.state != 'ended'
      AND a.host_id = coalesce(current_setting('callbackd.host_id', true), ''));

-- name: count_calls_on_this_pbx
-- This host's calls: its live attempts (attempts_live).
SELECT count(*) FROM attempts
WHERE state != 'ended' AND host_id = coalesce(current_setting('callbackd.host_id', true), '');

-- name: count_calls_in_profile_on_this_pbx
SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id
WHERE a.state != 'ended' AND a.host_id = coalesce(current_setting('callbackd.host_id', true), '')
  AND (t.params::jsonb ->> 'extension_id')::bigint = :extension_id;

-- name: count_calls_elsewhere_by_queue
-- The other hosts' calls per queue, a gone host's not closed yet included: the claim
-- counts them too. Read from the live attempts' index (attempts_live).
SELECT scheduler_id, count(*) AS calls FROM attempts
WHERE state != 'ended' AND host_id != coalesce(current_setting('callbackd.host_id', true), '')
GROUP BY scheduler_id;

-- name: lock_tasks_for_claim
-- Locked in id order, after the queue's row: a fence that holds to the commit.
SELECT id, status, attempts_made, caller_attempts, invalid_numbers, next_attempt
FROM tasks WHERE id IN (SELECT jsonb_array_elements_text(:ids::jsonb)::bigint)
ORDER BY id FOR UPDATE;

-- name: select_tasks_by_ids
SELECT * FROM tasks WHERE id IN (SELECT jsonb_array_elements_text(:ids::jsonb)::bigint);

-- name: select_attempts_by_uuids
SELECT * FROM attempts WHERE call_uuid IN (SELECT jsonb_array_elements_text(:call_uuids::jsonb));
