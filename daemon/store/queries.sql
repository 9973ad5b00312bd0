-- Every SQL statement of callbackd, by name. daemon/store/queries.py loads this file.

-- name: insert_queue
-- Numbered past every queue there ever was (retired_ids), not only the ones left.
INSERT INTO queues (id, client_id, name, comment, status, concurrent_task_limit, interval_id,
                    create_date)
VALUES (max((SELECT coalesce(max(id), 0) FROM queues),
            (SELECT coalesce(max(max_id), 0) FROM retired_ids WHERE name = 'queues')) + 1,
        :client_id, :name, :comment, :status, :concurrent_task_limit, :interval_id, :now)
RETURNING id;

-- name: select_queue
SELECT q.*, i.timezone AS interval_timezone, i.conditions AS interval_conditions,
       coalesce((SELECT sum(n) FROM task_counts c WHERE c.scheduler_id = q.id), 0) AS task_count,
       coalesce((SELECT sum(n) FROM task_counts c
                 WHERE c.scheduler_id = q.id AND c.status != 'finished'), 0) AS sched_task_count
FROM queues q LEFT JOIN intervals i ON i.id = q.interval_id
WHERE q.id = :id AND q.client_id = :client_id;

-- name: select_queues
SELECT q.*, i.timezone AS interval_timezone, i.conditions AS interval_conditions,
       coalesce((SELECT sum(n) FROM task_counts c WHERE c.scheduler_id = q.id), 0) AS task_count,
       coalesce((SELECT sum(n) FROM task_counts c
                 WHERE c.scheduler_id = q.id AND c.status != 'finished'), 0) AS sched_task_count
FROM queues q LEFT JOIN intervals i ON i.id = q.interval_id
WHERE q.client_id = :client_id ORDER BY q.id;

-- name: update_queue
UPDATE queues SET name = :name, comment = :comment, status = :status,
                  concurrent_task_limit = :concurrent_task_limit, interval_id = :interval_id
WHERE id = :id AND client_id = :client_id;

-- Time intervals

-- name: insert_interval
INSERT INTO intervals (id, client_id, name, timezone, conditions, create_date)
VALUES (max((SELECT coalesce(max(id), 0) FROM intervals),
            (SELECT coalesce(max(max_id), 0) FROM retired_ids WHERE name = 'intervals')) + 1,
        :client_id, :name, :timezone, :conditions, :now)
RETURNING id;

-- name: select_interval
SELECT * FROM intervals WHERE id = :id AND client_id = :client_id;

-- name: select_intervals
SELECT * FROM intervals WHERE client_id = :client_id ORDER BY id;

-- name: update_interval
UPDATE intervals SET name = :name, timezone = :timezone, conditions = :conditions
WHERE id = :id AND client_id = :client_id;

-- name: count_queues_of_interval
SELECT count(*) FROM queues WHERE interval_id = :id;

-- name: retire_interval_id
INSERT INTO retired_ids (name, max_id) VALUES ('intervals', :id)
ON CONFLICT (name) DO UPDATE SET max_id = max(max_id, excluded.max_id);

-- name: delete_interval
DELETE FROM intervals WHERE id = :id AND client_id = :client_id;

-- name: count_unfinished_in_queue
SELECT coalesce(sum(n), 0) FROM task_counts WHERE scheduler_id = :id AND status != 'finished';

-- name: delete_queue_tasks_events
DELETE FROM call_event_batches WHERE call_uuid IN (SELECT call_uuid FROM attempts WHERE scheduler_id = :id);

-- name: delete_queue_attempts
DELETE FROM attempts WHERE scheduler_id = :id;

-- name: delete_queue_tasks
DELETE FROM tasks WHERE scheduler_id = :id;

-- name: delete_queue_counts
DELETE FROM task_counts WHERE scheduler_id = :id;

-- name: retire_queue_task_ids
INSERT INTO retired_ids (name, max_id)
SELECT 'tasks', max(id) FROM tasks WHERE scheduler_id = :id GROUP BY scheduler_id
ON CONFLICT (name) DO UPDATE SET max_id = max(max_id, excluded.max_id);

-- name: retire_queue_id
INSERT INTO retired_ids (name, max_id) VALUES ('queues', :id)
ON CONFLICT (name) DO UPDATE SET max_id = max(max_id, excluded.max_id);

-- name: delete_queue
DELETE FROM queues WHERE id = :id AND client_id = :client_id;

-- name: next_task_id
-- Past every task there ever was (retired_ids holds the deleted ones), taken under the
-- write lock: a batch numbers its tasks from here, so their ids are known before the
-- insert ends.
SELECT max((SELECT coalesce(max(id), 0) FROM tasks),
           (SELECT coalesce(max(max_id), 0) FROM retired_ids WHERE name = 'tasks')) + 1;

-- name: insert_tasks
-- A whole batch in one statement: :params is a JSON array of the tasks' stored params,
-- :starts their start times by position (shorter, or [], where they have none). One
-- statement keeps the per-row work inside SQLite, and runs the counting trigger's
-- program once instead of once per row.
INSERT INTO tasks (id, scheduler_id, name, params, start_time, status, next_attempt, create_date)
SELECT :first_id + key, :scheduler_id, coalesce(json_extract(value, '$.name'), ''), value,
       start, 'scheduled', coalesce(start, :now), :now
FROM (SELECT key, value,
             CASE WHEN :starts != '[]' THEN json_extract(:starts, '$[' || key || ']') END AS start
      FROM json_each(:params));

-- name: select_task
SELECT * FROM tasks WHERE id = :id AND scheduler_id = :scheduler_id;

-- name: select_task_state
-- What the lifecycle needs of a task, its params aside (daemon/store/tasks.py read_state).
SELECT status, attempts_made, caller_attempts, invalid_numbers, next_attempt
FROM tasks WHERE id = :id;

-- name: select_task_state_and_params
SELECT status, attempts_made, caller_attempts, invalid_numbers, next_attempt, params
FROM tasks WHERE id = :id;

-- name: lock_tasks_for_claim
-- The states a claim of several tasks is decided from, in one read (on the shared store
-- their rows are locked to the commit, so the guarded updates that follow all hold).
SELECT id, status, attempts_made, caller_attempts, invalid_numbers, next_attempt
FROM tasks WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id;

-- name: select_tasks_by_ids
SELECT * FROM tasks WHERE id IN (SELECT value FROM json_each(:ids));

-- name: select_task_by_id
SELECT * FROM tasks WHERE id = :id;

-- name: select_task_with_webhook_url
-- Stored params leave out unset fields: most tasks have no URL for most events, and
-- SQLite answers that without the task's params being parsed in Python.
SELECT *, params ->> :url_path AS webhook_url FROM tasks WHERE id = :id;

-- name: select_tasks_range
SELECT * FROM tasks WHERE scheduler_id = :scheduler_id AND id >= :first_id ORDER BY id LIMIT :n;

-- name: count_tasks_by_status
SELECT coalesce(sum(n), 0) FROM task_counts WHERE scheduler_id = :scheduler_id;

-- name: select_idempotency
-- A key is remembered from :since on (api.idempotency_hours); an older one is new again.
SELECT request_hash, status, body FROM idempotency_keys
WHERE client_id = :client_id AND key = :key AND created >= :since;

-- name: insert_idempotency
-- Replaces an expired row of the same key that housekeeping has not deleted yet.
INSERT INTO idempotency_keys (client_id, key, request_hash, status, body, created)
VALUES (:client_id, :key, :request_hash, :status, :body, :now)
ON CONFLICT (client_id, key) DO UPDATE SET
    request_hash = excluded.request_hash, status = excluded.status, body = excluded.body,
    created = excluded.created;

-- name: delete_expired_idempotency
-- :n at a time, oldest first: a short write transaction each.
DELETE FROM idempotency_keys WHERE (client_id, key) IN (
    SELECT client_id, key FROM idempotency_keys WHERE created < :before
    ORDER BY created LIMIT :n
);

-- name: delete_old_webhooks
-- Webhooks delivered, or given up (next_try is then the last try), before :before; :n
-- at a time. Pending ones stay whatever their age.
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox
    WHERE (delivered_at IS NOT NULL OR given_up = 1)
      AND coalesce(delivered_at, next_try) < :before
    ORDER BY coalesce(delivered_at, next_try) LIMIT :n
);

-- name: select_attempts_of_task
SELECT * FROM attempts WHERE task_id = :task_id ORDER BY attempt_no;

-- name: select_call
SELECT a.* FROM attempts a JOIN queues q ON q.id = a.scheduler_id
WHERE a.call_uuid = :call_uuid AND q.client_id = :client_id;

-- name: select_call_events
-- One row per event, in arrival order, out of the call's stored batches.
SELECT e.value ->> 0 AS received_at, e.value -> 1 AS event
FROM call_event_batches b, json_each(b.events) e
WHERE b.call_uuid = :call_uuid
ORDER BY b.last_seq, e.key;

-- name: insert_attempt
INSERT INTO attempts (call_uuid, task_id, attempt_no, scheduler_id, state, plan, start_time)
VALUES (:call_uuid, :task_id, :attempt_no, :scheduler_id, 'originating', :plan, :now);

-- name: lock_queue_for_claim
-- The queue's limit; on the shared store its row is locked to the commit (FOR UPDATE).
SELECT concurrent_task_limit FROM queues WHERE id = :id;

-- name: count_running_in_queue
SELECT coalesce(sum(n), 0) FROM task_counts WHERE scheduler_id = :id AND status = 'executed';

-- name: touch_queue_last_call
UPDATE queues SET last_call_date = :now WHERE id = :scheduler_id;

-- name: delete_unsent_attempt
DELETE FROM attempts WHERE call_uuid = :call_uuid AND state = 'originating';

-- name: withdraw_start_webhook
-- The `before`/`before_again` webhook of an attempt given back: it rang nobody. The
-- outbox holds a task's webhooks while its Originate is on the way, so this row is
-- still pending here.
DELETE FROM outbox
WHERE task_id = :task_id AND event IN ('before', 'before_again')
  AND delivered_at IS NULL AND given_up = 0
  AND json_extract(body, '$.attempt.call_uuid') = :call_uuid;

-- name: select_last_call_of_task
SELECT call_uuid FROM attempts WHERE task_id = :task_id ORDER BY attempt_no DESC LIMIT 1;

-- name: mark_attempt_answered
UPDATE attempts SET state = 'in_call', a_answer_time = :at, answered_a_number = :number
WHERE call_uuid = :call_uuid AND state != 'ended';

-- name: mark_attempt_bridged
-- Once per attempt (the bridge's own write, or the end's when that came first): the
-- caller sends the `success` webhook only when this changed a row, and only to the
-- task's URL it returns (most tasks have none: no second read for them).
UPDATE attempts SET state = 'in_call', bridged_time = :at
WHERE call_uuid = :call_uuid AND state != 'ended' AND bridged_time IS NULL
RETURNING (SELECT params ->> '$.url_success' FROM tasks WHERE id = attempts.task_id)
          AS webhook_url;

-- name: mark_attempt_answered_and_bridged
-- mark_attempt_answered and mark_attempt_bridged in one statement, for a bridge whose
-- answer is not stored yet; when it changes no row, the answer is stored alone.
UPDATE attempts SET state = 'in_call', a_answer_time = :at, answered_a_number = :number,
                    bridged_time = :bridged_at
WHERE call_uuid = :call_uuid AND state != 'ended' AND bridged_time IS NULL
RETURNING (SELECT params ->> '$.url_success' FROM tasks WHERE id = attempts.task_id)
          AS webhook_url;

-- name: end_attempt
UPDATE attempts SET state = 'ended', a_answer_time = coalesce(a_answer_time, :a_answer_time),
                    bridged_time = coalesce(bridged_time, :bridged_time), end_time = :end_time,
                    answered_a_number = coalesce(:answered_a_number, answered_a_number),
                    a_dial_status = :a_dial_status, b_dial_status = :b_dial_status,
                    a_hangup_cause = :a_hangup_cause, b_hangup_cause = :b_hangup_cause,
                    result = :result, result_comment = :result_comment,
                    refusal = :refusal, cancel_time = :cancel_time
WHERE call_uuid = :call_uuid AND state != 'ended';

-- name: note_given_back
INSERT INTO given_back (task_id, time, refusal) VALUES (:task_id, :time, :refusal)
ON CONFLICT (task_id) DO UPDATE
SET time = excluded.time, refusal = excluded.refusal, count = given_back.count + 1;

-- name: select_live_attempts
SELECT * FROM attempts WHERE state != 'ended' ORDER BY start_time;

-- name: select_attempt
SELECT * FROM attempts WHERE call_uuid = :call_uuid;

-- name: select_attempts_by_uuids
SELECT * FROM attempts WHERE call_uuid IN (SELECT value FROM json_each(:call_uuids));

-- name: insert_call_event_batch
INSERT INTO call_event_batches (call_uuid, last_seq, events) VALUES (?, ?, ?);

-- name: insert_call_event_batch_if_stored
-- The batch, if the call's last stored event number is between :stored_from and
-- :stored_to (daemon/store/attempts.py, _insert_events); else nothing.
INSERT INTO call_event_batches (call_uuid, last_seq, events)
SELECT :call_uuid, CAST(:last_seq AS INTEGER), :events
WHERE (SELECT coalesce(max(last_seq), 0) FROM call_event_batches WHERE call_uuid = :call_uuid)
      BETWEEN :stored_from AND :stored_to;

-- name: max_event_seq
SELECT coalesce(max(last_seq), 0) FROM call_event_batches WHERE call_uuid = :call_uuid;

-- name: insert_webhook
INSERT INTO outbox (task_id, event, url, body, created, next_try)
VALUES (:task_id, :event, :url, :body, :now, :now);

-- name: select_queue_limits
-- With the calling hours of each queue (null: always open).
SELECT q.id, q.status, q.concurrent_task_limit, q.interval_id,
       i.timezone AS interval_timezone, i.conditions AS interval_conditions
FROM queues q LEFT JOIN intervals i ON i.id = q.interval_id;

-- name: select_recent_attempts
-- The ended attempts of the answer-rate guard's window, rebuilt at start.
SELECT a.call_uuid, a.end_time, a.a_answer_time, a.result,
       t.params ->> '$.extension_id' AS extension_id
FROM attempts a JOIN tasks t ON t.id = a.task_id
WHERE a.start_time >= :since AND a.state = 'ended' AND a.end_time IS NOT NULL
ORDER BY a.end_time;

-- name: select_executing_tasks
SELECT id, scheduler_id, params FROM tasks WHERE status = 'executed';

-- name: count_calls_on_this_pbx
-- This host's calls in progress (calls.max_concurrent is per host): on one host's own
-- file, every task in a call.
SELECT coalesce(sum(n), 0) FROM task_counts WHERE status = 'executed';

-- name: count_calls_in_profile_on_this_pbx
-- This host's calls of one extension profile (its max_concurrent is per host), through
-- the (scheduler_id, status) index, one lookup per queue.
SELECT count(*) FROM queues q
JOIN tasks t ON t.scheduler_id = q.id AND t.status = 'executed'
WHERE t.params ->> '$.extension_id' = :extension_id;

-- name: count_calls_elsewhere_by_queue
-- The other hosts' calls per queue: one host of its own file has none (the shared
-- store's twin counts them).
SELECT scheduler_id, count(*) AS calls FROM attempts WHERE 0 GROUP BY scheduler_id;

-- name: select_next_due_time
SELECT t.next_attempt FROM tasks t JOIN queues q ON q.id = t.scheduler_id
WHERE t.next_attempt IS NOT NULL AND t.next_attempt > :now AND q.status = 'on'
ORDER BY t.next_attempt LIMIT 1;

-- Webhook outbox delivery

-- name: outbox_heads
-- The oldest pending webhook of each task, soonest first, leaving out the tasks in
-- :busy (a JSON list of task ids being delivered now, or whose Originate is on its
-- way): a task's webhook waits until every earlier one is delivered or given up.
SELECT o.id, o.task_id, o.event, o.url, o.body, o.created, o.next_try, o.tries
FROM outbox o
WHERE o.delivered_at IS NULL AND o.given_up = 0
  AND o.task_id NOT IN (SELECT value FROM json_each(:busy))
  AND NOT EXISTS (SELECT 1 FROM outbox e
                  WHERE e.task_id = o.task_id AND e.id < o.id
                    AND e.delivered_at IS NULL AND e.given_up = 0)
ORDER BY o.next_try, o.id
LIMIT :n;

-- name: outbox_delivered
UPDATE outbox SET delivered_at = :now, tries = :tries
WHERE id = :id AND delivered_at IS NULL AND given_up = 0;

-- name: outbox_failed
UPDATE outbox SET tries = :tries, last_error = :error, next_try = :next_try, given_up = :given_up
WHERE id = :id AND delivered_at IS NULL AND given_up = 0;
