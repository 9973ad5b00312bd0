-- The highest id of deleted queues and tasks, so that no id is ever given twice: a panel
-- may still hold a deleted task's id, and a deleted task's webhooks stay in the outbox
-- under it (a new task with the same id would wait behind them, and its webhooks would
-- name a task the panel knew as another). Written when a queue is deleted.
CREATE TABLE retired_ids (
    name   TEXT    PRIMARY KEY,                 -- 'queues' | 'tasks'
    max_id INTEGER NOT NULL
) WITHOUT ROWID;

-- A store from before this table remembers deleted queues and tasks only through the
-- webhooks sent about them.
INSERT INTO retired_ids (name, max_id)
SELECT name, max_id
FROM (SELECT 'tasks' AS name, max(task_id) AS max_id FROM outbox
      UNION ALL
      SELECT 'queues', max(json_extract(body, '$.task.scheduler_id')) FROM outbox)
WHERE max_id IS NOT NULL;
