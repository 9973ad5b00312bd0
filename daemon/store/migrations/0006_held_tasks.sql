-- Tasks held by calling hours or the answer-rate guard are found by status when they
-- are freed or probed; few, next to the tasks that wait for their time or run.
CREATE INDEX tasks_held ON tasks (status, id) WHERE status IN ('delayed_interval', 'delayed_asr');
