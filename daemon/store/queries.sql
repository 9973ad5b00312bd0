-- Every SQL statement of callbackd, by name. daemon/store/queries.py loads this file.

-- name: insert_queue
INSERT INTO queues (client_id, name, comment, status, concurrent_task_limit, create_date)
VALUES (:client_id, :name, :comment, :status, :concurrent_task_limit, :now)
RETURNING id;

-- name: select_queue
SELECT q.*,
       coalesce((SELECT sum(n) FROM task_counts c WHERE c.scheduler_id = q.id), 0) AS task_count,
       coalesce((SELECT sum(n) FROM task_counts c
                 WHERE c.scheduler_id = q.id AND c.status != 'finished'), 0) AS sched_task_count
FROM queues q WHERE q.id = :id AND q.client_id = :client_id;

-- name: select_queues
SELECT q.*,
       coalesce((SELECT sum(n) FROM task_counts c WHERE c.scheduler_id = q.id), 0) AS task_count,
       coalesce((SELECT sum(n) FROM task_counts c
                 WHERE c.scheduler_id = q.id AND c.status != 'finished'), 0) AS sched_task_count
FROM queues q WHERE q.client_id = :client_id ORDER BY q.id;

-- name: update_queue
UPDATE queues SET name = :name, comment = :comment, status = :status,
                  concurrent_task_limit = :concurrent_task_limit
WHERE id = :id AND client_id = :client_id;

-- name: count_unfinished_in_queue
SELECT coalesce(sum(n), 0) FROM task_counts WHERE scheduler_id = :id AND status != 'finished';

-- name: delete_queue_tasks_events
DELETE FROM call_events WHERE call_uuid IN (SELECT call_uuid FROM attempts WHERE scheduler_id = :id);

-- name: delete_queue_attempts
DELETE FROM attempts WHERE scheduler_id = :id;

-- name: delete_queue_tasks
DELETE FROM tasks WHERE scheduler_id = :id;

-- name: delete_queue_counts
DELETE FROM task_counts WHERE scheduler_id = :id;

-- name: delete_queue
DELETE FROM queues WHERE id = :id AND client_id = :client_id;

-- name: insert_task
INSERT INTO tasks (scheduler_id, name, params, start_time, status, next_attempt, create_date)
VALUES (:scheduler_id, :name, :params, :start_time, 'scheduled', :next_attempt, :now);

-- name: select_task
SELECT * FROM tasks WHERE id = :id AND scheduler_id = :scheduler_id;

-- name: select_task_by_id
SELECT * FROM tasks WHERE id = :id;

-- name: select_tasks_range
SELECT * FROM tasks WHERE scheduler_id = :scheduler_id AND id >= :first_id ORDER BY id LIMIT :n;

-- name: update_task_params
UPDATE tasks SET name = :name, params = :params, start_time = :start_time,
                 next_attempt = :next_attempt
WHERE id = :id AND status IN ('scheduled', 'delayed', 'delayed_concurrent_task');

-- name: finish_task
UPDATE tasks SET status = 'finished', finish_result = :result, finish_comment = :comment,
                 next_attempt = NULL
WHERE id = :id AND status != 'finished';

-- name: count_tasks_by_status
SELECT coalesce(sum(n), 0) FROM task_counts WHERE scheduler_id = :scheduler_id;

-- name: select_idempotency
SELECT request_hash, status, body FROM idempotency_keys WHERE client_id = :client_id AND key = :key;

-- name: insert_idempotency
INSERT INTO idempotency_keys (client_id, key, request_hash, status, body, created)
VALUES (:client_id, :key, :request_hash, :status, :body, :now);

-- name: select_attempts_of_task
SELECT * FROM attempts WHERE task_id = :task_id ORDER BY attempt_no;

-- name: select_call
SELECT a.* FROM attempts a JOIN queues q ON q.id = a.scheduler_id
WHERE a.call_uuid = :call_uuid AND q.client_id = :client_id;

-- name: select_call_events
SELECT received_at, event FROM call_events WHERE call_uuid = :call_uuid ORDER BY seq;
