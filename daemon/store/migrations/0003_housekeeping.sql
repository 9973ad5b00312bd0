-- Expired Idempotency-Key answers are found by age and deleted (daemon/housekeeping.py);
-- without this index each sweep would read every stored answer, megabytes each.
CREATE INDEX idempotency_by_created ON idempotency_keys (created);
