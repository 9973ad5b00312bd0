-- Expired Idempotency-Key answers and finished webhooks are found by age and deleted
-- (daemon/housekeeping.py); without these indexes each sweep would read every stored
-- answer (megabytes each) or every webhook while holding the write lock.
CREATE INDEX idempotency_by_created ON idempotency_keys (created);
-- A webhook's finish: when it was delivered, or its last try for one given up.
CREATE INDEX outbox_finished ON outbox (coalesce(delivered_at, next_try))
WHERE delivered_at IS NOT NULL OR given_up = 1;
