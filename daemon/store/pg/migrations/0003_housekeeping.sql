-- As ../../migrations/0003_housekeeping.sql.
CREATE INDEX idempotency_by_created ON idempotency_keys (created);
CREATE INDEX outbox_finished ON outbox ((coalesce(delivered_at, next_try)))
WHERE delivered_at IS NOT NULL OR given_up = 1;
