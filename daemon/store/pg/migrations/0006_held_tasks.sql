-- As ../../migrations/0006_held_tasks.sql.
CREATE INDEX tasks_held ON tasks (status, id) WHERE status IN ('delayed_interval', 'delayed_asr');
