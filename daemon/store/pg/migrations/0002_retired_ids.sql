-- As ../../migrations/0002_retired_ids.sql. Ids here come from one place under a lock,
-- so deleted ids are never given again either way; the table is kept so that both
-- stores answer the same queries.
CREATE TABLE retired_ids (
    name   text    PRIMARY KEY,
    max_id bigint  NOT NULL
);
